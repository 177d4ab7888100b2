"""Export a classifier checkpoint for the fast backends (`moext-live export`).

The network is exported as its two seam parts (docs/ARCHITECTURE.md): `features`
(`forward_features`, one backbone pass per frame) and `head` (`forward_head(f_o, f_a)`), so
the live recognizer can cache the onset's features and run only the head for it.

- ONNX: `features.onnx` + `head.onnx` (opset 17, dynamic batch), for ONNX Runtime.
- TensorRT: torch-tensorrt's dynamo path in fp16. On that path `enabled_precisions` is
  ignored (explicit typing), so the module and its example inputs are converted to half
  before compiling; the compiled programs are saved with `torch_tensorrt.save` and reloaded
  with `torch.export.load`.

Exports are cached under `cache_dir()` keyed by the checkpoint's SHA-256 (and, for
TensorRT, the GPU name and torch-tensorrt version), written atomically, and reused.
"""

from __future__ import annotations

import copy
import hashlib
import json
import os
import re
import tempfile
import warnings
from pathlib import Path

import torch
from torch import nn

ONNX_OPSET = 17


def cache_dir() -> Path:
    """`$MOEXT_CACHE_DIR`, else `$XDG_CACHE_HOME/moext`, else `~/.cache/moext`."""
    env = os.environ.get("MOEXT_CACHE_DIR")
    if env:
        return Path(env)
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "moext"


def checkpoint_hash(path: str | Path) -> str:
    """SHA-256 over the weights and their JSON config (a changed config is a new model)."""
    from moext.checkpoint import config_path

    h = hashlib.sha256()
    for p in (Path(path), config_path(path)):
        with open(p, "rb") as fh:
            for chunk in iter(lambda: fh.read(1 << 20), b""):
                h.update(chunk)
    return h.hexdigest()


class FeaturesPart(nn.Module):
    """`forward_features` as a module of its own: (B, 3, S, S) -> features."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model.forward_features(x)


class HeadPart(nn.Module):
    """`forward_head` as a module of its own: (f_o, f_a[, flow]) -> logits (B, num_classes);
    the flow (B, 3, n, n) is an input only for a classifier that reads it."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model

    def forward(self, f_o: torch.Tensor, f_a: torch.Tensor, flow: torch.Tensor | None = None) -> torch.Tensor:
        if flow is None:
            return self.model.forward_head(f_o, f_a)
        return self.model.forward_head(f_o, f_a, flow)


def _head_args(model: nn.Module, f: torch.Tensor) -> tuple[torch.Tensor, ...]:
    """Example inputs of the head: both features, and the flow when the model reads it."""
    from moext import classifier_inputs

    if not classifier_inputs(model)[1]:
        return f, f
    n = model.cfg.flow_out_size
    return f, f, torch.zeros(f.shape[0], 3, n, n, dtype=f.dtype, device=f.device)


def _image_size(model: nn.Module) -> int:
    # A flow-only classifier (STSTNet) reads no frame; its features graph takes a small one.
    return int(getattr(model.cfg, "image_size", 32))


def _atomic_target(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    os.close(fd)
    return Path(tmp)


def export_onnx(model: nn.Module, out_dir: str | Path) -> tuple[Path, Path]:
    """Write `features.onnx` and `head.onnx` for `model` into `out_dir`; returns both paths."""
    out_dir = Path(out_dir)
    # A copy, and every wrapper in eval mode: a freshly built wrapper module is in training
    # mode, and tracing it so updates BatchNorm statistics of the caller's model.
    model = copy.deepcopy(model).eval().float().cpu()
    s = _image_size(model)
    x = torch.zeros(1, 3, s, s)
    with torch.no_grad():
        f = model.forward_features(x)
    paths = out_dir / "features.onnx", out_dir / "head.onnx"
    feat_axes = {0: "batch"}
    head_args = _head_args(model, f)
    head_inputs = ["f_onset", "f_current", "flow"][: len(head_args)]
    jobs = [
        (FeaturesPart(model).eval(), (x,), ["image"], ["features"],
         {"image": {0: "batch"}, "features": feat_axes}),
        (HeadPart(model).eval(), head_args, head_inputs, ["logits"],
         {**{k: feat_axes for k in head_inputs}, "logits": {0: "batch"}}),
    ]
    for (module, args, inputs, outputs, axes), path in zip(jobs, paths):
        tmp = _atomic_target(path)
        # The TorchScript exporter: the torch.export one needs onnxscript, which we do not
        # ship, and these plain conv/linear graphs need nothing newer.
        with torch.no_grad(), warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)  # "legacy exporter" notices
            torch.onnx.export(
                module, args, str(tmp), input_names=inputs, output_names=outputs,
                dynamic_axes=axes, opset_version=ONNX_OPSET, dynamo=False,
            )
        os.replace(tmp, path)
    (out_dir / "export.json").write_text(
        json.dumps({"format": "onnx", "opset": ONNX_OPSET, "image_size": s,
                    "class_names": list(model.cfg.class_names)}, indent=2)
    )
    return paths


