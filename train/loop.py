"""The one training loop behind pre-training, fine-tuning and every LOSO fold.

Fixed schedule (Adam, `epochs` passes); after every epoch, when a run directory is given, the
weights (`NAME.safetensors` + `NAME.json`, the full run config in `extra`) and the training
state (`train_state.pt`: weights, optimizer, RNG, epoch, history) are written atomically.
`resume=True` reloads `train_state.pt` and continues; since each epoch's data are a function
of (seed, epoch) and the RNG state is restored, the result equals an uninterrupted run's.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import torch
from torch import nn
from tqdm import tqdm

from moext import save_checkpoint
from moext.io import atomic_save, atomic_write_text
from train import distributed
from train.config import RunConfig, TrainError, resume_mismatch
from train.pairs import make_loader

STATE = "train_state.pt"
HISTORY = "history.json"


@dataclass
class FitResult:
    model: nn.Module
    history: list[dict[str, float]] = field(default_factory=list)
    selected_epoch: int | None = None
    digests: list[str] = field(default_factory=list)


def _to(batch, device: torch.device):
    if isinstance(batch, torch.Tensor):
        return batch.to(device, non_blocking=True)
    if isinstance(batch, (list, tuple)):
        return type(batch)(_to(b, device) for b in batch)
    return batch


def _save_state(path: Path, state: dict[str, Any]) -> None:
    atomic_save(path, lambda tmp: torch.save(state, tmp))


def finished_meta(extra: dict[str, Any], run: RunConfig, result: "FitResult", **more: Any) -> dict[str, Any]:
    """The metadata of a finished run's final checkpoint (pre-training and fine-tuning alike):
    the command's own `extra`, the run's config, its history and weight digests, and `more`
    (the pretext report, the training accuracy...)."""
    return {**extra, "run": run.to_dict(), "epoch": run.optim.epochs, "epochs": run.optim.epochs,
            "finished": True, "history": result.history, "rank_weight_digests": result.digests, **more}


def check_out_dir(out_dir: Path, resume: bool, d: distributed.Dist, run: RunConfig | None = None) -> None:
    """Refuse to overwrite a run without --resume, or to resume one made with other settings.

    Rank 0 decides and every rank raises, so that no rank waits forever in DDP's first broadcast.
    """
    out_dir = Path(out_dir)
    clash = d.is_main and (out_dir / STATE).is_file() and not resume
    if distributed.broadcast_flag(clash, d):
        raise TrainError(
            f"{out_dir} already holds a run ({STATE}); pass --resume to continue it or choose "
            "another --out directory"
        )
    other, old = False, None
    if d.is_main and resume and run is not None and (out_dir / STATE).is_file() and (out_dir / "config.json").is_file():
        as_json = json.loads(json.dumps(run.to_dict()))  # tuples read back as lists
        old = json.loads((out_dir / "config.json").read_text()).get("run")
        other = old != as_json
    if distributed.broadcast_flag(other, d):
        if old is None:  # another rank: rank 0 names the difference
            raise TrainError(f"--resume: {out_dir} was written with other settings")
        raise resume_mismatch(out_dir, old, run.to_dict(), out_dir / "config.json")


def fit(
    model: nn.Module,
    objective: nn.Module,
    dataset,
    run: RunConfig,
    *,
    d: distributed.Dist | None = None,
    out_dir: Path | None = None,
    name: str = "model",
    resume: bool = False,
    extra: dict[str, Any] | None = None,
    evaluate: Callable[[nn.Module], dict[str, float]] | None = None,
    select_on: str | None = None,
    find_unused_parameters: bool = False,
    progress: bool = True,
    desc: str = "train",
    on_epoch: Callable[[list[dict[str, float]]], None] | None = None,
) -> FitResult:
    """Train `model` by minimising `objective(batch)` over `dataset` for `run.optim.epochs`.

    Args:
        model: the network whose weights are checkpointed (inside `objective`).
        objective: module whose forward maps a batch to (loss, {name: float}).
        dataset: yields batches' items; has `set_epoch(epoch)`.
        out_dir: where checkpoints, state and history go (rank 0 only); None keeps nothing.
        evaluate: called on the model after every epoch (e.g. inner-validation scores).
        select_on: key of `evaluate`'s result to maximise; the best epoch's weights are kept
            and returned (ties keep the earlier epoch). None: the last epoch's weights.
    """
    d = d or distributed.Dist()
    model.to(d.device)
    objective.to(d.device)
    # Parameters copied from a pre-trained model (`transferred_parameters`, set by the
    # fine-tuning's build) form their own group, so that `freeze_epochs` and
    # `transfer_lr_ratio` can hold them back while the new head learns.
    moved = getattr(model, "transferred_parameters", set())
    named = list(model.named_parameters())
    groups = [{"params": [p for n, p in named if n in moved], "transferred": True},
              {"params": [p for n, p in named if n not in moved], "transferred": False}]
    opt = torch.optim.Adam([g for g in groups if g["params"]], lr=run.optim.lr, weight_decay=run.optim.weight_decay)
    history: list[dict[str, float]] = []
    best: tuple[float, int, dict[str, torch.Tensor]] | None = None
    start = 0
    state_path = out_dir / STATE if out_dir is not None else None
    if resume and state_path is not None and state_path.is_file():
        st = torch.load(state_path, map_location="cpu", weights_only=True)
        if st.get("config") != run.to_dict():
            raise resume_mismatch(state_path, st.get("config"), run.to_dict(), out_dir / "config.json")
        model.load_state_dict(st["model"])
        opt.load_state_dict(st["optimizer"])
        torch.set_rng_state(st["rng"])
        if torch.cuda.is_available() and st.get("cuda_rng") is not None:
            torch.cuda.set_rng_state(st["cuda_rng"].cpu())
        start, history = int(st["epoch"]), list(st["history"])
        if st.get("best") is not None:
            b = st["best"]
            best = (float(b["score"]), int(b["epoch"]), b["weights"])
    if out_dir is not None:
        check_out_dir(out_dir, resume, d)
    wrapped = distributed.wrap(objective, d, find_unused_parameters)
    loader, sampler = make_loader(
        dataset,
        run.optim.batch_size,
        seed=run.seed,
        shuffle=True,
        rank=d.rank,
        world_size=d.world_size,
        workers=run.loader_workers,
    )
    for epoch in range(start, run.optim.epochs):
        dataset.set_epoch(epoch)
        sampler.set_epoch(epoch)
        model.train()
        sums: dict[str, float] = {}
        count = 0
        bar = tqdm(
            loader,
            desc=f"{desc} epoch {epoch + 1}/{run.optim.epochs}",
            disable=not (progress and d.is_main),
            leave=False,
            dynamic_ncols=True,
        )
        steps = max(len(loader), 1)
        for step, batch in enumerate(bar):
            for group in opt.param_groups:
                group["lr"] = run.optim.lr_at(epoch + step / steps, transferred=group.get("transferred", False))
            batch = _to(batch, d.device)
            loss, parts = wrapped(batch)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            n = len(batch[0])
            for k, v in parts.items():
                sums[k] = sums.get(k, 0.0) + v * n
            count += n
            bar.set_postfix(loss=f"{float(loss.detach()):.4f}")
        distributed.sync_buffers(model, d)
        record = distributed.mean_over_ranks({k: v / max(count, 1) for k, v in sums.items()}, d)
        record = {"epoch": epoch + 1, **record}
        if evaluate is not None:
            record.update(evaluate(model))
            model.train()
        if select_on is not None:
            score = record[select_on]
            if best is None or score > best[0]:
                best = (score, epoch + 1, {k: v.detach().cpu().clone() for k, v in model.state_dict().items()})
        history.append(record)
        if out_dir is not None and d.is_main:
            meta = {**(extra or {}), "run": run.to_dict(), "epoch": epoch + 1,
                    "epochs": run.optim.epochs, "finished": epoch + 1 == run.optim.epochs,
                    "history": history}
            save_checkpoint(model, out_dir / f"{name}.safetensors", meta)
            _save_state(
                state_path,
                {
                    "model": {k: v.detach().cpu() for k, v in model.state_dict().items()},
                    "optimizer": opt.state_dict(),
                    "rng": torch.get_rng_state(),
                    "cuda_rng": torch.cuda.get_rng_state() if torch.cuda.is_available() else None,
                    "epoch": epoch + 1,
                    "history": history,
                    "config": run.to_dict(),
                    "best": None if best is None else {"score": best[0], "epoch": best[1], "weights": best[2]},
                },
            )
            atomic_write_text(out_dir / HISTORY, json.dumps(history, indent=2))
        if on_epoch is not None:  # after the checkpoint: whatever it does, the epoch is saved
            on_epoch(history)
        distributed.barrier(d)
    selected = None
    if select_on is not None and best is not None:
        model.load_state_dict(best[2])
        selected = best[1]
    digests = distributed.gather_digests(model, d)
    if len(set(digests)) != 1:
        raise RuntimeError(f"DDP ranks ended with different weights: {digests}")
    return FitResult(model=model, history=history, selected_epoch=selected, digests=digests)

