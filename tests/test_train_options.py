"""Issue 15 / 13 command-line items: options generated from the config dataclasses (--config,
--set, model flags of every registered method), --help listing the methods, --resume however
the paths are spelled (and naming what differs), `evaluate` for cross-dataset scores, the
"as published" test-fold selection beside the strict figure, and --verbose."""

import json
import os
import re

import pytest
from train_data_helpers import TINY_MODEL, make_cache
from typer.testing import CliRunner

from moext import MoExtClassifier, ModelConfig, MoExtPretrain, save_checkpoint
from train.cli import app

MODEL_FLAGS = [f"--{k.replace('_', '-')}={v}" for k, v in TINY_MODEL.items()]
FAST = ["--epochs", "1", "--batch-size", "6", "--repeats", "1", "--quiet", "--threads", "1"]


def _invoke(args, **kw):
    return CliRunner().invoke(app, args, **kw)


def _one_line_error(result, *needles):
    assert result.exit_code != 0, result.output
    lines = [ln for ln in result.output.strip().splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: ") and "Traceback" not in result.output, result.output
    for n in needles:
        assert n in lines[0], lines[0]
    return lines[0]


@pytest.mark.parametrize("command", ["pretrain", "finetune", "loso", "ablate"])
def test_help_lists_the_methods_that_exist(command):
    r = _invoke([command, "--help"], env={"COLUMNS": "250", "TERMINAL_WIDTH": "250"})
    assert r.exit_code == 0
    text = re.sub(r"\s+", " ", r.output)
    assert "training method, one of ma2mi, miacnet, moext, ststnet (" in text and "miacnet (also ma2mi):" in text
    assert "moext, ..." not in text
    # model flags of both methods, each saying whose it is
    assert "--action-channels" in text and "--branch-channels" in text
    assert re.search(r"--action-channels .*\(ma2mi, miacnet\)", text)


def test_resume_accepts_the_same_run_however_the_cache_path_is_spelled(tmp_path, monkeypatch):
    cache = make_cache(tmp_path / "cache", subjects=2)
    r = _invoke(["finetune", str(cache), "--protocol", "cde", "--out", str(tmp_path / "run"), *FAST, *MODEL_FLAGS])
    assert r.exit_code == 0, r.output
    (tmp_path / "elsewhere").mkdir()
    monkeypatch.chdir(tmp_path / "elsewhere")
    r = _invoke(["finetune", "../cache", "--protocol", "cde", "--out", "../run", "--resume", *FAST, *MODEL_FLAGS])
    assert r.exit_code == 0, r.output
    saved = json.loads((tmp_path / "run" / "config.json").read_text())["run"]
    assert saved["caches"] == [str(cache.resolve())]


def test_resume_with_other_settings_names_the_difference(tmp_path):
    cache = make_cache(tmp_path / "cache", subjects=2)
    out = str(tmp_path / "run")
    assert _invoke(["finetune", str(cache), "--protocol", "cde", "--out", out, *FAST, *MODEL_FLAGS]).exit_code == 0
    r = _invoke(["finetune", str(cache), "--protocol", "cde", "--out", out, "--resume", "--lr", "0.5", *FAST,
                 *MODEL_FLAGS])
    line = _one_line_error(r, "--resume", "optim.lr: 0.0", "-> 0.5")
    assert "caches" not in line  # only what really differs


def test_config_file_then_set_reproduces_a_run_with_one_change(tmp_path):
    cache = make_cache(tmp_path / "cache", subjects=2)
    r = _invoke(["finetune", str(cache), "--protocol", "cde", "--out", str(tmp_path / "a"), "--dropout", "0.1",
                 "--lr", "0.002", *FAST, *MODEL_FLAGS])
    assert r.exit_code == 0, r.output
    r = _invoke(["finetune", str(cache), "--out", str(tmp_path / "b"), "--config", str(tmp_path / "a" / "config.json"),
                 "--set", "optim.epochs=2", "--quiet", "--threads", "1"])
    assert r.exit_code == 0, r.output
    a = json.loads((tmp_path / "a" / "config.json").read_text())
    b = json.loads((tmp_path / "b" / "config.json").read_text())
    assert b["run"]["optim"] == {**a["run"]["optim"], "epochs": 2} and b["run"]["protocol"] == "cde"
    assert b["model"] == a["model"] and b["model"]["dropout"] == 0.1 and b["model"]["branch_channels"] == 8


@pytest.mark.parametrize("args, needles", [
    (["--set", "nonsense=1"], ("--set nonsense: unknown setting",)),
    (["--set", "optim.dropout=0.1"], ("--set optim.dropout: no setting 'dropout' in group 'optim'",)),
    (["--set", "lr"], ("write KEY=VALUE",)),
    (["--action-channels", "8"], ("--action-channels is not a setting of --method moext", "ma2mi/miacnet")),
    (["--config", "missing.json"], ("--config missing.json: no such file",)),
    # Values are checked against their field's type and range before anything is written.
    (["--set", "optim.lr=abc"], ("optim.lr takes a number",)),
    (["--set", "augment.mirror=maybe"], ("augment.mirror takes true or false",)),
    (["--set", "optim.epochs=2.5"], ("optim.epochs takes a whole number",)),
    (["--set", "optim.lr=0"], ("optim.lr=0.0: must be above 0.0",)),
    (["--set", "optim.schedule=linear"], ("choose constant or cosine",)),
    (["--set", "augment.repeats=0"], ("augment.repeats=0: must be at least 1",)),
    (["--set", "augment.contrast_gain=[1.2]"], ("a JSON pair of numbers",)),
    (["--set", "model.flow_input=yes"], ("model.flow_input takes true or false",)),
    (["--set", "model.dropout=high"], ("model.dropout takes a number",)),
])
def test_bad_settings_are_one_line_errors(tmp_path, args, needles):
    cache = make_cache(tmp_path / "cache", subjects=2)
    r = _invoke(["finetune", str(cache), "--protocol", "cde", "--out", str(tmp_path / "run"), *FAST, *MODEL_FLAGS,
                 *args])
    _one_line_error(r, *needles)
    assert not (tmp_path / "run").exists()  # nothing written, so no --resume can pick it up


def test_a_method_is_configured_the_same_way_as_moext(tmp_path):
    """MIACNet's own field is a flag and a --set key like MoExt's are."""
    cache = make_cache(tmp_path / "cache", subjects=2)
    tiny = ["--backbone", "mobilenet_v3_small", "--image-size", "32", "--position-channels", "4",
            "--fusion-channels", "8", "--latent-width", "8"]
    r = _invoke(["finetune", str(cache), "--protocol", "cde", "--method", "miacnet", "--out", str(tmp_path / "run"),
                 "--action-channels", "6", "--set", "model.dropout=0.05", *tiny, *FAST])
    assert r.exit_code == 0, r.output
    model = json.loads((tmp_path / "run" / "config.json").read_text())["model"]
    assert (model["action_channels"], model["dropout"], model["position_channels"]) == (6, 0.05, 4)


def _classifier(tmp_path, cache):
    r = _invoke(["finetune", str(cache), "--protocol", "cde", "--out", str(tmp_path / "clf"), *FAST, *MODEL_FLAGS])
    assert r.exit_code == 0, r.output
    return tmp_path / "clf" / "classifier.safetensors"


def test_evaluate_scores_a_checkpoint_on_another_cache(tmp_path):
    train_cache = make_cache(tmp_path / "train", subjects=2, seed=1)
    other = make_cache(tmp_path / "other", subjects=3, dataset="samm", seed=2)
    ckpt = _classifier(tmp_path, train_cache)
    r = _invoke(["evaluate", str(ckpt), str(other), "--protocol", "cde", "--out", str(tmp_path / "ev")])
    assert r.exit_code == 0, r.output
    assert "pooled over folds: UF1" in r.output and "warning" not in r.output
    m = json.loads((tmp_path / "ev" / "metrics.json").read_text())
    assert m["pooled"]["n"] == 9 and set(m["folds"]) == {"samm/sub01", "samm/sub02", "samm/sub03"}
    assert m["subjects_seen_in_training"] == []
    for name in ("predictions.csv", "results.md", "confusion_matrix.png", "config.json"):
        assert (tmp_path / "ev" / name).is_file(), name
    # The training data itself: scored, with the warning that it is not cross-dataset.
    r = _invoke(["evaluate", str(ckpt), str(train_cache), "--protocol", "cde", "--out", str(tmp_path / "ev2")])
    assert r.exit_code == 0 and "warning: 2 evaluated subjects were in the checkpoint's training data" in r.output


def test_evaluate_refuses_bad_inputs_in_one_line(tmp_path):
    cache = make_cache(tmp_path / "cache", subjects=2)
    pre = save_checkpoint(MoExtPretrain(ModelConfig(**TINY_MODEL)), tmp_path / "pre.safetensors")
    r = _invoke(["evaluate", str(pre), str(cache), "--protocol", "cde", "--out", str(tmp_path / "a")])
    _one_line_error(r, "holds a 'moext-pretrain' model", "evaluate scores a classifier")
    ckpt = _classifier(tmp_path, cache)
    r = _invoke(["evaluate", str(ckpt), str(cache), "--protocol", "samm-5", "--out", str(tmp_path / "b")])
    _one_line_error(r, "protocol 'samm-5' keeps none of the micro-expression samples")
    r = _invoke(["evaluate", str(ckpt), str(cache), "--protocol", "casme2-5", "--out", str(tmp_path / "c")])
    line = _one_line_error(r, "protocol casme2-5 has the classes", "was trained on ['negative', 'positive', 'surprise']")
    assert "cde" in line.split("choose")[-1] and "casme2-5" not in line.split("choose")[-1]
    # A 5-class checkpoint refused under cde is pointed at its own protocol, not back at cde.
    five = MoExtClassifier(ModelConfig(**{**TINY_MODEL, "num_classes": 5,
                                          "class_names": ["happiness", "repression", "disgust", "surprise", "others"]}))
    five_path = save_checkpoint(five, tmp_path / "five.safetensors")
    r = _invoke(["evaluate", str(five_path), str(cache), "--protocol", "cde", "--out", str(tmp_path / "d")])
    line = _one_line_error(r, "protocol cde has the classes")
    assert "casme2-5" in line.split("choose")[-1] and "cde" not in line.split("choose")[-1]


def test_evaluate_quiet_prints_only_warnings(tmp_path):
    cache = make_cache(tmp_path / "cache", subjects=2)
    ckpt = _classifier(tmp_path, cache)
    r = _invoke(["evaluate", str(ckpt), str(cache), "--protocol", "cde", "--out", str(tmp_path / "q"), "-q"])
    assert r.exit_code == 0 and "pooled" not in r.output, r.output  # warnings stay; the table goes
    assert all(ln.startswith("warning: ") for ln in r.output.strip().splitlines())
    assert (tmp_path / "q" / "metrics.json").is_file()


def test_test_best_selection_is_reported_only_beside_the_strict_figure(tmp_path):
    cache = make_cache(tmp_path / "cache", subjects=3)
    r = _invoke(["loso", str(cache), "--protocol", "cde", "--out", str(tmp_path / "run"), "--selection", "test-best",
                 "--epochs", "2", "--batch-size", "6", "--repeats", "1", "--threads", "1", *MODEL_FLAGS])
    assert r.exit_code == 0, r.output
    assert "training accuracy" in r.output  # every fold's summary says whether it fitted
    assert "optimistic, test-fold selection (not a result)" in r.output
    m = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert m["test_best"]["label"] == "optimistic: test-fold selection"
    assert set(m["test_best"]["epoch_per_fold"].values()) <= {1, 2}
    assert m["test_best"]["pooled"]["acc"] >= m["pooled"]["acc"] - 1e-9  # never below the strict figure's folds
    md = (tmp_path / "run" / "results.md").read_text()
    strict, optimistic = md.index("| loso") if "| loso" in md else md.index("| moext"), md.index("optimistic: test-fold")
    assert strict < optimistic  # the strict row first, the labelled one beside it
    folds = [json.loads(p.read_text()) for p in (tmp_path / "run" / "folds").glob("*.json")]
    assert all(len(f["test_by_epoch"]) == 2 for f in folds)


def test_fixed_selection_reports_the_optimistic_figure_beside_the_strict_one(tmp_path):
    """Every report shows the strict figure and, below it and labelled, what published code
    would report (issue 24: strict beside test-best, always); the strict one never changes."""
    cache = make_cache(tmp_path / "cache", subjects=2)
    r = _invoke(["loso", str(cache), "--protocol", "cde", "--out", str(tmp_path / "run"), *FAST, *MODEL_FLAGS])
    assert r.exit_code == 0, r.output
    m = json.loads((tmp_path / "run" / "metrics.json").read_text())
    folds = [json.loads(p.read_text()) for p in sorted((tmp_path / "run" / "folds").glob("*.json"))]
    assert all(f["selection"] == "fixed" and f["selected_epoch"] == 1 for f in folds)
    assert m["test_best"]["label"] == "optimistic: test-fold selection"
    md = (tmp_path / "run" / "results.md").read_text()
    assert md.index("optimistic: test-fold selection") > md.index("| moext")


def test_verbose_keeps_native_logs(tmp_path, monkeypatch):
    monkeypatch.delenv("MOEXT_VERBOSE", raising=False)
    r = _invoke(["--verbose", "synth", "--out", str(tmp_path / "s"), "--subjects", "1", "--per-class", "0",
                 "--macro-per-class", "0", "--long-videos", "0", "--no-progress"])
    assert r.exit_code == 0, r.output
    assert os.environ.get("MOEXT_VERBOSE") == "1"
    monkeypatch.delenv("MOEXT_VERBOSE")


def test_a_cache_from_another_landmarker_is_refused_in_one_line(tmp_path):
    cache = make_cache(tmp_path / "cache", subjects=2)
    (cache / "preprocess.json").unlink()  # as caches made before issue 16: the legacy face mesh
    r = _invoke(["finetune", str(cache), "--protocol", "cde", "--out", str(tmp_path / "run"), *FAST, *MODEL_FLAGS])
    _one_line_error(r, "no recorded landmarker (the legacy face mesh)", "re-run `moext-train preprocess")
    (cache / "preprocess.json").write_text(json.dumps({"casme2": {"landmarker": "mediapipe-legacy-face-mesh"}}))
    r = _invoke(["finetune", str(cache), "--protocol", "cde", "--out", str(tmp_path / "run"), *FAST, *MODEL_FLAGS])
    _one_line_error(r, "landmarker 'mediapipe-legacy-face-mesh'", "moext-train preprocess casme2 ROOT")


def test_pretrain_writes_its_pretext_report_and_says_it(tmp_path):
    cache = make_cache(tmp_path / "cache", subjects=2)
    r = _invoke(["pretrain", str(cache), "--out", str(tmp_path / "pre"), *FAST, *MODEL_FLAGS])
    assert r.exit_code == 0, r.output
    assert "pretext: the pretext " in r.output and "pretext_report.md" in r.output
    rep = json.loads((tmp_path / "pre" / "pretext_report.json").read_text())
    d = rep["diagnostics"]
    assert {"re", "re_copy_onset", "re_motion_zeroed", "re_no_motion", "shape_cosine", "dead_units"} <= set(d)
    assert d["pairs"] == 8 and isinstance(rep["learned_motion"], bool)
    md = (tmp_path / "pre" / "pretext_report.md").read_text()
    assert rep["verdict"] in md and "re_copy_onset" in md
    extra = json.loads((tmp_path / "pre" / "pretrained.json").read_text())["extra"]
    assert extra["pretext"]["verdict"] == rep["verdict"]


def test_residual_reconstruction_starts_at_the_copy_baseline(tiny_cfg):
    import torch

    from moext.modeling.losses import pretext_diagnostics

    x_o = torch.randn(4, 3, 64, 64)
    x_a = x_o + 0.1 * torch.randn_like(x_o)
    d = pretext_diagnostics(MoExtPretrain(tiny_cfg), [(x_o, x_a)])
    assert d["re"] == pytest.approx(d["re_copy_onset"], rel=0.02)  # R's output starts near 0
    import dataclasses

    full = pretext_diagnostics(MoExtPretrain(dataclasses.replace(tiny_cfg, reconstruction="full")), [(x_o, x_a)])
    assert full["re"] > 3 * full["re_copy_onset"]  # a decoder from maps alone starts far off


def test_bn_recalibration_sets_the_exact_statistics_of_the_training_pairs(tmp_path, tiny_cfg):
    import torch

    from moext import MoExtClassifier
    from train.bn import reestimate_bn
    from train.pairs import PairDataset, load_rows
    from train.protocols import apply_protocol

    rows = apply_protocol("cde", [r for r in load_rows([make_cache(tmp_path / "c", subjects=2)]) if r["kind"] == "micro"])
    model = MoExtClassifier(tiny_cfg)
    bn = next(m for m in model.modules() if isinstance(m, torch.nn.BatchNorm2d))
    seen = []
    hook = bn.register_forward_hook(lambda mod, inp, out: seen.append(inp[0].detach()))
    ds = PairDataset(rows, tiny_cfg.image_size, None, 0)
    x_o = torch.stack([ds[i][0] for i in range(len(ds))])
    x_a = torch.stack([ds[i][1] for i in range(len(ds))])
    model.train()
    with torch.no_grad():
        model(x_o, x_a)
    want = torch.cat(seen).mean(dim=(0, 2, 3))
    seen.clear()
    bn.running_mean.fill_(5.0)
    reestimate_bn(model, rows, batch_size=len(rows))
    hook.remove()
    assert not model.training and torch.allclose(bn.running_mean, want, atol=1e-5)


def test_unknown_selection_is_one_line_error(tmp_path):
    cache = make_cache(tmp_path / "cache", subjects=2)
    r = _invoke(["loso", str(cache), "--protocol", "cde", "--out", str(tmp_path / "run"), "--selection", "best",
                 *FAST, *MODEL_FLAGS])
    _one_line_error(r, "unknown --selection 'best'", "fixed, inner-val, test-best")
