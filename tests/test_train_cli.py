"""`moext-train pretrain | finetune | loso | ablate` from the command line: user errors are one
line that says what to do (exit non-zero, no traceback), and an end-to-end run on generated
data leaves every report file with metrics in [0, 1]."""

import json
import os
import subprocess
import sys

import pytest
from train_data_helpers import TINY_MODEL, make_cache
from typer.testing import CliRunner

from moext import ModelConfig, MoExtClassifier, MoExtPretrain, save_checkpoint
from train.cli import app

MODEL_FLAGS = [f"--{k.replace('_', '-')}={v}" for k, v in TINY_MODEL.items()]
FAST = ["--epochs", "1", "--batch-size", "6", "--repeats", "1", "--quiet", "--threads", "1"]


def _invoke(args):
    return CliRunner().invoke(app, args)


def _one_line_error(result, *needles):
    assert result.exit_code != 0
    out = result.output.strip()
    assert "Traceback" not in out
    lines = [ln for ln in out.splitlines() if ln.strip()]
    assert len(lines) == 1, out
    assert lines[0].startswith("error: ")
    for n in needles:
        assert n in lines[0], lines[0]
    return lines[0]


def test_missing_dataset_dir_is_one_line_error(tmp_path):
    r = _invoke(["pretrain", str(tmp_path / "nope"), "--out", str(tmp_path / "run")])
    _one_line_error(r, "does not exist", "moext-train preprocess")


def test_empty_manifest_is_one_line_error(tmp_path):
    cache = tmp_path / "cache"
    cache.mkdir()
    (cache / "manifest.jsonl").write_text("")
    r = _invoke(["pretrain", str(cache), "--out", str(tmp_path / "run"), *FAST, *MODEL_FLAGS])
    line = _one_line_error(r, "is empty", "moext-train preprocess")
    assert "landmarker" not in line and "face mesh" not in line  # not blamed on a landmarker


def test_all_rows_skipped_is_one_line_error(tmp_path):
    cache = make_cache(tmp_path / "cache", subjects=1)
    lines = [json.loads(x) for x in (cache / "manifest.jsonl").read_text().splitlines()]
    (cache / "manifest.jsonl").write_text("".join(json.dumps({**r, "status": "skipped"}) + "\n" for r in lines))
    r = _invoke(["loso", str(cache), "--protocol", "cde", "--out", str(tmp_path / "run"), *FAST, *MODEL_FLAGS])
    _one_line_error(r, "no usable samples")


def test_unknown_protocol_is_one_line_error(tmp_path):
    cache = make_cache(tmp_path / "cache", subjects=2)
    r = _invoke(["loso", str(cache), "--protocol", "casme9", "--out", str(tmp_path / "run"), *FAST, *MODEL_FLAGS])
    _one_line_error(r, "unknown protocol 'casme9'", "cde")


def test_protocol_that_keeps_nothing_is_one_line_error(tmp_path):
    cache = make_cache(tmp_path / "cache", subjects=2)
    r = _invoke(["finetune", str(cache), "--protocol", "samm-5", "--out", str(tmp_path / "run"), *FAST, *MODEL_FLAGS])
    _one_line_error(r, "samm-5", "keeps none")


def test_classifier_checkpoint_as_init_is_one_line_error(tmp_path):
    cache = make_cache(tmp_path / "cache", subjects=2)
    ckpt = save_checkpoint(MoExtClassifier(ModelConfig(**TINY_MODEL)), tmp_path / "cls.safetensors")
    r = _invoke(["finetune", str(cache), "--protocol", "cde", "--init", str(ckpt), "--out", str(tmp_path / "run"), *FAST])
    _one_line_error(r, "moext-pretrain", "moext-train pretrain")


