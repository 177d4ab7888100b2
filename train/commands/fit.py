"""`moext-train pretrain | finetune | loso | ablate | evaluate`.

Each command declares only its own arguments (caches, --out, --method, --protocol, --init);
the optimisation, augmentation, run, evaluation and model settings are generated from the
config dataclasses (`train.options`), with `--config run.json` and `--set KEY=VALUE`.
Defaults come from a preset, `--recipe` (`train.recipes`: `cpu`, the default, or `paper`,
§4.1.2), under `--config`, the flags and `--set`; the full config, the preset's name included,
is written beside each checkpoint and report. Model flags left unset keep the method's defaults (or,
when fine-tuning from `--init`, the pre-trained checkpoint's architecture).
"""

from __future__ import annotations

import functools
import json
from pathlib import Path
from typing import Annotated, Any, Optional

import typer

from moext import CheckpointError
from train.app import app
from train.config import TrainError
from train.options import Options, build_loso, build_run, with_options
from train.recipes import DEFAULT_RECIPE, get_recipe, recipe_help


def _method_help() -> str:
    """--method's help, from the method registry."""
    from train.methods import METHODS

    return f"training method, one of {', '.join(METHODS.choices())} ({METHODS.help()})"


Caches = Annotated[list[Path], typer.Argument(help="preprocess cache directories (each holds manifest.jsonl)")]
Out = Annotated[Path, typer.Option("--out", "-o", help="run directory to write")]
Method = Annotated[str, typer.Option("--method", "--model", help=_method_help())]
Resume = Annotated[bool, typer.Option("--resume", help="continue the run in --out from its last checkpoint / finished folds")]
Quiet = Annotated[bool, typer.Option("--quiet", "-q", help="no progress bars")]
Threads = Annotated[Optional[int], typer.Option(help="torch CPU threads per process (1 is fastest on a busy machine)")]
Protocol = Annotated[Optional[str], typer.Option(help="label map: casme2-5, samm-5, casme3-3/4/7, cde")]
Init = Annotated[Optional[Path], typer.Option(help="pre-trained checkpoint (pretrained.safetensors); none = from scratch")]
RecipeName = Annotated[str, typer.Option("--recipe", help=recipe_help())]

FIT_GROUPS = ("optim", "augment", "run", "model")
EVAL_GROUPS = FIT_GROUPS + ("loso",)


def _fail(msg: str) -> None:
    typer.echo(f"error: {msg}", err=True)
    raise typer.Exit(2)


def user_errors(fn):
    """Print a user error as one line naming the fix and exit 2, without a traceback."""

    @functools.wraps(fn)
    def wrapper(*a, **kw):
        try:
            return fn(*a, **kw)
        except (TrainError, CheckpointError) as e:
            _fail(str(e))
        except FileNotFoundError as e:  # e.g. --set backbone_weights=missing.pth
            _fail(str(e))

    return wrapper


def _set_threads(threads: int | None) -> None:
    if threads is not None:
        import torch

        torch.set_num_threads(max(1, threads))


def _check_caches(caches: list[Path]) -> None:
    for c in caches:
        if not c.is_dir():
            _fail(
                f"cache directory {c} does not exist; run `moext-train preprocess DATASET ROOT --out {c}` "
                "first (or `moext-train synth` to generate data)"
            )


def _is_main() -> bool:
    import os

    return os.environ.get("RANK", "0") == "0"


def _recipe(name: str, method: str, stage: str, init: str | None) -> tuple[dict[str, Any], dict[str, Any]]:
    """(settings by group for build_run, model settings under the user's) of a preset; from
    --init only the fields a fine-tuning may change (the architecture is the checkpoint's)."""
    from train.finetune import FINETUNE_FIELDS

    settings = get_recipe(name).for_method(method, stage)
    model = settings.pop("model")
    if init:
        model = {k: v for k, v in model.items() if k in FINETUNE_FIELDS}
    settings.setdefault("run", {})["recipe"] = name
    return settings, model


def _init(init: Path | None, options: Options) -> str | None:
    if init is not None:
        return str(init)
    return options.file_run("init")


@app.command("pretrain")
@user_errors
@with_options(FIT_GROUPS)
def pretrain_cmd(
    caches: Caches,
    out: Out,
    method: Method = "moext",
    recipe: RecipeName = DEFAULT_RECIPE,
    no_macro: Annotated[bool, typer.Option("--no-macro", help="micro pairs only (Table 7 'no macro data')")] = False,
    resume: Resume = False,
    quiet: Quiet = False,
    threads: Threads = None,
    *,
    options: Options,
) -> None:
    """Pre-train (§3) on the micro and macro pairs of the caches: L_re + a1 L_st + a2 L_ss
    (MoExt), or MA2MI's latent reconstruction (--method ma2mi)."""
    from train.pretrain import pretrain

    _check_caches(caches)
    _set_threads(threads)
    settings, model = _recipe(recipe, method, "pretrain", None)
    run = build_run(options, method=method, caches=caches, recipe=settings,
                    include_macro=not no_macro and bool(options.file_run("include_macro", True)))
    run.model = {**model, **options.model(method)}
    path = pretrain(run, out, resume=resume, progress=not quiet)
    if _is_main():
        typer.echo(f"pre-trained weights: {path}")
        report = json.loads(path.with_suffix(".json").read_text())["extra"].get("pretext")
        if report:
            typer.echo(f"pretext: {report['verdict']} (report: {out}/pretext_report.md)")


