"""Learning benchmark (not a test): LOSO on a generated 3-class set, with and without
pre-training, for each training method given.

    python benchmarks/learning.py                       # MoExt, ~10 subjects, CPU
    python benchmarks/learning.py --methods moext --subjects 12 --threads 2

Steps: `moext-train synth` (synthetic FACS-like motions on one public-domain photo) ->
`preprocess casme2` + `preprocess macro` -> per method: `pretrain` on micro + macro pairs ->
`loso --protocol cde` from the pre-trained weights and from scratch (fixed schedule: the test
subject chooses nothing). Prints and saves UF1/UAR/ACC (pooled over folds) to
`benchmarks/results/learning.json` and `.md`.

Sized for a 2-core CPU: MobileNetV3-Small backbone, narrow branches, 64x64 inputs, short
schedules (all flags). These figures come from synthetic data; they say whether the
pipeline learns, nothing about real micro-expressions.
"""

from __future__ import annotations

import argparse
import json
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


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--work", type=Path, default=Path(tempfile.gettempdir()) / "moext-learning-bench",
                    help="scratch folder (data, runs); resumes what is there")
    ap.add_argument("--results", type=Path, default=REPO / "benchmarks" / "results")
    ap.add_argument("--methods", nargs="+", default=["moext"])
    ap.add_argument("--subjects", type=int, default=10)
    ap.add_argument("--per-class", type=int, default=2, help="micro clips per class per subject")
    ap.add_argument("--frames-per-clip", type=int, default=0, help="extra crops per clip (methods that need them)")
    ap.add_argument("--image-size", type=int, default=64)
    ap.add_argument("--pretrain-epochs", type=int, default=4)
    ap.add_argument("--pretrain-repeats", type=int, default=2)
    ap.add_argument("--epochs", type=int, default=6)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--jitter", default="--rigid-px 1.5 --rigid-deg 0.5 --rigid-scale 0.01 --sensor-noise 2",
                    help="fine-tuning augmentation flags: live-like apex-only rigid jitter and sensor noise")
    ap.add_argument("--lr", type=float, default=5e-4)
    ap.add_argument("--workers", type=int, default=2, help="LOSO folds in parallel")
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
             "feature-dim": 64, "projection-dim": 16}
    common = ["--lr", str(args.lr), "--seed", str(args.seed), "--threads", str(args.threads), "--quiet"]
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
        for variant, init in (("pre-trained", ["--init", str(pre / "pretrained.safetensors")]), ("scratch", flags)):
            t = time.perf_counter()
            out = work / f"run-{method}" / f"loso-{variant}"
            cli("loso", "micro", "--protocol", "cde", "--method", method, "--out", str(out), "--epochs",
                str(args.epochs), "--repeats", str(args.repeats), "--batch-size", "20", "--workers",
                str(args.workers), *common, *args.jitter.split(), *init, *(["--resume"] if (out / "folds").is_dir() else []), cwd=work)
            timings[f"{method}_{variant}_loso_s"] = time.perf_counter() - t
            m = json.loads((out / "metrics.json").read_text())
            results[f"{method} ({variant})"] = {"pooled": m["pooled"], "mean_of_folds": m["mean_of_folds"],
                                                "folds": len(m["folds"]), "per_class": m["per_class"]}
    total = time.perf_counter() - t0
    lines = [
        "# Learning benchmark (synthetic data: says whether the pipeline learns, not how well it "
        "recognises real micro-expressions)",
        "",
        f"{args.subjects} synthetic subjects x 3 classes x {args.per_class} micro clips (+ 1 macro clip per "
        f"class per subject for pre-training); LOSO, protocol cde, fixed schedule; pooled over folds.",
        f"MoExt: mobilenet_v3_small, branches 32, features 64, {args.image_size}x{args.image_size} inputs; "
        f"pre-training {args.pretrain_epochs} epochs x {args.pretrain_repeats} repeats, fine-tuning "
        f"{args.epochs} epochs x {args.repeats} repeats with `{args.jitter}`, Adam lr {args.lr}, seed {args.seed}.",
        f"Machine: {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, {args.threads} thread(s) "
        f"per process, {args.workers} fold workers; total {total / 60:.1f} min.",
        "",
        "| Method | UF1 | UAR | ACC | mean-of-folds UF1 |",
        "|---|---|---|---|---|",
    ]
    for name, r in results.items():
        p = r["pooled"]
        lines.append(f"| {name} | {p['uf1']:.4f} | {p['uar']:.4f} | {p['acc']:.4f} | {r['mean_of_folds']['uf1']:.4f} |")
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
