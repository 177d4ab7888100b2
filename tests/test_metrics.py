"""UF1 / UAR / ACC against scikit-learn's macro F1, macro recall and accuracy."""

import numpy as np
import pytest
from sklearn.metrics import accuracy_score, f1_score, recall_score

from train import metrics


@pytest.mark.parametrize("seed", range(20))
def test_metrics_equal_sklearn_on_random_labels(seed):
    rng = np.random.default_rng(seed)
    k = int(rng.integers(2, 7))
    n = int(rng.integers(1, 60))
    y_true = rng.integers(0, k, n)
    # Predict from a subset of classes so some classes are never predicted.
    allowed = rng.choice(k, size=int(rng.integers(1, k + 1)), replace=False)
    y_pred = rng.choice(allowed, n)
    s = metrics.scores(y_true, y_pred, k)
    assert s.uf1 == pytest.approx(f1_score(y_true, y_pred, average="macro", zero_division=0))
    assert s.uar == pytest.approx(recall_score(y_true, y_pred, average="macro", zero_division=0))
    assert s.acc == pytest.approx(accuracy_score(y_true, y_pred))
    # Over every class of the protocol, as the pooled LOSO figures are computed.
    labels = list(range(k))
    s_all = metrics.scores(y_true, y_pred, k, labels=labels)
    assert s_all.uf1 == pytest.approx(
        f1_score(y_true, y_pred, labels=labels, average="macro", zero_division=0)
    )
    assert s_all.uar == pytest.approx(
        recall_score(y_true, y_pred, labels=labels, average="macro", zero_division=0)
    )
    assert s_all.f1 == pytest.approx(list(f1_score(y_true, y_pred, labels=labels, average=None, zero_division=0)))


def test_never_predicted_class_scores_zero_f1():
    y_true = [0, 0, 1, 1, 2, 2]
    y_pred = [0, 0, 1, 1, 1, 1]  # class 2 never predicted
    s = metrics.scores(y_true, y_pred, 3)
    assert s.f1[2] == 0.0 and s.recall[2] == 0.0
    assert s.uf1 == pytest.approx((1.0 + 2 / 3 + 0.0) / 3)
    assert s.uar == pytest.approx((1.0 + 1.0 + 0.0) / 3)
    assert s.acc == pytest.approx(4 / 6)


def test_pooled_differs_from_mean_of_folds_and_is_labelled():
    # Fold A: one subject with only class 0, all right; fold B: classes 1 and 2, half right.
    folds = [([0, 0], [0, 0]), ([1, 2, 1, 2], [1, 1, 1, 1])]
    out = metrics.pooled_and_fold_mean(folds, 3)
    yt = [0, 0, 1, 2, 1, 2]
    yp = [0, 0, 1, 1, 1, 1]
    assert out["pooled"]["uf1"] == pytest.approx(f1_score(yt, yp, labels=[0, 1, 2], average="macro", zero_division=0))
    fold_uf1 = [1.0, f1_score([1, 2, 1, 2], [1, 1, 1, 1], average="macro", zero_division=0)]
    assert out["mean_of_folds"]["uf1"] == pytest.approx(np.mean(fold_uf1))
    assert out["pooled"]["uf1"] != pytest.approx(out["mean_of_folds"]["uf1"])


def test_bad_labels_are_rejected():
    with pytest.raises(ValueError, match=r"\[0, 3\)"):
        metrics.scores([0, 3], [0, 1], 3)


def test_pooled_scores_average_over_the_classes_present_in_the_ground_truth():
    """A 3-class set scored under a 5-class protocol: classes no test sample has must not
    enter as F1 = 0 (before, such a set reported 0.243 where its own predictions give 0.405)."""
    from train.reports import loso_metrics

    names = ["happiness", "repression", "disgust", "surprise", "others"]
    yt = [0, 0, 2, 2, 3, 3, 0, 2, 3]
    yp = [0, 2, 2, 0, 3, 1, 0, 2, 4]  # some predictions fall on classes absent from the truth
    preds = [{"fold": f"casme2/s{i % 3}", "dataset": "casme2", "y_true": t, "y_pred": p} for i, (t, p) in enumerate(zip(yt, yp))]
    m = loso_metrics(preds, names, "casme2-5")
    present = [0, 2, 3]
    assert m["classes_scored"] == ["happiness", "disgust", "surprise"]
    assert m["pooled"]["uf1"] == pytest.approx(f1_score(yt, yp, labels=present, average="macro", zero_division=0))
    assert m["pooled"]["uar"] == pytest.approx(recall_score(yt, yp, labels=present, average="macro", zero_division=0))
    all5 = f1_score(yt, yp, labels=list(range(5)), average="macro", zero_division=0)
    assert m["pooled"]["uf1"] > all5  # the old convention's figure, dragged down by two F1 = 0 classes
    assert "present in the ground truth" in m["note"]


def test_learning_rate_schedule_warms_up_then_decays():
    from train.config import OptimConfig

    c = OptimConfig(epochs=10, lr=1e-3, schedule="cosine", warmup_epochs=1, min_lr_ratio=0.01)
    assert c.lr_at(0) == pytest.approx(1e-4) and c.lr_at(0.5) == pytest.approx(5.5e-4)
    assert c.lr_at(1) == pytest.approx(1e-3) and c.lr_at(10) == pytest.approx(1e-5)
    assert c.lr_at(3) > c.lr_at(6) > c.lr_at(9)
    assert OptimConfig(lr=2e-4).lr_at(7.3) == 2e-4  # the paper's constant rate
