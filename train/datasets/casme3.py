"""CAS(ME)^3 part A: frames `spNO.X/<clip>/color/<idx>.jpg` with the annotation workbook.

The workbook (`Subject, Filename, Onset, Apex, Offset, AU, Objective class, emotion`) has
micro- and macro-expression sheets (or files); a sheet or file whose name says macro/MaE,
or a row whose type column says macro, is macro. For macro clips the 5th frame after the
onset stands in for the apex so that the motion amplitude matches a micro apex (paper §3).
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
    list_frames,
    read_sheets,
)

REQUIRED = ("Subject", "Filename", "Onset", "Apex", "Offset")
MACRO_PSEUDO_APEX = 5  # frames after onset (paper §3, Fig. 3)
_SUBJ_RE = re.compile(r"spNO\.(\d+)", re.IGNORECASE)
_MACRO_NAME = re.compile(r"macro|(?<![a-z])mae(?![a-z])", re.IGNORECASE)


def subject_id(value: object) -> str | None:
    if value is None:
        return None
    s = str(value).strip()
    m = _SUBJ_RE.fullmatch(s) or re.fullmatch(r"0*(\d+)(?:\.0+)?", s)
    return f"spNO.{int(m.group(1))}" if m else None


def _tree(root: Path) -> Path:
    for cand in [root, root / "part_A", root / "data" / "part_A", root / "part_A" / "data" / "part_A"]:
        if cand.is_dir() and any(p.is_dir() and _SUBJ_RE.fullmatch(p.name) for p in cand.iterdir()):
            return cand
    for p in sorted(root.rglob("spNO.*")):
        if p.is_dir() and _SUBJ_RE.fullmatch(p.name):
            return p.parent
    raise DatasetError(f"no CAS(ME)^3 part A frames under {root}: expected spNO.1/<clip>/color/<idx>.jpg")


def read_casme3(root: Path) -> list[Sample]:
    tree = _tree(root)
    books = sorted({p.resolve() for d in {root, tree, tree.parent} if d.is_dir()
                    for p in d.glob("*.xlsx") if not p.name.startswith(("~$", "."))})
    sheets = [sh for b in books for sh in read_sheets(b, REQUIRED)]
    if not sheets:
        raise DatasetError(
            f"no CAS(ME)^3 annotation workbook (.xlsx with columns {', '.join(REQUIRED)}) in {root} "
            f"or {tree.parent}; put the part A label workbook there"
        )
    samples: list[Sample] = []
    for sheet in sheets:
        sheet_macro = bool(_MACRO_NAME.search(sheet.name) or _MACRO_NAME.search(sheet.path.stem))
        for row_no, cells in sheet.rows:
            subj = subject_id(sheet.get(cells, "Subject"))
            name = sheet.get(cells, "Filename")
            name = str(name).strip() if name is not None else ""
            if subj is None or not name:
                continue
            typ = as_label(sheet.get(cells, "Type", "Expression type", "ME/MaE"))
            macro = sheet_macro or bool(typ and ("macro" in typ or typ == "mae"))
            s = Sample("casme3", subj, name, as_label(sheet.get(cells, "emotion", "Emotion")),
                       "macro" if macro else "micro", as_int(sheet.get(cells, "Onset")),
                       as_int(sheet.get(cells, "Apex")), as_int(sheet.get(cells, "Offset")))
            aus = sheet.get(cells, "AU", "Action Units")
            s.aus = None if aus is None else str(aus).strip()
            folder = tree / subj / name / "color"
            s.frames = list_frames(folder)
            on, off = s.onset_index, s.offset_index
            if on is None:
                s.error = f"{s.key}: no onset in {sheet.where(row_no)}"
            elif macro:
                pseudo = on + MACRO_PSEUDO_APEX
                last = off if off is not None else (max(s.frames) if s.frames else pseudo)
                if pseudo > last:
                    s.warnings.append(f"macro clip shorter than onset+{MACRO_PSEUDO_APEX}; pseudo-apex = offset {last}")
                    pseudo = last
                s.apex_index = pseudo
            elif s.apex_index is None or (off is not None and not on <= s.apex_index <= off):
                raw = sheet.get(cells, "Apex")
                if off is None:
                    s.error = f"{s.key}: apex {raw!r} and no offset in {sheet.where(row_no)}"
                elif s.apex_index is None:
                    s.apex_index = (on + off) // 2
                    s.warnings.append(f"apex not annotated ({raw!r} in {sheet.where(row_no)}); "
                                      f"using the middle frame {s.apex_index}")
                else:
                    s.apex_index = min(max(s.apex_index, on), off)
                    s.warnings.append(f"apex {raw} outside onset..offset {on}..{off} "
                                      f"({sheet.where(row_no)}); clamped to {s.apex_index}")
            check_frames(s, folder, {"onset": s.onset_index, "apex": s.apex_index}, lambda n: f"{n}.jpg")
            samples.append(s)
    if not samples:
        raise DatasetError(f"the CAS(ME)^3 workbooks in {root} have no sample rows")
    return samples
