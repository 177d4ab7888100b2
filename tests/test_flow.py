"""Optical flow as a classifier input (`moext.flow`, `--method ststnet`, `flow_input`) and the
training presets (`--recipe`): flow measured right, cached and augmented with the frames,
every flow-fed classifier trained end to end by the CLI, bad values refused."""

import json

import cv2
import numpy as np
import pytest
import torch
from train_data_helpers import TINY_MODEL, make_cache
from typer.testing import CliRunner

from moext import (
    MIACNet,
    MIACNetConfig,
    ModelConfig,
    MoExtClassifier,
    STSTNet,
    STSTNetConfig,
    classifier_inputs,
    load_checkpoint,
    save_checkpoint,
)
from moext.flow import DenseFlow, FlowConfig, channels_from_field, flow_field, optical_strain, transform_field
from train.cli import app
from train.flow_cache import flow_file
from train.pairs import FlowStore, PairDataset, load_rows
from train.recipes import RECIPES, get_recipe

MODEL_FLAGS = [f"--{k.replace('_', '-')}={v}" for k, v in TINY_MODEL.items()]
FAST = ["--epochs", "2", "--batch-size", "6", "--repeats", "1", "--quiet", "--threads", "1"]


def _texture(size=224, seed=0):
    rng = np.random.default_rng(seed)
    img = rng.integers(0, 255, size=(size, size, 3)).astype(np.uint8)
    return cv2.GaussianBlur(img, (0, 0), 3)


def test_flow_measures_a_known_shift():
    a = _texture()
    m = np.float32([[1, 0, 3.5], [0, 1, -1.75]])  # 3.5 px right, 1.75 px up at 224
    b = cv2.warpAffine(a, m, (224, 224), borderMode=cv2.BORDER_REFLECT_101)
    uv = flow_field(a, b, FlowConfig(size=128))
    inner = uv[20:-20, 20:-20]
    scale = 128 / 224
    assert abs(float(np.median(inner[..., 0])) - 3.5 * scale) < 0.15
    assert abs(float(np.median(inner[..., 1])) + 1.75 * scale) < 0.15
    # A translation does not stretch the skin: strain stays near zero.
    assert float(np.median(optical_strain(uv)[20:-20, 20:-20])) < 0.05


def test_strain_of_a_known_field():
    y, x = np.mgrid[0:32, 0:32].astype(np.float32)
    uv = np.dstack([0.1 * x, np.zeros_like(x)])  # u_x = 0.1, nothing else
    assert np.allclose(optical_strain(uv), 0.1, atol=1e-6)
    c = channels_from_field(uv, 8)
    assert c.shape == (3, 8, 8) and c.dtype == np.float32
    assert np.allclose(c[2], 0.1, atol=1e-5)


@pytest.mark.parametrize("mirror,angle", [(True, 0.0), (False, 7.0), (True, -9.0)])
def test_augmenting_cached_flow_matches_the_flow_of_augmented_frames(mirror, angle):
    """Training mirrors and rotates a cached flow instead of recomputing it: it must be (close
    to) the flow of the mirrored/rotated pair."""
    a = _texture(seed=1)
    m = np.float32([[1, 0, 2.5], [0, 1, 1.0]])
    b = cv2.warpAffine(a, m, (224, 224), borderMode=cv2.BORDER_REFLECT_101)
    cfg = FlowConfig(size=128)
    moved = transform_field(flow_field(a, b, cfg), mirror, angle)

    def aug(img):
        if mirror:
            img = cv2.flip(img, 1)
        rot = cv2.getRotationMatrix2D((112.0, 112.0), angle, 1.0)
        return cv2.warpAffine(img, rot, (224, 224), borderMode=cv2.BORDER_REFLECT_101)

    direct = flow_field(aug(a), aug(b), cfg)
    inner = (slice(30, -30), slice(30, -30))
    err = np.median(np.abs(moved[inner] - direct[inner]))
    assert err < 0.15, err
    # and it is not trivially close: the un-transformed field is far off when mirrored
    if mirror:
        assert np.median(np.abs(flow_field(a, b, cfg)[inner][..., 0] - direct[inner][..., 0])) > 1.0


