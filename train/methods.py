"""Registry of training methods: how to build the pre-training network, its loss on a batch,
its pre-training data, the classifier, and the transfer from one to the other.

The loops (`pretrain`, `finetune`, `loso`, `ablate`) and the benchmark only talk to a
`Method`, so a second method (MIACNet, issue 7) registers here and gets every command and
report. Classifiers follow the seam of docs/ARCHITECTURE.md: `forward(x_o, x_a) -> logits`.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, Callable

import torch
from torch import nn
from torch.utils.data import Dataset

import moext
from moext.config import ModelConfig
from moext.modeling.losses import pretraining_loss


@dataclass(frozen=True)
class Method:
    """One training method.

    Attributes:
        name: CLI key (`--method`).
        config_cls: its model config dataclass (with `to_dict`/`from_dict`).
        pretrain_kind, classifier_kind: checkpoint kinds registered in `moext.checkpoint`.
        build_pretrain, build_classifier: config -> nn.Module (the classifier follows the
            `forward_features`/`forward_head` seam).
        pretrain_loss: (model, batch) -> (total loss, {part name: float}) where batch is what
            `pretrain_dataset` yields, collated.
        pretrain_dataset: (rows, image_size, augment config, seed) -> Dataset with `set_epoch`.
        transfer: (pre-trained model, classifier) -> copied keys.
        ablations: Table 7 switches: name -> changes to the model config dict (a method
            leaves out those that do not apply to it).
        find_unused_parameters: DDP flag, True when a loss leaves parameters out of the graph.
    """

    name: str
    config_cls: type
    pretrain_kind: str
    classifier_kind: str
    build_pretrain: Callable[[Any], nn.Module]
    build_classifier: Callable[[Any], nn.Module]
    pretrain_loss: Callable[[nn.Module, Any], tuple[torch.Tensor, dict[str, float]]]
    pretrain_dataset: Callable[..., Dataset]
    transfer: Callable[[nn.Module, nn.Module], list[str]]
    ablations: dict[str, dict[str, Any]]
    find_unused_parameters: bool = False

    def model_config(self, d: dict[str, Any]) -> Any:
        return self.config_cls.from_dict(d)

    def classifier_config(self, base: Any, class_names: list[str]) -> Any:
        """The classifier's config: `base` (e.g. the pre-trained net's) with the protocol's classes."""
        return dataclasses.replace(base, num_classes=len(class_names), class_names=list(class_names))


METHODS: dict[str, Method] = {}


def register_method(method: Method) -> None:
    METHODS[method.name] = method


def get_method(name: str) -> Method:
    if name not in METHODS:
        raise KeyError(f"unknown method {name!r}; choose one of {sorted(METHODS)}")
    return METHODS[name]


def _moext_loss(model: nn.Module, batch) -> tuple[torch.Tensor, dict[str, float]]:
    x_o, x_a = batch  # (B, m, 3, S, S) expansion sets of onset and apex
    losses = pretraining_loss(model, x_o, x_a)
    return losses.total, losses.items()


def _moext_dataset(rows, image_size, augment, seed):
    from train.data import ExpansionPairDataset  # late: keeps `train.methods` import light

    return ExpansionPairDataset(rows, image_size, augment, seed)


register_method(
    Method(
        name="moext",
        config_cls=ModelConfig,
        pretrain_kind="moext-pretrain",
        classifier_kind="moext-classifier",
        build_pretrain=moext.MoExtPretrain,
        build_classifier=moext.MoExtClassifier,
        pretrain_loss=_moext_loss,
        pretrain_dataset=_moext_dataset,
        transfer=moext.transfer_pretrained,
        ablations={
            "no-motion-extractor": {"use_motion_extractor": False},
            "no-L_st": {"alpha_st": 0.0},
            "no-L_ss": {"alpha_ss": 0.0},
        },
    )
)


class PretrainObjective(nn.Module):
    """The pre-training loss as one module, so DistributedDataParallel sees a single forward
    that touches every parameter (MoExt's loss calls several sub-modules, not `forward`)."""

    def __init__(self, model: nn.Module, method: Method):
        super().__init__()
        self.model = model
        self._loss = method.pretrain_loss

    def forward(self, batch) -> tuple[torch.Tensor, dict[str, float]]:
        return self._loss(self.model, batch)


