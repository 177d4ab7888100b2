"""LOSO: no subject leaks between training, selection and test; reports agree with
scikit-learn on the predictions they list; --resume redoes only unfinished folds."""

import csv
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from sklearn.metrics import accuracy_score, f1_score, recall_score
from train_data_helpers import TINY_MODEL, make_cache

from train.config import AugmentConfig, LosoConfig, OptimConfig, RunConfig, TrainError
from train.loso import fold_file, loso

REPORT_FILES = ("config.json", "predictions.csv", "metrics.json", "results.md", "confusion_matrix.png",
                "loss_curves.png")


def _cfg(cache, **kw):
    run = RunConfig(model=dict(TINY_MODEL), optim=OptimConfig(batch_size=6, epochs=2),
                    augment=AugmentConfig(repeats=1), caches=[str(cache)], protocol="cde")
    return LosoConfig(run=run, **kw)


@pytest.fixture(scope="module")
def inner_val_run(tmp_path_factory):
    torch.set_num_threads(1)
    tmp = tmp_path_factory.mktemp("loso")
    cache = make_cache(tmp / "cache", subjects=4)
    out = tmp / "run"
    metrics = loso(_cfg(cache, selection="inner-val", val_subjects=1), out, progress=False)
    return cache, out, metrics


def test_folds_record_disjoint_train_select_test_subjects(inner_val_run):
    cache, out, metrics = inner_val_run
    subjects = {f"casme2/sub{i:02d}" for i in range(1, 5)}
    folds = [json.loads(p.read_text()) for p in sorted((out / "folds").glob("*.json"))]
    assert {f["fold"] for f in folds} == subjects
    for f in folds:
        train, sel, test = set(f["trained_on"]), set(f["selected_on"]), set(f["tested_on"])
        assert test == {f["fold"]}
        assert len(sel) == 1 and train  # inner-val held out one training subject
        assert not (train & test) and not (sel & test) and not (train & sel)
        assert train | sel | test == subjects
        # Every prediction of the fold is of its test subject.
        assert {p["subject"] for p in f["predictions"]} == test
        assert 1 <= f["selected_epoch"] <= 2
        assert all("val_uf1" in h for h in f["history"])
    assert metrics["leakage"][folds[0]["fold"]]["tested_on"] == folds[0]["tested_on"]


def test_reports_exist_and_pooled_metrics_match_sklearn(inner_val_run):
    _, out, metrics = inner_val_run
    for name in REPORT_FILES:
        assert (out / name).is_file() and (out / name).stat().st_size > 0, name
    with open(out / "predictions.csv") as fh:
        rows = list(csv.DictReader(fh))
    assert len(rows) == 4 * 3  # every test sample of every fold, once
    yt = [int(r["y_true"]) for r in rows]
    yp = [int(r["y_pred"]) for r in rows]
    saved = json.loads((out / "metrics.json").read_text())
    labels = [0, 1, 2]
    assert saved["pooled"]["uf1"] == pytest.approx(f1_score(yt, yp, labels=labels, average="macro", zero_division=0))
    assert saved["pooled"]["uar"] == pytest.approx(recall_score(yt, yp, labels=labels, average="macro", zero_division=0))
    assert saved["pooled"]["acc"] == pytest.approx(accuracy_score(yt, yp))
    assert set(saved["folds"]) == {f"casme2/sub{i:02d}" for i in range(1, 5)}
    assert "mean_of_folds" in saved and "pooled" in (out / "results.md").read_text().lower()


def test_resume_redoes_only_missing_folds(inner_val_run, tmp_path):
    cache, out, _ = inner_val_run
    cfg = _cfg(cache, selection="inner-val", val_subjects=1)
    with pytest.raises(TrainError, match="--resume"):
        loso(cfg, out, progress=False)
    gone = fold_file(out, "casme2/sub02")
    kept = fold_file(out, "casme2/sub03")
    kept_before = kept.read_text()
    gone.unlink()
    # A marker in a finished fold proves it is reused, not recomputed.
    fold = json.loads(kept_before)
    fold["marker"] = "kept"
    kept.write_text(json.dumps(fold))
    loso(cfg, out, resume=True, progress=False)
    assert gone.is_file()
    assert json.loads(kept.read_text())["marker"] == "kept"
    # Other settings are not silently merged into the finished folds.
    with pytest.raises(TrainError, match="other settings"):
        loso(_cfg(cache, selection="fixed"), out, resume=True, progress=False)


@pytest.mark.slow
def test_fixed_schedule_with_parallel_workers(tmp_path):
    torch.set_num_threads(1)
    cache = make_cache(tmp_path / "cache", subjects=3)
    cfg = _cfg(cache, workers=2)
    cfg.run.optim.epochs = 1
    metrics = loso(cfg, tmp_path / "run", progress=False)
    folds = [json.loads(p.read_text()) for p in sorted((tmp_path / "run" / "folds").glob("*.json"))]
    assert len(folds) == 3
    for f in folds:
        assert f["selected_on"] == [] and f["selected_epoch"] == 1
        assert not set(f["trained_on"]) & set(f["tested_on"])
    for k in ("uf1", "uar", "acc"):
        assert 0.0 <= metrics["pooled"][k] <= 1.0


def _fold_workers(parent: int) -> list[int]:
    """Live spawn workers (not the resource tracker) whose parent is `parent`."""
    out = []
    for d in Path("/proc").iterdir():
        if not d.name.isdigit():
            continue
        try:
            stat = (d / "stat").read_text()
            cmd = (d / "cmdline").read_bytes()
        except OSError:
            continue
        state, ppid = stat.rsplit(")", 1)[1].split()[:2]
        if int(ppid) == parent and state != "Z" and b"spawn_main" in cmd:
            out.append(int(d.name))
    return out


def _alive(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


@pytest.mark.slow
@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="parent-death signal is Linux only")
def test_killing_loso_stops_its_fold_workers(tmp_path):
    """SIGTERM to `moext-train loso --workers 2` must not leave workers training on."""
    cache = make_cache(tmp_path / "cache", subjects=3)
    args = [sys.executable, "-m", "train.cli", "loso", str(cache), "--out", str(tmp_path / "run"),
            "--workers", "2", "--epochs", "500", "--batch-size", "6", "--repeats", "1",
            "--threads", "1", "--quiet", "--protocol", "cde"]
    args += [f"--{k.replace('_', '-')}={v}" for k, v in TINY_MODEL.items()]
    proc = subprocess.Popen(args, env={**os.environ, "OMP_NUM_THREADS": "1"},
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    workers: list[int] = []
    try:
        deadline = time.time() + 120
        while len(workers) < 2 and proc.poll() is None and time.time() < deadline:
            time.sleep(0.2)
            workers = _fold_workers(proc.pid)
        assert len(workers) == 2, "the fold workers never started"
        time.sleep(3.0)  # let them get into training
        assert all(_alive(w) for w in workers)
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=30)
        deadline = time.time() + 30
        while any(_alive(w) for w in workers) and time.time() < deadline:
            time.sleep(0.2)
        assert not any(_alive(w) for w in workers), "fold workers outlived the killed LOSO run"
    finally:
        if proc.poll() is None:
            proc.kill()
        for w in workers + _fold_workers(proc.pid):
            if _alive(w):
                os.kill(w, signal.SIGKILL)
