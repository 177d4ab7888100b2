"""Score a trained classifier on a dataset it was not trained on (cross-dataset evaluation):
the same predictions CSV, metrics JSON, Markdown table and confusion matrix as a LOSO run,
with one "fold" per subject for the per-subject breakdown."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from moext import CheckpointError, load_checkpoint
from train import reports
from train.config import TrainError
from train.pairs import sample_key, subject_key
from train.finetune import predict, protocol_rows
from train.loso import write_loso_reports


def classifier_kinds() -> tuple[str, ...]:
    from train.methods import METHODS

    return tuple(sorted({m.classifier_kind for m in METHODS.values()}))


def evaluate(checkpoint: Path, caches: list[str], protocol: str, out_dir: Path) -> dict[str, Any]:
    """Predict every micro-expression row of `caches` under `protocol` with `checkpoint`.

    Raises:
        TrainError: not a classifier checkpoint, a protocol whose classes are not the
            checkpoint's, or caches with no rows for the protocol (messages name the fix).
    """
    kinds = classifier_kinds()
    try:
        model, meta = load_checkpoint(checkpoint, expect_kind=kinds)
    except CheckpointError as e:
        raise TrainError(f"{e}. evaluate scores a classifier: pass a checkpoint written by `moext-train "
                         "finetune` (classifier.safetensors)") from None
    rows, class_names = protocol_rows(caches, protocol)
    mine = list(model.cfg.class_names)
    if sorted(mine) != sorted(class_names):
        from train.protocols import PROTOCOLS

        fits = [name for name, p in PROTOCOLS.items() if sorted(p.classes) == sorted(mine) and name != protocol]
        hint = (f"choose a protocol with the checkpoint's classes: {', '.join(fits)}" if fits else
                "no protocol has exactly the checkpoint's classes; evaluate it on data of the protocol it was "
                "trained with")
        raise TrainError(f"protocol {protocol} has the classes {class_names} but {checkpoint} was trained on {mine}; "
                         + hint)
    to_protocol = [class_names.index(c) for c in mine]  # checkpoint label -> protocol label
    probs = predict(model, rows)  # (N, K) in the checkpoint's order
    trained_on = set(meta.get("extra", {}).get("trained_on") or [])
    folds: dict[str, dict[str, Any]] = {}
    for r, p in zip(rows, probs):
        q = [0.0] * len(class_names)
        for k, v in enumerate(p):
            q[to_protocol[k]] = float(v)
        y = max(range(len(q)), key=q.__getitem__)
        subj = subject_key(r)
        f = folds.setdefault(subj, {"fold": subj, "trained_on": sorted(trained_on), "selected_on": [],
                                    "tested_on": [subj], "history": [], "predictions": []})
        f["predictions"].append({
            "fold": subj, "subject": subj, "dataset": r["dataset"], "sample": sample_key(r),
            "y_true": int(r["label"]), "y_pred": y, "true_class": class_names[int(r["label"])],
            "pred_class": class_names[y], "probs": q,
        })
    seen = sorted(trained_on & set(folds))
    out_dir = Path(out_dir)
    label = f"{meta['kind']} ({Path(checkpoint).name})"
    recipe = (meta.get("extra", {}).get("run") or {}).get("recipe")  # the checkpoint's training preset
    metrics = write_loso_reports(out_dir, [folds[s] for s in sorted(folds)], class_names, protocol, label,
                                 recipe=recipe)
    metrics["checkpoint"] = str(Path(checkpoint).resolve())
    metrics["subjects_seen_in_training"] = seen
    if seen:
        metrics["warning"] = (f"{len(seen)} evaluated subjects were in the checkpoint's training data "
                              f"({', '.join(seen[:5])}{'...' if len(seen) > 5 else ''}): not a cross-dataset score")
    reports.write_json(out_dir / "metrics.json", metrics)
    reports.write_json(out_dir / "config.json", {"command": "evaluate", "checkpoint": metrics["checkpoint"],
                                                 "caches": [str(Path(c).resolve()) for c in caches],
                                                 "protocol": protocol, "model": model.cfg.to_dict(),
                                                 "trained_with": json.loads(json.dumps(meta.get("extra", {}).get("run")))})
    return metrics