def test_checkpoint_of_another_architecture_is_one_line_error(tmp_path):
    cache = make_cache(tmp_path / "cache", subjects=2)
    ckpt = save_checkpoint(MoExtPretrain(ModelConfig(**TINY_MODEL)), tmp_path / "pre.safetensors")
    meta_path = tmp_path / "pre.json"
    meta = json.loads(meta_path.read_text())
    meta["config"]["branch_channels"] = 12  # the weights were built with 8
    meta_path.write_text(json.dumps(meta))
    r = _invoke(["loso", str(cache), "--protocol", "cde", "--init", str(ckpt), "--out", str(tmp_path / "run"), *FAST])
    _one_line_error(r, "does not match", "moext-train pretrain")


def test_flag_that_contradicts_init_checkpoint_is_one_line_error(tmp_path):
    cache = make_cache(tmp_path / "cache", subjects=2)
    ckpt = save_checkpoint(MoExtPretrain(ModelConfig(**TINY_MODEL)), tmp_path / "pre.safetensors")
    r = _invoke(["finetune", str(cache), "--protocol", "cde", "--init", str(ckpt), "--backbone", "resnet18",
                 "--out", str(tmp_path / "run"), *FAST])
    _one_line_error(r, "--backbone resnet18", "mobilenet_v3_small")


def test_unknown_method_is_one_line_error(tmp_path):
    cache = make_cache(tmp_path / "cache", subjects=2)
    r = _invoke(["pretrain", str(cache), "--method", "nope", "--out", str(tmp_path / "run"), *FAST])
    _one_line_error(r, "unknown method 'nope'")


def _cli(*args, cwd):
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    r = subprocess.run([sys.executable, "-m", "train.cli", *args], cwd=cwd, env=env, capture_output=True,
                       text=True, timeout=1200)
    assert r.returncode == 0, f"moext-train {' '.join(args)} failed:\n{r.stdout[-2000:]}\n{r.stderr[-3000:]}"
    return r


@pytest.mark.slow
def test_end_to_end_synth_preprocess_pretrain_loso(tmp_path):
    """The real CLI on generated faces: every report file exists and metrics lie in [0, 1]."""
    _cli("synth", "--out", "syn", "--subjects", "3", "--per-class", "1", "--frames", "12",
         "--macro-per-class", "1", "--macro-frames", "14", "--long-videos", "0", "--no-progress", cwd=tmp_path)
    _cli("preprocess", "casme2", "syn", "--out", "micro", "--no-progress", cwd=tmp_path)
    _cli("preprocess", "macro", "syn/macro", "--out", "macro", "--no-progress", cwd=tmp_path)
    _cli("pretrain", "micro", "macro", "--out", "pre", *FAST, *MODEL_FLAGS, cwd=tmp_path)
    pre = tmp_path / "pre"
    for name in ("pretrained.safetensors", "pretrained.json", "config.json", "history.json", "loss_curves.png",
                 "train_state.pt"):
        assert (pre / name).is_file(), name
    extra = json.loads((pre / "pretrained.json").read_text())["extra"]
    assert extra["micro_pairs"] == 9 and extra["macro_pairs"] == 9
    assert extra["run"]["optim"]["epochs"] == 1  # the full config travels with the weights
    r = _cli("loso", "micro", "--protocol", "cde", "--init", "pre/pretrained.safetensors", "--out", "loso",
             *FAST, cwd=tmp_path)
    assert "pooled over folds" in r.stdout
    out = tmp_path / "loso"
    for name in ("config.json", "predictions.csv", "metrics.json", "results.md", "confusion_matrix.png",
                 "loss_curves.png"):
        assert (out / name).is_file() and (out / name).stat().st_size > 0, name
    m = json.loads((out / "metrics.json").read_text())
    assert len(m["folds"]) == 3 and m["pooled"]["n"] == 9
    for part in (m["pooled"], m["mean_of_folds"], *m["by_dataset"].values()):
        for k in ("uf1", "uar", "acc"):
            assert 0.0 <= part[k] <= 1.0
    assert "CASME II" in (out / "results.md").read_text()  # CDE table with its per-dataset columns
