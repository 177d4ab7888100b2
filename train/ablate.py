"""Ablations of the paper's Table 7, as switches on one pipeline (pre-train, then LOSO):

- full: the method as configured;
- no-pretrain: the classifier trained from scratch;
- no-macro: pre-training on micro-expression pairs only;
- the method's own switches (MoExt: no-motion-extractor, no-L_st, no-L_ss), which change the
  model config of pre-training (and hence of the classifier it initialises).

Every variant gets `OUT/<variant>/pretrain` and `OUT/<variant>/loso`; finished pieces are
skipped on `--resume`. The table goes to `OUT/ablation.md` and `OUT/ablation.json`.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

from tqdm import tqdm

from train import reports
from train.config import LosoConfig, RunConfig, TrainError
from train.loso import loso
from train.methods import get_method
from train.pretrain import CHECKPOINT, pretrain

BASE_VARIANTS = ("full", "no-pretrain", "no-macro")


def variants_of(method_name: str) -> list[str]:
    return list(BASE_VARIANTS) + list(get_method(method_name).ablations)


def _pretrained(run: RunConfig, out: Path, resume: bool, progress: bool) -> Path:
    ckpt = out / f"{CHECKPOINT}.safetensors"
    meta = out / f"{CHECKPOINT}.json"
    if resume and meta.is_file():
        extra = json.loads(meta.read_text()).get("extra", {})
        if extra.get("finished") and extra.get("run") == json.loads(json.dumps(run.to_dict())):
            return ckpt
    return pretrain(run, out, resume=resume, progress=progress)


def ablate(
    pre_run: RunConfig,
    loso_cfg: LosoConfig,
    out_dir: Path,
    *,
    variants: list[str] | None = None,
    resume: bool = False,
    overrides: dict[str, Any] | None = None,
    progress: bool = True,
) -> dict[str, Any]:
    """Run the variants and write the Table 7 layout; returns {variant: loso metrics}."""
    all_variants = variants_of(pre_run.method)
    variants = variants or all_variants
    bad = [v for v in variants if v not in all_variants]
    if bad:
        raise TrainError(f"unknown ablation {bad}; choose from {', '.join(all_variants)}")
    method = get_method(pre_run.method)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    protocol = loso_cfg.run.protocol
    results: dict[str, Any] = {}
    for variant in tqdm(variants, desc="ablations", unit="variant", disable=not progress):
        vdir = out_dir / variant
        model = dict(pre_run.model)
        model.update(method.ablations.get(variant, {}))
        if variant == "no-pretrain":
            init = None
            finetune_model = {**model, **(overrides or {})}
        else:
            run = dataclasses.replace(pre_run, model=model, include_macro=variant != "no-macro")
            init = str(_pretrained(run, vdir / "pretrain", resume, progress))
            finetune_model = model
        lcfg = dataclasses.replace(loso_cfg, run=dataclasses.replace(loso_cfg.run, init=init, model=finetune_model))
        results[variant] = loso(lcfg, vdir / "loso", resume=resume,
                                overrides=None if init is None else overrides, progress=progress, label=variant)
        tqdm.write(
            f"{variant}: UF1 {results[variant]['pooled']['uf1']:.4f} UAR {results[variant]['pooled']['uar']:.4f} "
            f"ACC {results[variant]['pooled']['acc']:.4f}"
        )
    table = reports.results_table([(v, m) for v, m in results.items()], protocol)
    reports.write_text(
        out_dir / "ablation.md",
        f"# Ablations ({protocol}, leave-one-subject-out, pooled over folds)\n\n" + table,
    )
    reports.write_json(out_dir / "ablation.json", {
        v: {"pooled": m["pooled"], "by_dataset": m["by_dataset"], "mean_of_folds": m["mean_of_folds"]}
        for v, m in results.items()
    })
    return results
