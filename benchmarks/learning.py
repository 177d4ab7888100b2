"""Learning benchmark (not a test): LOSO on a generated 3-class set, with and without
pre-training, for each training method given.

    python benchmarks/learning.py                       # MoExt, ~10 subjects, CPU
    python benchmarks/learning.py --methods moext --subjects 12 --threads 2

Steps: `moext-train synth` (synthetic FACS-like motions on one public-domain photo) ->
`preprocess casme2` + `preprocess macro` -> per method: `pretrain` on micro + macro pairs ->
`loso --protocol cde` from the pre-trained weights and from scratch (fixed schedule: the test
subject chooses nothing). Prints and saves UF1/UAR/ACC (pooled over folds) to
`benchmarks/results/learning.json` and `.md`.

Sized for a 2-core CPU: MobileNetV3-Small backbone, narrow branches, 128x128 inputs (the
synthetic micro motions are 2-4 % of the inter-ocular distance, which is 0.32 x the crop side:
0.8-1.6 px at 128 px, under a pixel at 64 px), branches keeping their 4x4 cells (where on the
face a movement happened), a short pre-training and a fixed fine-tuning schedule (all flags).
`--folds N` scores only the first N subjects as test subjects (every subject still trains the
other folds), to fit a time budget; the markdown says how many folds ran. These figures come from synthetic data; they say whether the
pipeline learns, nothing about real micro-expressions.
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


def cli(*args: str, cwd: Path) -> None:
    env = {**os.environ, "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "1")}
    cmd = [sys.executable, "-m", "train.cli", *args]
    print("$ moext-train " + " ".join(args), flush=True)
    subprocess.run(cmd, cwd=cwd, env=env, check=True)


def _arm(job: dict) -> dict:
    """One LOSO arm (pre-trained or scratch) in its own process: `train.loso.loso` with the
    trained fold model's BatchNorm statistics re-estimated before it scores the test subject
    (benchmarks/bn_stats.py says why; the training rows only, never the test subject's)."""
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
    run = RunConfig(method="moext", model=job["model"] if not job["init"] else {},
                    optim=OptimConfig(batch_size=job["batch_size"], epochs=job["epochs"], lr=job["lr"]),
                    augment=AugmentConfig(repeats=job["repeats"], rigid_px=job["rigid_px"],
                                          sensor_noise_std=job["sensor_noise"]),
                    seed=job["seed"], caches=[job["cache"]], protocol="cde", init=job["init"])
    cfg = LosoConfig(run=run, selection="fixed", workers=1, subjects=job["subjects"])
    return L.loso(cfg, Path(job["out"]), resume=Path(job["out"], L.FOLDS).is_dir(),
                  overrides=None if job["init"] else job["model"], progress=False, label=job["label"])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--work", type=Path, default=Path(tempfile.gettempdir()) / "moext-learning-bench",
                    help="scratch folder (data, runs); resumes what is there")
    ap.add_argument("--results", type=Path, default=REPO / "benchmarks" / "results")
    ap.add_argument("--methods", nargs="+", default=["moext"])
    ap.add_argument("--subjects", type=int, default=12)
    ap.add_argument("--per-class", type=int, default=5, help="micro clips per class per subject")
    ap.add_argument("--folds", type=int, default=0, help="score only the first N subjects (0 = every subject)")
    ap.add_argument("--frames-per-clip", type=int, default=0, help="extra crops per clip (methods that need them)")
    ap.add_argument("--image-size", type=int, default=128)
    ap.add_argument("--branch-pool", type=int, default=4, help="separator branches pool to N x N cells")
    ap.add_argument("--pretrain-epochs", type=int, default=1)
    ap.add_argument("--pretrain-repeats", type=int, default=1)
    ap.add_argument("--epochs", type=int, default=10)
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--batch-size", type=int, default=10,
                    help="fine-tuning batch; small batches give MobileNetV3's slow BatchNorm running "
                         "statistics (momentum 0.01) enough steps to settle")
    ap.add_argument("--rigid-px", type=float, default=0.0, help="fine-tuning: live-like apex-only shift (crop px)")
    ap.add_argument("--sensor-noise", type=float, default=0.0, help="fine-tuning: independent sensor noise (0..255)")
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--workers", type=int, default=2, help="LOSO arms (pre-trained, scratch) in parallel")
    ap.add_argument("--threads", type=int, default=1, help="torch threads per process")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()

    work = args.work.resolve()
    work.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    if not (work / "micro" / "manifest.jsonl").is_file():
        cli("synth", "--out", "syn", "--subjects", str(args.subjects), "--per-class", str(args.per_class),
            "--frames", "12", "--macro-per-class", "1", "--macro-frames", "16", "--long-videos", "0",
            "--seed", str(args.seed), "--no-progress", cwd=work)
        cli("preprocess", "casme2", "syn", "--out", "micro", "--frames-per-clip", str(args.frames_per_clip),
            "--no-progress", cwd=work)
        cli("preprocess", "macro", "syn/macro", "--out", "macro", "--frames-per-clip", str(args.frames_per_clip),
            "--no-progress", cwd=work)
    data_s = time.perf_counter() - t0

    model = {"backbone": "mobilenet_v3_small", "image-size": args.image_size, "branch-channels": 32,
             "feature-dim": 64, "projection-dim": 16, "set": f"branch_pool={args.branch_pool}"}
    common = ["--lr", str(args.lr), "--seed", str(args.seed), "--threads", str(args.threads), "--quiet"]
    subjects = [f"casme2/sub{s + 1:02d}" for s in range(args.subjects)]
    tested = subjects[: args.folds] if args.folds else []
    only = [f"--subject={s}" for s in tested]
    results: dict[str, dict] = {}
    timings: dict[str, float] = {"data_s": data_s}
    for method in args.methods:
        flags = [f"--{k}={v}" for k, v in model.items()] if method == "moext" else [f"--image-size={args.image_size}"]
        t = time.perf_counter()
        pre = work / f"run-{method}" / "pretrain"  # not work/<method>: `python -m` would import it
        cli("pretrain", "micro", "macro", "--method", method, "--out", str(pre), "--epochs", str(args.pretrain_epochs),
            "--repeats", str(args.pretrain_repeats), "--batch-size", "10", *common, *flags,
            *(["--resume"] if (pre / "train_state.pt").exists() else []), cwd=work)
        timings[f"{method}_pretrain_s"] = time.perf_counter() - t
        if method != "moext":
            raise SystemExit(f"--methods {method}: this benchmark's BatchNorm re-estimation is written for moext")
        t = time.perf_counter()
        arms = {variant: {"model": {"backbone": "mobilenet_v3_small", "image_size": args.image_size,
                                    "branch_channels": 32, "feature_dim": 64, "projection_dim": 16,
                                    "branch_pool": args.branch_pool},
                          "init": init, "cache": str(work / "micro"), "subjects": tested, "threads": args.threads,
                          "batch_size": args.batch_size, "epochs": args.epochs, "lr": args.lr, "repeats": args.repeats,
                          "rigid_px": args.rigid_px, "sensor_noise": args.sensor_noise, "seed": args.seed,
                          "out": str(work / f"run-{method}" / f"loso-{variant}"), "label": f"{method} ({variant})"}
                for variant, init in (("pre-trained", str(pre / "pretrained.safetensors")), ("scratch", None))}
        print(f"LOSO arms {list(arms)} on test subjects {tested or 'all'} ...", flush=True)
        ctx = multiprocessing.get_context("spawn")
        with ctx.Pool(min(args.workers, len(arms))) as pool:
            metrics = dict(zip(arms, pool.map(_arm, list(arms.values()))))
        timings[f"{method}_loso_s"] = time.perf_counter() - t
        for variant, m in metrics.items():
            results[f"{method} ({variant})"] = {"pooled": m["pooled"], "mean_of_folds": m["mean_of_folds"],
                                                "folds": len(m["folds"]), "per_class": m["per_class"]}
    total = time.perf_counter() - t0
    lines = [
        "# Learning benchmark (synthetic data: says whether the pipeline learns, not how well it "
        "recognises real micro-expressions)",
        "",
        f"{args.subjects} synthetic subjects x 3 classes x {args.per_class} micro clips (+ 1 macro clip per "
        f"class per subject for pre-training); LOSO, protocol cde, fixed schedule (last epoch); pooled over "
        + (f"the folds of test subjects {', '.join(tested)} ({len(tested)} of {args.subjects} folds; every "
           f"fold trains on the other {args.subjects - 1} subjects)." if tested else f"all {args.subjects} folds."),
        f"MoExt: mobilenet_v3_small, branches 32 pooled to {args.branch_pool}x{args.branch_pool}, features 64, "
        f"{args.image_size}x{args.image_size} inputs; pre-training {args.pretrain_epochs} epoch(s) x "
        f"{args.pretrain_repeats} repeat(s) (batch 10), fine-tuning {args.epochs} epochs x {args.repeats} repeats "
        f"(batch {args.batch_size}), apex-only rigid shift {args.rigid_px} px, sensor noise {args.sensor_noise}, "
        f"Adam lr {args.lr}, seed {args.seed}; each fold's BatchNorm statistics re-estimated on its training "
        f"pairs before scoring (benchmarks/bn_stats.py). Chance: 0.33 (3 balanced classes).",
        f"Machine: {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, {args.threads} thread(s) "
        f"per process, {args.workers} LOSO arms in parallel; total {total / 60:.1f} min.",
        "",
        "| Method | UF1 | UAR | ACC | mean-of-folds UF1 |",
        "|---|---|---|---|---|",
    ]
    for name, r in results.items():
        p = r["pooled"]
        lines.append(f"| {name} | {p['uf1']:.4f} | {p['uar']:.4f} | {p['acc']:.4f} | {r['mean_of_folds']['uf1']:.4f} |")
    lines += ["", "Per class (recall):", ""]
    for name, r in results.items():
        lines.append(f"- {name}: " + ", ".join(f"{c} {v['recall']:.2f}" for c, v in r["per_class"].items()))
    text = "\n".join(lines) + "\n"
    print(text)
    args.results.mkdir(parents=True, exist_ok=True)
    suffix = "" if args.methods == ["moext"] else "-" + "-".join(args.methods)
    (args.results / f"learning{suffix}.json").write_text(json.dumps(
        {"args": {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()},
         "results": results, "timings_s": timings, "synthetic": True}, indent=2))
    (args.results / f"learning{suffix}.md").write_text(text)


if __name__ == "__main__":
    main()
