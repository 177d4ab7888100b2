"""Run reports: predictions CSV, metrics JSON, a Markdown table laid out like the paper's,
the confusion-matrix PNG and the loss-curves PNG. Every file is written atomically."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from moext.io import atomic_write_bytes, atomic_write_text
from train.metrics import confusion, scores

# CDE per-dataset columns in the paper's Table 6 order: manifest dataset id -> title.
CDE_DATASETS = {"smic-hs": "SMIC-HS", "casme2": "CASME II", "samm": "SAMM"}


def write_json(path: Path, obj: Any) -> None:
    atomic_write_text(path, json.dumps(obj, indent=2))


def write_text(path: Path, text: str) -> None:
    atomic_write_text(path, text)


def _figure_bytes(fig) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=120, bbox_inches="tight")
    import matplotlib.pyplot as plt

    plt.close(fig)
    return buf.getvalue()


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")  # files only: no display on training machines
    import matplotlib.pyplot as plt

    return plt


def plot_loss_curves(curves: dict[str, list[dict[str, float]]], path: Path, title: str = "training loss") -> None:
    """One line per (run, loss part) over epochs. `curves`: label -> history records."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(6.4, 4.0))
    many = len(curves) > 6
    for label, hist in curves.items():
        if not hist:
            continue
        epochs = [h["epoch"] for h in hist]
        keys = ["total"] if many else [k for k in hist[0] if k not in ("epoch",) and not k.startswith("val_")]
        for k in keys:
            if k in hist[0]:
                ax.plot(epochs, [h[k] for h in hist], lw=1 if many else 1.5, alpha=0.6 if many else 1.0,
                        label=None if many else (f"{label} {k}" if len(curves) > 1 else k))
    ax.set_xlabel("epoch")
    ax.set_ylabel("loss")
    ax.set_title(title + (f" ({len(curves)} folds, total loss)" if many else ""))
    if not many and ax.get_legend_handles_labels()[0]:
        ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    atomic_write_bytes(path, _figure_bytes(fig))


def plot_confusion(cm: np.ndarray, class_names: Sequence[str], path: Path, title: str) -> None:
    plt = _pyplot()
    cm = np.asarray(cm)
    rows = cm.sum(axis=1, keepdims=True)
    frac = np.divide(cm, rows, out=np.zeros(cm.shape, dtype=float), where=rows > 0)
    fig, ax = plt.subplots(figsize=(1.2 * len(class_names) + 2.5, 1.1 * len(class_names) + 2))
    ax.imshow(frac, cmap="Blues", vmin=0, vmax=1)
    ax.set_xticks(range(len(class_names)), class_names, rotation=30, ha="right")
    ax.set_yticks(range(len(class_names)), class_names)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    for i in range(len(class_names)):
        for j in range(len(class_names)):
            ax.text(j, i, f"{cm[i, j]}\n{frac[i, j]:.2f}", ha="center", va="center",
                    color="white" if frac[i, j] > 0.5 else "black", fontsize=8)
    ax.set_title(title)
    atomic_write_bytes(path, _figure_bytes(fig))


PRED_FIELDS = ["fold", "subject", "dataset", "sample", "y_true", "y_pred", "true_class", "pred_class"]


def write_predictions(path: Path, preds: list[dict[str, Any]], class_names: Sequence[str]) -> None:
    """One row per test sample of every fold, with the class probabilities."""
    buf = io.StringIO()
    fields = PRED_FIELDS + [f"p_{c}" for c in class_names]
    w = csv.DictWriter(buf, fieldnames=fields, extrasaction="ignore")
    w.writeheader()
    for p in preds:
        row = {k: p[k] for k in PRED_FIELDS}
        row.update({f"p_{c}": f"{v:.6f}" for c, v in zip(class_names, p["probs"])})
        w.writerow(row)
    write_text(path, buf.getvalue())


def loso_metrics(preds: list[dict[str, Any]], class_names: Sequence[str], protocol: str) -> dict[str, Any]:
    """Pooled (headline) scores, per-class figures, mean of folds, and per-dataset breakdown."""
    k = len(class_names)
    yt = [p["y_true"] for p in preds]
    yp = [p["y_pred"] for p in preds]
    present = present_classes(yt)
    pooled = scores(yt, yp, k, labels=present)
    folds: dict[str, list[dict[str, Any]]] = {}
    for p in preds:
        folds.setdefault(p["fold"], []).append(p)
    per_fold = {
        f: scores([p["y_true"] for p in ps], [p["y_pred"] for p in ps], k) for f, ps in sorted(folds.items())
    }
    datasets = sorted({p["dataset"] for p in preds})
    by_dataset = {}
    if len(datasets) > 1 or protocol == "cde":
        for ds in datasets:
            sub = [p for p in preds if p["dataset"] == ds]
            sub_true = [p["y_true"] for p in sub]
            s = scores(sub_true, [p["y_pred"] for p in sub], k, labels=present_classes(sub_true))
            by_dataset[ds] = {"uf1": s.uf1, "uar": s.uar, "acc": s.acc, "n": s.n}
    return {
        "protocol": protocol,
        "class_names": list(class_names),
        "note": (
            "pooled: one confusion matrix over the predictions of all folds (MEGC 2019; the "
            "headline); UF1 and UAR average over the classes present in the ground truth "
            f"({', '.join(class_names[c] for c in present)}): a protocol class no test sample "
            "has does not enter as F1 = 0. mean_of_folds: the mean of per-fold scores, each over "
            "the classes present in that fold; a different number, for reference only."
        ),
        "classes_scored": [class_names[c] for c in present],
        "pooled": {"uf1": pooled.uf1, "uar": pooled.uar, "acc": pooled.acc, "n": pooled.n},
        "per_class": {
            c: {"precision": pooled.precision[i], "recall": pooled.recall[i], "f1": pooled.f1[i],
                "support": pooled.support[i]}
            for i, c in enumerate(class_names)
        },
        "confusion": confusion(yt, yp, k).tolist(),
        "by_dataset": by_dataset,
        "mean_of_folds": {
            key: float(np.mean([getattr(s, key) for s in per_fold.values()])) if per_fold else 0.0
            for key in ("uf1", "uar", "acc")
        },
        "folds": {f: {"uf1": s.uf1, "uar": s.uar, "acc": s.acc, "n": s.n} for f, s in per_fold.items()},
    }


