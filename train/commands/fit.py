"""`moext-train pretrain | finetune | loso | ablate`.

Defaults are the paper's (§4.1.2); every one is a flag, and the full config is written beside
each checkpoint and report. Model flags left unset keep the method's defaults (or, when
fine-tuning from `--init`, the pre-trained checkpoint's architecture).
"""

from __future__ import annotations

import functools
import json
from pathlib import Path
from typing import Annotated, Any, Optional

import typer

from moext import CheckpointError
from train.app import app
from train.config import AugmentConfig, LosoConfig, OptimConfig, RunConfig, TrainError

_OPT, _AUG = OptimConfig(), AugmentConfig()

Caches = Annotated[list[Path], typer.Argument(help="preprocess cache directories (each holds manifest.jsonl)")]
Out = Annotated[Path, typer.Option("--out", "-o", help="run directory to write")]
Method = Annotated[str, typer.Option("--method", "--model", help="training method (moext, ...)")]
Resume = Annotated[bool, typer.Option("--resume", help="continue the run in --out from its last checkpoint / finished folds")]
Seed = Annotated[int, typer.Option(help="seed of every random draw (init, order, augmentation)")]
Quiet = Annotated[bool, typer.Option("--quiet", "-q", help="no progress bars")]
Threads = Annotated[Optional[int], typer.Option(help="torch CPU threads per process (1 is fastest on a busy machine)")]
Protocol = Annotated[Optional[str], typer.Option(help="label map: casme2-5, samm-5, casme3-3/4/7, cde")]
Init = Annotated[Optional[Path], typer.Option(help="pre-trained checkpoint (pretrained.safetensors); none = from scratch")]

# Optimisation and augmentation.
BatchSize = Annotated[int, typer.Option(help="global batch size (pairs)")]
Epochs = Annotated[int, typer.Option(help="epochs (fixed schedule)")]
Lr = Annotated[float, typer.Option(help="Adam learning rate")]
Wd = Annotated[float, typer.Option(help="Adam weight decay")]
Repeats = Annotated[int, typer.Option(help="augmented copies of each pair per epoch (paper: 10x)")]
Mirror = Annotated[bool, typer.Option("--mirror/--no-mirror", help="random horizontal flip of a pair")]
Rotation = Annotated[float, typer.Option(help="max rotation of a pair in degrees")]
ExpansionM = Annotated[int, typer.Option(help="instances per expansion set (m)")]
NoiseStd = Annotated[float, typer.Option(help="std of the noise expansion variant (0..255 units)")]
RigidPx = Annotated[float, typer.Option(help="apex-only random shift in crop pixels (live-like jitter)")]
RigidDeg = Annotated[float, typer.Option(help="apex-only random rotation in degrees (live-like jitter)")]
RigidScale = Annotated[float, typer.Option(help="apex-only random scale change, fraction (live-like jitter)")]
SensorNoise = Annotated[float, typer.Option(help="independent sensor noise on onset and apex (0..255 units)")]
LoaderWorkers = Annotated[int, typer.Option(help="DataLoader worker processes")]

# Model (None = method default / checkpoint's).
Backbone = Annotated[Optional[str], typer.Option(help="backbone: resnet18 (paper-like) or mobilenet_v3_small (fast)")]
ImageSize = Annotated[Optional[int], typer.Option(help="network input side in pixels (paper: 224)")]
BranchCh = Annotated[Optional[int], typer.Option(help="channels of the separator branches' conv blocks")]
FeatureDim = Annotated[Optional[int], typer.Option(help="width of shape/texture features")]
ProjDim = Annotated[Optional[int], typer.Option(help="width of the projection f(.)")]
AlphaSt = Annotated[Optional[float], typer.Option(help="weight of L_st (eq. 9 alpha1; 0 = Table 7 'no L_st')")]
AlphaSs = Annotated[Optional[float], typer.Option(help="weight of L_ss (eq. 9 alpha2; 0 = Table 7 'no L_ss')")]
MarginSt = Annotated[Optional[float], typer.Option(help="margin of L_st")]
MarginSs = Annotated[Optional[float], typer.Option(help="margin of L_ss")]
Dropout = Annotated[Optional[float], typer.Option(help="dropout before the classifier head")]
MotionExt = Annotated[Optional[bool], typer.Option("--motion-extractor/--no-motion-extractor", help="Table 7: without it |S_a - S_o| goes to the head")]
SetOpt = Annotated[Optional[list[str]], typer.Option("--set", help="any other model config field, KEY=JSON (repeatable)")]


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


