"""What every reader shares: the `Sample` record, annotation-sheet parsing, frame listing."""

from __future__ import annotations

import re
import warnings as _warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Sequence

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff"}
VIDEO_SUFFIXES = {".mp4", ".avi", ".mov", ".mkv", ".webm", ".m4v", ".mpg", ".mpeg"}


class DatasetError(RuntimeError):
    """A dataset that cannot be read at all; the message names the path and the fix."""


@dataclass
class Sample:
    """One annotated clip.

    Attributes:
        dataset: casme2 | samm | smic-hs | casme3 | macro.
        subject: the dataset's own subject id, normalised (sub01, 006, s01, spNO.1).
        sample: the clip's name in the dataset (EP02_01f, 006_1_2, s01_ne_01, ...).
        emotion: the annotation's own label, lower-case; None when unlabelled.
        kind: micro | macro.
        onset_index, apex_index, offset_index: frame numbers as annotated (for macro clips
            apex_index is the pseudo-apex actually used); None if unknown.
        frames: frame number -> image file of the clip (empty for a video).
        video: the video file when frames are read from a video (numbers are 0-based).
        aus: the FACS code as written, if the annotation has one.
        warnings: problems worked around (e.g. apex '/' -> middle frame).
        error: why the sample cannot be used (e.g. a missing frame file), else None.
    """

    dataset: str
    subject: str
    sample: str
    emotion: str | None
    kind: str
    onset_index: int | None
    apex_index: int | None
    offset_index: int | None
    frames: dict[int, Path] = field(default_factory=dict)
    video: Path | None = None
    aus: str | None = None
    warnings: list[str] = field(default_factory=list)
    error: str | None = None

    @property
    def key(self) -> str:
        return f"{self.dataset}/{self.subject}/{self.sample}"

    def frame_numbers(self) -> list[int]:
        return sorted(self.frames)

    def source(self, number: int) -> str:
        """Absolute path of frame `number` (for a video: `video#frame=number`)."""
        if self.video is not None:
            return f"{self.video}#frame={number}"
        return str(self.frames[number])


def natural_key(name: str) -> list:
    """Sort key that puts img2 before img10."""
    return [int(t) if t.isdigit() else t.lower() for t in re.split(r"(\d+)", name)]


def list_frames(folder: Path, pattern: re.Pattern[str] | None = None) -> dict[int, Path]:
    """Image files of a clip folder keyed by the last number in their name.

    `pattern` (optional) must capture the number as group 1; files that do not match are
    ignored (thumbnails, Thumbs.db).
    """
    out: dict[int, Path] = {}
    if not folder.is_dir():
        return out
    for p in folder.iterdir():
        if p.suffix.lower() not in IMAGE_SUFFIXES or p.name.startswith("."):
            continue
        if pattern is not None:
            m = pattern.fullmatch(p.name)
            if not m:
                continue
            n = int(m.group(1))
        else:
            nums = re.findall(r"\d+", p.stem)
            if not nums:
                continue
            n = int(nums[-1])
        out[n] = p
    return dict(sorted(out.items()))


def _norm(h: Any) -> str:
    return re.sub(r"\s+", " ", str(h)).strip().lower() if h is not None else ""


@dataclass
class Sheet:
    """One annotation table: the header row found, columns by normalised name."""

    path: Path
    name: str
    header_row: int  # 1-based row number in the sheet
    columns: dict[str, int]  # normalised header -> 0-based column index
    rows: list[tuple[int, tuple[Any, ...]]]  # (1-based row number, cells)

    def get(self, cells: Sequence[Any], *names: str) -> Any:
        for n in names:
            i = self.columns.get(_norm(n))
            if i is not None and i < len(cells):
                return cells[i]
        return None

    def where(self, row_number: int) -> str:
        return f"{self.path.name} sheet {self.name!r} row {row_number}"


def read_sheets(path: Path, required: Iterable[str], scan_rows: int = 60) -> list[Sheet]:
    """Every sheet of an .xlsx whose header row contains all `required` columns.

    The header is searched in the first `scan_rows` rows, since some releases put a block
    of notes above it. Unnamed columns are kept under '' and ignored by name lookups.
    """
    from openpyxl import load_workbook

    req = [_norm(r) for r in required]
    try:
        with _warnings.catch_warnings():
            _warnings.simplefilter("ignore")  # openpyxl warns about unknown extensions
            wb = load_workbook(path, read_only=True, data_only=True)
    except Exception as e:  # noqa: BLE001 - any unreadable workbook is the same user error
        raise DatasetError(f"cannot read annotation sheet {path}: {e}") from None
    out = []
    try:
        for ws in wb.worksheets:
            all_rows = list(ws.iter_rows(values_only=True))
            for i, cells in enumerate(all_rows[:scan_rows]):
                names = [_norm(c) for c in cells]
                if all(r in names for r in req):
                    columns = {}
                    for j, n in enumerate(names):
                        if n and n not in columns:
                            columns[n] = j
                    body = [(i + 2 + k, tuple(r)) for k, r in enumerate(all_rows[i + 1:])
                            if any(c is not None and str(c).strip() != "" for c in r)]
                    out.append(Sheet(path, ws.title, i + 1, columns, body))
                    break
    finally:
        wb.close()
    return out


def as_int(value: Any) -> int | None:
    """A frame number cell: int, float 46.0, '46', ' 46 '; None for '/', '', '-', None."""
    if value is None:
        return None
    if isinstance(value, bool):
        return None
    if isinstance(value, (int,)):
        return int(value)
    if isinstance(value, float):
        return int(value) if value.is_integer() else None
    s = str(value).strip()
    if re.fullmatch(r"-?\d+(\.0+)?", s):
        return int(float(s))
    return None


def as_label(value: Any) -> str | None:
    if value is None:
        return None
    s = str(value).strip().lower()
    return s or None


def find_files(roots: Iterable[Path], patterns: Iterable[str]) -> list[Path]:
    """Files matching any glob pattern directly inside any of `roots`, sorted, unique."""
    seen: dict[Path, None] = {}
    for r in roots:
        if not r.is_dir():
            continue
        for pat in patterns:
            for p in sorted(r.glob(pat)):
                if p.is_file() and not p.name.startswith((".", "~$")):
                    seen.setdefault(p.resolve(), None)
    return list(seen)


def check_frames(s: Sample, folder: Path, needed: dict[str, int | None], name_of: Any) -> None:
    """Set `s.error` if the clip folder or an annotated frame is missing.

    `name_of(number)` gives the file name the dataset would use, for the message.
    """
    if s.error:
        return
    if not folder.is_dir():
        s.error = f"{s.key}: clip folder {folder} is missing"
        return
    if not s.frames:
        s.error = f"{s.key}: no frame images in {folder}"
        return
    for what, n in needed.items():
        if n is not None and n not in s.frames:
            s.error = f"{s.key}: {what} frame {name_of(n)} is missing (expected {folder / name_of(n)})"
            return