@app.command("finetune")
@user_errors
@with_options(FIT_GROUPS)
def finetune_cmd(
    caches: Caches,
    out: Out,
    protocol: Protocol = None,
    init: Init = None,
    method: Method = "moext",
    recipe: RecipeName = DEFAULT_RECIPE,
    resume: Resume = False,
    quiet: Quiet = False,
    threads: Threads = None,
    *,
    options: Options,
) -> None:
    """Fine-tune the classifier (§3.4) on the micro-expression rows with cross-entropy."""
    from train.finetune import finetune

    _check_caches(caches)
    _set_threads(threads)
    start = _init(init, options)
    settings, model = _recipe(recipe, method, "finetune", start)
    run = build_run(options, method=method, caches=caches, recipe=settings,
                    protocol=protocol or options.file_run("protocol"), init=start)
    path = finetune(run, out, resume=resume, overrides={**model, **options.model(method)}, progress=not quiet)
    if _is_main():
        extra = json.loads(path.with_suffix(".json").read_text())["extra"]
        typer.echo(f"classifier weights: {path} (training accuracy {extra['train_acc']:.3f}, eval mode, "
                   "un-augmented training pairs)")


def _print_metrics(metrics: dict[str, Any], out: Path) -> None:
    p = metrics["pooled"]
    typer.echo(f"pooled over folds: UF1 {p['uf1']:.4f}  UAR {p['uar']:.4f}  ACC {p['acc']:.4f}  (n={p['n']})")
    for ds, b in metrics.get("by_dataset", {}).items():
        typer.echo(f"  {ds}: UF1 {b['uf1']:.4f}  UAR {b['uar']:.4f}  ACC {b['acc']:.4f}  (n={b['n']})")
    opt = metrics.get("test_best")
    if opt:
        o = opt["pooled"]
        typer.echo(f"  optimistic, test-fold selection (not a result): UF1 {o['uf1']:.4f}  UAR {o['uar']:.4f}  "
                   f"ACC {o['acc']:.4f}")
    typer.echo(f"report: {out}/results.md")


@app.command("loso")
@user_errors
@with_options(EVAL_GROUPS)
def loso_cmd(
    caches: Caches,
    out: Out,
    protocol: Protocol = None,
    init: Init = None,
    method: Method = "moext",
    recipe: RecipeName = DEFAULT_RECIPE,
    resume: Resume = False,
    quiet: Quiet = False,
    threads: Threads = None,
    *,
    options: Options,
) -> None:
    """Leave-one-subject-out: fine-tune per fold, score the left-out subject once, report."""
    from train.loso import loso

    _check_caches(caches)
    _set_threads(threads)
    start = _init(init, options)
    settings, model = _recipe(recipe, method, "finetune", start)
    run = build_run(options, method=method, caches=caches, recipe=settings,
                    protocol=protocol or options.file_run("protocol"), init=start)
    cfg = build_loso(options, run)
    metrics = loso(cfg, out, resume=resume, overrides={**model, **options.model(method)}, progress=not quiet)
    _print_metrics(metrics, out)


@app.command("ablate")
@user_errors
@with_options(EVAL_GROUPS)
def ablate_cmd(
    caches: Caches,
    out: Out,
    protocol: Protocol = None,
    method: Method = "moext",
    recipe: RecipeName = DEFAULT_RECIPE,
    variant: Annotated[Optional[list[str]], typer.Option("--variant", help="run only these (repeatable); default all")] = None,
    pretrain_epochs: Annotated[int, typer.Option(help="epochs of each pre-training (the paper's 30)")] = 30,
    resume: Resume = False,
    quiet: Quiet = False,
    threads: Threads = None,
    *,
    options: Options,
) -> None:
    """Table 7: full, no pre-training, no macro data and the method's switches, each by LOSO.

    The optimisation and augmentation settings apply to the pre-trainings and the
    fine-tunings alike, except --epochs (fine-tuning) and --pretrain-epochs."""
    import dataclasses

    from train.ablate import ablate

    _check_caches(caches)
    _set_threads(threads)
    if not protocol:
        _fail("ablate needs a label map: pass --protocol (e.g. cde, casme2-5)")
    fine_settings, recipe_model = _recipe(recipe, method, "finetune", None)
    pre_settings, _ = _recipe(recipe, method, "pretrain", None)
    model = {**recipe_model, **options.model(method)}
    fine_run = build_run(options, method=method, caches=caches, recipe=fine_settings, protocol=protocol)
    pre_run = build_run(options, method=method, caches=caches, recipe=pre_settings)
    pre_run = dataclasses.replace(pre_run, optim=dataclasses.replace(pre_run.optim, epochs=pretrain_epochs),
                                  model={k: v for k, v in model.items() if k != "dropout"})
    cfg = build_loso(options, fine_run)
    ablate(pre_run, cfg, out, variants=list(variant or []) or None, resume=resume,
           overrides={"dropout": model["dropout"]} if "dropout" in model else None, progress=not quiet)
    typer.echo((out / "ablation.md").read_text())


@app.command("evaluate")
@user_errors
def evaluate_cmd(
    checkpoint: Annotated[Path, typer.Argument(help="a classifier checkpoint (classifier.safetensors)")],
    caches: Caches,
    out: Out,
    protocol: Annotated[str, typer.Option(help="label map of the caches: casme2-5, samm-5, casme3-3/4/7, cde")],
    quiet: Quiet = False,
    threads: Threads = None,
) -> None:
    """Score a trained classifier on another dataset's cache (cross-dataset evaluation):
    the same report as LOSO, one row per subject."""
    from train.evaluate import evaluate

    _check_caches(caches)
    _set_threads(threads)
    metrics = evaluate(checkpoint, [str(c) for c in caches], protocol, out)
    if not quiet:
        _print_metrics(metrics, out)
    if metrics.get("warning"):
        typer.echo(f"warning: {metrics['warning']}")
