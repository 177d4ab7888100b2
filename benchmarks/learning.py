"""Learning benchmark (not a test): LOSO on one generated 3-class set, with and without
pre-training, for each training method given, side by side.

    python benchmarks/learning.py                                   # MoExt vs MIACNet, CPU
    python benchmarks/learning.py --methods moext --subjects 12 --folds 2

Steps: `moext-train synth` (synthetic FACS-like motions on one public-domain photo) ->
`preprocess casme2` + `preprocess macro` (with `--frames-per-clip` further crops per clip, which
MA2MI samples its (t, t+δ) pairs from) -> per method, its own pre-training:
  - moext: `pretrain --method moext` on micro + macro (onset, apex) pairs (apex reconstruction,
    §3 of the MoExt paper);
  - miacnet: `pretrain --method ma2mi` on the macro clips only (reconstruct I_{t+δ} from I_t
    and the action code, as MA2MI pre-trains on macro-expression videos);
-> per method, `loso --protocol cde` from the pre-trained weights and from scratch, with the
same fixed fine-tuning schedule for every arm (the test subject chooses nothing). Prints and
saves UF1/UAR/ACC (pooled over folds) and per-class recall of the four arms in one table to
`benchmarks/results/learning.json` and `.md`.

Sized for a 2-core CPU: MobileNetV3-Small backbones, narrow branches, 128x128 inputs (the
synthetic micro motions are 2-4 % of the inter-ocular distance, which is 0.32 x the crop side:
0.8-1.6 px at 128 px, under a pixel at 64 px); MoExt's branches keep their 4x4 cells, and
MIACNet's branches work on the backbone's 4x4 map (128 / 32): where on the face a movement
happened. Every step resumes from what `--work` holds (data, pre-training, finished folds);
a pre-training run is named by its schedule, so a changed `--pretrain-epochs` re-runs only the
pre-training and the pre-trained arms. `--folds N` scores only the first N subjects as test
subjects (every fold still trains on all the other subjects), to fit a time budget; the
markdown says how many folds ran.

These figures come from synthetic data; they say whether the pipeline learns, nothing about
real micro-expressions.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

METHODS = ("moext", "miacnet")
VARIANTS = ("pre-trained", "scratch")


def _cmd(args: list[str]) -> list[str]:
    print("$ moext-train " + " ".join(args), flush=True)
    return [sys.executable, "-m", "train.cli", *args]


def _env() -> dict[str, str]:
    return {**os.environ, "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "1")}


def cli(*args: str, cwd: Path) -> None:
    subprocess.run(_cmd(list(args)), cwd=cwd, env=_env(), check=True)


def model_settings(method: str, args: argparse.Namespace) -> dict:
    """The network config of `method` (config field -> value), the same for its pre-training
    and both of its LOSO arms."""
    if method == "moext":
        return {"backbone": "mobilenet_v3_small", "image_size": args.image_size, "branch_channels": 32,
                "feature_dim": 64, "projection_dim": 16, "branch_pool": args.branch_pool}
    # MIACNet at the same CPU size: action code C_Δ 32 channels, position features 16, fusion
    # 32, on MobileNetV3-Small's (576, S/32, S/32) map; MA2MI's latent autoencoder 8 x S/8 x S/8
    # with 16-channel convs; δ in [1, 4] crops (the config's default).
    return {"backbone": "mobilenet_v3_small", "image_size": args.image_size, "action_channels": 32,
            "position_channels": 16, "fusion_channels": 32, "latent_width": 16}


def describe(method: str, args: argparse.Namespace, work: Path) -> str:
    m = model_settings(method, args)
    s = args.image_size
    if method == "moext":
        return (f"MoExt: {m['backbone']}, branches {m['branch_channels']} pooled to {m['branch_pool']}x"
                f"{m['branch_pool']}, features {m['feature_dim']}, {s}x{s} inputs; pre-training = apex "
                f"reconstruction (L_re + L_st + L_ss) on the micro + macro (onset, apex) pairs, "
                f"{args.pretrain_epochs} epoch(s) x {args.pretrain_repeats} repeat(s) (batch 10).")
    return (f"MIACNet: {m['backbone']}, action code {m['action_channels']} ch, position "
            f"{m['position_channels']} ch, fusion {m['fusion_channels']} ch on the 4x4 backbone map, "
            f"{s}x{s} inputs; pre-training = MA2MI (reconstruct the latent of I_(t+δ), δ in 1-4 crops, "
            f"from I_t and the action code; latent autoencoder 8 ch, width {m['latent_width']}) on the "
            f"macro clips ({args.frames_per_clip} further crops per clip), {args.pretrain_epochs} "
            f"epoch(s) x {pretrain_repeats(method, args, work)} repeat(s) (batch 10; repeated so that an "
            f"epoch holds as many pairs as MoExt's, which also sees the micro pairs).")


def _rows(work: Path, cache: str) -> int:
    return sum(1 for _ in open(work / cache / "manifest.jsonl"))


def pretrain_repeats(method: str, args: argparse.Namespace, work: Path) -> int:
    """MA2MI sees only the macro clips (1/6 of MoExt's micro + macro pairs here), so it repeats
    them until an epoch holds as many pre-training pairs as MoExt's: the same budget of steps."""
    if method == "moext":
        return args.pretrain_repeats
    return args.pretrain_repeats * max(1, round((_rows(work, "micro") + _rows(work, "macro")) / _rows(work, "macro")))


def pretrain_cmd(method: str, args: argparse.Namespace, pre: Path, work: Path) -> list[str]:
    caches = ["micro", "macro"] if method == "moext" else ["macro"]
    flags = [f"--{k.replace('_', '-')}={v}" for k, v in model_settings(method, args).items()
             if k in ("backbone", "image_size", "branch_channels", "feature_dim", "projection_dim")]
    flags += [f"--set={k}={v}" for k, v in model_settings(method, args).items()
              if k not in ("backbone", "image_size", "branch_channels", "feature_dim", "projection_dim")]
    return _cmd(["pretrain", *caches, "--method", "moext" if method == "moext" else "ma2mi",
                 "--out", str(pre), "--epochs", str(args.pretrain_epochs),
                 "--repeats", str(pretrain_repeats(method, args, work)),
                 "--batch-size", "10", "--lr", str(args.lr), "--seed", str(args.seed), "--threads", str(args.threads),
                 "--quiet", *flags, *(["--resume"] if (pre / "train_state.pt").exists() else [])])


def _arm(job: dict) -> dict:
    """One LOSO arm (a method, pre-trained or scratch) in its own process: `train.loso.loso`
    with the trained fold model's BatchNorm statistics re-estimated before it scores the test
    subject (benchmarks/bn_stats.py says why; the training rows only, never the test subject's)."""
    import torch

    import train.loso as L
    from benchmarks.bn_stats import reestimate_bn
    from train.config import AugmentConfig, LosoConfig, OptimConfig, RunConfig

    torch.set_num_threads(job["threads"])
    fit = L.train_classifier

    def fit_then_reestimate(method, run, model, train_rows, **kw):
        result = fit(method, run, model, train_rows, **kw)
        reestimate_bn(result.model, train_rows)
        return result

    L.train_classifier = fit_then_reestimate  # this worker process only
    run = RunConfig(method=job["method"], model=job["model"] if not job["init"] else {},
                    optim=OptimConfig(batch_size=job["batch_size"], epochs=job["epochs"], lr=job["lr"]),
                    augment=AugmentConfig(repeats=job["repeats"], rigid_px=job["rigid_px"],
                                          sensor_noise_std=job["sensor_noise"]),
                    seed=job["seed"], caches=[job["cache"]], protocol="cde", init=job["init"])
    cfg = LosoConfig(run=run, selection="fixed", workers=1, subjects=job["subjects"])
    t = time.perf_counter()
    m = L.loso(cfg, Path(job["out"]), resume=Path(job["out"], L.FOLDS).is_dir(),
               overrides=None if job["init"] else job["model"], progress=False, label=job["label"])
    folds = [json.loads(f.read_text()) for f in sorted(Path(job["out"], L.FOLDS).glob("*.json"))]
    m["fold_detail"] = {
        f["fold"]: {"correct": sum(p["y_true"] == p["y_pred"] for p in f["predictions"]),
                    "n": len(f["predictions"]),
                    "final_train_loss": f["history"][-1].get("total") if f["history"] else None}
        for f in folds if f["fold"] in (job["subjects"] or [f["fold"]])
    }
    m["wall_s"] = time.perf_counter() - t
    return m


def prepare_data(work: Path, args: argparse.Namespace) -> None:
    """synth -> preprocess micro and macro; each step skipped when its output is there
    (preprocess resumes a half-done cache by itself)."""
    if not (work / "syn" / "synth_truth.json").is_file():
        cli("synth", "--out", "syn", "--subjects", str(args.subjects), "--per-class", str(args.per_class),
            "--frames", "12", "--macro-per-class", "1", "--macro-frames", "16", "--long-videos", "0",
            "--seed", str(args.seed), "--no-progress", cwd=work)
    for kind, src, out in (("casme2", "syn", "micro"), ("macro", "syn/macro", "macro")):
        if not (work / out / "manifest.jsonl").is_file():
            cli("preprocess", kind, src, "--out", out, "--frames-per-clip", str(args.frames_per_clip),
                "--no-progress", cwd=work)
    n = sum(1 for _ in open(work / "micro" / "manifest.jsonl"))
    if n != args.subjects * 3 * args.per_class:
        raise SystemExit(f"{work / 'micro'} holds {n} clips, not the {args.subjects} x 3 x {args.per_class} "
                         "these flags ask for: choose another --work or the flags it was made with")


def markdown(args, work, tested, results, timings, total_s) -> str:
    folds = (f"the folds of test subjects {', '.join(tested)} ({len(tested)} of {args.subjects} folds; every "
             f"fold trains on the other {args.subjects - 1} subjects)" if tested else f"all {args.subjects} folds")
    lines = [
        "# Learning benchmark (synthetic data: says whether the pipeline learns, not how well it "
        "recognises real micro-expressions)",
        "",
        f"One generated set for every arm: {args.subjects} synthetic subjects x 3 classes x {args.per_class} "
        f"micro clips (+ 1 macro clip per class per subject, for pre-training only), "
        f"{args.frames_per_clip} further crops per clip; LOSO, protocol cde, fixed schedule (last epoch); "
        f"pooled over {folds}.",
        "",
        *[f"- {describe(m, args, work)}" for m in args.methods],
        f"- Fine-tuning, the same for all arms: {args.epochs} epochs x {args.repeats} repeats (batch "
        f"{args.batch_size}), apex-only rigid shift {args.rigid_px} px, sensor noise {args.sensor_noise}, "
        f"Adam lr {args.lr} (pre-training too), seed {args.seed}; 'pre-trained' starts from the method's "
        f"own pre-training (MoExt: backbone, shape branch and motion extractor; MIACNet: backbone, action and position "
        f"branches), 'scratch' from random init; each fold's BatchNorm statistics are re-estimated on its "
        f"training pairs before scoring (benchmarks/bn_stats.py). Chance: 0.33 (3 balanced classes).",
        f"- Machine: {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs (shared), "
        f"{args.threads} thread(s) per process, {args.workers} processes in parallel; total "
        f"{total_s / 60:.1f} min in this invocation ("
        + ", ".join(f"{k.removesuffix('_s')} {v / 60:.1f} min" for k, v in timings.items()) + ").",
        "",
        "| Method | Pre-training | UF1 | UAR | ACC | mean-of-folds UF1 | "
        + " | ".join(f"recall {c}" for c in next(iter(results.values()))["per_class"]) + " | correct per fold |",
        "|---|---|---|---|---|---|" + "---|" * (len(next(iter(results.values()))["per_class"]) + 1),
    ]
    for r in results.values():
        p = r["pooled"]
        pre = ({"moext": "apex reconstruction", "miacnet": "MA2MI"}[r["method"]]
               if r["variant"] == "pre-trained" else "none (scratch)")
        lines.append(
            f"| {r['method']} | {pre} | {p['uf1']:.4f} | {p['uar']:.4f} | {p['acc']:.4f} | "
            f"{r['mean_of_folds']['uf1']:.4f} | " + " | ".join(f"{v['recall']:.2f}" for v in r["per_class"].values())
            + " | " + ", ".join(f"{k.split('/')[-1]} {d['correct']}/{d['n']}" for k, d in r["fold_detail"].items())
            + " |")
    return "\n".join(lines) + "\n"


def write_atomic(path: Path, text: str) -> None:
    from moext.io import atomic_write_text

    atomic_write_text(path, text)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--work", type=Path, default=Path(tempfile.gettempdir()) / "moext-learning-bench",
                    help="scratch folder (data, runs); resumes what is there")
    ap.add_argument("--results", type=Path, default=REPO / "benchmarks" / "results",
                    help="where learning.json and learning.md go")
    ap.add_argument("--methods", nargs="+", default=list(METHODS), choices=METHODS)
    ap.add_argument("--subjects", type=int, default=12)
    ap.add_argument("--per-class", type=int, default=5, help="micro clips per class per subject")
    ap.add_argument("--folds", type=int, default=0, help="score only the first N subjects (0 = every subject)")
    ap.add_argument("--frames-per-clip", type=int, default=8,
                    help="further aligned crops per clip, the frames MA2MI draws its (t, t+δ) pairs from")
    ap.add_argument("--image-size", type=int, default=128)
    ap.add_argument("--branch-pool", type=int, default=4, help="MoExt's separator branches pool to N x N cells")
    ap.add_argument("--pretrain-epochs", type=int, default=1)
    ap.add_argument("--pretrain-repeats", type=int, default=1)
    ap.add_argument("--epochs", type=int, default=10)
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--batch-size", type=int, default=10,
                    help="fine-tuning batch (small batches: more BatchNorm updates per epoch)")
    ap.add_argument("--rigid-px", type=float, default=0.0, help="fine-tuning: live-like apex-only shift (crop px)")
    ap.add_argument("--sensor-noise", type=float, default=0.0, help="fine-tuning: independent sensor noise (0..255)")
    ap.add_argument("--lr", type=float, default=1e-3, help="Adam lr of pre-training and fine-tuning")
    ap.add_argument("--workers", type=int, default=2, help="processes in parallel (pre-trainings, LOSO arms)")
    ap.add_argument("--threads", type=int, default=1, help="torch threads per process")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--arms", nargs="+", default=list(VARIANTS), choices=VARIANTS,
                    help="which arms to run now (e.g. only 'pre-trained' after changing the pre-training "
                         "while another invocation runs the scratch arms); a last invocation with both "
                         "finds every fold done and writes the full table")
    args = ap.parse_args()
    if "miacnet" in args.methods and args.frames_per_clip < 2:
        ap.error("--methods miacnet needs --frames-per-clip 2 or more: MA2MI draws (t, t+δ) pairs along each clip")

    work = args.work.resolve()
    work.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    prepare_data(work, args)
    timings: dict[str, float] = {"data_s": time.perf_counter() - t0}

    # Pre-trainings, one process per method (each resumes its own run directory).
    t = time.perf_counter()
    sched = f"e{args.pretrain_epochs}x{args.pretrain_repeats}-lr{args.lr:g}"
    pre = {m: work / f"run-{m}" / f"pretrain-{sched}" for m in args.methods}  # not work/<m>: `python -m` imports it
    todo = [m for m in args.methods if "pre-trained" in args.arms and not (pre[m] / "pretrained.safetensors").is_file()
            or not json.loads((pre[m] / "pretrained.json").read_text()).get("extra", {}).get("finished", True)]
    running: list[tuple[str, subprocess.Popen]] = []
    for m in todo:
        while len(running) >= args.workers:
            _wait_first(running)
        running.append((m, subprocess.Popen(pretrain_cmd(m, args, pre[m], work), cwd=work, env=_env())))
    while running:
        _wait_first(running)
    timings["pretrain_s"] = time.perf_counter() - t

    subjects = [f"casme2/sub{s + 1:02d}" for s in range(args.subjects)]
    tested = subjects[: args.folds] if args.folds else []
    jobs = {}
    for m in args.methods:
        for variant in args.arms:
            init = str(pre[m] / "pretrained.safetensors") if variant == "pre-trained" else None
            out = work / f"run-{m}" / (f"loso-pre-trained-{sched}" if init else "loso-scratch")
            jobs[f"{m} ({variant})"] = {
                "method": m, "model": model_settings(m, args), "init": init, "cache": str(work / "micro"),
                "subjects": tested, "threads": args.threads, "batch_size": args.batch_size, "epochs": args.epochs,
                "lr": args.lr, "repeats": args.repeats, "rigid_px": args.rigid_px, "sensor_noise": args.sensor_noise,
                "seed": args.seed, "out": str(out), "label": f"{m} ({variant})"}
    t = time.perf_counter()
    print(f"LOSO arms {list(jobs)} on test subjects {tested or 'all'} ...", flush=True)
    with multiprocessing.get_context("spawn").Pool(min(args.workers, len(jobs))) as pool:
        metrics = dict(zip(jobs, pool.map(_arm, list(jobs.values()), chunksize=1)))
    timings["loso_s"] = time.perf_counter() - t
    results = {}
    for name, m in metrics.items():
        results[name] = {"method": jobs[name]["method"], "variant": name.split("(")[1].rstrip(")"),
                         "pooled": m["pooled"], "mean_of_folds": m["mean_of_folds"], "folds": len(m["folds"]),
                         "per_class": m["per_class"], "confusion": m["confusion"], "fold_detail": m["fold_detail"],
                         "arm_wall_s": m["wall_s"], "init": jobs[name]["init"], "run_dir": jobs[name]["out"]}
    total = time.perf_counter() - t0
    text = markdown(args, work, tested, results, timings, total)
    print(text)
    args.results.mkdir(parents=True, exist_ok=True)
    write_atomic(args.results / "learning.json", json.dumps(
        {"args": {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()},
         "model_settings": {m: model_settings(m, args) for m in args.methods},
         "pretrain_repeats": {m: pretrain_repeats(m, args, work) for m in args.methods},
         "results": results, "timings_s": {**timings, "total_s": total}, "tested_subjects": tested or subjects,
         "synthetic": True}, indent=2))
    write_atomic(args.results / "learning.md", text)


def _wait_first(running: list) -> None:
    """Block until one of the running pre-trainings ends; a failed one stops the benchmark."""
    while True:
        for i, (m, p) in enumerate(running):
            if p.poll() is not None:
                running.pop(i)
                if p.returncode:
                    for _, q in running:
                        q.terminate()
                    raise SystemExit(f"pre-training of {m} failed (exit {p.returncode}); see its output above")
                return
        time.sleep(1)


if __name__ == "__main__":
    main()
