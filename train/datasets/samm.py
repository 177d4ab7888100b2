"""SAMM: `SAMM/006/006_1_2/006_05562.jpg` with `SAMM_Micro_FACS_Codes_v2.xlsx`.

The coding sheet's header row is found by its column names (one release puts a block of
notes above it). An apex outside onset..offset is reported and clamped; a missing apex
(-1, blank) becomes the middle frame with a warning.
"""

from __future__ import annotations

import re
from pathlib import Path

from train.datasets.common import (
    DatasetError,
    Sample,
    as_int,
    as_label,
    check_frames,
    find_files,
    list_frames,
    read_sheets,
)

REQUIRED = ("Subject", "Filename", "Onset Frame", "Apex Frame", "Offset Frame", "Estimated Emotion")
FRAME_RE = re.compile(r"\d+_(\d+)\.(?:jpg|jpeg|png|bmp)", re.IGNORECASE)


def subject_id(value: object) -> str | None:
    if value is None:
        return None
    m = re.fullmatch(r"0*(\d+)(?:\.0+)?", str(value).strip())
    return f"{int(m.group(1)):03d}" if m else None


def _tree(root: Path) -> Path:
    if (root / "SAMM").is_dir():
        return root / "SAMM"
    if any(p.is_dir() and re.fullmatch(r"\d{3}", p.name) for p in root.iterdir()):
        return root
    raise DatasetError(f"no SAMM frames under {root}: expected SAMM/006/006_1_2/... ; give the folder holding SAMM/")


def read_samm(root: Path) -> list[Sample]:
    tree = _tree(root)
    candidates = find_files({root, tree, tree.parent}, ["SAMM_Micro_FACS_Codes*.xlsx", "SAMM*.xlsx", "*.xlsx"])
    sheet = None
    for path in candidates:
        found = read_sheets(path, REQUIRED)
        if found:
            sheet = found[0]
            break
    if sheet is None:
        raise DatasetError(
            f"no SAMM coding sheet (SAMM_Micro_FACS_Codes_v2.xlsx with columns {', '.join(REQUIRED)}) "
            f"in {root}; put the xlsx that ships with SAMM there"
        )
    samples = []
    for row_no, cells in sheet.rows:
        subj = subject_id(sheet.get(cells, "Subject"))
        name = sheet.get(cells, "Filename")
        name = str(name).strip() if name is not None else ""
        if subj is None or not name:
            continue
        s = Sample("samm", subj, name, as_label(sheet.get(cells, "Estimated Emotion")), "micro",
                   as_int(sheet.get(cells, "Onset Frame")), as_int(sheet.get(cells, "Apex Frame")),
                   as_int(sheet.get(cells, "Offset Frame")))
        aus = sheet.get(cells, "Action Units")
        s.aus = None if aus is None else str(aus).strip()
        folder = tree / subj / name
        s.frames = list_frames(folder, FRAME_RE)
        on, ap, off = s.onset_index, s.apex_index, s.offset_index
        if on is None or off is None or off < on:
            s.error = f"{s.key}: onset/offset {on}/{off} unusable in {sheet.where(row_no)}"
        elif ap is None or ap < 0:
            s.apex_index = (on + off) // 2
            s.warnings.append(f"apex not annotated ({sheet.get(cells, 'Apex Frame')!r} in "
                              f"{sheet.where(row_no)}); using the middle frame {s.apex_index}")
        elif not on <= ap <= off:
            s.apex_index = min(max(ap, on), off)
            s.warnings.append(f"apex {ap} outside onset..offset {on}..{off} ({sheet.where(row_no)}); "
                              f"clamped to {s.apex_index}")
        width = len(next(iter(s.frames.values())).stem.split("_")[-1]) if s.frames else 5
        check_frames(s, folder, {"onset": s.onset_index, "apex": s.apex_index},
                     lambda n, w=width: f"{subj}_{n:0{w}d}.jpg")
        samples.append(s)
    if not samples:
        raise DatasetError(f"{sheet.path}: the SAMM sheet has no sample rows")
    return samples
