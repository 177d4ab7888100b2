"""Leave-one-subject-out evaluation: one fold per subject (key `dataset/subject`).

The test subject is scored once, with the weights of a fixed schedule ("fixed": the last
epoch) or of the best epoch on an inner validation split drawn from the training subjects
only ("inner-val"); it never chooses an epoch, a checkpoint or a threshold. Each fold records
the subjects it trained on, selected on and tested on, and is written atomically to
`folds/<subject>.json` as soon as it ends, so `--resume` skips finished folds.

Reports (train.reports): config.json, predictions.csv, metrics.json, results.md,
confusion_matrix.png, loss_curves.png.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import signal
import sys
import time
from concurrent.futures import ProcessPoolExecutor, as_completed
from multiprocessing import get_context
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm import tqdm

from moext.checkpoint import read_checkpoint_meta
from train import reports
from train.config import LosoConfig, TrainError, resume_mismatch
from train.pairs import sample_key, subject_key
from train.finetune import build_classifier, predict, protocol_rows, train_classifier, training_accuracy
from train.methods import get_method

FOLDS = "folds"
SELECTIONS = ("fixed", "inner-val", "test-best")
OPTIMISTIC = "optimistic: test-fold selection"
# A fold whose model classifies less than this share of its own (un-augmented) training
# pairs right has not fitted them; its summary line says so.
UNDERFIT = 0.9


def fold_file(out_dir: Path, subject: str) -> Path:
    return out_dir / FOLDS / (re.sub(r"[^A-Za-z0-9._-]+", "__", subject) + ".json")


def split_fold(
    rows: list[dict[str, Any]], test_subject: str, cfg: LosoConfig, fold_index: int
) -> tuple[list[dict[str, Any]], list[dict[str, Any]], list[dict[str, Any]]]:
    """(train, validation, test) rows of one fold; validation only for "inner-val"."""
    test = [r for r in rows if subject_key(r) == test_subject]
    rest = [r for r in rows if subject_key(r) != test_subject]
    val: list[dict[str, Any]] = []
    if cfg.selection == "inner-val":
        others = sorted({subject_key(r) for r in rest})
        if len(others) <= cfg.val_subjects:
            raise TrainError(
                f"inner-val needs more than {cfg.val_subjects} training subjects, fold "
                f"{test_subject} has {len(others)}; lower --val-subjects or use --selection fixed"
            )
        rng = np.random.default_rng([cfg.run.seed, fold_index])
        held = set(rng.choice(others, size=cfg.val_subjects, replace=False).tolist())
        val = [r for r in rest if subject_key(r) in held]
        rest = [r for r in rest if subject_key(r) not in held]
    return rest, val, test


def run_fold(job: dict[str, Any]) -> dict[str, Any]:
    """Train and score one fold; writes its JSON atomically and returns it. Runs in a worker."""
    if job.get("threads"):
        torch.set_num_threads(job["threads"])
    cfg: LosoConfig = job["cfg"]
    run = cfg.run
    method = get_method(run.method)
    train_rows, val_rows, test_rows = split_fold(job["rows"], job["subject"], cfg, job["index"])
    trained_on = sorted({subject_key(r) for r in train_rows})
    selected_on = sorted({subject_key(r) for r in val_rows})
    tested_on = sorted({subject_key(r) for r in test_rows})
    if set(trained_on) & set(tested_on) or set(selected_on) & set(tested_on) or set(trained_on) & set(selected_on):
        raise RuntimeError(f"fold {job['subject']}: subjects leak between train/select/test")
    started = time.perf_counter()
    model, _ = build_classifier(method, run, job["class_names"], job["overrides"])
    test_by_epoch: list[list[int]] = []

    def watch_test(history):
        """The test subject's predictions after every epoch, for the optimistic "as published"
        figure that every report shows beside the strict one (it never chooses anything)."""
        test_by_epoch.append([int(v) for v in predict(model, test_rows).argmax(1)])

    result = train_classifier(method, run, model, train_rows, val_rows=val_rows or None,
                              progress=False, desc=job["subject"], on_epoch=watch_test)
    train_acc = training_accuracy(result.model, train_rows)
    probs = predict(result.model, test_rows)
    preds = [
        {
            "fold": job["subject"],
            "subject": subject_key(r),
            "dataset": r["dataset"],
            "sample": sample_key(r),
            "y_true": int(r["label"]),
            "y_pred": int(p.argmax()),
            "true_class": job["class_names"][int(r["label"])],
            "pred_class": job["class_names"][int(p.argmax())],
            "probs": [float(v) for v in p],
        }
        for r, p in zip(test_rows, probs)
    ]
    out = {
        "fold": job["subject"],
        "config_digest": job["digest"],
        "trained_on": trained_on,
        "selected_on": selected_on,
        "tested_on": tested_on,
        "train_samples": len(train_rows),
        "val_samples": len(val_rows),
        "selection": cfg.selection,
        "selected_epoch": result.selected_epoch or run.optim.epochs,
        "train_acc": train_acc,
        "seconds": round(time.perf_counter() - started, 2),
        "threads": torch.get_num_threads(),
        "test_by_epoch": test_by_epoch,
        "history": result.history,
        "predictions": preds,
    }
    reports.write_json(fold_file(Path(job["out_dir"]), job["subject"]), out)
    return out


def _digest(obj: Any) -> str:
    return hashlib.sha256(json.dumps(obj, sort_keys=True).encode()).hexdigest()[:16]


def loso(
    cfg: LosoConfig,
    out_dir: Path,
    *,
    resume: bool = False,
    overrides: dict[str, Any] | None = None,
    progress: bool = True,
    label: str | None = None,
) -> dict[str, Any]:
    """Run every fold (or the missing ones with `resume`), then write the reports.

    Returns the metrics dict (train.reports.loso_metrics) also written to metrics.json.
    """
    run = cfg.run
    if cfg.selection not in SELECTIONS:
        raise TrainError(f"unknown --selection {cfg.selection!r}; use {', '.join(SELECTIONS)}")
    method = get_method(run.method)
    rows, class_names = protocol_rows(run.caches, run.protocol)
    subjects = sorted({subject_key(r) for r in rows})
    if len(subjects) < 2:
        raise TrainError(f"LOSO needs at least 2 subjects, the data have {subjects}")
    tests = cfg.subjects or subjects
    unknown = sorted(set(tests) - set(subjects))
    if unknown:
        raise TrainError(f"--subject {unknown} not in the data; subjects are {subjects}")
    # Build once here so that a bad --init or flag fails before any worker starts.
    model, init_info = build_classifier(method, run, class_names, overrides)
    model_cfg = model.cfg.to_dict()
    del model
    settings = {"loso": cfg.to_dict(), "overrides": overrides or {}, "model": model_cfg,
                "class_names": class_names}
    # Parallelism does not change a fold's result, so a run may resume with other --workers.
    digest = _digest({**settings, "loso": {k: v for k, v in settings["loso"].items() if k != "workers"}})
    out_dir = Path(out_dir)
    folds_dir = out_dir / FOLDS
    existing = sorted(folds_dir.glob("*.json")) if folds_dir.is_dir() else []
    if existing and not resume:
        raise TrainError(
            f"{out_dir} already holds {len(existing)} finished folds; pass --resume to continue "
            "that run or choose another --out directory"
        )
    pretrained_on = None
    if run.init:
        pretrained_on = read_checkpoint_meta(run.init).get("extra", {}).get("subjects")
    old_config = out_dir / "config.json"
    old_settings = json.loads(old_config.read_text()) if resume and old_config.is_file() else None
    done: dict[str, dict[str, Any]] = {}
    for subject in tests:
        f = fold_file(out_dir, subject)
        if resume and f.is_file():
            fold = json.loads(f.read_text())
            if fold.get("config_digest") != digest:
                if old_settings is not None and old_settings.get("config_digest") == fold.get("config_digest"):
                    old = {k: old_settings.get(k) for k in settings}
                    old["loso"] = {k: v for k, v in (old["loso"] or {}).items() if k != "workers"}
                    new = {**settings, "loso": {k: v for k, v in settings["loso"].items() if k != "workers"}}
                    raise resume_mismatch(f, old, new, old_config)
                raise TrainError(
                    f"--resume: {f} was computed with other settings; resume with the same flags "
                    f"(see {out_dir / 'config.json'}) or choose another --out directory"
                )
            done[subject] = fold
    # Only now, so that a refused --resume leaves the old run's config as it was.
    out_dir.mkdir(parents=True, exist_ok=True)
    reports.write_json(out_dir / "config.json", {
        "command": "loso", **settings, "config_digest": digest, **init_info,
        "pretrained_on": pretrained_on,
        "note": "pre-training uses no labels; as in the paper its frames may include test subjects",
    })
    todo = [s for s in tests if s not in done]
    workers = max(1, min(cfg.workers, len(todo) or 1))
    threads = max(1, torch.get_num_threads() // workers) if workers > 1 else None
    jobs = [
        {"cfg": cfg, "subject": s, "index": subjects.index(s), "rows": rows, "class_names": class_names,
         "overrides": overrides, "out_dir": str(out_dir), "digest": digest, "threads": threads}
        for s in todo
    ]
    bar = tqdm(total=len(tests), initial=len(done), desc=label or f"LOSO {run.protocol}", unit="fold",
               disable=not progress, dynamic_ncols=True)

    def finished(fold: dict[str, Any]) -> None:
        done[fold["fold"]] = fold
        p = fold["predictions"]
        right = sum(x["y_true"] == x["y_pred"] for x in p)
        last = fold["history"][-1] if fold["history"] else {}
        acc = fold.get("train_acc")
        fit_note = "" if acc is None else f", training accuracy {acc:.3f}" + (" (UNDERFIT)" if acc < UNDERFIT else "")
        bar.write(
            f"fold {fold['fold']}: {right}/{len(p)} correct, trained on {len(fold['trained_on'])} subjects "
            f"({fold['train_samples']} samples), epoch {fold['selected_epoch']} "
            f"({fold['selection']}), final train loss {last.get('total', float('nan')):.4f}{fit_note}"
        )
        bar.update(1)

    if workers == 1:
        for job in jobs:
            finished(run_fold(job))
    else:
        with ProcessPoolExecutor(max_workers=workers, mp_context=get_context("spawn"),
                                 initializer=_die_with_parent, initargs=(os.getpid(),)) as pool:
            futures = [pool.submit(run_fold, job) for job in jobs]
            for fut in as_completed(futures):
                finished(fut.result())
    bar.close()
    folds = [done[s] for s in tests]
    return write_loso_reports(out_dir, folds, class_names, run.protocol, label or run.method, recipe=run.recipe)


def _die_with_parent(parent: int) -> None:
    """Fold-worker initializer: have the kernel SIGTERM this worker when the LOSO process
    dies (SIGTERM, SIGKILL, a crash), so no orphan keeps training a fold nobody will collect.
    Finished folds are already on disk for --resume. Linux only (prctl); elsewhere a no-op."""
    if not sys.platform.startswith("linux"):
        return
    import ctypes

    try:
        if ctypes.CDLL(None, use_errno=True).prctl(1, int(signal.SIGTERM)) != 0:  # PR_SET_PDEATHSIG
            return
    except (OSError, AttributeError):
        return
    if os.getppid() != parent:  # it died while this worker was still starting up
        os._exit(1)


def write_loso_reports(out_dir: Path, folds: list[dict[str, Any]], class_names: list[str],
                       protocol: str, label: str, recipe: str | None = None) -> dict[str, Any]:
    preds = [p for f in folds for p in f["predictions"]]
    metrics = reports.loso_metrics(preds, class_names, protocol)
    metrics["recipe"] = recipe
    metrics["train_acc"] = {f["fold"]: f.get("train_acc") for f in folds}
    secs = [f["seconds"] for f in folds if f.get("seconds") is not None]
    if secs:
        metrics["fold_seconds"] = {f["fold"]: f["seconds"] for f in folds if f.get("seconds") is not None}
        metrics["time_per_fold"] = {"median_s": float(np.median(secs)), "min_s": min(secs), "max_s": max(secs),
                                    "total_s": float(sum(secs)),
                                    "threads": sorted({f.get("threads") for f in folds if f.get("threads")})}
    if folds and all(f.get("test_by_epoch") for f in folds):
        metrics["test_best"] = test_best_metrics(folds, class_names, protocol)
    metrics["leakage"] = {
        f["fold"]: {"trained_on": f["trained_on"], "selected_on": f["selected_on"], "tested_on": f["tested_on"]}
        for f in folds
    }
    reports.write_predictions(out_dir / "predictions.csv", preds, class_names)
    reports.write_json(out_dir / "metrics.json", metrics)
    reports.write_text(out_dir / "results.md", reports.loso_markdown(label, metrics, optimistic_label=OPTIMISTIC))
    reports.plot_confusion(np.array(metrics["confusion"]), class_names, out_dir / "confusion_matrix.png",
                           f"{protocol} LOSO, pooled over {len(folds)} folds")
    reports.plot_loss_curves({f["fold"]: f["history"] for f in folds}, out_dir / "loss_curves.png",
                             "fine-tuning loss per fold")
    return metrics



def test_best_metrics(folds: list[dict[str, Any]], class_names: list[str], protocol: str) -> dict[str, Any]:
    """The "as published" figure (HTNet, CausalNet, MMNet, MoExt's release): each subject
    scored at the epoch that did best on that subject's own test fold (accuracy; ties keep the
    earlier epoch). Optimistic by construction: reported only beside the strict figure."""
    preds, chosen = [], {}
    for f in folds:
        truth = [p["y_true"] for p in f["predictions"]]
        accs = [float(np.mean([a == b for a, b in zip(truth, ep)])) for ep in f["test_by_epoch"]]
        best = int(np.argmax(accs))
        chosen[f["fold"]] = best + 1
        for p, y in zip(f["predictions"], f["test_by_epoch"][best]):
            preds.append({**p, "y_pred": int(y), "pred_class": class_names[int(y)]})
    m = reports.loso_metrics(preds, class_names, protocol)
    return {"label": OPTIMISTIC, "pooled": m["pooled"], "per_class": m["per_class"], "by_dataset": m["by_dataset"],
            "epoch_per_fold": chosen,
            "note": ("each subject's best epoch on its own test fold, as published code selects it; the test "
                     "subject chose the epoch, so this is not a result, only the gap to the strict figure")}
