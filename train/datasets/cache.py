"""`moext-train preprocess`: aligned onset/apex (and further) crops + manifest, resumable.

Per sample: read the needed frames, find the face (MediaPipe face mesh), align each frame to
the canonical 224x224 crop with `moext.face.align_face` (the function the live recognizer
uses), write the crops as lossless PNG (temp file + os.replace), then append the sample's
manifest row. A killed run restarts at the first sample without a row. A sample that cannot
be used (missing frame, unreadable image, no face) gets a `skipped` row with the reason and
is retried by the next run.
"""

from __future__ import annotations

import json
import re
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable

import cv2
import numpy as np

from moext.flow import FlowConfig, flow_field
from moext.io import atomic_write_bytes, atomic_write_text
from moext.face import LANDMARKER_ID, FaceDetection, FaceMesh, align_face
from moext.preprocess import CROP_SIZE
from train.datasets import Sample, read_dataset
from train.manifest import append_row, load_rows, rewrite_rows
from train.flow_cache import flow_file, write_flow

SETTINGS = "preprocess.json"


class CacheError(RuntimeError):
    """The cache cannot be used as asked (made with other settings); the message says the fix."""


@dataclass
class PreprocessConfig:
    """Options of `moext-train preprocess`.

    Attributes:
        frames_per_clip: further crops along the clip, from the onset every `frame_stride`
            frames (MA2MI pre-training pairs (t, t + delta) from them); 0 for none.
        align: "frame" aligns every frame by its own landmarks (what the live recognizer does
            frame by frame); "onset" reuses the onset's transform for the whole sample, so
            the crops keep the face's motion relative to the onset, rigid motion included.
    """

    frames_per_clip: int = 0
    frame_stride: int = 1
    align: str = "frame"
    crop_size: int = CROP_SIZE


@dataclass
class Summary:
    dataset: str
    total: int = 0
    ok: int = 0
    resumed: int = 0
    skipped: list[tuple[str, str]] = field(default_factory=list)  # (sample key, reason)
    warned: int = 0
    seconds: float = 0.0


def _safe(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "__", name)


def _write_png(path: Path, img: np.ndarray) -> None:
    ok, buf = cv2.imencode(".png", img)
    if not ok:
        raise OSError(f"could not encode {path}")
    # No fsync per crop: a crop lost in a power cut has no manifest row yet and is redone.
    atomic_write_bytes(path, buf.tobytes(), fsync=False)


def _read_images(s: Sample, numbers: list[int]) -> dict[int, np.ndarray | None]:
    """Frames by number; None for an unreadable one."""
    out: dict[int, np.ndarray | None] = {}
    if s.video is None:
        for n in numbers:
            out[n] = cv2.imread(str(s.frames[n]), cv2.IMREAD_COLOR)
        return out
    cap = cv2.VideoCapture(str(s.video))
    try:
        want = sorted(set(numbers))
        cap.set(cv2.CAP_PROP_POS_FRAMES, want[0])
        pos = want[0]
        for n in want:
            img = None
            while pos <= n:
                ok, frame = cap.read()
                pos += 1
                img = frame if ok else None
                if not ok:
                    break
            out[n] = img
    finally:
        cap.release()
    return out


def _clip_numbers(s: Sample) -> list[int]:
    if s.video is not None:
        cap = cv2.VideoCapture(str(s.video))
        count = int(cap.get(cv2.CAP_PROP_FRAME_COUNT))
        cap.release()
        return list(range(count))
    return s.frame_numbers()


def _extra_numbers(s: Sample, cfg: PreprocessConfig) -> list[int]:
    if cfg.frames_per_clip <= 0:
        return []
    numbers = _clip_numbers(s)
    if s.onset_index not in numbers:
        return []
    pos = numbers.index(s.onset_index)
    picked = numbers[pos::max(cfg.frame_stride, 1)][: cfg.frames_per_clip]
    if s.offset_index is not None and s.offset_index >= s.onset_index:
        picked = [n for n in picked if n <= s.offset_index] or picked[:1]
    return picked