def _model_overrides(**kw) -> dict[str, Any]:
    sets = kw.pop("set_") or []
    out = {k: v for k, v in kw.items() if v is not None}
    for item in sets:
        key, sep, value = item.partition("=")
        if not sep:
            _fail(f"--set {item!r}: write KEY=VALUE, e.g. --set dropout=0.3")
        try:
            out[key.strip()] = json.loads(value)
        except json.JSONDecodeError:
            out[key.strip()] = value  # a bare string, e.g. --set backbone=resnet34
    return out


def _run(method, caches, seed, batch_size, epochs, lr, weight_decay, repeats, mirror, max_rotation,
         expansion_m, noise_std, rigid_px, rigid_deg, rigid_scale, sensor_noise, loader_workers,
         model, **kw) -> RunConfig:
    from train.methods import METHODS

    if method not in METHODS:
        _fail(f"unknown method {method!r}; choose one of {', '.join(sorted(METHODS))}")
    return RunConfig(
        method=method,
        model=model,
        optim=OptimConfig(batch_size=batch_size, epochs=epochs, lr=lr, weight_decay=weight_decay),
        augment=AugmentConfig(
            repeats=repeats, mirror=mirror, max_rotation_deg=max_rotation, expansion_m=expansion_m,
            noise_std=noise_std, rigid_px=rigid_px, rigid_deg=rigid_deg, rigid_scale=rigid_scale,
            sensor_noise_std=sensor_noise,
        ),
        seed=seed,
        caches=[str(c) for c in caches],
        loader_workers=loader_workers,
        **kw,
    )


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


@app.command("pretrain")
@user_errors
def pretrain_cmd(
    caches: Caches,
    out: Out,
    method: Method = "moext",
    no_macro: Annotated[bool, typer.Option("--no-macro", help="micro pairs only (Table 7 'no macro data')")] = False,
    seed: Seed = 0,
    batch_size: BatchSize = _OPT.batch_size,
    epochs: Epochs = _OPT.epochs,
    lr: Lr = _OPT.lr,
    weight_decay: Wd = _OPT.weight_decay,
    repeats: Repeats = _AUG.repeats,
    mirror: Mirror = _AUG.mirror,
    max_rotation: Rotation = _AUG.max_rotation_deg,
    expansion_m: ExpansionM = _AUG.expansion_m,
    noise_std: NoiseStd = _AUG.noise_std,
    rigid_px: RigidPx = _AUG.rigid_px,
    rigid_deg: RigidDeg = _AUG.rigid_deg,
    rigid_scale: RigidScale = _AUG.rigid_scale,
    sensor_noise: SensorNoise = _AUG.sensor_noise_std,
    loader_workers: LoaderWorkers = 0,
    backbone: Backbone = None,
    image_size: ImageSize = None,
    branch_channels: BranchCh = None,
    feature_dim: FeatureDim = None,
    projection_dim: ProjDim = None,
    alpha_st: AlphaSt = None,
    alpha_ss: AlphaSs = None,
    margin_st: MarginSt = None,
    margin_ss: MarginSs = None,
    dropout: Dropout = None,
    motion_extractor: MotionExt = None,
    set_: SetOpt = None,
    resume: Resume = False,
    quiet: Quiet = False,
    threads: Threads = None,
) -> None:
    """Pre-train (§3) on the micro and macro pairs of the caches: L_re + a1 L_st + a2 L_ss."""
    from train.pretrain import pretrain

    _check_caches(caches)
    _set_threads(threads)
    model = _model_overrides(
        backbone=backbone, image_size=image_size, branch_channels=branch_channels, feature_dim=feature_dim,
        projection_dim=projection_dim, alpha_st=alpha_st, alpha_ss=alpha_ss, margin_st=margin_st,
        margin_ss=margin_ss, dropout=dropout, use_motion_extractor=motion_extractor, set_=set_,
    )
    run = _run(method, caches, seed, batch_size, epochs, lr, weight_decay, repeats, mirror, max_rotation,
               expansion_m, noise_std, rigid_px, rigid_deg, rigid_scale, sensor_noise, loader_workers,
               model, include_macro=not no_macro)
    path = pretrain(run, out, resume=resume, progress=not quiet)
    if _is_main():
        typer.echo(f"pre-trained weights: {path}")


def _is_main() -> bool:
    import os

    return os.environ.get("RANK", "0") == "0"


