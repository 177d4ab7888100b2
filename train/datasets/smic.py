"""SMIC-HS: `HS/sNN/micro/{negative,positive,surprise}/sNN_{ne,po,sur}_KK/image*.bmp`.

Labels come from the folders. SMIC has no apex annotation: the first frame is the onset, the
middle frame the apex (the usual convention), the last the offset.
"""

from __future__ import annotations

import re
from pathlib import Path

from train.datasets.common import DatasetError, Sample, list_frames

CLASSES = ("negative", "positive", "surprise")


def _tree(root: Path) -> Path:
    for cand in (root / "HS", root / "SMIC" / "HS", root / "SMIC_all_raw" / "HS", root):
        if cand.is_dir() and any(p.is_dir() and re.fullmatch(r"s\d+", p.name) for p in cand.iterdir()):
            return cand
    raise DatasetError(f"no SMIC-HS frames under {root}: expected HS/s01/micro/negative/s01_ne_01/...")


def read_smic_hs(root: Path) -> list[Sample]:
    tree = _tree(root)
    samples = []
    for subj_dir in sorted(p for p in tree.iterdir() if p.is_dir() and re.fullmatch(r"s\d+", p.name)):
        subj = f"s{int(subj_dir.name[1:]):02d}"
        for cls in CLASSES:
            cls_dir = subj_dir / "micro" / cls
            if not cls_dir.is_dir():
                continue
            for clip in sorted(p for p in cls_dir.iterdir() if p.is_dir()):
                s = Sample("smic-hs", subj, clip.name, cls, "micro", None, None, None)
                s.frames = list_frames(clip)
                nums = sorted(s.frames)
                if len(nums) < 2:
                    s.error = f"{s.key}: fewer than 2 frame images in {clip}"
                else:
                    s.onset_index, s.apex_index, s.offset_index = nums[0], nums[len(nums) // 2], nums[-1]
                samples.append(s)
    if not samples:
        raise DatasetError(f"no SMIC-HS clips under {tree}/sNN/micro/{{negative,positive,surprise}}/")
    return samples
