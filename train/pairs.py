"""Onset/apex pairs as torch datasets, read from preprocess manifests (docs/ARCHITECTURE.md,
"Manifest"): what the training loop is fed.

Every random draw of an item comes from `numpy.random.default_rng([seed, epoch, index])`, and
the order of items from a `DistributedSampler` seeded by (seed, epoch). So an epoch's data are
a pure function of (seed, epoch): a resumed run and every DDP rank see exactly what an
uninterrupted single-process run would.
"""

from __future__ import annotations

from collections import OrderedDict
from pathlib import Path
from typing import Any, Sequence

import cv2
import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, DistributedSampler

from moext.preprocess import crops_to_tensor
from train.augment import augment_pair, expansion_set
from train.config import AugmentConfig, TrainError

MANIFEST = "manifest.jsonl"


def load_rows(caches: Sequence[str | Path]) -> list[dict[str, Any]]:
    """The ok rows of every cache's manifest, paths resolved; TrainError names what is missing."""
    from train.datasets.cache import CacheError, check_landmarker
    from train.manifest import read_manifest

    rows: list[dict[str, Any]] = []
    for cache in caches:
        cache = Path(cache)
        if not cache.is_dir():
            raise TrainError(
                f"cache directory {cache} does not exist; run `moext-train preprocess DATASET ROOT "
                f"--out {cache}` first (or `moext-train synth` for generated data)"
            )
        if not (cache / MANIFEST).is_file():
            raise TrainError(
                f"{cache} has no {MANIFEST}; it is not a preprocess cache. Run `moext-train "
                f"preprocess DATASET ROOT --out {cache}`"
            )
        try:
            check_landmarker(cache)
        except CacheError as e:
            raise TrainError(str(e)) from None
        try:
            got = read_manifest(cache)
        except (ValueError, OSError) as e:
            raise TrainError(f"cannot read {cache / MANIFEST}: {e}") from None
        if not got:
            raise TrainError(
                f"{cache / MANIFEST} has no usable samples (none with status ok); check the "
                "skip reasons in the manifest and re-run `moext-train preprocess`"
            )
        rows.extend(got)
    return rows


def subject_key(row: dict[str, Any]) -> str:
    """The LOSO subject key, `dataset/subject` (CDE pools datasets whose subject ids clash)."""
    return f"{row['dataset']}/{row['subject']}"


def sample_key(row: dict[str, Any]) -> str:
    return f"{row['dataset']}/{row['subject']}/{row['sample']}"


class CropCache:
    """Decoded crops by path, bounded (LRU): a pair is read from disk once, not every epoch."""

    def __init__(self, max_items: int = 4096):
        self.max_items = max_items
        self._items: OrderedDict[str, np.ndarray] = OrderedDict()

    def __call__(self, path: str | Path) -> np.ndarray:
        key = str(path)
        img = self._items.get(key)
        if img is None:
            img = cv2.imread(key, cv2.IMREAD_COLOR)
            if img is None:
                raise TrainError(
                    f"cannot read crop {key}; the cache is incomplete, re-run `moext-train "
                    "preprocess` on it"
                )
            self._items[key] = img
            if len(self._items) > self.max_items:
                self._items.popitem(last=False)
        else:
            self._items.move_to_end(key)
        return img


class _EpochDataset(Dataset):
    """Rows x `repeats` items per epoch (training) or each row once (evaluation)."""

    def __init__(self, rows: list[dict[str, Any]], image_size: int, augment: AugmentConfig | None, seed: int):
        if not rows:
            raise TrainError("no samples to train on after filtering; check the manifest and protocol")
        self.rows = rows
        self.image_size = image_size
        self.augment = augment
        self.seed = seed
        self.epoch = 0
        self.read = CropCache()

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return len(self.rows) * (self.augment.repeats if self.augment else 1)

    def _pair(self, i: int) -> tuple[np.random.Generator, np.ndarray, np.ndarray, dict[str, Any]]:
        row = self.rows[i % len(self.rows)]
        rng = np.random.default_rng([self.seed, self.epoch, i])
        onset, apex = self.read(row["onset"]), self.read(row["apex"])
        if self.augment is not None:
            onset, apex = augment_pair(onset, apex, rng, self.augment)
        return rng, onset, apex, row


class PairDataset(_EpochDataset):
    """(x_o, x_a, label, row index) for fine-tuning and evaluation.

    x_o, x_a: float32 (3, S, S) from `crops_to_tensor`; label: int64 (the protocol's `label`).
    """

    def __getitem__(self, i: int):
        _, onset, apex, row = self._pair(i)
        x = crops_to_tensor(np.stack([onset, apex]), self.image_size)  # (2, 3, S, S)
        return x[0], x[1], torch.tensor(int(row["label"])), i % len(self.rows)


class FramePairDataset(_EpochDataset):
    """(x_o, x_a) of each row once, un-augmented: the real frames, for measurements."""

    def __init__(self, rows, image_size: int):
        super().__init__(rows, image_size, None, 0)

    def __getitem__(self, i: int):
        _, onset, apex, _ = self._pair(i)
        x = crops_to_tensor(np.stack([onset, apex]), self.image_size)  # (2, 3, S, S)
        return x[0], x[1]


class ExpansionPairDataset(_EpochDataset):
    """(x_o, x_a) expansion sets for MoExt pre-training, each (m, 3, S, S) (§3.2)."""

    def __init__(self, rows, image_size: int, augment: AugmentConfig, seed: int):
        super().__init__(rows, image_size, augment, seed)

    def __getitem__(self, i: int):
        rng, onset, apex, _ = self._pair(i)
        crops = expansion_set(onset, rng, self.augment) + expansion_set(apex, rng, self.augment)
        x = crops_to_tensor(np.stack(crops), self.image_size)  # (2m, 3, S, S)
        m = self.augment.expansion_m
        return x[:m], x[m:]


def make_loader(
    dataset: Dataset,
    batch_size: int,
    *,
    seed: int,
    shuffle: bool,
    rank: int = 0,
    world_size: int = 1,
    workers: int = 0,
) -> tuple[DataLoader, DistributedSampler]:
    """A loader whose order depends on (seed, epoch) only; call `sampler.set_epoch` each epoch.

    `batch_size` is the global batch: each of `world_size` ranks takes batch_size / world_size.
    """
    if batch_size % world_size:
        raise TrainError(
            f"batch size {batch_size} does not split over {world_size} processes; pass a "
            f"--batch-size divisible by {world_size}"
        )
    sampler = DistributedSampler(
        dataset, num_replicas=world_size, rank=rank, shuffle=shuffle, seed=seed, drop_last=False
    )
    per_rank = batch_size // world_size
    loader = DataLoader(
        dataset,
        batch_size=per_rank,
        sampler=sampler,
        # A last batch of one sample breaks BatchNorm in training (no variance); drop it.
        drop_last=shuffle and per_rank > 1 and len(sampler) % per_rank == 1,
        num_workers=workers,
        # A private generator: worker seeds must not consume the global RNG (dropout's).
        generator=torch.Generator().manual_seed(seed),
        persistent_workers=False,
    )
    return loader, sampler
