"""Any folder of videos or of frame folders, as macro-expression data for pre-training.

Each video file and each folder holding at least `MIN_FRAMES` images is one clip. Subject =
the first folder below the root (or the clip's own name when it sits at the top); sample =
the rest of its path. An optional `labels.csv` in the root (subject, sample, emotion, onset,
apex, offset; frame numbers as in the file names, 0-based positions for videos) gives
the onset and a label; otherwise the clip is unlabelled and gets an onset every
`WINDOW_STEP` frames (sample `<name>@<onset>`; a single onset, the first frame, when the clip
is shorter than two steps), so a long video yields many training pairs. The pseudo-apex is
the 5th frame after each onset (paper §3).
"""

from __future__ import annotations

import csv
from pathlib import Path

import cv2

from train.datasets.common import (
    IMAGE_SUFFIXES,
    VIDEO_SUFFIXES,
    DatasetError,
    Sample,
    as_int,
    as_label,
    list_frames,
    natural_key,
)

MACRO_PSEUDO_APEX = 5
MIN_FRAMES = MACRO_PSEUDO_APEX + 1
WINDOW_STEP = 30  # one onset per second of 30 fps video in unlabelled clips
LABELS = "labels.csv"


def _names(root: Path, clip: Path) -> tuple[str, str]:
    rel = clip.relative_to(root)
    parts = list(rel.parts)
    if clip.is_file():
        parts[-1] = clip.stem
    if len(parts) == 1:
        return parts[0], parts[0]
    return parts[0], "/".join(parts[1:])


def _read_labels(root: Path) -> dict[tuple[str, str], dict[str, str]]:
    path = root / LABELS
    if not path.is_file():
        return {}
    with open(path, newline="") as fh:
        rows = list(csv.DictReader(fh))
    need = {"subject", "sample"}
    if rows and not need <= set(rows[0]):
        raise DatasetError(f"{path}: needs columns subject, sample (and optionally emotion, onset, apex, offset)")
    return {(r["subject"].strip(), r["sample"].strip()): r for r in rows}


def read_macro(root: Path) -> list[Sample]:
    labels = _read_labels(root)
    clips: list[Path] = []
    for p in sorted(root.rglob("*"), key=lambda q: natural_key(str(q))):
        if any(part.startswith(".") for part in p.relative_to(root).parts):
            continue
        if p.is_file() and p.suffix.lower() in VIDEO_SUFFIXES:
            clips.append(p)
        elif p.is_dir():
            n = sum(1 for q in p.iterdir() if q.is_file() and q.suffix.lower() in IMAGE_SUFFIXES)
            if n >= 2:
                clips.append(p)
    if not clips:
        raise DatasetError(f"no videos ({', '.join(sorted(VIDEO_SUFFIXES))}) or frame folders under {root}")
    samples = []
    for clip in clips:
        subj, name = _names(root, clip)
        lab = labels.get((subj, name), {})
        s = Sample("macro", subj, name, as_label(lab.get("emotion")), "macro", None, None, None)
        if clip.is_file():
            s.video = clip.resolve()
            cap = cv2.VideoCapture(str(clip))
            count = int(cap.get(cv2.CAP_PROP_FRAME_COUNT)) if cap.isOpened() else 0
            cap.release()
            if count <= 0:
                s.error = f"{s.key}: cannot read video {clip} (no frames); re-encode it as mp4"
                samples.append(s)
                continue
            numbers = list(range(count))
        else:
            s.frames = list_frames(clip)
            numbers = sorted(s.frames)
        if lab:
            onsets = [as_int(lab.get("onset"))]
            if onsets[0] is None:
                onsets = [numbers[0]]
        elif len(numbers) >= 2 * WINDOW_STEP:
            onsets = numbers[: len(numbers) - MACRO_PSEUDO_APEX: WINDOW_STEP]
        else:
            onsets = [numbers[0]]
        for onset in onsets:
            t = s if len(onsets) == 1 else Sample("macro", subj, f"{name}@{onset}", s.emotion, "macro",
                                                  None, None, None, frames=s.frames, video=s.video)
            if onset not in numbers:
                t.error = f"{t.key}: onset frame {onset} from {root / LABELS} is not in {clip}"
                samples.append(t)
                continue
            pos = numbers.index(onset)
            if len(numbers) - pos < MIN_FRAMES:
                t.error = (f"{t.key}: fewer than {MIN_FRAMES} frames from the onset in {clip}; "
                           "too short for a pseudo-apex")
                samples.append(t)
                continue
            t.onset_index = onset
            t.apex_index = numbers[pos + MACRO_PSEUDO_APEX]  # the 5th frame after onset, by position
            off = as_int(lab.get("offset")) if lab else None
            if len(onsets) > 1:
                off = numbers[min(pos + WINDOW_STEP, len(numbers)) - 1]
            t.offset_index = off if off is not None else numbers[-1]
            samples.append(t)
    return samples
