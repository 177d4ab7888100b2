"""`moext-train explain`: a heat map of where MIACNet's action branch responds for a pair."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from train.app import app

KINDS = ("miacnet", "miacnet-pretrain")


def _fail(msg: str, code: int = 2) -> None:
    typer.echo(f"error: {msg}", err=True)
    raise typer.Exit(code)


def _read(path: Path, what: str):
    import cv2

    if not path.is_file():
        _fail(f"{what} image {path} does not exist; pass an image file (PNG or JPEG)")
    img = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if img is None:
        _fail(f"cannot read the {what} image {path}; pass a PNG or JPEG file")
    return img


def _align(images: dict, size: int) -> dict:
    """Each frame aligned by its own face-mesh landmarks, as preprocess (--align frame) and
    the live recognizer do."""
    from moext.face import FaceDetection, FaceMesh, align_face

    out = {}
    with FaceMesh(video_mode=False, max_faces=2) as mesh:
        for what, img in images.items():
            det = mesh.detect(img)
            if not isinstance(det, FaceDetection):
                _fail(
                    f"{det.reason} in the {what} image; pass photos with a visible face, or "
                    "--aligned if the images are already aligned face crops"
                )
            out[what] = align_face(img, det.landmarks, size).crop
    return out


def _write_png(path: Path, img) -> None:
    import cv2

    ok, buf = cv2.imencode(".png", img)
    if not ok:
        _fail(f"could not encode the heat map as PNG for {path}")
    from moext.io import atomic_write_bytes

    atomic_write_bytes(path, buf.tobytes())  # a killed run never leaves half a PNG


@app.command("explain")
def explain_cmd(
    onset: Path = typer.Argument(..., help="onset (neutral reference) image"),
    apex: Path = typer.Argument(..., help="apex (or any later) image of the same face"),
    checkpoint: Path = typer.Option(..., "--checkpoint", "-c", help="a MIACNet or MA2MI checkpoint (.safetensors)"),
    out: Path = typer.Option(Path("heat.png"), "--out", "-o", help="PNG to write: onset | apex | heat-map overlay"),
    method: Optional[str] = typer.Option(
        None, "--method", help="gradcam (classifier) or magnitude (any); default gradcam for a classifier, "
        "magnitude for a pre-training checkpoint"
    ),
    class_name: Optional[str] = typer.Option(None, "--class", help="class to explain with Grad-CAM (default: the predicted one)"),
    aligned: bool = typer.Option(False, "--aligned", help="the images are already aligned face crops (skip face alignment)"),
    alpha: float = typer.Option(0.45, "--alpha", min=0.0, max=1.0, help="opacity of the heat map over the apex"),
) -> None:
    """Where the action branch responds between ONSET and APEX, as a heat map over the apex.

    Photos are aligned with the face mesh first (as in preprocessing and the live
    recognizer); pass --aligned for crops that already are.
    """
    import numpy as np

    from moext import CheckpointError, load_checkpoint
    from moext.explain import METHODS, explain_crops
    from moext.preprocess import CROP_SIZE

    images = {"onset": _read(onset, "onset"), "apex": _read(apex, "apex")}
    try:
        model, meta = load_checkpoint(checkpoint, expect_kind=KINDS)
    except CheckpointError as e:
        _fail(f"{e}. Heat maps come from the action branch of MIACNet: pass a checkpoint written by "
              "`moext-train pretrain --method ma2mi` or `finetune --model miacnet`")
    is_classifier = meta["kind"] == "miacnet"
    method = method or ("gradcam" if is_classifier else "magnitude")
    if method not in METHODS:
        _fail(f"--method {method!r}: choose one of {', '.join(METHODS)}")
    if method == "gradcam" and not is_classifier:
        _fail("Grad-CAM needs a classifier head; a pre-training checkpoint has none: use --method magnitude")
    k = None
    if class_name is not None:
        if not is_classifier:
            _fail("--class needs a classifier checkpoint (kind miacnet)")
        names = list(model.cfg.class_names)
        if class_name not in names:
            _fail(f"--class {class_name!r} is not a class of this checkpoint; its classes: {', '.join(names)}")
        k = names.index(class_name)
    if aligned:
        crops = images
        for what, img in crops.items():
            if abs(img.shape[0] - img.shape[1]) > 1:
                _fail(f"--aligned {what} image is {img.shape[1]}x{img.shape[0]}, not square; aligned "
                      "crops are square (drop --aligned to align photos)")
    else:
        crops = _align(images, CROP_SIZE)
    hm, overlay = explain_crops(model, crops["onset"], crops["apex"], method=method, class_index=k, alpha=alpha)
    h = overlay.shape[0]
    import cv2

    panel = np.concatenate([cv2.resize(crops["onset"], (h, h)), cv2.resize(crops["apex"], (h, h)), overlay], axis=1)
    _write_png(out, panel)
    line = f"heat map ({method}, peak {hm.peak:.4g}) -> {out}"
    if hm.class_name is not None:
        probs = ", ".join(f"{n} {p:.2f}" for n, p in zip(model.cfg.class_names, hm.probabilities))
        line += f"; class {hm.class_name} ({probs})"
    if hm.peak == 0.0:
        line += "; the action branch does not respond to this pair (the map is empty)"
    typer.echo(line)
