"""Long 30 fps videos of one synthetic subject with micro, macro and head-turn events and
their ground truth, for spotting."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np

from moext.face import FaceMesh
from moext.io import atomic_save, atomic_write_text
from train.synth.aus import CLASSES
from train.synth.clips import au_code, class_aus
from train.synth.identities import SynthError, default_faces, detect_photos, make_background, make_identity
from train.synth.profiles import _sway, event_profile
from train.synth.render import Renderer

LONG_KINDS = ("micro", "macro", "head_turn")


def plan_events(num_frames: int, fps: float, rng: np.random.Generator) -> list[dict]:
    """Non-overlapping events with quiet gaps (≥ 1.2 s) so that a spotter has neutral onsets.

    micro: 6-15 frames at 30 fps (0.2-0.5 s), warp peak 2-4 % IOD, localized AUs.
    macro: 1-2 s, warp peak 6-12 % IOD. head_turn: 0.7-1.5 s rigid roll/shift, no expression.
    """
    events: list[dict] = []
    t = int(rng.uniform(1.5, 2.5) * fps)
    kinds: list[str] = []
    while True:
        if not kinds:  # each round of four holds every kind, micro twice
            kinds = list(rng.permutation(["micro", "micro", "macro", "head_turn"]))
        kind = kinds.pop()
        if kind == "micro":
            dur = int(rng.integers(round(0.2 * fps), round(0.5 * fps) + 1))
        elif kind == "macro":
            dur = int(rng.integers(round(1.0 * fps), round(2.0 * fps) + 1))
        else:
            dur = int(rng.integers(round(0.7 * fps), round(1.5 * fps) + 1))
        dur = max(dur, 4)
        if t + dur >= num_frames - int(0.5 * fps):
            break
        apex = t + max(1, int(round(rng.uniform(0.35, 0.5) * dur)))
        ev = {"kind": kind, "onset_frame": t, "apex_frame": apex, "offset_frame": t + dur}
        if kind == "micro":
            ev["class"] = str(rng.choice(CLASSES))
            # Face mesh follows ~40-60 % of a warp this small (measured), so 2-4 % warp shows
            # up as ~1-2 % IOD of landmark motion, the range of real brief expressions.
            ev["peak_iod"] = float(rng.uniform(0.02, 0.04))
        elif kind == "macro":
            ev["class"] = str(rng.choice(CLASSES))
            ev["peak_iod"] = float(rng.uniform(0.06, 0.12))
        else:
            ev["class"] = None
            ev["rotation_deg"] = float(rng.uniform(4, 9) * rng.choice([-1, 1]))
            ev["shift_iod"] = [float(v) for v in rng.uniform(-0.25, 0.25, 2)]
        events.append(ev)
        t = t + dur + int(rng.uniform(1.2, 2.5) * fps)
    return events


def make_long_video(
    path: str | Path,
    *,
    seconds: float = 20.0,
    fps: float = 30.0,
    size: tuple[int, int] = (640, 360),
    seed: int = 0,
    faces: list[tuple[str, np.ndarray]] | None = None,
    iod_frac: float = 0.11,
    progress: bool = False,
) -> dict:
    """Write a long video of one synthetic subject with micro, macro and head-turn events.

    Args:
        path: output `.mp4` (mp4v); the ground truth goes to the same stem `.json`.
        seconds, fps, size: length, frame rate and (width, height).
        seed: everything (subject, schedule, noise) is deterministic for it.
        faces: [(name, BGR photo)]; the first is used. Default: the astronaut photo.
        iod_frac: inter-ocular distance as a fraction of the width (0.11 -> ~70 px at 640).

    Returns:
        The ground truth dict that was written (see README: "Long videos").
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    width, height = size
    rng = np.random.default_rng([seed, 4])
    photos_raw = faces or default_faces()
    with FaceMesh(video_mode=False, max_faces=1) as mesh:
        photo = detect_photos(photos_raw[:1], mesh)[0]
        ident = make_identity(photo, rng, mesh, width, height, iod_frac, "subject", composite=True)
    renderer = Renderer(ident, make_background(width, height, rng), seed=seed)
    n = int(round(seconds * fps))
    events = plan_events(n, fps, rng)

    amp = np.zeros(n)
    cls_at: list[str | None] = [None] * n
    aus_for: dict[int, tuple] = {}
    rigid = np.zeros((n, 3))  # rot deg, dx px, dy px of the event head turns
    for k, ev in enumerate(events):
        on, ap, off = ev["onset_frame"], ev["apex_frame"], ev["offset_frame"]
        if ev["kind"] == "head_turn":
            prof = event_profile(n, on, ap, off)
            rigid[:, 0] += prof * ev["rotation_deg"]
            rigid[:, 1] += prof * ev["shift_iod"][0] * ident.iod
            rigid[:, 2] += prof * ev["shift_iod"][1] * ident.iod
            continue
        hold = int(0.25 * (off - ap)) if ev["kind"] == "macro" else 0
        prof = event_profile(n, on, ap, off, hold=hold)
        amp += prof * ev["peak_iod"]
        aus = class_aus(ev["class"], rng)
        ev["aus"] = au_code(aus)
        for t in range(on, off + 1):
            cls_at[t] = ev["class"]
            aus_for[t] = aus
    sway = _sway(n, rng, 0.3, 0.8, period=4 * fps)
    gain = 1.0 + 0.03 * np.sin(2 * np.pi * np.arange(n) / (rng.uniform(6, 12) * fps) + rng.uniform(0, 6.28))
    grad = rng.uniform(-0.1, 0.1)

    def write(tmp: Path) -> None:
        writer = cv2.VideoWriter(str(tmp), cv2.VideoWriter_fourcc(*"mp4v"), fps, (width, height))
        if not writer.isOpened():
            raise SynthError(f"OpenCV cannot write {path} (mp4v); check the OpenCV build's FFmpeg support.")
        try:
            from tqdm import tqdm

            for t in tqdm(range(n), desc=path.name, unit="frame", disable=not progress):
                rig = renderer.rigid(*(rigid[t] + sway[t]))
                if cls_at[t] is not None:
                    aus = aus_for[t]
                    fld = ident.field_for("+".join(a for a, _ in aus), aus)
                else:
                    fld = None
                writer.write(renderer.frame(fld, float(amp[t]), rig, float(gain[t]), grad, 1.5, rng))
        finally:
            writer.release()

    atomic_save(path, write)

    for ev in events:
        for key in ("onset", "apex", "offset"):
            ev[f"{key}_ms"] = round(1000.0 * ev[f"{key}_frame"] / fps, 3)
    truth = {
        "video": path.name,
        "note": "synthetic data for tests and demos only",
        "fps": fps,
        "width": width,
        "height": height,
        "num_frames": n,
        "iod_px": round(ident.iod, 3),
        "seed": seed,
        "events": events,
    }
    atomic_write_text(path.with_suffix(".json"), json.dumps(truth, indent=1))
    return truth