@app.command("finetune")
@user_errors
def finetune_cmd(
    caches: Caches,
    out: Out,
    protocol: Protocol = None,
    init: Init = None,
    method: Method = "moext",
    seed: Seed = 0,
    batch_size: BatchSize = _OPT.batch_size,
    epochs: Epochs = _OPT.epochs,
    lr: Lr = _OPT.lr,
    weight_decay: Wd = _OPT.weight_decay,
    repeats: Repeats = _AUG.repeats,
    mirror: Mirror = _AUG.mirror,
    max_rotation: Rotation = _AUG.max_rotation_deg,
    rigid_px: RigidPx = _AUG.rigid_px,
    rigid_deg: RigidDeg = _AUG.rigid_deg,
    rigid_scale: RigidScale = _AUG.rigid_scale,
    sensor_noise: SensorNoise = _AUG.sensor_noise_std,
    loader_workers: LoaderWorkers = 0,
    backbone: Backbone = None,
    image_size: ImageSize = None,
    branch_channels: BranchCh = None,
    feature_dim: FeatureDim = None,
    projection_dim: ProjDim = None,
    dropout: Dropout = None,
    motion_extractor: MotionExt = None,
    set_: SetOpt = None,
    resume: Resume = False,
    quiet: Quiet = False,
    threads: Threads = None,
) -> None:
    """Fine-tune the classifier (§3.4) on the micro-expression rows with cross-entropy."""
    from train.finetune import finetune

    _check_caches(caches)
    _set_threads(threads)
    model = _model_overrides(
        backbone=backbone, image_size=image_size, branch_channels=branch_channels, feature_dim=feature_dim,
        projection_dim=projection_dim, dropout=dropout, use_motion_extractor=motion_extractor, set_=set_,
    )
    run = _run(method, caches, seed, batch_size, epochs, lr, weight_decay, repeats, mirror, max_rotation,
               _AUG.expansion_m, _AUG.noise_std, rigid_px, rigid_deg, rigid_scale, sensor_noise, loader_workers,
               {}, protocol=protocol, init=str(init) if init else None)
    path = finetune(run, out, resume=resume, overrides=model, progress=not quiet)
    if _is_main():
        typer.echo(f"classifier weights: {path}")


Selection = Annotated[str, typer.Option(help="fixed (last epoch of the schedule) or inner-val (best epoch on held-out training subjects)")]
ValSubjects = Annotated[int, typer.Option(help="training subjects held out per fold for inner-val")]
Workers = Annotated[int, typer.Option(help="folds trained in parallel processes")]
Subjects = Annotated[Optional[list[str]], typer.Option("--subject", help="only these test subjects (dataset/subject; repeatable)")]


def _print_metrics(metrics: dict[str, Any], out: Path) -> None:
    p = metrics["pooled"]
    typer.echo(f"pooled over folds: UF1 {p['uf1']:.4f}  UAR {p['uar']:.4f}  ACC {p['acc']:.4f}  (n={p['n']})")
    for ds, b in metrics.get("by_dataset", {}).items():
        typer.echo(f"  {ds}: UF1 {b['uf1']:.4f}  UAR {b['uar']:.4f}  ACC {b['acc']:.4f}  (n={b['n']})")
    typer.echo(f"report: {out}/results.md")


