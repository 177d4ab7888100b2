"""Readers of the micro-expression datasets as they ship, one per on-disk layout.

Each reader takes the folder the user downloaded and yields `Sample` records (the clip's
frames by number, onset/apex/offset as annotated, the annotation's own emotion label).
A problem with one sample (a missing frame, an unreadable cell) is recorded on the sample
(`error`, `warnings`) rather than raised, so preprocessing can skip it and list it; a
problem with the whole dataset (no folder, no annotation sheet) raises `DatasetError`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable

from moext.registry import Registry
from train.datasets.common import DatasetError, Sample

# name -> reader; the help is the dataset's title in reports.
READERS: Registry[Callable[[Path], list[Sample]]] = Registry("dataset", DatasetError)


def _register() -> None:
    from train.datasets.casme2 import read_casme2
    from train.datasets.casme3 import read_casme3
    from train.datasets.macro import read_macro
    from train.datasets.samm import read_samm
    from train.datasets.smic import read_smic_hs

    READERS.register("casme2", read_casme2, "CASME II")
    READERS.register("samm", read_samm, "SAMM")
    READERS.register("smic-hs", read_smic_hs, "SMIC-HS")
    READERS.register("casme3", read_casme3, "CAS(ME)³")
    READERS.register("macro", read_macro, "macro-expression clips (our folder layout)")


_register()
DATASETS = READERS.names()


def read_dataset(name: str, root: str | Path) -> list[Sample]:
    """Samples of dataset `name` (one of `DATASETS`) under `root`."""
    reader = READERS.get(name)
    root = Path(root).expanduser()
    if not root.exists():
        raise DatasetError(f"dataset root {root} does not exist; give the folder you unpacked {name} into")
    if not root.is_dir():
        raise DatasetError(f"dataset root {root} is not a folder")
    return reader(root.resolve())


__all__ = ["DATASETS", "READERS", "DatasetError", "Sample", "read_dataset"]
