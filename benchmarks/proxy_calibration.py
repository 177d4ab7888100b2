"""Calibrate the real-data proxy (`moext-train synth --style realproxy`): do our methods score
on it what they scored on 142 real CASME II samples (issue 24)?

    python benchmarks/proxy_calibration.py --work /tmp/cal/r0 --base /tmp/moext-base
    python benchmarks/proxy_calibration.py --work /tmp/cal/r0 --rows ststnet   # one row
    python benchmarks/proxy_calibration.py --work /tmp/cal/r0 --report-only    # table only

Steps, each skipped when its output is already there (so an interrupted run resumes):
1. generate the proxy with this checkout's generator (`train.synth.realproxy`) into WORK/set;
2. preprocess it with the BASE checkout (`moext-train preprocess casme2`) into WORK/cache,
   and for the flow baseline's row with this checkout and `--align onset` into
   WORK/cache-onset: the real row computed its flow on one crop per sample (the dataset's
   own face crops), which per-frame alignment is not (its mouth point moves with the
   expression); the `ststnet-frame` row runs the per-frame cache to show the difference;
3. run each row's `moext-train loso --protocol cde` (strict, last epoch, with the test-best
   figure beside it) into WORK/loso/<row>/, logging to WORK/logs/<row>.log. MoExt and
   MIACNet rows run the BASE checkout (the code the real figures were measured with: commit
   751d615, `git worktree add /tmp/moext-base 751d615`); the flow baseline runs this
   checkout (it did not exist at 751d615);
4. write the table (`--results`, default benchmarks/results/proxy-calibration.md) with the
   real figures beside the proxy's.

The real figures are issue 24's (measured independently on held-out real samples; the
material is not in this repository). Every proxy figure is measured on generated data.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
RESULTS = ROOT / "benchmarks" / "results" / "proxy-calibration.md"

# CPU settings of the shipped weights (realtime/weights/demo.json) and of the MIACNet row.
MOEXT_CPU = ['--set=model.arch="unet"', '--set=model.backbone="mobilenet_v3_small"', "--set=model.image_size=128",
             "--set=model.branch_channels=32", "--set=model.map_stride=4", "--set=model.branch_pool=4",
             "--set=model.projection_dim=16"]
MIACNET_CPU = ['--set=model.backbone="mobilenet_v3_small"', "--set=model.image_size=128",
               "--set=model.action_channels=32", "--set=model.position_channels=16",
               "--set=model.fusion_channels=32", "--set=model.latent_width=16"]


@dataclass(frozen=True)
class Row:
    """One calibration row: its method flags, which checkout runs it, the real figures."""

    name: str
    label: str
    flags: tuple[str, ...]
    base: bool  # run with the base checkout (the code before issue 24's changes)
    real_uf1: float
    real_uar: float
    real_test_best: float
    real_train_acc: str
    real_note: str
    align: str = "frame"  # preprocess --align of the row's cache: "onset" for the flow baseline
    out: str = ""  # WORK/loso/<out>/ (default: the name)

    @property
    def folder(self) -> str:
        return self.out or self.name


ROWS = {
    "moext": Row("moext", "MoExt, shipped weights' CPU settings, default recipe, from scratch",
                 ("--method", "moext", *MOEXT_CPU), True, 0.655, 0.636, 0.788, "0.80-0.93",
                 "recall negative 0.80, positive 0.47, surprise 0.64"),
    "miacnet": Row("miacnet", "MIACNet, CPU size (MobileNetV3-Small 128, action 32, position 16, fusion 32, "
                   "latent 16), default recipe, from scratch", ("--method", "miacnet", *MIACNET_CPU), True,
                   0.333, 0.349, 0.501, "0.67-0.87", "recall negative 0.79, positive 0.22, surprise 0.04"),
    # The real row computed its flow "on the samples' own face crops": one fixed crop per
    # sample. Our preprocessing's equivalent is `--align onset` (the onset's transform for the
    # apex too); per-frame alignment moves with the expression (the mouth is an alignment
    # point) and its jitter is flow the baseline reads as motion: the second row shows how much.
    "ststnet": Row("ststnet", "STSTNet flow baseline (this checkout's `--method ststnet`), one crop per sample "
                   "(`preprocess --align onset`), as the real row", ("--method", "ststnet"), False, 0.791, 0.789,
                   0.874, "0.97-1.00", "seed 0 (seed 1: 0.814 / 0.810, test-best 0.865); recall negative 0.87-0.89, "
                   "positive 0.66, surprise 0.84-0.88", align="onset", out="ststnet-onset"),
    "ststnet-frame": Row("ststnet-frame", "the same on per-frame aligned crops (our default preprocess; not how the "
                         "real row was made)", ("--method", "ststnet"), False, 0.791, 0.789, 0.874, "0.97-1.00",
                         "as above", out="ststnet"),
}


def cli(base: Path | None) -> tuple[list[str], dict[str, str], Path]:
    """The `moext-train` command line of a checkout (the base worktree or this one)."""
    env = dict(os.environ)
    where = base if base is not None else ROOT
    env["PYTHONPATH"] = str(where)
    return ["nice", "-n", "10", sys.executable, "-m", "train.cli"], env, where


def run_logged(cmd: list[str], env: dict[str, str], cwd: Path, log: Path) -> float:
    log.parent.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    with open(log, "a") as fh:
        fh.write(f"\n$ (cd {cwd}; PYTHONPATH={env['PYTHONPATH']}) {' '.join(cmd)}\n")
        fh.flush()
        rc = subprocess.run(cmd, env=env, cwd=cwd, stdout=fh, stderr=subprocess.STDOUT).returncode
    if rc != 0:
        raise SystemExit(f"command failed (exit {rc}), see {log}: {' '.join(cmd)}")
    return time.perf_counter() - t0


def proxy_config(work: Path, seed: int, overrides: list[str]):
    """`RealProxyConfig` for WORK/set: the defaults, then `--proxy KEY=JSON` overrides."""
    import dataclasses

    from train.synth.realproxy import RealProxyConfig

    cfg = RealProxyConfig(out=work / "set", subjects=24, samples=142, seed=seed)
    names = {f.name for f in dataclasses.fields(cfg)}
    for item in overrides:
        key, _, value = item.partition("=")
        if key not in names or not value:
            raise SystemExit(f"--proxy {item!r}: give KEY=JSON with KEY a RealProxyConfig field "
                             f"({', '.join(sorted(names - {'out'}))}), e.g. amplitude_iod=[0.01,0.035]")
        v = json.loads(value)
        setattr(cfg, key, tuple(v) if isinstance(v, list) else v)
    return cfg


def generate(work: Path, seed: int, overrides: list[str]) -> list[str]:
    """Generate WORK/set unless it is there; the command line that makes the same set."""
    cfg = proxy_config(work, seed, overrides)
    cmd = [sys.executable, "benchmarks/proxy_calibration.py", "--work", str(work), "--seed", str(seed), "--rows"]
    cmd += [a for o in overrides for a in ("--proxy", o)]
    if not (cfg.out / "synth_truth.json").is_file():
        from train.synth.realproxy import write_realproxy

        t0 = time.perf_counter()
        os.nice(10)
        write_realproxy(cfg, progress=False)
        (work / "logs").mkdir(parents=True, exist_ok=True)
        (work / "logs" / "generate.seconds").write_text(f"{time.perf_counter() - t0:.1f}\n")
    return cmd


def preprocess(work: Path, base: Path) -> list[str]:
    prefix, env, cwd = cli(base)
    args = ["preprocess", "casme2", str(work / "set"), "--out", str(work / "cache"), "--no-progress"]
    if not (work / "cache" / "manifest.jsonl").is_file() or not (work / "logs" / "preprocess.seconds").is_file():
        dt = run_logged([*prefix, *args], env, cwd, work / "logs" / "preprocess.log")
        (work / "logs" / "preprocess.seconds").write_text(f"{dt:.1f}\n")
    return args


def preprocess_onset(work: Path) -> list[str]:
    """The one-crop-per-sample cache of the flow baseline's row (this checkout's preprocess:
    751d615 has `--align onset` too, but no flow)."""
    prefix, env, cwd = cli(None)
    args = ["preprocess", "casme2", str(work / "set"), "--out", str(work / "cache-onset"), "--align", "onset",
            "--no-progress"]
    if not (work / "cache-onset" / "manifest.jsonl").is_file():
        run_logged([*prefix, *args], env, cwd, work / "logs" / "preprocess-onset.log")
    return args


def loso_args(row: Row, work: Path, seed: int, subjects: list[str] = ()) -> list[str]:
    """The row's `loso` arguments; `subjects` restricts the scored folds (others still train)."""
    cache = work / ("cache-onset" if row.align == "onset" else "cache")
    return ["loso", str(cache), "--protocol", "cde", "--out", str(work / "loso" / row.folder),
            *row.flags, "--selection", "test-best", "--workers", "1", "--seed", str(seed), "--threads", "1",
            "--quiet", "--resume", *[a for s in subjects for a in ("--subject", f"casme2/{s}")]]


