"""Registry of training methods: how to build the pre-training network, its loss on a batch,
its pre-training data, the classifier, and the transfer from one to the other.

The loops (`pretrain`, `finetune`, `loso`, `ablate`) and the benchmark only talk to a
`Method`. MoExt registers here; every other method lives in its own `train/method_<name>.py`
that calls `register_method(Method(...))` once (MIACNet: `train/method_miacnet.py`); those
modules are imported when this one is, so a third method is one new file and gets every
command, flag (`--set`, `--config`) and report. Classifiers follow the seam of
docs/ARCHITECTURE.md: `forward(x_o, x_a) -> logits`.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, Callable

import torch
from torch import nn
from torch.utils.data import Dataset

import moext
from moext.registry import Registry
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
        pretrain_dataset: (rows, model config, augment config, seed) -> Dataset with
            `set_epoch`; the model config says the input size and whatever else the data
            depend on (MA2MI's frame gaps δ).
        transfer: (pre-trained model, classifier) -> copied keys.
        ablations: Table 7 switches: name -> changes to the model config dict (a method
            leaves out those that do not apply to it).
        find_unused_parameters: DDP flag, True when a loss leaves parameters out of the graph.
        pretext_report: (pre-trained model, rows, model config) -> {"diagnostics": {...},
            "learned_motion": bool, "verdict": str}: whether the pretext learned motion,
            measured after every pre-training (None: not measured).
    """

    name: str
    config_cls: type
    pretrain_kind: str | None  # None: the method has no pre-training (STSTNet)
    classifier_kind: str
    build_pretrain: Callable[[Any], nn.Module]
    build_classifier: Callable[[Any], nn.Module]
    pretrain_loss: Callable[[nn.Module, Any], tuple[torch.Tensor, dict[str, float]]]
    pretrain_dataset: Callable[..., Dataset]
    transfer: Callable[[nn.Module, nn.Module], list[str]]
    ablations: dict[str, dict[str, Any]]
    find_unused_parameters: bool = False
    pretext_report: Callable[[nn.Module, list, Any], dict[str, Any]] | None = None

    def model_config(self, d: dict[str, Any]) -> Any:
        return self.config_cls.from_dict(d)

    def classifier_config(self, base: Any, class_names: list[str]) -> Any:
        """The classifier's config: `base` (e.g. the pre-trained net's) with the protocol's classes."""
        return dataclasses.replace(base, num_classes=len(class_names), class_names=list(class_names))


METHODS: Registry[Method] = Registry("method")


def register_method(method: Method, help: str = "", aliases: tuple[str, ...] = ()) -> None:
    METHODS.register(method.name, method, help, aliases)


def get_method(name: str) -> Method:
    """The method registered as `name` or under it as an alias (ma2mi: MIACNet's)."""
    return METHODS.get(name)


def _moext_loss(model: nn.Module, batch) -> tuple[torch.Tensor, dict[str, float]]:
    x_o, x_a = batch[:2]  # (B, m, 3, S, S) expansion sets of onset and apex
    flow = batch[2] if len(batch) > 2 else None  # (B, 3, n, n) with flow_target
    losses = pretraining_loss(model, x_o, x_a, flow)
    return losses.total, losses.items()


def _moext_dataset(rows, cfg: ModelConfig, augment, seed):
    from train.pairs import ExpansionPairDataset  # late: keeps `train.methods` import light

    return ExpansionPairDataset(rows, cfg.image_size, augment, seed,
                                flow=cfg.flow if cfg.flow_target > 0 else None)


# Pairs measured after pre-training: enough for stable means, few enough to take seconds.
REPORT_PAIRS = 240


def _moext_report(model: nn.Module, rows, cfg: ModelConfig) -> dict[str, Any]:
    from torch.utils.data import DataLoader

    from moext.modeling.losses import learned_motion, pretext_diagnostics
    from train.pairs import FramePairDataset

    ds = FramePairDataset(rows[:REPORT_PAIRS], cfg.image_size)
    d = pretext_diagnostics(model, DataLoader(ds, batch_size=20))
    ok, verdict = learned_motion(d)
    return {"diagnostics": d, "learned_motion": ok, "verdict": verdict}


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
        pretext_report=_moext_report,
    ),
    help="MoExt: shape/texture separation and a motion extractor, pre-trained by reconstructing the apex",
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


def classify(model: nn.Module, x_o: torch.Tensor, x_a: torch.Tensor, flow: torch.Tensor) -> torch.Tensor:
    """Logits of a classifier on a `PairDataset` batch: the flow goes in when it reads it."""
    _, uses_flow = moext.classifier_inputs(model)
    return model(x_o, x_a, flow) if uses_flow else model(x_o, x_a)  # (B, K)


class ClassifierObjective(nn.Module):
    """Cross-entropy of a classifier on (x_o, x_a, label, index, flow) batches (§3.4)."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model

    def forward(self, batch) -> tuple[torch.Tensor, dict[str, float]]:
        x_o, x_a, y, _, flow = batch[:5]
        aux = getattr(self.model.cfg, "flow_aux_weight", 0.0) if getattr(self.model, "flow_head", None) else 0.0
        if aux > 0:
            # flow_input: the sum's cross-entropy, plus each branch's own (FlowFields.flow_aux_weight).
            own, from_flow = self.model.forward_parts(x_o, x_a, flow)  # (B, K) each
            logits = own + from_flow
            ce = nn.functional.cross_entropy
            loss = ce(logits, y) + aux * (ce(own, y) + ce(from_flow, y))
        else:
            logits = classify(self.model, x_o, x_a, flow)  # (B, K)
            loss = nn.functional.cross_entropy(logits, y)
        acc = (logits.argmax(1) == y).float().mean()
        return loss, {"total": float(loss.detach()), "acc": float(acc)}


def _load_method_modules() -> None:
    """Other methods live in `train/method_<name>.py` and call `register_method` on import;
    importing them here makes every command see them."""
    import importlib
    import pkgutil

    import train

    for mod in pkgutil.iter_modules(train.__path__):
        if mod.name.startswith("method_"):
            importlib.import_module(f"train.{mod.name}")


_load_method_modules()
