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

from moext.flow import DenseFlow, FlowConfig, channels_from_field, flow_field, transform_field
from moext.preprocess import crops_to_tensor
from train.augment import augment_pair, augment_pair_geometry, expansion_set
from train.config import AugmentConfig, TrainError
from train.flow_cache import flow_file, write_flow

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
        if not (cache / MANIFEST).read_text().strip():
            # Before the landmarker check: an empty cache was made by no landmarker at all.
            raise TrainError(
                f"{cache / MANIFEST} is empty: preprocess wrote no sample there; re-run `moext-train "
                f"preprocess DATASET ROOT --out {cache}` and check that ROOT holds the dataset"
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


class FlowStore:
    """Onset -> apex flow fields (float32 (size, size, 2), `moext.flow.flow_field`) of rows:
    computed once from the cached crops, kept beside them on disk (preprocess writes them; a
    cache made before flow existed gets them on first use) and in memory. A file older than
    either crop (a re-run preprocess) is computed again."""

    def __init__(self, cfg: FlowConfig, read: CropCache | None = None):
        self.cfg = cfg
        self.read = read or CropCache()
        self._fields: dict[str, np.ndarray] = {}
        self._flow: DenseFlow | None = None

    def field(self, row: dict[str, Any]) -> np.ndarray:
        key = str(row["onset"])
        got = self._fields.get(key)
        if got is None:
            got = self._load_or_compute(row)
            self._fields[key] = got
        return got

    # Un-augmented inputs by (onset, apex, settings), shared by every store of the process: a
    # flow-only classifier's epoch is otherwise mostly this computation (STSTNet: 500 epochs,
    # and a fresh evaluation set per epoch for the test-fold figure). ~9 kB an entry.
    _inputs: "OrderedDict[tuple, np.ndarray]" = OrderedDict()
    MAX_INPUTS = 20000

    def channels(self, row: dict[str, Any]) -> np.ndarray:
        """The un-augmented network input (3, out_size, out_size): u, v, strain."""
        key = (str(row["onset"]), str(row["apex"]), self.cfg)
        got = FlowStore._inputs.get(key)
        if got is None:
            got = channels_from_field(self.field(row), self.cfg.out_size)
            FlowStore._inputs[key] = got
            if len(FlowStore._inputs) > self.MAX_INPUTS:
                FlowStore._inputs.popitem(last=False)
        return got

    def _load_or_compute(self, row: dict[str, Any]) -> np.ndarray:
        path = flow_file(row, self.cfg)
        try:
            newest_crop = max(Path(row["onset"]).stat().st_mtime, Path(row["apex"]).stat().st_mtime)
            if path.is_file() and path.stat().st_mtime >= newest_crop:
                uv = np.load(path)
                if uv.shape == (self.cfg.size, self.cfg.size, 2):
                    return uv.astype(np.float32)
        except (OSError, ValueError):
            pass  # unreadable or torn: compute it again
        self._flow = self._flow or DenseFlow(self.cfg.preset)
        uv = flow_field(self.read(row["onset"]), self.read(row["apex"]), self.cfg, self._flow)
        write_flow(path, uv)
        return uv


_EMPTY = torch.zeros(0)


class PairDataset(_EpochDataset):
    """(x_o, x_a, label, row index, flow) for fine-tuning and evaluation.

    x_o, x_a: float32 (3, S, S) from `crops_to_tensor` (empty when `images` is False: a
    flow-only classifier); label: int64 (the protocol's `label`); flow: float32 (3, n, n) u, v,
    strain of the onset -> apex flow when `flow` is given (else empty), mirrored and rotated
    with the frames.
    """

    def __init__(self, rows, image_size: int, augment: AugmentConfig | None, seed: int, *,
                 images: bool = True, flow: FlowConfig | None = None):
        super().__init__(rows, image_size, augment, seed)
        self.images = images
        self.flows = FlowStore(flow, self.read) if flow is not None else None

    def __getitem__(self, i: int):
        row = self.rows[i % len(self.rows)]
        rng = np.random.default_rng([self.seed, self.epoch, i])
        onset = apex = None
        if self.images:
            onset, apex = self.read(row["onset"]), self.read(row["apex"])
        flip, angle = False, 0.0
        if self.augment is not None:
            onset, apex, flip, angle = augment_pair_geometry(onset, apex, rng, self.augment)
        x_o = x_a = f = _EMPTY
        if self.images:
            x = crops_to_tensor(np.stack([onset, apex]), self.image_size)  # (2, 3, S, S)
            x_o, x_a = x[0], x[1]
        if self.flows is not None and not flip and not angle:
            f = torch.from_numpy(self.flows.channels(row).copy())  # (3, n, n)
        elif self.flows is not None:
            uv = transform_field(self.flows.field(row), flip, angle)  # (size, size, 2)
            f = torch.from_numpy(channels_from_field(uv, self.flows.cfg.out_size))  # (3, n, n)
        return x_o, x_a, torch.tensor(int(row["label"])), i % len(self.rows), f

    def flow_inputs(self) -> torch.Tensor:
        """Every row's un-augmented flow input, (N, 3, n, n): the training set's statistics."""
        return torch.from_numpy(np.stack([self.flows.channels(r) for r in self.rows]))


def pair_dataset(model, rows, augment: AugmentConfig | None, seed: int) -> PairDataset:
    """The PairDataset that feeds `model`: frames, flow or both, as its config says."""
    from moext import classifier_inputs

    images, flow = classifier_inputs(model)
    return PairDataset(rows, getattr(model.cfg, "image_size", 0), augment, seed, images=images,
                       flow=model.cfg.flow if flow else None)


class FramePairDataset(_EpochDataset):
    """(x_o, x_a) of each row once, un-augmented: the real frames, for measurements."""

    def __init__(self, rows, image_size: int):
        super().__init__(rows, image_size, None, 0)

    def __getitem__(self, i: int):
        _, onset, apex, _ = self._pair(i)
        x = crops_to_tensor(np.stack([onset, apex]), self.image_size)  # (2, 3, S, S)
        return x[0], x[1]


class ExpansionPairDataset(_EpochDataset):
    """(x_o, x_a) expansion sets for MoExt pre-training, each (m, 3, S, S) (§3.2); with
    `flow` (ModelConfig.flow_target) also the real pair's onset -> apex flow (3, n, n),
    mirrored and rotated with the frames."""

    def __init__(self, rows, image_size: int, augment: AugmentConfig, seed: int, *, flow: FlowConfig | None = None):
        super().__init__(rows, image_size, augment, seed)
        self.flows = FlowStore(flow, self.read) if flow is not None else None

    def __getitem__(self, i: int):
        row = self.rows[i % len(self.rows)]
        rng = np.random.default_rng([self.seed, self.epoch, i])
        onset, apex, flip, angle = augment_pair_geometry(self.read(row["onset"]), self.read(row["apex"]),
                                                         rng, self.augment)
        crops = expansion_set(onset, rng, self.augment) + expansion_set(apex, rng, self.augment)
        x = crops_to_tensor(np.stack(crops), self.image_size)  # (2m, 3, S, S)
        m = self.augment.expansion_m
        if self.flows is None:
            return x[:m], x[m:]
        uv = transform_field(self.flows.field(row), flip, angle)  # (size, size, 2)
        return x[:m], x[m:], torch.from_numpy(channels_from_field(uv, self.flows.cfg.out_size))


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