def test_dense_flow_refuses_bad_input():
    with pytest.raises(ValueError, match="preset"):
        DenseFlow("slowest")
    with pytest.raises(ValueError, match="one size"):
        DenseFlow()(np.zeros((8, 8), np.uint8), np.zeros((9, 9), np.uint8))


def test_flow_store_caches_beside_the_crops_and_recomputes_stale(tmp_path):
    cache = make_cache(tmp_path / "cache", subjects=1)
    rows = load_rows([cache])
    cfg = FlowConfig()
    store = FlowStore(cfg)
    uv = store.field(rows[0])
    path = flow_file(rows[0], cfg)
    assert path.is_file() and uv.shape == (128, 128, 2)
    assert len({flow_file(r, cfg) for r in rows}) == len(rows)  # one file per sample
    # A new store reads the file (poison it to prove it is read, not recomputed)...
    np.save(path, np.full((128, 128, 2), 7.0, np.float32))
    assert float(FlowStore(cfg).field(rows[0]).mean()) == 7.0
    # ...until a crop is newer (a re-run preprocess): then it is computed again.
    import os
    import time

    later = time.time() + 5
    os.utime(rows[0]["apex"], (later, later))
    assert float(FlowStore(cfg).field(rows[0]).mean()) != 7.0


def test_pair_dataset_feeds_what_the_classifier_reads(tmp_path):
    cache = make_cache(tmp_path / "cache", subjects=1)
    rows = [{**r, "label": 0} for r in load_rows([cache])]
    flow_only = PairDataset(rows, 32, None, 0, images=False, flow=FlowConfig())
    x_o, x_a, y, i, f = flow_only[0]
    assert x_o.numel() == 0 and x_a.numel() == 0 and f.shape == (3, 28, 28)
    both = PairDataset(rows, 32, None, 0, flow=FlowConfig(out_size=16))
    x_o, x_a, y, i, f = both[0]
    assert x_o.shape == (3, 32, 32) and f.shape == (3, 16, 16)
    assert torch.equal(both[0][4], both[0][4])  # un-augmented: the same every time


def test_same_seed_same_augmentation_with_or_without_flow(tmp_path):
    """Adding the flow must not change which mirror/rotation a frame pair gets."""
    from train.config import AugmentConfig

    cache = make_cache(tmp_path / "cache", subjects=1)
    rows = [{**r, "label": 0} for r in load_rows([cache])]
    aug = AugmentConfig(repeats=2)
    a = PairDataset(rows, 32, aug, 3)
    b = PairDataset(rows, 32, aug, 3, flow=FlowConfig())
    for k in range(4):
        assert torch.equal(a[k][0], b[k][0]) and torch.equal(a[k][1], b[k][1])


@pytest.mark.parametrize("build", [
    lambda: STSTNet(STSTNetConfig()),
    lambda: MoExtClassifier(ModelConfig(**TINY_MODEL, flow_input=True)),
    lambda: MIACNet(MIACNetConfig(backbone="mobilenet_v3_small", image_size=32, action_channels=8,
                                  position_channels=4, fusion_channels=8, flow_input=True)),
])
def test_flow_fed_classifiers_train_and_round_trip(build, tmp_path):
    model = build()
    images, uses_flow = classifier_inputs(model)
    assert uses_flow
    x = torch.randn(4, 3, 32, 32) if images else torch.zeros(4, 0)
    flow = torch.randn(4, 3, 28, 28)
    logits = model(x, x, flow)
    assert logits.shape == (4, 3) and torch.isfinite(logits).all()
    logits.sum().backward()
    flow_params = [p for n, p in model.named_parameters() if "flow" in n or "branch" in n]
    assert flow_params and all(p.grad is not None for p in flow_params)
    # The standardiser's statistics travel with the weights.
    from moext.modeling.flownet import flow_standardisers

    for s in flow_standardisers(model):
        s.set_stats(flow * 3 + 1)
    model.eval()
    path = save_checkpoint(model, tmp_path / "m.safetensors")
    loaded, _ = load_checkpoint(path)
    assert torch.allclose(loaded(x, x, flow), model(x, x, flow))
    if images:  # an image classifier with flow_input refuses to run without the flow
        with pytest.raises(ValueError, match="flow"):
            model(x, x)