def run_row(row: Row, work: Path, base: Path, seed: int, subjects: list[str] = ()) -> None:
    prefix, env, cwd = cli(base if row.base else None)
    dt = run_logged([*prefix, *loso_args(row, work, seed, subjects)], env, cwd, work / "logs" / f"{row.folder}.log")
    with open(work / "logs" / f"{row.folder}.seconds", "a") as fh:
        fh.write(f"{dt:.1f}\n")


def _scores(yt: list[int], yp: list[int]) -> tuple[float, float, list[float]]:
    """UF1, UAR and per-class recall over the classes present in the truth (MEGC 2019's pooled
    scores, as `train.reports` computes them)."""
    f1, rec = [], []
    for c in sorted(set(yt)):
        tp = sum(a == c and b == c for a, b in zip(yt, yp))
        fp = sum(a != c and b == c for a, b in zip(yt, yp))
        fn = sum(a == c and b != c for a, b in zip(yt, yp))
        f1.append(2 * tp / max(2 * tp + fp + fn, 1))
        rec.append(tp / max(tp + fn, 1))
    recall = [0.0] * 3
    for c, r in zip(sorted(set(yt)), rec):
        recall[c] = r
    return sum(f1) / len(f1), sum(rec) / len(rec), recall


def row_figures(work: Path, row: Row, subjects: set[str] | None = None) -> dict | None:
    """Pooled figures from the row's finished folds (WORK/loso/<row>/folds/*.json), so a row
    cut short still reports what it has; `subjects` keeps only those test subjects' folds."""
    folds = []
    for path in sorted((work / "loso" / row.folder / "folds").glob("*.json")):
        f = json.loads(path.read_text())
        if subjects is None or f["fold"].split("/")[-1] in subjects:
            folds.append(f)
    if not folds:
        return None
    yt = [p["y_true"] for f in folds for p in f["predictions"]]
    yp = [p["y_pred"] for f in folds for p in f["predictions"]]
    tb = []
    for f in folds:
        truth = [p["y_true"] for p in f["predictions"]]
        by_epoch = f.get("test_by_epoch") or [[p["y_pred"] for p in f["predictions"]]]
        accs = [sum(a == b for a, b in zip(truth, ep)) / len(truth) for ep in by_epoch]
        tb += list(by_epoch[accs.index(max(accs))])
    uf1, uar, recall = _scores(yt, yp)
    accs = [f["train_acc"] for f in folds if f.get("train_acc") is not None]
    secs = work / "logs" / f"{row.folder}.seconds"
    return {
        "uf1": uf1, "uar": uar, "test_best": _scores(yt, tb)[0], "n": len(yt),
        "recall": dict(zip(("negative", "positive", "surprise"), recall)),
        "train_acc": (min(accs), max(accs)) if accs else None,
        "underfit": sum(a < 0.9 for a in accs), "folds": len(folds),
        "subjects": sorted(f["fold"].split("/")[-1] for f in folds),
        "minutes": sum(float(x) for x in secs.read_text().split()) / 60 if secs.is_file() else None,
    }