def present_classes(y_true: Sequence[int]) -> list[int]:
    """The classes the macro averages run over: those with at least one true sample (MEGC
    practice; see docs/TRAINING.md, "Metrics")."""
    return sorted({int(y) for y in y_true})


def _f(x: float) -> str:
    return f"{x:.4f}"


def results_table(rows: list[tuple[str, dict[str, Any]]], protocol: str) -> str:
    """Markdown like the paper: Table 6 for CDE (composite + per dataset, UF1/UAR), Tables 3-5
    (ACC, UF1, UAR) for a single dataset. `rows`: (method label, loso_metrics dict)."""
    if protocol == "cde":
        cols = ["Composite"] + [CDE_DATASETS[d] for d in CDE_DATASETS]
        head = "| Method | " + " | ".join(f"{c} UF1 | {c} UAR" for c in cols) + " |"
        sep = "|---|" + "---|---|" * len(cols)
        lines = [head, sep]
        for label, m in rows:
            cells = [_f(m["pooled"]["uf1"]), _f(m["pooled"]["uar"])]
            for d in CDE_DATASETS:
                b = m["by_dataset"].get(d)
                cells += [_f(b["uf1"]), _f(b["uar"])] if b else ["–", "–"]
            lines.append(f"| {label} | " + " | ".join(cells) + " |")
    else:
        lines = ["| Method | ACC | UF1 | UAR |", "|---|---|---|---|"]
        for label, m in rows:
            p = m["pooled"]
            lines.append(f"| {label} | {_f(p['acc'])} | {_f(p['uf1'])} | {_f(p['uar'])} |")
    return "\n".join(lines) + "\n"


def per_class_table(m: dict[str, Any]) -> str:
    lines = ["| Class | Precision | Recall | F1 | Support |", "|---|---|---|---|---|"]
    for c, v in m["per_class"].items():
        lines.append(f"| {c} | {_f(v['precision'])} | {_f(v['recall'])} | {_f(v['f1'])} | {v['support']} |")
    return "\n".join(lines) + "\n"


def loso_markdown(label: str, m: dict[str, Any], header: str = "", optimistic_label: str = "optimistic") -> str:
    mof = m["mean_of_folds"]
    rows = [(label, m)]
    if m.get("test_best"):  # only ever beside the strict row, and labelled
        rows.append((f"{label} ({optimistic_label})", m["test_best"]))
    acc = {k: v for k, v in (m.get("train_acc") or {}).items() if v is not None}
    fit_line = ""
    if acc:
        fit_line = ("\nTraining accuracy per fold (eval mode, un-augmented training pairs): "
                    + ", ".join(f"{k.split('/')[-1]} {v:.3f}" for k, v in acc.items())
                    + f"; lowest {min(acc.values()):.3f}.\n")
    scored = m.get("classes_scored")
    t = m.get("time_per_fold")
    run_line = f"Preset: `--recipe {m['recipe']}`" if m.get("recipe") else "Preset: none recorded"
    if t:
        run_line += (f"; time per fold {t['median_s']:.0f} s median ({t['min_s']:.0f}-{t['max_s']:.0f} s), "
                     f"{t['total_s'] / 60:.1f} min in all, torch threads per fold {t['threads']}")
    if not m.get("test_best") and t:
        run_line += "; no per-epoch test predictions were kept (a run from before they were), so no optimistic row"
    return (
        (header + "\n\n" if header else "")
        + f"## {m['protocol']} leave-one-subject-out, {len(m['folds'])} folds, {m['pooled']['n']} samples\n\n"
        + run_line + ".\n\n"
        + "Pooled over all folds (MEGC 2019, the headline"
        + (f"; UF1/UAR over the classes present in the ground truth: {', '.join(scored)}" if scored else "")
        + "):\n\n"
        + results_table(rows, m["protocol"])
        + fit_line
        + "\nPer class (pooled):\n\n"
        + per_class_table(m)
        + "\nMean of per-fold scores (each fold over the classes it contains; not comparable "
        + f"with pooled figures): UF1 {_f(mof['uf1'])}, UAR {_f(mof['uar'])}, ACC {_f(mof['acc'])}\n"
    )