def test_checkpoints_written_before_flow_load_without_it(tmp_path):
    model = MoExtClassifier(ModelConfig(**TINY_MODEL)).eval()
    path = save_checkpoint(model, tmp_path / "old.safetensors")
    meta = json.loads(path.with_suffix(".json").read_text())
    for k in ("flow_input", "flow_size", "flow_preset", "flow_out_size"):
        meta["config"].pop(k)
    path.with_suffix(".json").write_text(json.dumps(meta))
    loaded, _ = load_checkpoint(path)
    assert loaded.cfg.flow_input is False and classifier_inputs(loaded) == (True, False)


def _invoke(args):
    return CliRunner().invoke(app, args)


def test_ststnet_loso_finetune_evaluate_end_to_end(tmp_path):
    cache = make_cache(tmp_path / "cache", subjects=3, per_class=2)
    r = _invoke(["loso", str(cache), "--protocol", "cde", "--method", "ststnet", "--out", str(tmp_path / "loso"),
                 "--epochs", "60", "--quiet"])
    assert r.exit_code == 0, r.output
    metrics = json.loads((tmp_path / "loso" / "metrics.json").read_text())
    # The strict figure and, always beside it, the optimistic test-fold one; preset and time.
    assert metrics["pooled"]["n"] == 18 and metrics["test_best"]["pooled"]["n"] == 18
    assert metrics["recipe"] == "cpu" and len(metrics["fold_seconds"]) == 3
    report = (tmp_path / "loso" / "results.md").read_text()
    for needle in ("Preset: `--recipe cpu`", "time per fold", "optimistic: test-fold selection",
                   "Training accuracy per fold"):
        assert needle in report, needle
    config = json.loads((tmp_path / "loso" / "config.json").read_text())
    assert config["loso"]["run"]["recipe"] == "cpu"
    assert config["loso"]["run"]["optim"]["lr"] == 5e-4 and config["loso"]["run"]["augment"]["mirror"] is False
    assert all(v >= 0.9 for v in metrics["train_acc"].values())  # 16 filters fit 12 pairs
    r = _invoke(["finetune", str(cache), "--protocol", "cde", "--method", "ststnet", "--out", str(tmp_path / "ft"),
                 "--epochs", "30", "--quiet"])
    assert r.exit_code == 0, r.output
    r = _invoke(["evaluate", str(tmp_path / "ft" / "classifier.safetensors"), str(cache), "--protocol", "cde",
                 "--out", str(tmp_path / "ev")])
    assert r.exit_code == 0, r.output
    assert json.loads((tmp_path / "ev" / "metrics.json").read_text())["pooled"]["n"] == 18


def test_moext_and_miacnet_with_flow_input_by_cli(tmp_path):
    cache = make_cache(tmp_path / "cache", subjects=2)
    r = _invoke(["loso", str(cache), "--protocol", "cde", "--out", str(tmp_path / "moext"), *FAST, *MODEL_FLAGS,
                 "--branch-pool", "1"])
    assert r.exit_code == 0, r.output
    assert json.loads((tmp_path / "moext" / "config.json").read_text())["model"]["flow_input"] is True
    r = _invoke(["loso", str(cache), "--protocol", "cde", "--method", "miacnet", "--out", str(tmp_path / "mia"),
                 *FAST, "--backbone", "mobilenet_v3_small", "--image-size", "32"])
    assert r.exit_code == 0, r.output
    assert json.loads((tmp_path / "mia" / "config.json").read_text())["model"]["flow_input"] is True
    r = _invoke(["loso", str(cache), "--protocol", "cde", "--out", str(tmp_path / "plain"), *FAST, *MODEL_FLAGS,
                 "--branch-pool", "1", "--no-flow-input"])
    assert r.exit_code == 0, r.output
    assert json.loads((tmp_path / "plain" / "config.json").read_text())["model"]["flow_input"] is False


