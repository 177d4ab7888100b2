"""CASME II: `CASME2_RAW_selected/` or `Cropped/` trees with `CASME2-coding-*.xlsx`.

Layout: `<tree>/subXX/EPxx_yy[f]/img{N}.jpg` (the Cropped release names them
`reg_img{N}.jpg`); N is the frame number the coding sheet uses. Quirks handled: subjects
written `1` or `01` (or `sub01`), unnamed extra columns, apex cells holding `/` (then the
middle frame, with a warning).
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

TREES = ("CASME2_RAW_selected", "Cropped", "CASME2_Cropped", "CASME2_RAW")
FRAME_RE = re.compile(r"(?:reg_)?img(\d+)\.(?:jpg|jpeg|png|bmp)", re.IGNORECASE)
REQUIRED = ("Subject", "Filename", "OnsetFrame", "ApexFrame", "OffsetFrame", "Estimated Emotion")


def find_tree(root: Path) -> Path:
    for name in TREES:
        if root.name == name:
            return root
    for name in TREES:
        if (root / name).is_dir():
            return root / name
    if any(p.is_dir() and re.fullmatch(r"sub\d+", p.name) for p in root.iterdir()):
        return root
    raise DatasetError(
        f"no CASME II frames under {root}: expected one of {', '.join(TREES)} (with subXX/EPxx_yy/ "
        "folders) in it; give the folder that holds CASME2_RAW_selected/"
    )


def subject_id(value: object) -> str | None:
    """`1`, `01`, `1.0`, `sub01` -> `sub01`."""
    if value is None:
        return None
    s = str(value).strip().lower()
    m = re.fullmatch(r"(?:sub)?0*(\d+)(?:\.0+)?", s)
    return f"sub{int(m.group(1)):02d}" if m else None


def read_casme2(root: Path) -> list[Sample]:
    tree = find_tree(root)
    sheets_found = find_files({root, tree, tree.parent}, ["CASME2-coding-*.xlsx", "CASME2*coding*.xlsx"])
    if not sheets_found:
        raise DatasetError(
            f"no coding sheet CASME2-coding-*.xlsx in {root} or {tree.parent}; put the xlsx that ships "
            "with CASME II next to the frame tree"
        )
    sheet_path = sheets_found[-1]  # names carry a date; the newest release sorts last
    sheets = read_sheets(sheet_path, REQUIRED)
    if not sheets:
        raise DatasetError(f"{sheet_path}: no sheet with the columns {', '.join(REQUIRED)}")
    sheet = sheets[0]
    prefix = "reg_img" if tree.name.lower().endswith("cropped") else "img"
    samples = []
    for row_no, cells in sheet.rows:
        subj = subject_id(sheet.get(cells, "Subject"))
        name = sheet.get(cells, "Filename")
        name = str(name).strip() if name is not None else ""
        if subj is None or not name:
            continue  # notes or totals below the table
        s = Sample("casme2", subj, name, as_label(sheet.get(cells, "Estimated Emotion")), "micro",
                   as_int(sheet.get(cells, "OnsetFrame")), as_int(sheet.get(cells, "ApexFrame")),
                   as_int(sheet.get(cells, "OffsetFrame")))
        aus = sheet.get(cells, "Action Units")
        s.aus = None if aus is None else str(aus).strip()
        folder = _clip_folder(tree, subj, name)
        if folder.name != name:
            s.warnings.append(f"clip folder {folder.name} used for {name!r} ({sheet.where(row_no)})")
        s.frames = list_frames(folder, FRAME_RE)
        if s.frames:
            prefix = "reg_img" if next(iter(s.frames.values())).name.lower().startswith("reg_") else "img"
        if s.onset_index is None:
            s.error = f"{s.key}: no onset frame in {sheet.where(row_no)}"
        elif s.apex_index is None:
            raw = sheet.get(cells, "ApexFrame")
            off = s.offset_index if s.offset_index is not None else (max(s.frames) if s.frames else None)
            if off is None:
                s.error = f"{s.key}: apex {raw!r} and no offset frame in {sheet.where(row_no)}"
            else:
                s.apex_index = (s.onset_index + off) // 2
                s.warnings.append(f"apex not annotated ({raw!r} in {sheet.where(row_no)}); "
                                  f"using the middle frame {s.apex_index}")
        check_frames(s, folder, {"onset": s.onset_index, "apex": s.apex_index},
                     lambda n, p=prefix: f"{p}{n}.jpg")
        samples.append(s)
    if not samples:
        raise DatasetError(f"{sheet_path}: the coding sheet has no sample rows")
    return samples


def _clip_folder(tree: Path, subject: str, name: str) -> Path:
    """The sample's folder; tolerates `sub1` folders and a sheet name without/with the
    trailing `f` that some folder names carry."""
    num = int(subject[3:])
    for clip in (name, name + "f", name[:-1] if name.endswith("f") else None):
        for sub in (subject, f"sub{num}", f"sub{num:03d}"):
            if clip and (tree / sub / clip).is_dir():
                return tree / sub / clip
    return tree / subject / name
