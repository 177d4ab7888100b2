"""Compare LOSO runs on the folds they share: pooled strict UF1 / UAR, the optimistic
test-fold figure, training accuracy and per-class recall, from each run's `folds/*.json`.

Runs cut short, or run on a subset of subjects (`--subject`), are compared only on the test
subjects every run finished, so the rows are always the same samples. Prints a Markdown
table and writes it with `--out`.

    python benchmarks/compare_runs.py NAME=RUN_DIR NAME=RUN_DIR ... [--out table.md] [--title T]
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from train.metrics import scores


def load_folds(run: Path) -> dict[str, dict]:
    return {json.loads(p.read_text())["fold"]: json.loads(p.read_text()) for p in sorted((run / "folds").glob("*.json"))}


def summarise(folds: list[dict], k: int) -> dict:
    preds = [p for f in folds for p in f["predictions"]]
    yt = np.array([p["y_true"] for p in preds])
    yp = np.array([p["y_pred"] for p in preds])
    present = sorted(set(yt.tolist()))
    s = scores(yt.tolist(), yp.tolist(), k, labels=present)
    out = {"n": len(yt), "uf1": s.uf1, "uar": s.uar, "recall": {c: float((yp[yt == c] == c).mean()) for c in present},
           "train_acc": [f.get("train_acc") for f in folds], "seconds": [f.get("seconds") for f in folds]}
    if all(f.get("test_by_epoch") for f in folds):
        t, b = [], []
        for f in folds:
            truth = [p["y_true"] for p in f["predictions"]]
            accs = [np.mean([a == c for a, c in zip(truth, ep)]) for ep in f["test_by_epoch"]]
            best = f["test_by_epoch"][int(np.argmax(accs))]
            t += truth
            b += list(best)
        out["test_best_uf1"] = scores(t, b, k, labels=present).uf1
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("runs", nargs="+", help="NAME=RUN_DIR (a LOSO --out directory)")
    ap.add_argument("--out", type=Path, help="also write the table here (Markdown)")
    ap.add_argument("--title", default="LOSO runs on their shared folds")
    args = ap.parse_args()
    runs = {}
    for item in args.runs:
        name, _, path = item.partition("=")
        runs[name] = load_folds(Path(path))
    shared = sorted(set.intersection(*(set(f) for f in runs.values())))
    if not shared:
        raise SystemExit("the runs share no finished fold")
    k = len(next(iter(next(iter(runs.values())).values()))["predictions"][0]["probs"])
    lines = [f"# {args.title}", "",
             f"Shared folds ({len(shared)}): {', '.join(s.split('/')[-1] for s in shared)}.", "",
             "| run | n | strict UF1 | strict UAR | test-best UF1 (optimistic) | training acc. min-max | recall by class | s per fold (median) |",
             "|---|---|---|---|---|---|---|---|"]
    for name, folds in runs.items():
        s = summarise([folds[f] for f in shared], k)
        acc = [a for a in s["train_acc"] if a is not None]
        secs = [x for x in s["seconds"] if x is not None]
        rec = " / ".join(f"{v:.2f}" for v in s["recall"].values())
        tb = f"{s['test_best_uf1']:.3f}" if "test_best_uf1" in s else "-"
        lines.append(f"| {name} | {s['n']} | {s['uf1']:.3f} | {s['uar']:.3f} | {tb} | "
                     f"{min(acc):.2f}-{max(acc):.2f} | {rec} | {np.median(secs):.0f} |" if secs else
                     f"| {name} | {s['n']} | {s['uf1']:.3f} | {s['uar']:.3f} | {tb} | "
                     f"{min(acc):.2f}-{max(acc):.2f} | {rec} | - |")
    text = "\n".join(lines) + "\n"
    print(text)
    if args.out:
        args.out.write_text(text)


if __name__ == "__main__":
    main()
