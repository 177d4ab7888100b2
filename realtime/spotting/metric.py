"""The MEGC spotting metric: a predicted interval is a true positive when its IoU with a
not yet matched ground-truth interval is >= 0.5; precision, recall and F1 over intervals."""

from __future__ import annotations

from dataclasses import dataclass


def interval_iou(a: tuple[float, float], b: tuple[float, float]) -> float:
    """IoU of two closed frame intervals [onset, offset] (frames counted inclusively)."""
    inter = min(a[1], b[1]) - max(a[0], b[0]) + 1
    if inter <= 0:
        return 0.0
    union = (a[1] - a[0] + 1) + (b[1] - b[0] + 1) - inter
    return inter / union


@dataclass
class SpottingScore:
    tp: int
    fp: int
    fn: int

    @property
    def precision(self) -> float:
        return self.tp / (self.tp + self.fp) if self.tp + self.fp else 0.0

    @property
    def recall(self) -> float:
        return self.tp / (self.tp + self.fn) if self.tp + self.fn else 0.0

    @property
    def f1(self) -> float:
        p, r = self.precision, self.recall
        return 2 * p * r / (p + r) if p + r else 0.0

    def to_dict(self) -> dict[str, float]:
        return {"tp": self.tp, "fp": self.fp, "fn": self.fn, "precision": self.precision,
                "recall": self.recall, "f1": self.f1}


def score_intervals(
    predicted: list[tuple[float, float]], truth: list[tuple[float, float]], iou: float = 0.5
) -> SpottingScore:
    """MEGC spotting: a prediction is a true positive when its IoU with a not yet matched
    ground-truth interval is >= `iou` (greedy, best IoU first); frame intervals [on, off]."""
    pairs = sorted(
        ((interval_iou(p, g), i, j) for i, p in enumerate(predicted) for j, g in enumerate(truth)),
        reverse=True,
    )
    used_p, used_g = set(), set()
    for v, i, j in pairs:
        if v < iou:
            break
        if i in used_p or j in used_g:
            continue
        used_p.add(i)
        used_g.add(j)
    tp = len(used_p)
    return SpottingScore(tp=tp, fp=len(predicted) - tp, fn=len(truth) - tp)
