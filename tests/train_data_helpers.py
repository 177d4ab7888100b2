"""Tiny preprocess caches for the training tests: random-texture crops whose apex differs
from the onset by a class-dependent local brightening, and a manifest.jsonl in the format
of docs/ARCHITECTURE.md. Nothing here is a face; it only exercises the loops."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np

# casme2 emotions that the CDE protocol maps to negative, positive, surprise.
EMOTIONS = ("disgust", "happiness", "surprise")
TINY_MODEL = dict(
    backbone="mobilenet_v3_small", branch_channels=8, feature_dim=16, projection_dim=8, image_size=32
)


def make_cache(
    root: Path,
    subjects: int = 3,
    per_class: int = 1,
    macro: int = 1,
    size: int = 48,
    dataset: str = "casme2",
    seed: int = 0,
) -> Path:
    """Write `root/manifest.jsonl` and PNG crops; returns `root`."""
    rng = np.random.default_rng(seed)
    root.mkdir(parents=True, exist_ok=True)
    (root / "crops").mkdir(exist_ok=True)
    rows = []
    for s in range(1, subjects + 1):
        base = rng.integers(60, 200, size=(size, size, 3)).astype(np.uint8)
        base = cv2.GaussianBlur(base, (5, 5), 0)
        items = [(e, "micro") for e in EMOTIONS for _ in range(per_class)] + [("happiness", "macro")] * macro
        for k, (emotion, kind) in enumerate(items):
            onset = base.copy()
            apex = base.copy()
            # The "motion": a brighter patch whose place depends on the class.
            c = EMOTIONS.index(emotion)
            y0 = [4, size // 2 - 4, size - 16][c]
            apex[y0 : y0 + 12, 8 : size - 8] = np.clip(apex[y0 : y0 + 12, 8 : size - 8].astype(int) + 50, 0, 255)
            name = f"sub{s:02d}_EP{k:02d}"
            paths = {}
            for role, img in (("onset", onset), ("apex", apex)):
                rel = f"crops/{name}_{role}.png"
                cv2.imwrite(str(root / rel), img)
                paths[role] = rel
            rows.append(
                {
                    "dataset": dataset if kind == "micro" else "macro",
                    "subject": f"sub{s:02d}",
                    "sample": name,
                    "emotion": emotion,
                    "kind": kind,
                    "onset_index": 0,
                    "apex_index": 5,
                    "offset_index": 9,
                    "onset": paths["onset"],
                    "apex": paths["apex"],
                    "frames": [],
                    "source": [],
                    "warnings": [],
                    "status": "ok",
                    "reason": None,
                }
            )
    rows.append({**rows[0], "sample": "broken", "status": "skipped", "reason": "no face"})
    with open(root / "manifest.jsonl", "w") as fh:
        for r in rows:
            fh.write(json.dumps(r) + "\n")
    mark_landmarker(root, dataset, "macro")
    return root


def mark_landmarker(root: Path, *datasets: str) -> None:
    """Record the current landmarker in `preprocess.json`, as `moext-train preprocess` does
    (training refuses a cache without it)."""
    from moext.face import LANDMARKER_ID

    (root / "preprocess.json").write_text(json.dumps({ds: {"landmarker": LANDMARKER_ID} for ds in datasets}))
