"""MEGC 2019 metrics (paper eq. 10-13): UF1, UAR, ACC, from a confusion matrix.

Convention (docs/TRAINING.md, "Metrics"): the predictions of all LOSO folds are pooled and the
metrics computed once on the pooled confusion matrix; that is the headline, and its UF1/UAR
average over the classes present in the ground truth (a protocol class no test sample has
would otherwise enter as F1 = 0). A mean of per-fold scores is a different number (a fold
holds one subject and often not every class) and is reported separately, labelled as such.

Which classes a macro average runs over: the classes given in `labels`, or, when None, those
that occur in the true or the predicted labels (scikit-learn's rule). A class in the set that
is never predicted has precision 0 and F1 0; one that never occurs has recall 0 (scikit-learn
with `zero_division=0`).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Sequence

import numpy as np


def confusion(y_true: Sequence[int], y_pred: Sequence[int], num_classes: int) -> np.ndarray:
    """(K, K) int64 counts; rows are true classes, columns predicted."""
    yt, yp = np.asarray(y_true, dtype=np.int64), np.asarray(y_pred, dtype=np.int64)
    if yt.shape != yp.shape:
        raise ValueError(f"y_true has {yt.shape} labels but y_pred {yp.shape}")
    if yt.size and (min(yt.min(), yp.min()) < 0 or max(yt.max(), yp.max()) >= num_classes):
        raise ValueError(f"labels must lie in [0, {num_classes}); got {sorted(set(yt) | set(yp))}")
    cm = np.zeros((num_classes, num_classes), dtype=np.int64)
    np.add.at(cm, (yt, yp), 1)
    return cm


@dataclass
class Scores:
    """UF1, UAR, ACC and the per-class figures they average (indexed by class id)."""

    uf1: float
    uar: float
    acc: float
    n: int
    classes: list[int]
    precision: list[float]
    recall: list[float]
    f1: list[float]
    support: list[int]

    def to_dict(self) -> dict:
        return asdict(self)


def _safe_div(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return np.divide(a, b, out=np.zeros_like(a, dtype=np.float64), where=b > 0)


def scores_from_confusion(cm: np.ndarray, labels: Sequence[int] | None = None) -> Scores:
    """Eq. 10-13 from a confusion matrix.

    F1_c = 2 TP_c / (2 TP_c + FP_c + FN_c) (eq. 10); UF1 = mean_c F1_c (eq. 11);
    UAR = mean_c TP_c / N_c (eq. 12); ACC = sum TP / N (eq. 13).
    """
    cm = np.asarray(cm, dtype=np.int64)
    tp = np.diag(cm).astype(np.float64)
    support = cm.sum(axis=1).astype(np.float64)  # N_c: true samples of class c
    predicted = cm.sum(axis=0).astype(np.float64)
    precision = _safe_div(tp, predicted)
    recall = _safe_div(tp, support)
    f1 = _safe_div(2 * tp, support + predicted)  # = 2TP / (2TP + FP + FN)
    if labels is None:
        labels = [c for c in range(len(cm)) if support[c] > 0 or predicted[c] > 0]
    labels = list(labels)
    n = int(cm.sum())
    return Scores(
        uf1=float(f1[labels].mean()) if labels else 0.0,
        uar=float(recall[labels].mean()) if labels else 0.0,
        acc=float(tp.sum() / n) if n else 0.0,
        n=n,
        classes=labels,
        precision=[float(v) for v in precision],
        recall=[float(v) for v in recall],
        f1=[float(v) for v in f1],
        support=[int(v) for v in support],
    )


def scores(
    y_true: Sequence[int], y_pred: Sequence[int], num_classes: int, labels: Sequence[int] | None = None
) -> Scores:
    return scores_from_confusion(confusion(y_true, y_pred, num_classes), labels)


def uf1(y_true, y_pred, num_classes: int, labels=None) -> float:
    return scores(y_true, y_pred, num_classes, labels).uf1


def uar(y_true, y_pred, num_classes: int, labels=None) -> float:
    return scores(y_true, y_pred, num_classes, labels).uar


def accuracy(y_true, y_pred) -> float:
    yt, yp = np.asarray(y_true), np.asarray(y_pred)
    return float((yt == yp).mean()) if yt.size else 0.0


def pooled_and_fold_mean(
    folds: Sequence[tuple[Sequence[int], Sequence[int]]], num_classes: int
) -> dict[str, dict[str, float]]:
    """The headline pooled scores and, separately, the mean of per-fold scores.

    Pooled runs over the classes present in the pooled ground truth; each fold's scores run
    over the classes that occur in that fold (scikit-learn's rule), which is why the two differ.
    """
    yt = np.concatenate([np.asarray(t, dtype=np.int64) for t, _ in folds]) if folds else np.zeros(0, np.int64)
    yp = np.concatenate([np.asarray(p, dtype=np.int64) for _, p in folds]) if folds else np.zeros(0, np.int64)
    pooled = scores(yt, yp, num_classes, labels=sorted({int(v) for v in yt}))
    per_fold = [scores(t, p, num_classes) for t, p in folds]
    mean = {
        k: float(np.mean([getattr(s, k) for s in per_fold])) if per_fold else 0.0
        for k in ("uf1", "uar", "acc")
    }
    return {
        "pooled": {"uf1": pooled.uf1, "uar": pooled.uar, "acc": pooled.acc},
        "mean_of_folds": mean,
    }