def write_table(work: Path, results: Path, seed: int, base: Path, cmds: dict[str, list[str]], notes: str) -> str:
    truth_path = work / "set" / "synth_truth.json"
    truth = json.loads(truth_path.read_text()) if truth_path.is_file() else {"micro": []}
    from collections import Counter

    classes = Counter(s["cls"] for s in truth["micro"])
    sources = Counter("real motion" if s["source"] != "au" else "AU pattern" for s in truth["micro"])
    lines = [
        "# Proxy calibration (generated data): the current methods on the real-data proxy beside real CASME II",
        "",
        f"Proxy: `moext-train synth --style realproxy`, seed {seed}: {len(truth['micro'])} samples of "
        f"{len(truth.get('subjects', {}))} subjects ({', '.join(f'{k} {v}' for k, v in sorted(classes.items()))}; "
        f"{', '.join(f'{k} {v}' for k, v in sorted(sources.items()))}), 640x480 at 200 fps. Real: issue 24's "
        "142 CASME II samples of 24 subjects (85/32/25), measured independently, not in this repository. "
        "`--protocol cde`, leave-one-subject-out (the folds column says how many of the 24 subjects were scored; every fold trains on the other 23); strict = fixed schedule, last epoch; "
        "test-best = each subject's best epoch on its own test fold (optimistic, for comparison with "
        "published figures only). MoExt and MIACNet: the code before issue 24's changes (commit 751d615); "
        "the flow baseline: this checkout.",
        "",
        "Proxy settings of this set (`synth_truth.json` config): " + ", ".join(
            f"{k} {truth.get('config', {}).get(k)}" for k in (
                "amplitude_iod", "amplitude_draw", "noise_sigma", "flicker", "jpeg_quality", "drift_px", "pose_deg",
                "pose_shift_iod", "pose_scale", "pose_yaw_deg", "rest_iod", "real_share", "partial_share",
                "one_sided_share", "shading") if k in truth.get("config", {})) + ".",
        "",
        "| row | real strict UF1 / UAR | proxy strict UF1 / UAR | proxy - real (UF1) | real test-best | "
        "proxy test-best | real training acc. | proxy training acc. (folds < 0.9) | proxy recall neg / pos / sur | "
        "proxy folds (samples) | minutes |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for row in ROWS.values():
        f = row_figures(work, row)
        if f is None:
            lines.append(f"| {row.label} | {row.real_uf1:.3f} / {row.real_uar:.3f} | not run | - | "
                         f"{row.real_test_best:.3f} | - | {row.real_train_acc} | - | - | - | - |")
            continue
        rec = " / ".join(f"{f['recall'].get(c, float('nan')):.2f}" for c in ("negative", "positive", "surprise"))
        ta = f"{f['train_acc'][0]:.2f}-{f['train_acc'][1]:.2f} ({f['underfit']} of {f['folds']} folds)" if f["train_acc"] else "-"
        tb = f"{f['test_best']:.3f}" if f["test_best"] is not None else "-"
        mins = f"{f['minutes']:.0f}" if f["minutes"] is not None else "-"
        lines.append(f"| {row.label} | {row.real_uf1:.3f} / {row.real_uar:.3f} | {f['uf1']:.3f} / {f['uar']:.3f} | "
                     f"{f['uf1'] - row.real_uf1:+.3f} | {row.real_test_best:.3f} | {tb} | {row.real_train_acc} | "
                     f"{ta} | {rec} | {f['folds']} ({f['n']}) | {mins} |")
    got = {name: row_figures(work, row) for name, row in ROWS.items()}
    sets = [set(f["subjects"]) for f in got.values() if f is not None]
    common = set.intersection(*sets) if sets else set()
    if len(sets) > 1 and any(s != common for s in sets) and common:
        lines += ["", f"The same rows on the {len(common)} folds every row has ({', '.join(sorted(common))}): "
                  "a row cut short is compared with the others on equal folds here."]
        lines += ["", "| row | real strict UF1 | proxy strict UF1 / UAR | proxy - real | proxy test-best | "
                  "proxy training acc. | samples |", "|---|---|---|---|---|---|---|"]
        for name, row in ROWS.items():
            f = row_figures(work, row, common)
            if f is not None:
                lines.append(f"| {name} | {row.real_uf1:.3f} | {f['uf1']:.3f} / {f['uar']:.3f} | "
                             f"{f['uf1'] - row.real_uf1:+.3f} | {f['test_best']:.3f} | "
                             f"{f['train_acc'][0]:.2f}-{f['train_acc'][1]:.2f} | {f['n']} |")
    lines += ["", "Real rows' notes: " + "; ".join(f"{r.name}: {r.real_note}" for r in ROWS.values()), ""]
    if notes:
        lines += [notes, ""]
    import shlex

    lines += ["## Commands", "", "Rows that score fewer than 24 folds were run with `--subject casme2/subXX` "
              "for the folds named (benchmark flag `--subjects`) and/or stopped early for CPU time; each "
              "command resumes a stopped row (`--resume`).", "", "```", f"git worktree add {base} 751d615",
              "# the proxy (generation only: no rows):", shlex.join(cmds["generate"]),
              f"(cd {base} && PYTHONPATH={base} python -m train.cli {shlex.join(cmds['preprocess'])})",
              f"PYTHONPATH=. python -m train.cli {shlex.join(cmds['preprocess-onset'])}"]
    for name, args in cmds.items():
        if name in ROWS:
            where = base if ROWS[name].base else ROOT
            lines.append(f"(cd {where} && PYTHONPATH={where} nice -n 10 python -m train.cli {shlex.join(args)})")
    gen = cmds["generate"]
    proxy = gen[gen.index("--rows") + 1:]  # the round's --proxy settings
    made = shlex.join(["python", "benchmarks/proxy_calibration.py", "--work", str(work), "--base", str(base),
                       "--seed", str(seed), *proxy])
    lines += ["```", "", f"Made by `{made}`.", ""]
    text = "\n".join(lines)
    results.parent.mkdir(parents=True, exist_ok=True)
    results.write_text(text)
    return text


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--work", type=Path, required=True, help="working folder (set, cache, loso runs, logs)")
    ap.add_argument("--base", type=Path, default=Path("/tmp/moext-base"),
                    help="worktree of commit 751d615 (git worktree add /tmp/moext-base 751d615)")
    ap.add_argument("--rows", nargs="*", default=list(ROWS), choices=list(ROWS), help="rows to run")
    ap.add_argument("--seed", type=int, default=0, help="the proxy's seed and the runs' seed")
    ap.add_argument("--proxy", action="append", default=[], metavar="KEY=JSON",
                    help="a RealProxyConfig setting for this round, e.g. amplitude_iod=[0.01,0.035] (repeatable)")
    ap.add_argument("--subjects", nargs="*", default=[], help="score only these test subjects (subXX), e.g. "
                    "when the CPU time for all 24 folds is not there; the table says how many folds a row has")
    ap.add_argument("--results", type=Path, default=RESULTS)
    ap.add_argument("--notes", default="", help="a paragraph written under the table")
    ap.add_argument("--report-only", action="store_true", help="write the table from what is there")
    args = ap.parse_args()
    if not (args.base / "train" / "cli.py").is_file():
        raise SystemExit(f"no base checkout at {args.base}: run `git worktree add {args.base} 751d615` first")
    work = args.work.resolve()
    cmds: dict[str, list[str]] = {}
    if not args.report_only:
        cmds["generate"] = generate(work, args.seed, args.proxy)
        cmds["preprocess"] = preprocess(work, args.base)
        if any(ROWS[r].align == "onset" for r in args.rows):
            cmds["preprocess-onset"] = preprocess_onset(work)
    else:
        cmds["generate"] = ["python", "benchmarks/proxy_calibration.py", "--work", str(work), "--seed", str(args.seed),
                            "--rows", *[a for o in args.proxy for a in ("--proxy", o)]]
        cmds["preprocess"] = ["preprocess", "casme2", str(work / "set"), "--out", str(work / "cache"), "--no-progress"]
    cmds.setdefault("preprocess-onset", ["preprocess", "casme2", str(work / "set"), "--out", str(work / "cache-onset"),
                                         "--align", "onset", "--no-progress"])
    for name in ROWS:
        cmds[name] = loso_args(ROWS[name], work, args.seed)
    for name in args.rows if not args.report_only else []:
        run_row(ROWS[name], work, args.base, args.seed, args.subjects)
    print(write_table(work, args.results, args.seed, args.base, cmds, args.notes))


if __name__ == "__main__":
    main()
