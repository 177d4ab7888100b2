"""Pre-training (§3): reconstruct the apex from onset texture + motion, on micro and macro
pairs of one or more preprocess caches (macro pseudo-apexes were chosen by preprocess).

Writes to the run directory: `config.json`, `pretrained.safetensors` + `.json` (every epoch,
atomically; the run config in `extra`), `train_state.pt` (for `--resume`), `history.json`,
`loss_curves.png`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from moext import save_checkpoint
from train import distributed, reports
from train.config import RunConfig, TrainError
from train.pairs import load_rows, subject_key
from train.loop import check_out_dir, finished_meta, fit
from train.methods import PretrainObjective, get_method

CHECKPOINT = "pretrained"


def pretrain_rows(run: RunConfig) -> list[dict[str, Any]]:
    rows = load_rows(run.caches)
    kinds = {"micro", "macro"} if run.include_macro else {"micro"}
    picked = [r for r in rows if r.get("kind", "micro") in kinds]
    if not picked:
        raise TrainError(
            f"no {' or '.join(sorted(kinds))} samples in {', '.join(run.caches)}; pre-training "
            "needs onset/apex pairs (add a cache with micro or macro rows)"
        )
    return picked


def pretrain(run: RunConfig, out_dir: Path, *, resume: bool = False, progress: bool = True) -> Path:
    """Run (or resume) a pre-training; returns the checkpoint path. Works under torchrun."""
    method = get_method(run.method)
    if method.pretrain_kind is None:
        method.build_pretrain(None)  # raises the method's own TrainError, before anything is written
    try:
        cfg = method.model_config(run.model)
    except (TypeError, ValueError) as e:
        raise TrainError(f"bad model settings: {e}") from None
    d = distributed.init_from_env()
    try:
        rows = pretrain_rows(run)
        out_dir = Path(out_dir)
        check_out_dir(out_dir, resume, d, run)  # before config.json: a refused run changes nothing
        if d.is_main:
            out_dir.mkdir(parents=True, exist_ok=True)
            reports.write_json(out_dir / "config.json", {"command": "pretrain", "run": run.to_dict()})
        torch.manual_seed(run.seed)  # same initial weights on every rank and every resume
        model = method.build_pretrain(cfg)
        dataset = method.pretrain_dataset(rows, cfg, run.augment, run.seed)
        extra = {
            "command": "pretrain",
            "pairs": len(rows),
            "micro_pairs": sum(r.get("kind", "micro") == "micro" for r in rows),
            "macro_pairs": sum(r.get("kind") == "macro" for r in rows),
            "subjects": sorted({subject_key(r) for r in rows}),
            "world_size": d.world_size,
        }

        def curves(history):
            if d.is_main:
                reports.plot_loss_curves({"pretrain": history}, out_dir / "loss_curves.png", "pre-training loss")

        result = fit(
            model,
            PretrainObjective(model, method),
            dataset,
            run,
            d=d,
            out_dir=out_dir,
            name=CHECKPOINT,
            resume=resume,
            extra=extra,
            find_unused_parameters=method.find_unused_parameters,
            progress=progress,
            desc="pretrain",
            on_epoch=curves,
        )
        path = out_dir / f"{CHECKPOINT}.safetensors"
        if d.is_main:
            report = write_pretext_report(method, result.model, rows, cfg, out_dir, result.history)
            save_checkpoint(result.model, path, finished_meta(extra, run, result, pretext=report))
            curves(result.history)
        distributed.barrier(d)
        return path
    finally:
        distributed.cleanup(d)


REPORT = "pretext_report"


def write_pretext_report(method, model, rows, cfg, out_dir: Path, history: list[dict[str, float]]) -> dict | None:
    """Measure whether the pretext learned motion and write `pretext_report.json` / `.md`.

    The rows are taken evenly from the pre-training rows (micro and macro alike), at most
    `train.methods.REPORT_PAIRS` of them, un-augmented."""
    if method.pretext_report is None:
        return None
    from train.methods import REPORT_PAIRS

    step = max(1, len(rows) // REPORT_PAIRS)
    report = method.pretext_report(model, rows[::step][:REPORT_PAIRS], cfg)
    report["method"] = method.name
    reports.write_json(out_dir / f"{REPORT}.json", report)
    d = report["diagnostics"]
    lines = [f"# Pretext report ({method.name}, {len(history)} epochs, {d['pairs']} pairs)", "",
             report["verdict"] + ".", "", "| measure | value |", "|---|---|"]
    lines += [f"| {k} | {v:.4f} |" if isinstance(v, float) else f"| {k} | {v} |" for k, v in d.items()]
    if history:
        lines += ["", "Last epoch's training losses: " + ", ".join(
            f"{k} {v:.4f}" for k, v in history[-1].items() if k != "epoch")]
    reports.write_text(out_dir / f"{REPORT}.md", "\n".join(lines) + "\n")
    return report