PRECISIONS = ("fp32", "int8")
# Aligned faces the int8 calibration sees (spread over the calibration video).
CALIBRATION_FRAMES = 48


def cached_onnx(
    checkpoint: str | Path, model: nn.Module | None = None, precision: str = "fp32"
) -> tuple[Path, Path]:
    """ONNX files for `checkpoint`, exported once into the cache and reused.

    `precision="int8"` gives a statically quantised `features.int8.onnx` (calibrated on the
    shipped demo video's faces, see `quantize_features`) with the fp32 head.
    """
    if precision not in PRECISIONS:
        raise ValueError(f"unknown precision {precision!r}; choose one of {', '.join(PRECISIONS)}")
    out = cache_dir() / "onnx" / checkpoint_hash(checkpoint)[:20]
    paths = out / "features.onnx", out / "head.onnx"
    if not all(p.is_file() for p in paths):
        if model is None:
            from moext.checkpoint import load_checkpoint

            model, _ = load_checkpoint(checkpoint)
        paths = export_onnx(model, out)
    if precision == "fp32":
        return paths
    q = out / "features.int8.onnx"
    if not q.is_file():
        size = json.loads((out / "export.json").read_text())["image_size"]
        quantize_features(paths[0], q, calibration_inputs(size))
    return q, paths[1]


def calibration_inputs(
    image_size: int, video: str | Path | None = None, frames: int = CALIBRATION_FRAMES
) -> list:
    """Network inputs (1, 3, S, S) float32 of the faces in `video` (default: the shipped
    demo video, a real face photo with generated motions), `frames` of them spread evenly.

    Raises:
        ValueError: the video cannot be read or shows no face.
    """
    import cv2
    import numpy as np

    from moext.face import FaceDetection, FaceMesh
    from moext.preprocess import face_to_input

    video = Path(video) if video else Path(__file__).resolve().parent / "assets" / "demo.mp4"
    cap = cv2.VideoCapture(str(video))
    total = int(cap.get(cv2.CAP_PROP_FRAME_COUNT) or 0)
    if not cap.isOpened() or total <= 0:
        cap.release()
        raise ValueError(f"calibration video {video} cannot be read; pass a video with a face")
    keep = set(np.linspace(0, total - 1, min(frames, total)).round().astype(int).tolist())
    inputs = []
    with FaceMesh(video_mode=True, max_faces=1) as mesh:
        for i in range(total):
            ok, img = cap.read()
            if not ok:
                break
            det = mesh.detect(img)  # every frame: the mesh tracks best in stream order
            if i in keep and isinstance(det, FaceDetection):
                inputs.append(face_to_input(img, det.landmarks, image_size)[0])
    cap.release()
    if not inputs:
        raise ValueError(f"calibration video {video} shows no face the face mesh finds")
    return inputs