def test_paper_recipe_sets_the_papers_settings(tmp_path):
    cache = make_cache(tmp_path / "cache", subjects=2)
    # --epochs etc. win over the preset; the rest is the paper's.
    r = _invoke(["loso", str(cache), "--protocol", "cde", "--recipe", "paper", "--out", str(tmp_path / "p"),
                 "--epochs", "1", "--repeats", "1", "--quiet", *MODEL_FLAGS])
    assert r.exit_code == 0, r.output
    run = json.loads((tmp_path / "p" / "config.json").read_text())["loso"]["run"]
    assert run["recipe"] == "paper"
    assert run["optim"]["batch_size"] == 20 and run["optim"]["lr"] == 1e-4 and run["optim"]["weight_decay"] == 1e-4
    assert run["augment"]["max_rotation_deg"] == 10.0 and run["augment"]["mirror"] is True
    assert get_recipe("paper").for_method("moext")["model"] == {"backbone": "resnet18", "image_size": 224}


def test_help_lists_methods_and_recipes():
    out = _invoke(["loso", "--help"]).output
    for name in ("ststnet", "--recipe", *RECIPES):
        assert name in out


@pytest.mark.parametrize("args,needle", [
    (["--recipe", "turbo"], "unknown --recipe 'turbo'"),
    (["--method", "ststnet", "--init", "x.safetensors"], "no pre-training"),
    (["--flow-preset", "slowest"], "flow_preset"),
    (["--method", "ststnet", "--flow-out-size", "4"], "flow_out_size"),
])
def test_bad_flow_and_recipe_values_are_one_line_errors_and_write_nothing(tmp_path, args, needle):
    cache = make_cache(tmp_path / "cache", subjects=2)
    out = tmp_path / "run"
    extra = [] if "--method" in args else MODEL_FLAGS
    r = _invoke(["loso", str(cache), "--protocol", "cde", "--out", str(out), *FAST, *extra, *args])
    assert r.exit_code == 2, r.output
    lines = [ln for ln in r.output.strip().splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: ") and needle in lines[0], r.output
    assert not out.exists()


def test_ststnet_has_no_pretraining(tmp_path):
    cache = make_cache(tmp_path / "cache", subjects=2)
    r = _invoke(["pretrain", str(cache), "--method", "ststnet", "--out", str(tmp_path / "pre"), "--quiet"])
    assert r.exit_code == 2 and "no pre-training" in r.output
    assert not (tmp_path / "pre").exists()


def test_branch_losses_with_flow_input_are_the_hand_computed_sum():
    from train.methods import ClassifierObjective

    torch.manual_seed(0)
    model = MoExtClassifier(ModelConfig(**TINY_MODEL, flow_input=True, flow_aux_weight=0.5)).eval()
    x, flow, y = torch.randn(4, 3, 32, 32), torch.randn(4, 3, 28, 28), torch.tensor([0, 1, 2, 1])
    loss, parts = ClassifierObjective(model)((x, x, y, torch.arange(4), flow))
    own, from_flow = model.forward_parts(x, x, flow)
    ce = torch.nn.functional.cross_entropy
    want = ce(own + from_flow, y) + 0.5 * (ce(own, y) + ce(from_flow, y))
    assert torch.allclose(loss, want) and not torch.allclose(loss, ce(own + from_flow, y))
    assert torch.allclose(model(x, x, flow), own + from_flow)
    plain = MoExtClassifier(ModelConfig(**TINY_MODEL, flow_input=True, flow_aux_weight=0.0)).eval()
    loss0, _ = ClassifierObjective(plain)((x, x, y, torch.arange(4), flow))
    assert torch.allclose(loss0, ce(plain(x, x, flow), y))


def _relabel(cache, dataset, names):
    rows = [json.loads(x) for x in (cache / "manifest.jsonl").read_text().splitlines()]
    mapping = dict(zip(("disgust", "happiness", "surprise"), names))
    rows = [{**r, "dataset": dataset if r["dataset"] != "macro" else "macro",
             "emotion": mapping.get(r["emotion"], r["emotion"])} for r in rows]
    (cache / "manifest.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    from train_data_helpers import mark_landmarker

    mark_landmarker(cache, dataset, "macro")
    return cache


def test_composite_loso_over_three_caches_fills_the_per_dataset_columns(tmp_path):
    """CDE (MEGC 2019): SMIC-HS + CASME II + SAMM caches in one LOSO, one fold per
    dataset/subject, the report's per-dataset columns filled."""
    smic = _relabel(make_cache(tmp_path / "smic", subjects=2, seed=1), "smic-hs", ("negative", "positive", "surprise"))
    casme2 = make_cache(tmp_path / "casme2", subjects=2, seed=2)
    samm = _relabel(make_cache(tmp_path / "samm", subjects=2, seed=3), "samm", ("disgust", "happiness", "surprise"))
    r = _invoke(["loso", str(smic), str(casme2), str(samm), "--protocol", "cde", "--method", "ststnet",
                 "--out", str(tmp_path / "cde"), "--epochs", "8", "--quiet"])
    assert r.exit_code == 0, r.output
    m = json.loads((tmp_path / "cde" / "metrics.json").read_text())
    assert len(m["folds"]) == 6 and m["pooled"]["n"] == 18
    assert set(m["by_dataset"]) == {"smic-hs", "casme2", "samm"}
    assert all(b["n"] == 6 for b in m["by_dataset"].values())
    assert set(m["test_best"]["by_dataset"]) == {"smic-hs", "casme2", "samm"}
    report = (tmp_path / "cde" / "results.md").read_text()
    for title in ("SMIC", "CASME II", "SAMM"):
        assert title in report, title


def test_sde_five_class_runs_the_same_way(tmp_path):
    cache = make_cache(tmp_path / "casme2", subjects=2)
    r = _invoke(["loso", str(cache), "--protocol", "casme2-5", "--method", "ststnet", "--out", str(tmp_path / "sde"),
                 "--epochs", "8", "--quiet"])
    assert r.exit_code == 0, r.output
    m = json.loads((tmp_path / "sde" / "metrics.json").read_text())
    assert m["class_names"] == ["happiness", "repression", "disgust", "surprise", "others"]
    assert m["classes_scored"] == ["happiness", "disgust", "surprise"] and m["pooled"]["n"] == 6
    assert "test_best" in m and m["recipe"] == "cpu"


def test_flow_target_is_the_hand_computed_error_of_the_predicted_flow():
    from moext import MoExtPretrain
    from moext.modeling.losses import flow_target_loss, pretraining_loss

    torch.manual_seed(0)
    model = MoExtPretrain(ModelConfig(**TINY_MODEL, flow_target=0.5))
    m = torch.randn(2, 8, 8, 8)
    flow = torch.zeros(2, 3, 28, 28)
    flow[:, 0] = 2.0  # u = 2 px everywhere, v = 0
    want = (model.predict_flow(m) - torch.cat([torch.full((2, 1, 8, 8), 2.0), torch.zeros(2, 1, 8, 8)], 1)).abs().mean()
    assert torch.allclose(flow_target_loss(model, m, flow), want)
    x = torch.randn(2, 3, 3, 32, 32)
    with_flow = pretraining_loss(model, x, x, flow)
    plain = pretraining_loss(MoExtPretrain(ModelConfig(**TINY_MODEL)), x, x)
    assert with_flow.flow is not None and "flow" in with_flow.items() and plain.flow is None
    assert torch.allclose(with_flow.total, with_flow.re + 0.5 * with_flow.st + with_flow.ss + 0.5 * with_flow.flow)
    with pytest.raises(ValueError, match="flow"):
        pretraining_loss(model, x, x)
    with pytest.raises(ValueError, match="arch=unet"):
        ModelConfig(**{**TINY_MODEL, "arch": "paper"}, flow_target=1.0)


def test_pretraining_with_a_flow_target_then_loso_by_cli(tmp_path):
    cache = make_cache(tmp_path / "cache", subjects=2)
    r = _invoke(["pretrain", str(cache), "--out", str(tmp_path / "pre"), *FAST, *MODEL_FLAGS, "--branch-pool", "1",
                 "--flow-target", "1.0"])
    assert r.exit_code == 0, r.output
    extra = json.loads((tmp_path / "pre" / "pretrained.json").read_text())["extra"]
    assert "flow" in extra["history"][-1] and extra["run"]["model"]["flow_target"] == 1.0
    r = _invoke(["loso", str(cache), "--protocol", "cde", "--init", str(tmp_path / "pre" / "pretrained.safetensors"),
                 "--out", str(tmp_path / "loso"), *FAST])
    assert r.exit_code == 0, r.output
    assert json.loads((tmp_path / "loso" / "config.json").read_text())["model"]["flow_input"] is True
    r = _invoke(["pretrain", str(cache), "--out", str(tmp_path / "bad"), *FAST, *MODEL_FLAGS, "--flow-target", "-1"])
    assert r.exit_code == 2 and "flow_target" in r.output and not (tmp_path / "bad").exists()


def test_flow_first_trains_the_branch_alone_then_holds_it_back(tmp_path):
    """`optim.flow_first_epochs`: the flow branch is trained alone first (STSTNet's way), then
    counts as pre-trained: frozen for `freeze_epochs`, so after one frozen epoch its weights
    are exactly what the first stage left, while the frames' head has moved."""
    from train.config import AugmentConfig, OptimConfig, RunConfig
    from train.finetune import build_classifier, fit_flow_first, protocol_rows, train_classifier
    from train.methods import get_method
    from train.pairs import pair_dataset

    torch.set_num_threads(1)
    cache = make_cache(tmp_path / "cache", subjects=2)
    optim = OptimConfig(batch_size=6, epochs=1, freeze_epochs=1.0, flow_first_epochs=40)
    run = RunConfig(model={**TINY_MODEL, "flow_input": True, "branch_pool": 1}, optim=optim,
                    augment=AugmentConfig(repeats=1), caches=[str(cache)], protocol="cde")
    method = get_method("moext")
    rows, names = protocol_rows(run.caches, "cde")

    # The first stage alone, by hand, on a twin of the model.
    twin, _ = build_classifier(method, run, names)
    untrained = {k: v.clone() for k, v in twin.flow_head.state_dict().items()}
    ds = pair_dataset(twin, rows, None, 0)
    from moext.modeling.flownet import flow_standardisers

    for s in flow_standardisers(twin):
        s.set_stats(ds.flow_inputs())
    labels = torch.tensor([int(r["label"]) for r in rows])
    acc = fit_flow_first(twin.flow_head, ds.flow_inputs(), labels, 40, 5e-4, run.seed)
    assert 0.0 <= acc <= 1.0
    first = {k: v.clone() for k, v in twin.flow_head.named_parameters()}
    assert any(not torch.equal(first[k], untrained[k]) for k in first)  # the stage trained it

    model, _ = build_classifier(method, run, names)
    frames_before = {k: v.clone() for k, v in model.named_parameters() if not k.startswith("flow_head.")}
    result = train_classifier(method, run, model, rows, progress=False)
    after = dict(result.model.flow_head.named_parameters())
    for k, v in first.items():  # frozen through the one epoch of freeze_epochs
        assert torch.equal(after[k], v), k
    moved = [k for k, v in result.model.named_parameters() if k in frames_before and not torch.equal(v, frames_before[k])]
    assert moved  # the frames' head trained meanwhile

    # Without the stage the branch trains with the rest from its initialisation.
    plain = RunConfig(model=run.model, optim=OptimConfig(batch_size=6, epochs=1), augment=run.augment,
                      caches=run.caches, protocol="cde")
    m2, _ = build_classifier(method, plain, names)
    r2 = train_classifier(method, plain, m2, rows, progress=False)
    assert any(not torch.equal(p, first[k]) for k, p in r2.model.flow_head.named_parameters())
    with pytest.raises(Exception, match="flow_first_epochs"):
        OptimConfig(flow_first_epochs=-1)