@app.command("loso")
@user_errors
def loso_cmd(
    caches: Caches,
    out: Out,
    protocol: Protocol = None,
    init: Init = None,
    method: Method = "moext",
    selection: Selection = "fixed",
    val_subjects: ValSubjects = 2,
    workers: Workers = 1,
    subject: Subjects = None,
    seed: Seed = 0,
    batch_size: BatchSize = _OPT.batch_size,
    epochs: Epochs = _OPT.epochs,
    lr: Lr = _OPT.lr,
    weight_decay: Wd = _OPT.weight_decay,
    repeats: Repeats = _AUG.repeats,
    mirror: Mirror = _AUG.mirror,
    max_rotation: Rotation = _AUG.max_rotation_deg,
    rigid_px: RigidPx = _AUG.rigid_px,
    rigid_deg: RigidDeg = _AUG.rigid_deg,
    rigid_scale: RigidScale = _AUG.rigid_scale,
    sensor_noise: SensorNoise = _AUG.sensor_noise_std,
    backbone: Backbone = None,
    image_size: ImageSize = None,
    branch_channels: BranchCh = None,
    feature_dim: FeatureDim = None,
    projection_dim: ProjDim = None,
    dropout: Dropout = None,
    motion_extractor: MotionExt = None,
    set_: SetOpt = None,
    resume: Resume = False,
    quiet: Quiet = False,
    threads: Threads = None,
) -> None:
    """Leave-one-subject-out: fine-tune per fold, score the left-out subject once, report."""
    from train.loso import loso

    _check_caches(caches)
    _set_threads(threads)
    model = _model_overrides(
        backbone=backbone, image_size=image_size, branch_channels=branch_channels, feature_dim=feature_dim,
        projection_dim=projection_dim, dropout=dropout, use_motion_extractor=motion_extractor, set_=set_,
    )
    run = _run(method, caches, seed, batch_size, epochs, lr, weight_decay, repeats, mirror, max_rotation,
               _AUG.expansion_m, _AUG.noise_std, rigid_px, rigid_deg, rigid_scale, sensor_noise, 0,
               {}, protocol=protocol, init=str(init) if init else None)
    cfg = LosoConfig(run=run, selection=selection, val_subjects=val_subjects, workers=workers,
                     subjects=list(subject or []))
    metrics = loso(cfg, out, resume=resume, overrides=model, progress=not quiet)
    _print_metrics(metrics, out)


@app.command("ablate")
@user_errors
def ablate_cmd(
    caches: Caches,
    out: Out,
    protocol: Protocol = None,
    method: Method = "moext",
    variant: Annotated[Optional[list[str]], typer.Option("--variant", help="run only these (repeatable); default all")] = None,
    pretrain_epochs: Annotated[int, typer.Option(help="epochs of each pre-training")] = _OPT.epochs,
    selection: Selection = "fixed",
    val_subjects: ValSubjects = 2,
    workers: Workers = 1,
    seed: Seed = 0,
    batch_size: BatchSize = _OPT.batch_size,
    epochs: Epochs = _OPT.epochs,
    lr: Lr = _OPT.lr,
    weight_decay: Wd = _OPT.weight_decay,
    repeats: Repeats = _AUG.repeats,
    mirror: Mirror = _AUG.mirror,
    max_rotation: Rotation = _AUG.max_rotation_deg,
    expansion_m: ExpansionM = _AUG.expansion_m,
    noise_std: NoiseStd = _AUG.noise_std,
    rigid_px: RigidPx = _AUG.rigid_px,
    rigid_deg: RigidDeg = _AUG.rigid_deg,
    rigid_scale: RigidScale = _AUG.rigid_scale,
    sensor_noise: SensorNoise = _AUG.sensor_noise_std,
    backbone: Backbone = None,
    image_size: ImageSize = None,
    branch_channels: BranchCh = None,
    feature_dim: FeatureDim = None,
    projection_dim: ProjDim = None,
    alpha_st: AlphaSt = None,
    alpha_ss: AlphaSs = None,
    margin_st: MarginSt = None,
    margin_ss: MarginSs = None,
    dropout: Dropout = None,
    set_: SetOpt = None,
    resume: Resume = False,
    quiet: Quiet = False,
    threads: Threads = None,
) -> None:
    """Table 7: full, no pre-training, no macro data and the method's switches, each by LOSO."""
    from train.ablate import ablate

    _check_caches(caches)
    _set_threads(threads)
    if not protocol:
        _fail("ablate needs a label map: pass --protocol (e.g. cde, casme2-5)")
    model = _model_overrides(
        backbone=backbone, image_size=image_size, branch_channels=branch_channels, feature_dim=feature_dim,
        projection_dim=projection_dim, alpha_st=alpha_st, alpha_ss=alpha_ss, margin_st=margin_st,
        margin_ss=margin_ss, set_=set_, dropout=None,
    )
    args = (method, caches, seed, batch_size, pretrain_epochs, lr, weight_decay, repeats, mirror, max_rotation,
            expansion_m, noise_std, rigid_px, rigid_deg, rigid_scale, sensor_noise, 0, model)
    pre_run = _run(*args)
    fine_run = _run(*args[:4], epochs, *args[5:-1], {}, protocol=protocol)
    cfg = LosoConfig(run=fine_run, selection=selection, val_subjects=val_subjects, workers=workers)
    results = ablate(pre_run, cfg, out, variants=list(variant or []) or None, resume=resume,
                     overrides={"dropout": dropout} if dropout is not None else None, progress=not quiet)
    typer.echo((out / "ablation.md").read_text())
    del results