def quantize_features(features_onnx: Path, out: Path, inputs: list) -> Path:
    """Static int8 quantisation of the features graph with ONNX Runtime's tools.

    u8 activations x s8 per-channel weights (the combination that uses the CPU's VNNI
    instructions), QDQ format, MinMax calibration on `inputs`. Measured here (2 threads,
    random weights): the ResNet-18 features graph at 224 goes from 35 to 12 ms, MobileNetV3-
    Small's gets slower (2.9 -> 4.8 ms). Probabilities move (benchmarks/realtime.py measures
    by how much), so the default stays fp32.
    """
    from onnxruntime.quantization import (
        CalibrationDataReader,
        QuantFormat,
        QuantType,
        quantize_static,
    )
    from onnxruntime.quantization.shape_inference import quant_pre_process

    class _Reader(CalibrationDataReader):
        def __init__(self) -> None:
            self._it = iter([{"image": x} for x in inputs])

        def get_next(self):
            return next(self._it, None)

    pre = _atomic_target(out)
    tmp = _atomic_target(out)
    try:
        quant_pre_process(str(features_onnx), str(pre))
        quantize_static(
            str(pre), str(tmp), _Reader(), quant_format=QuantFormat.QDQ, per_channel=True,
            activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8,
        )
        os.replace(tmp, out)
    finally:
        for p in (pre, tmp):
            if p.exists():
                p.unlink()
    return out


class TensorRTUnavailable(RuntimeError):
    """torch-tensorrt or CUDA is missing; the message says how to install it."""


INSTALL_TRT = (
    "the TensorRT backend needs an NVIDIA GPU with CUDA and torch-tensorrt: "
    "pip install 'moext[tensorrt]' (or choose --backend onnx or torch)"
)


def import_torch_tensorrt():
    """Import torch_tensorrt, or raise TensorRTUnavailable with the install hint.

    The import fails with OSError/RuntimeError (not only ImportError) on machines without an
    NVIDIA driver, so every failure is caught here.
    """
    if not torch.cuda.is_available():
        raise TensorRTUnavailable(f"no CUDA device is available; {INSTALL_TRT}")
    try:
        import torch_tensorrt  # noqa: F401
    except Exception as e:  # ImportError, OSError (libnvinfer), RuntimeError
        raise TensorRTUnavailable(f"torch_tensorrt cannot be imported ({e}); {INSTALL_TRT}") from None
    return torch_tensorrt


def tensorrt_dir(checkpoint: str | Path) -> Path:
    """Engine cache folder, keyed by checkpoint hash, GPU name and torch-tensorrt version."""
    trt = import_torch_tensorrt()
    gpu = re.sub(r"[^A-Za-z0-9]+", "-", torch.cuda.get_device_name()).strip("-")
    key = f"{checkpoint_hash(checkpoint)[:20]}-{gpu}-trt{trt.__version__}"
    return cache_dir() / "tensorrt" / key


def export_tensorrt(model: nn.Module, out_dir: str | Path) -> tuple[Path, Path]:
    """Compile both parts with torch-tensorrt (dynamo, fp16) and save them into `out_dir`."""
    trt = import_torch_tensorrt()
    out_dir = Path(out_dir)
    dev = torch.device("cuda")
    model = copy.deepcopy(model).eval().to(dev).half()  # fp16 by converting the module...
    s = _image_size(model)
    x = torch.zeros(1, 3, s, s, device=dev, dtype=torch.half)  # ...and its inputs
    with torch.no_grad():
        f = model.forward_features(x)
    paths = out_dir / "features.ep", out_dir / "head.ep"
    for module, args, path in (
        (FeaturesPart(model).eval(), (x,), paths[0]),
        (HeadPart(model).eval(), _head_args(model, f), paths[1]),
    ):
        ep = torch.export.export(module.eval(), args)
        compiled = trt.dynamo.compile(ep, inputs=list(args), min_block_size=1)
        tmp = _atomic_target(path)
        tmp.unlink()
        trt.save(compiled, str(tmp), output_format="exported_program", inputs=list(args))
        os.replace(tmp, path)
    return paths


def cached_tensorrt(checkpoint: str | Path, model: nn.Module | None = None) -> tuple[Path, Path]:
    out = tensorrt_dir(checkpoint)
    paths = out / "features.ep", out / "head.ep"
    if all(p.is_file() for p in paths):
        return paths
    if model is None:
        from moext.checkpoint import load_checkpoint

        model, _ = load_checkpoint(checkpoint)
    return export_tensorrt(model, out)
