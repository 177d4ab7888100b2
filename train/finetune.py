"""Objective learning (§3.4): the classifier (shape extractor + motion extractor + head; the
texture branch dropped) trained with cross-entropy on micro-expression rows only, from a
pre-trained checkpoint (`init`) or from scratch.

Writes to the run directory: `config.json`, `classifier.safetensors` + `.json` (every epoch,
atomically), `train_state.pt`, `history.json`, `loss_curves.png`.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader

from moext import CheckpointError, load_checkpoint, save_checkpoint
from train import distributed, reports
from train.config import RunConfig, TrainError
from moext.modeling.flownet import flow_standardisers
from train.pairs import load_rows, pair_dataset, subject_key
from train.loop import FitResult, check_out_dir, finished_meta, fit
from train.methods import ClassifierObjective, Method, classify, get_method
from train.metrics import scores

CHECKPOINT = "classifier"
# Model fields a fine-tuning run may change on top of a pre-trained checkpoint's config.
FINETUNE_FIELDS = {"dropout", "flow_input", "flow_size", "flow_preset", "flow_out_size"}


def known_protocols() -> list[str]:
    from train import protocols

    for attr in ("PROTOCOLS", "LABEL_MAPS"):
        table = getattr(protocols, attr, None)
        if isinstance(table, dict):
            return sorted(table)
    return []


def protocol_class_names(protocol: str, rows: list[dict[str, Any]]) -> list[str]:
    """Class names indexed by label: the protocol table's when it has one, else the rows'."""
    from train import protocols

    fn = getattr(protocols, "class_names", None)
    if callable(fn):
        return list(fn(protocol))
    names: dict[int, str] = {}
    for r in rows:
        names.setdefault(int(r["label"]), str(r["class_name"]))
    if sorted(names) != list(range(len(names))):
        raise TrainError(f"protocol {protocol}: labels {sorted(names)} are not 0..K-1")
    return [names[i] for i in range(len(names))]


def protocol_rows(caches: Sequence[str], protocol: str | None) -> tuple[list[dict[str, Any]], list[str]]:
    """Micro-expression rows of the caches relabelled by `protocol`, and its class names."""
    from train.protocols import apply_protocol

    if not protocol:
        raise TrainError("fine-tuning needs a label map: pass --protocol (e.g. cde, casme2-5)")
    names = known_protocols()
    if names and protocol not in names:
        raise TrainError(f"unknown protocol {protocol!r}; choose one of {', '.join(names)}")
    rows = [r for r in load_rows(caches) if r.get("kind", "micro") == "micro"]
    try:
        rows = apply_protocol(protocol, rows)
    except KeyError as e:
        raise TrainError(f"unknown protocol {protocol!r} ({e}); choose one of {', '.join(names)}") from None
    except ValueError as e:
        raise TrainError(f"protocol {protocol!r}: {e}") from None
    if not rows:
        raise TrainError(
            f"protocol {protocol!r} keeps none of the micro-expression samples in "
            f"{', '.join(map(str, caches))}; is it the protocol for this dataset?"
        )
    return rows, protocol_class_names(protocol, rows)


def build_classifier(
    method: Method, run: RunConfig, class_names: list[str], overrides: dict[str, Any] | None = None
) -> tuple[nn.Module, dict[str, Any]]:
    """The classifier of a run: from `run.init` (pre-trained weights transferred) or scratch.

    With `init`, the architecture is the checkpoint's; `overrides` (flags the user set) may
    only change fine-tuning fields, any other difference is an error naming the flag.
    Seeds the head's initialisation from `run.seed`.
    """
    torch.manual_seed(run.seed)
    if run.init and method.pretrain_kind is None:
        raise TrainError(f"--method {method.name} has no pre-training, so --init {run.init} has nothing to "
                         "start from; drop --init")
    if run.init:
        try:
            pre, meta = load_checkpoint(run.init, expect_kind=method.pretrain_kind)
        except CheckpointError as e:
            raise TrainError(
                f"{e}. Pass a checkpoint written by `moext-train pretrain --method {method.name}` "
                "(pretrained.safetensors), or drop --init to train from scratch"
            ) from None
        base = pre.cfg
        for k, v in (overrides or {}).items():
            if k in FINETUNE_FIELDS:
                base = dataclasses.replace(base, **{k: v})
            elif getattr(base, k) != v:
                raise TrainError(
                    f"--{k.replace('_', '-')} {v} differs from the pre-trained checkpoint "
                    f"{run.init} ({k}={getattr(base, k)}); drop the flag or pre-train with it"
                )
        cfg = method.classifier_config(base, class_names)
        torch.manual_seed(run.seed)
        model = method.build_classifier(cfg)
        try:
            copied = method.transfer(pre, model)
        except CheckpointError as e:
            raise TrainError(f"{run.init}: {e}") from None
        names = {n for n, _ in model.named_parameters()}
        model.transferred_parameters = {k for k in copied if k in names}  # for freeze_epochs / transfer_lr_ratio
        return model, {"init": str(run.init), "transferred_tensors": len(copied)}
    try:
        cfg = method.model_config({**run.model, **(overrides or {})})
    except (TypeError, ValueError) as e:
        raise TrainError(f"bad model settings: {e}") from None
    cfg = method.classifier_config(cfg, class_names)
    torch.manual_seed(run.seed)
    return method.build_classifier(cfg), {"init": None, "transferred_tensors": 0}


@torch.no_grad()
def predict(model: nn.Module, rows: list[dict[str, Any]], batch_size: int = 32,
            device: torch.device | None = None) -> np.ndarray:
    """Class probabilities (N, K) for rows, no augmentation, eval mode."""
    device = device or next(model.parameters()).device
    was_training = model.training
    model.eval()
    loader = DataLoader(pair_dataset(model, rows, None, 0), batch_size=batch_size, shuffle=False)
    out = []
    for x_o, x_a, _, _, flow in loader:
        logits = classify(model, x_o.to(device), x_a.to(device), flow.to(device))
        out.append(torch.softmax(logits, dim=1).cpu())
    model.train(was_training)
    return torch.cat(out).numpy()


def train_classifier(
    method: Method,
    run: RunConfig,
    model: nn.Module,
    train_rows: list[dict[str, Any]],
    *,
    val_rows: list[dict[str, Any]] | None = None,
    d: distributed.Dist | None = None,
    out_dir: Path | None = None,
    resume: bool = False,
    extra: dict[str, Any] | None = None,
    progress: bool = True,
    desc: str = "finetune",
    on_epoch=None,
) -> FitResult:
    """Fine-tune `model` on `train_rows`; with `val_rows`, keep the epoch of best val UF1."""
    dataset = pair_dataset(model, train_rows, run.augment, run.seed)
    if dataset.flows is not None and not resume:
        # The flow branch standardises its input by the training set's statistics, which
        # then travel with the weights (a resumed run has them in its saved state).
        for std in flow_standardisers(model):
            std.set_stats(dataset.flow_inputs())
    head = getattr(model, "flow_head", None)
    if head is not None and run.optim.flow_first_epochs > 0:
        if not resume:  # a resumed run has the trained branch in its saved weights
            fit_flow_first(head, dataset.flow_inputs(), torch.tensor([int(r["label"]) for r in train_rows]),
                           run.optim.flow_first_epochs, run.optim.flow_first_lr, run.seed)
        # From here on the branch counts as pre-trained: freeze_epochs and transfer_lr_ratio
        # hold it back while the frames' head catches up (the same groups on resume).
        names = {f"flow_head.{n}" for n, _ in head.named_parameters()}
        model.transferred_parameters = set(getattr(model, "transferred_parameters", set())) | names
    k = model.cfg.num_classes

    def validate(m: nn.Module) -> dict[str, float]:
        """Inner-validation scores on held-out training subjects (never the test subject)."""
        probs = predict(m, val_rows)
        s = scores([r["label"] for r in val_rows], probs.argmax(1), k, labels=list(range(k)))
        return {"val_uf1": s.uf1, "val_uar": s.uar, "val_acc": s.acc}

    result = fit(
        model,
        ClassifierObjective(model),
        dataset,
        run,
        d=d,
        out_dir=out_dir,
        name=CHECKPOINT,
        resume=resume,
        extra=extra,
        evaluate=validate if val_rows else None,
        select_on="val_uf1" if val_rows else None,
        progress=progress,
        desc=desc,
        on_epoch=on_epoch,
    )
    if run.bn_recalibrate:
        from train.bn import reestimate_bn

        reestimate_bn(result.model, train_rows)
    return result


def fit_flow_first(head: nn.Module, flows: torch.Tensor, labels: torch.Tensor, steps: int, lr: float,
                   seed: int) -> float:
    """Train a classifier's flow branch alone as STSTNet is trained: the whole training set
    (flows (N, 3, n, n), labels (N,)) as one batch, Adam at `lr`, `steps` steps, no
    augmentation. Returns its training accuracy (eval mode)."""
    torch.manual_seed(seed)
    device = next(head.parameters()).device
    flows, labels = flows.to(device), labels.to(device)
    opt = torch.optim.Adam(head.parameters(), lr=lr)
    head.train()
    for _ in range(steps):
        opt.zero_grad(set_to_none=True)
        loss = nn.functional.cross_entropy(head(flows), labels)
        loss.backward()
        opt.step()
    head.eval()
    with torch.no_grad():
        acc = float((head(flows).argmax(1) == labels).float().mean())
    head.train()
    return acc


def training_accuracy(model: nn.Module, rows: list[dict[str, Any]]) -> float:
    """Accuracy on the training rows themselves, eval mode, no augmentation: a fold that
    does not fit its own data (well under 1) underfits, whatever its test score."""
    probs = predict(model, rows)
    return float(np.mean(probs.argmax(1) == np.array([int(r["label"]) for r in rows])))


def finetune(
    run: RunConfig, out_dir: Path, *, resume: bool = False, overrides: dict[str, Any] | None = None,
    progress: bool = True,
) -> Path:
    """Fine-tune on every ME row of the caches under `run.protocol`; works under torchrun."""
    method = get_method(run.method)
    d = distributed.init_from_env()
    try:
        rows, class_names = protocol_rows(run.caches, run.protocol)
        model, init_info = build_classifier(method, run, class_names, overrides)
        out_dir = Path(out_dir)
        check_out_dir(out_dir, resume, d, run)  # before config.json: a refused run changes nothing
        if d.is_main:
            out_dir.mkdir(parents=True, exist_ok=True)
            reports.write_json(out_dir / "config.json", {"command": "finetune", "run": run.to_dict(),
                                                          "model": model.cfg.to_dict()})
        extra = {
            "command": "finetune",
            "protocol": run.protocol,
            "samples": len(rows),
            "trained_on": sorted({subject_key(r) for r in rows}),
            "world_size": d.world_size,
            **init_info,
        }

        def curves(history):
            if d.is_main:
                reports.plot_loss_curves({"finetune": history}, out_dir / "loss_curves.png", "fine-tuning loss")

        result = train_classifier(method, run, model, rows, d=d, out_dir=out_dir, resume=resume,
                                  extra=extra, progress=progress, on_epoch=curves)
        path = out_dir / f"{CHECKPOINT}.safetensors"
        train_acc = training_accuracy(result.model, rows)
        if d.is_main:
            save_checkpoint(result.model, path, finished_meta(extra, run, result, train_acc=train_acc))
            curves(result.history)
        distributed.barrier(d)
        return path
    finally:
        distributed.cleanup(d)