def _row(s: Sample) -> dict[str, Any]:
    return {
        "dataset": s.dataset, "subject": s.subject, "sample": s.sample, "emotion": s.emotion,
        "kind": s.kind, "onset_index": s.onset_index, "apex_index": s.apex_index,
        "offset_index": s.offset_index, "onset": None, "apex": None, "frames": [],
        "frame_indices": [], "source": [], "aus": s.aus, "warnings": list(s.warnings),
        "status": "skipped", "reason": None,
    }


def process_sample(s: Sample, cache: Path, mesh: FaceMesh, cfg: PreprocessConfig) -> dict[str, Any]:
    """Crops + manifest row of one sample (status skipped with a reason when unusable)."""
    row = _row(s)
    if s.error:
        row["reason"] = s.error
        return row
    extra = _extra_numbers(s, cfg)
    needed = [s.onset_index, s.apex_index] + [n for n in extra if n not in (s.onset_index, s.apex_index)]
    images = _read_images(s, needed)
    for what, n in (("onset", s.onset_index), ("apex", s.apex_index)):
        if images.get(n) is None:
            row["reason"] = f"{s.key}: cannot read the {what} frame {s.source(n)} (unreadable or corrupt image)"
            return row
    dets = {}
    for what, n in (("onset", s.onset_index), ("apex", s.apex_index)):
        det = mesh.detect(images[n])
        if not isinstance(det, FaceDetection):
            row["reason"] = f"{s.key}: {det.reason} in the {what} frame {s.source(n)}"
            return row
        dets[n] = det
    onset_tf = align_face(images[s.onset_index], dets[s.onset_index].landmarks, cfg.crop_size).transform

    def crop(n: int, det: FaceDetection) -> np.ndarray:
        tf = onset_tf if cfg.align == "onset" else None
        return align_face(images[n], det.landmarks, cfg.crop_size, transform=tf).crop

    rel = Path("crops") / _safe(s.dataset) / _safe(s.subject) / _safe(s.sample)
    pair = {}
    for what, n in (("onset", s.onset_index), ("apex", s.apex_index)):
        pair[what] = crop(n, dets[n])
        _write_png(cache / rel / f"{what}_{n}.png", pair[what])
        row[what] = str(rel / f"{what}_{n}.png")
    # The onset -> apex flow that flow-fed classifiers read (STSTNet, `flow_input`), cached
    # now so that training starts from it; the crops written just now are its source.
    flow_cfg = FlowConfig()
    where = {"onset": cache / row["onset"], "apex": cache / row["apex"]}
    write_flow(flow_file(where, flow_cfg), flow_field(pair["onset"], pair["apex"], flow_cfg))
    row["source"] = [s.source(s.onset_index), s.source(s.apex_index)]
    for n in extra:
        img = images.get(n)
        det = dets.get(n) or (mesh.detect(img) if img is not None else None)
        if not isinstance(det, FaceDetection):
            why = "unreadable" if img is None else "no face"
            row["warnings"].append(f"frame {s.source(n)} left out of frames: {why}")
            continue
        _write_png(cache / rel / f"frame_{n}.png", crop(n, det))
        row["frames"].append(str(rel / f"frame_{n}.png"))
        row["frame_indices"].append(n)
        row["source"].append(s.source(n))
    row["status"] = "ok"
    return row


def check_landmarker(cache: str | Path) -> None:
    """Refuse a cache whose crops another landmarker aligned (issue 16): its landmarks, and so
    its crops, differ from what the live recognizer's landmarker gives. Caches record the
    landmarker per dataset in `preprocess.json`; none recorded means the legacy face mesh.

    Raises:
        CacheError: one line naming the landmarker found and the command to run.
    """
    cache = Path(cache)
    path = cache / SETTINGS
    try:
        settings = json.loads(path.read_text()) if path.is_file() else {}
    except json.JSONDecodeError:
        settings = {}
    found = {ds: s.get("landmarker") for ds, s in settings.items() if isinstance(s, dict)} or {"?": None}
    bad = {ds: lm for ds, lm in found.items() if lm != LANDMARKER_ID}
    if bad:
        ds, lm = next(iter(bad.items()))
        made = f"landmarker {lm!r}" if lm else "no recorded landmarker (the legacy face mesh)"
        redo = (f"`moext-train preprocess {ds} ROOT --out {cache} --restart`" if ds != "?"
                else f"`moext-train preprocess DATASET ROOT --out {cache} --restart`")
        raise CacheError(f"cache {cache} was made with {made}, not {LANDMARKER_ID!r}; its crops would not match "
                         f"the live alignment: re-run {redo}")


