"""Typed configuration of the training runs (pre-training, fine-tuning, LOSO, ablations).

Defaults are the paper's settings (§4.1.2): batch 20, 30 epochs, Adam lr 1e-4, weight decay
1e-4, 224x224 inputs, mirroring and rotation in [-10, 10] degrees to 10x the data. Every field
is a command-line flag; the whole config is written beside every checkpoint and report.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from typing import Any


SCHEDULES = ("constant", "cosine")


def _check_range(cfg: Any, limits: dict[str, tuple]) -> None:
    """Refuse a setting of the wrong type or outside its range, naming it (`group.field`)."""
    group = {"OptimConfig": "optim", "AugmentConfig": "augment"}.get(type(cfg).__name__, "")
    for name, (low, high, *how) in limits.items():
        v = getattr(cfg, name)
        want = int if isinstance(low, int) and not isinstance(low, bool) else float
        if isinstance(v, bool) or not isinstance(v, (int, float)) or (want is int and not isinstance(v, int)):
            raise TrainError(f"{group}.{name}={v!r}: takes {'a whole number' if want is int else 'a number'}")
        if (v <= low if how else v < low) or (high is not None and v > high):
            span = f"above {low}" if how else f"at least {low}"
            raise TrainError(f"{group}.{name}={v!r}: must be {span}" + (f" and at most {high}" if high is not None else ""))
    for f in dataclasses.fields(cfg):
        if f.type in ("bool", bool) and not isinstance(getattr(cfg, f.name), bool):
            raise TrainError(f"{group}.{f.name}={getattr(cfg, f.name)!r}: takes true or false")


@dataclass
class OptimConfig:
    """Adam and its schedule (fixed: no epoch is ever chosen by a test subject).

    Attributes:
        batch_size: global batch (split over DDP ranks); pairs per step.
        epochs: passes over the (augmented) training data.
        lr: Adam's learning rate (the peak, with a schedule).
        weight_decay: Adam's weight decay.
        schedule: "constant" (the paper) or "cosine" (decay to min_lr_ratio x lr over the
            run), either after warmup_epochs. The learning rate is a function of (epoch,
            step), so a resumed run follows the same curve.
        warmup_epochs: epochs of linear warm-up from lr / 10 to lr (0 = none).
        min_lr_ratio: where the cosine schedule ends, as a fraction of lr.
        freeze_epochs: fine-tuning from --init: the pre-trained layers do not train for
            this many epochs (only the new head does), then train at transfer_lr_ratio x lr.
        transfer_lr_ratio: the learning-rate factor of the pre-trained layers.
        flow_first_epochs: with a `flow_input` classifier, its flow branch is first trained
            alone, as STSTNet is (the whole training set as one batch, Adam at
            flow_first_lr, no augmentation), for this many steps; then the whole classifier
            trains with the flow branch treated as pre-trained (freeze_epochs,
            transfer_lr_ratio). 0 = the branch starts untrained with the rest.
        flow_first_lr: Adam's learning rate of that first stage (STSTNet's: 5e-4).
    """

    batch_size: int = 20
    epochs: int = 30
    lr: float = 1e-4
    weight_decay: float = 1e-4
    schedule: str = "constant"
    warmup_epochs: float = 0.0
    min_lr_ratio: float = 0.01
    freeze_epochs: float = 0.0
    transfer_lr_ratio: float = 1.0
    flow_first_epochs: int = 0
    flow_first_lr: float = 5e-4

    def __post_init__(self) -> None:
        _check_range(self, {"flow_first_epochs": (0, None), "flow_first_lr": (0.0, None, "above"), "batch_size": (1, None), "epochs": (0, None), "lr": (0.0, None, "above"),
                            "weight_decay": (0.0, None), "warmup_epochs": (0.0, None), "min_lr_ratio": (0.0, 1.0),
                            "freeze_epochs": (0.0, None), "transfer_lr_ratio": (0.0, None)})
        if self.schedule not in SCHEDULES:
            raise TrainError(f"optim.schedule={self.schedule!r}: choose {' or '.join(SCHEDULES)}")

    def lr_at(self, progress: float, transferred: bool = False) -> float:
        """The learning rate after `progress` epochs (fractional); `transferred`: for the
        layers copied from a pre-trained model."""
        import math

        if transferred:
            if progress < self.freeze_epochs:
                return 0.0
            return self.transfer_lr_ratio * self.lr_at(progress)
        if self.warmup_epochs > 0 and progress < self.warmup_epochs:
            return self.lr * (0.1 + 0.9 * progress / self.warmup_epochs)
        if self.schedule == "constant":
            return self.lr
        span = max(self.epochs - self.warmup_epochs, 1e-9)
        x = min(max((progress - self.warmup_epochs) / span, 0.0), 1.0)
        return self.lr * (self.min_lr_ratio + (1 - self.min_lr_ratio) * 0.5 * (1 + math.cos(math.pi * x)))


@dataclass
class AugmentConfig:
    """Data augmentation; every draw is a function of (seed, epoch, item) so runs replay.

    Attributes:
        repeats: each pair is seen this many times per epoch, each time with its own
            mirror/rotation draw ("to 10x the data", §4.1.2).
        mirror: random horizontal flip, the same for onset and apex of a pair.
        max_rotation_deg: rotation drawn from [-max, max], the same for onset and apex.
        expansion_m: instances per expansion set in pre-training (the frame + m-1 variants).
        noise_std: std of the additive Gaussian noise variant, in 0..255 pixel units.
        contrast_gain: (low, high) of the contrast-increase variant's gain.
        rigid_px: apex-only random shift in pixels of the cached crop (uniform in +-value):
            live-like head motion and alignment jitter that is not an expression; 0 in the paper.
        rigid_deg: apex-only random rotation in degrees (uniform in +-value); 0 in the paper.
        rigid_scale: apex-only random scale change, a fraction (uniform in +-value); 0 in
            the paper.
        sensor_noise_std: Gaussian noise drawn independently for onset and apex (0..255 units),
            like a camera's; 0 in the paper.
    """

    repeats: int = 10
    mirror: bool = True
    max_rotation_deg: float = 10.0
    expansion_m: int = 3
    noise_std: float = 8.0
    contrast_gain: tuple[float, float] = (1.2, 1.6)
    rigid_px: float = 0.0
    rigid_deg: float = 0.0
    rigid_scale: float = 0.0
    sensor_noise_std: float = 0.0

    def __post_init__(self) -> None:
        _check_range(self, {"repeats": (1, None), "max_rotation_deg": (0.0, 180.0), "expansion_m": (1, None),
                            "noise_std": (0.0, None), "rigid_px": (0.0, None), "rigid_deg": (0.0, None),
                            "rigid_scale": (0.0, 0.9), "sensor_noise_std": (0.0, None)})


@dataclass
class RunConfig:
    """One pre-training or fine-tuning run.

    Attributes:
        method: key of `train.methods.METHODS` (moext, ...).
        model: the network's config as a dict (the method's own config dataclass).
        optim, augment: see above.
        seed: every random draw (init, data order, augmentation, dropout) follows from it.
        caches: preprocess cache directories whose manifests feed the run.
        include_macro: pre-training also uses macro-expression rows (Table 7 "no macro" = False).
        protocol: fine-tuning label map (`train.protocols`); None in pre-training.
        init: pre-trained checkpoint to start fine-tuning from; None = from scratch.
        loader_workers: DataLoader worker processes (0 = load in the training process).
        bn_recalibrate: after training a classifier, set its BatchNorm running statistics to
            their exact average over the un-augmented training pairs (`train.bn`); with short
            schedules the running averages trail the final weights.
        recipe: the preset (`--recipe`, `train.recipes`) the defaults came from; None when
            the run was configured without one.
    """

    method: str = "moext"
    model: dict[str, Any] = field(default_factory=dict)
    optim: OptimConfig = field(default_factory=OptimConfig)
    augment: AugmentConfig = field(default_factory=AugmentConfig)
    seed: int = 0
    caches: list[str] = field(default_factory=list)
    include_macro: bool = True
    protocol: str | None = None
    init: str | None = None
    loader_workers: int = 0
    bn_recalibrate: bool = False
    recipe: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "RunConfig":
        d = dict(d)
        d["optim"] = OptimConfig(**d.get("optim", {}))
        aug = dict(d.get("augment", {}))
        if "contrast_gain" in aug:
            aug["contrast_gain"] = tuple(aug["contrast_gain"])
        d["augment"] = AugmentConfig(**aug)
        return cls(**d)


@dataclass
class LosoConfig:
    """Leave-one-subject-out evaluation around a fine-tuning `RunConfig`.

    Attributes:
        run: the fine-tuning run every fold repeats (its `init` is the pre-trained model).
        selection: "fixed" trains the fixed schedule and scores the last epoch; "inner-val"
            holds out `val_subjects` training subjects, scores every epoch on them, and keeps
            the best epoch's weights. The test subject never chooses anything. "test-best" is
            "fixed" plus, beside it and labelled "optimistic: test-fold selection", the figure
            published code reports: each subject at its best epoch on its own test fold.
        val_subjects: number of training subjects held out for "inner-val".
        workers: folds run in parallel processes.
        subjects: restrict to these test subjects (all when empty); others still train.
    """

    run: RunConfig = field(default_factory=RunConfig)
    selection: str = "fixed"
    val_subjects: int = 2
    workers: int = 1
    subjects: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def settings_diff(old: Any, new: Any, prefix: str = "") -> list[str]:
    """What differs between two settings dicts (as JSON reads them back), one
    `key: old -> new` per leaf, dotted keys: for messages that name the setting."""
    if isinstance(old, dict) and isinstance(new, dict):
        out = []
        for k in sorted(set(old) | set(new), key=str):
            key = f"{prefix}.{k}" if prefix else str(k)
            if k not in old:
                out.append(f"{key}: (none) -> {new[k]!r}")
            elif k not in new:
                out.append(f"{key}: {old[k]!r} -> (none)")
            else:
                out += settings_diff(old[k], new[k], key)
        return out
    return [] if old == new else [f"{prefix}: {old!r} -> {new!r}"]


def resume_mismatch(where: Any, old: Any, new: Any, config: Any) -> "TrainError":
    """The error for a --resume whose settings differ, naming (up to 6 of) the differences."""
    diff = settings_diff(json.loads(json.dumps(old)), json.loads(json.dumps(new)))
    listed = "; ".join(diff[:6]) + (f"; and {len(diff) - 6} more" if len(diff) > 6 else "")
    return TrainError(
        f"--resume: {where} was written with other settings ({listed or 'unknown difference'}); resume with "
        f"the same settings (see {config}) or start in a new --out directory"
    )


class TrainError(Exception):
    """A user error (missing data, bad flag, wrong checkpoint): the CLI prints the message,
    which names the bad input and the fix, and exits non-zero without a traceback."""