class ClassifierObjective(nn.Module):
    """Cross-entropy of a classifier on (x_o, x_a, label) batches (§3.4)."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model

    def forward(self, batch) -> tuple[torch.Tensor, dict[str, float]]:
        x_o, x_a, y = batch[:3]
        logits = self.model(x_o, x_a)  # (B, K)
        loss = nn.functional.cross_entropy(logits, y)
        acc = (logits.argmax(1) == y).float().mean()
        return loss, {"total": float(loss.detach()), "acc": float(acc)}


def _load_method_modules() -> None:
    """Other methods live in `train/method_<name>.py` and call `register_method` on import
    (MIACNet / MA2MI: issue 7); importing them here makes every command see them."""
    import importlib
    import pkgutil

    import train

    for mod in pkgutil.iter_modules(train.__path__):
        if mod.name.startswith("method_"):
            importlib.import_module(f"train.{mod.name}")


_load_method_modules()


# --- MIACNet with MA2MI pre-training (issue 7; arXiv 2405.16451) -----------------------------


class MA2MIPairDataset(Dataset):
    """Frame pairs (I_t, I_{t+δ}) along each row's clip for MA2MI pre-training, (3, S, S) each.

    A row's clip is its `frames` list (aligned crops from the onset on, in frame order, every
    `--frame-stride` source frames, so δ counts entries of that list); a row without at least
    two `frames` contributes its (onset, apex) pair instead. Each item draws its own (t, δ)
    and the shared mirror/rotation from `default_rng([seed, epoch, item])`, like the other
    datasets, so resumed and DDP runs replay the same pairs.
    """

    def __init__(self, rows, image_size: int, augment, seed: int, cfg: Any):
        from train.config import TrainError
        from train.data import CropCache

        if not rows:
            raise TrainError("no samples to pre-train on after filtering; check the manifest")
        self.clips = [list(r["frames"]) if len(r.get("frames") or []) >= 2 else [r["onset"], r["apex"]]
                      for r in rows]
        self.image_size, self.augment, self.seed, self.cfg = image_size, augment, seed, cfg
        self.epoch = 0
        self.read = CropCache()

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return len(self.clips) * (self.augment.repeats if self.augment else 1)

    def __getitem__(self, i: int):
        import numpy as np

        from moext.modeling.ma2mi_losses import sample_pair_indices
        from moext.preprocess import crops_to_tensor
        from train.augment import augment_pair

        clip = self.clips[i % len(self.clips)]
        rng = np.random.default_rng([self.seed, self.epoch, i])
        t, td = sample_pair_indices(len(clip), self.cfg, rng)
        a, b = self.read(clip[t]), self.read(clip[td])
        if self.augment is not None:
            a, b = augment_pair(a, b, rng, self.augment)
        x = crops_to_tensor(np.stack([a, b]), self.image_size)  # (2, 3, S, S)
        return x[0], x[1]


def _ma2mi_loss(model: nn.Module, batch) -> tuple[torch.Tensor, dict[str, float]]:
    from moext.modeling.ma2mi_losses import ma2mi_loss

    x_t, x_td = batch  # (B, 3, S, S) each: I_t and I_{t+δ}
    losses = ma2mi_loss(model, x_t, x_td)
    return losses.total, losses.items()


class _MA2MIDatasetFactory:
    """`pretrain_dataset` for MA2MI: the pair sampler needs δ's range from the model config,
    which the generic signature does not pass, so the pretrain net's config is bound by
    `build_pretrain` before the loop asks for the dataset."""

    cfg: Any = None

    def build_pretrain(self, cfg):
        self.cfg = cfg
        return moext.MA2MIPretrain(cfg)

    def dataset(self, rows, image_size, augment, seed):
        cfg = self.cfg if self.cfg is not None else moext.MIACNetConfig(image_size=image_size)
        return MA2MIPairDataset(rows, image_size, augment, seed, cfg)


_ma2mi_data = _MA2MIDatasetFactory()

register_method(
    Method(
        name="miacnet",
        config_cls=moext.MIACNetConfig,
        pretrain_kind="miacnet-pretrain",
        classifier_kind="miacnet",
        build_pretrain=_ma2mi_data.build_pretrain,
        build_classifier=moext.MIACNet,
        pretrain_loss=_ma2mi_loss,
        pretrain_dataset=_ma2mi_data.dataset,
        transfer=moext.transfer_ma2mi,
        ablations={"no-position-branch": {"use_position_branch": False}},
    )
)
# `--method ma2mi` names the pre-training paradigm; it is the same method as `--model miacnet`.
register_method(dataclasses.replace(METHODS["miacnet"], name="ma2mi"))