def _check_settings(cache: Path, dataset: str, root: Path, cfg: PreprocessConfig, restart: bool) -> None:
    path = cache / SETTINGS
    settings = json.loads(path.read_text()) if path.is_file() else {}
    mine = {"root": str(root), **asdict(cfg), "landmarker": LANDMARKER_ID}
    old = settings.get(dataset)
    if old is not None and old != mine and not restart:
        diff = {k: (old.get(k), v) for k, v in mine.items() if old.get(k) != v}
        raise CacheError(
            f"{cache} already holds {dataset} preprocessed with other settings "
            f"({', '.join(f'{k}: {a!r} -> {b!r}' for k, (a, b) in diff.items())}); "
            "use another --out, or --restart to redo this dataset"
        )
    settings[dataset] = mine
    atomic_write_text(path, json.dumps(settings, indent=1))


def preprocess_dataset(
    dataset: str,
    root: str | Path,
    cache: str | Path,
    cfg: PreprocessConfig | None = None,
    *,
    restart: bool = False,
    progress: bool = True,
    on_row: Callable[[dict[str, Any]], None] | None = None,
) -> Summary:
    """Preprocess every sample of `dataset` under `root` into `cache` (resumable).

    Raises:
        DatasetError: the dataset cannot be read at all (message names the path and fix).
        CacheError: the cache was made with other settings for this dataset.
    """
    import time

    from tqdm import tqdm

    cfg = cfg or PreprocessConfig()
    if cfg.align not in ("frame", "onset"):
        raise CacheError(f"--align {cfg.align!r}: choose frame or onset")
    t0 = time.perf_counter()
    samples = read_dataset(dataset, root)
    cache = Path(cache)
    cache.mkdir(parents=True, exist_ok=True)
    _check_settings(cache, dataset, Path(root).resolve(), cfg, restart)

    # Resume: keep ok rows whose crops exist; drop skipped rows (retried), torn lines, and
    # with --restart every row of this dataset.
    rows = load_rows(cache)
    keep, done = [], set()
    for r in rows:
        if r.get("dataset") == dataset and (restart or r.get("status") != "ok"):
            continue
        if r.get("status") == "ok":
            paths = [r["onset"], r["apex"], *(r.get("frames") or [])]
            if not all((cache / p).is_file() for p in paths):
                continue
            done.add((r["dataset"], r["subject"], r["sample"]))
        keep.append(r)
    rewrite_rows(cache, keep)  # always: also drops a torn last line before we append
    for stale in (cache / "crops").glob(f"{_safe(dataset)}/**/.*.tmp*"):  # a killed run's temp files
        stale.unlink(missing_ok=True)

    summary = Summary(dataset, total=len(samples))
    todo = []
    for s in samples:
        if (s.dataset, s.subject, s.sample) in done:
            summary.resumed += 1
            summary.ok += 1
        else:
            todo.append(s)
    with FaceMesh(video_mode=False, max_faces=2) as mesh:
        bar = tqdm(todo, desc=f"preprocess {dataset}", unit="sample", disable=not progress)
        for s in bar:
            row = process_sample(s, cache, mesh, cfg)
            append_row(cache, row)
            if on_row is not None:
                on_row(row)
            if row["status"] == "ok":
                summary.ok += 1
            else:
                summary.skipped.append((s.key, row["reason"]))
            if row["warnings"]:
                summary.warned += 1
            bar.set_postfix(skipped=len(summary.skipped))
    summary.seconds = time.perf_counter() - t0
    return summary
