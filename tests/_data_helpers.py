"""Builders of small dataset trees in the real on-disk formats, shared by the data tests."""

from __future__ import annotations

import atexit
import shutil
import tempfile
from pathlib import Path
from typing import Any, Sequence

import cv2
import numpy as np


def write_xlsx(path: Path, sheets: dict[str, tuple[Sequence[Any], list[Sequence[Any]]]],
               notes_above: Sequence[str] = ()) -> Path:
    """An .xlsx with one sheet per entry: {sheet name: (header, rows)}; optional note lines
    above the header (as one SAMM release has)."""
    from openpyxl import Workbook

    wb = Workbook()
    wb.remove(wb.active)
    for name, (header, rows) in sheets.items():
        ws = wb.create_sheet(name)
        for note in notes_above:
            ws.append([note])
        if notes_above:
            ws.append([])
        ws.append(list(header))
        for r in rows:
            ws.append(list(r))
    path.parent.mkdir(parents=True, exist_ok=True)
    wb.save(path)
    return path


def tiny_frames(folder: Path, names: Sequence[str]) -> None:
    """Small valid images (the readers only list them; preprocess tests use real faces)."""
    folder.mkdir(parents=True, exist_ok=True)
    img = np.full((8, 8, 3), 127, np.uint8)
    for n in names:
        assert cv2.imwrite(str(folder / n), img)


_SYNTH: dict[tuple, Path] = {}


def synth_set(**kw: Any) -> Path:
    """A synthetic set (train.synth.write_dataset) made once per test session and option set.

    Read-only for callers: copy it (shutil.copytree) before changing files.
    """
    from train.synth import SynthConfig, write_dataset

    key = tuple(sorted(kw.items()))
    if key not in _SYNTH:
        out = Path(tempfile.mkdtemp(prefix="moext_synth_"))
        atexit.register(shutil.rmtree, out, True)
        opts = dict(subjects=2, per_class=1, frames=8, width=224, height=168, macro_per_class=0,
                    macro_frames=12, long_videos=0, seed=0)
        opts.update(kw)
        write_dataset(SynthConfig(out=out, **opts), progress=False)
        _SYNTH[key] = out
    return _SYNTH[key]
