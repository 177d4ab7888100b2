"""Checkpoint round trip, pre-trained -> classifier transfer, and malformed checkpoints."""

import dataclasses
import json

import pytest
import torch
from safetensors.torch import load_file, save_file

from moext import (
    CheckpointError,
    MoExtClassifier,
    MoExtPretrain,
    load_checkpoint,
    save_checkpoint,
    transfer_pretrained,
)


def test_round_trip_gives_bit_identical_outputs(tmp_path, tiny_cfg):
    model = MoExtClassifier(tiny_cfg).eval()
    with torch.no_grad():  # make BN statistics non-trivial so they must travel too
        for bn in (m for m in model.modules() if isinstance(m, torch.nn.BatchNorm2d)):
            bn.running_mean.normal_()
            bn.running_var.uniform_(0.5, 2)
    path = save_checkpoint(model, tmp_path / "clf.safetensors", extra={"epoch": 3})
    loaded, meta = load_checkpoint(path)
    assert isinstance(loaded, MoExtClassifier) and not loaded.training
    assert loaded.cfg == tiny_cfg
    assert meta["kind"] == "moext-classifier" and meta["extra"] == {"epoch": 3}
    x_o, x_a = torch.randn(2, 3, 64, 64), torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        assert torch.equal(model(x_o, x_a), loaded(x_o, x_a))
    assert not list(tmp_path.glob(".*tmp*")), "temporary files left behind"


def test_the_same_weights_are_the_same_bytes(tmp_path, tiny_cfg):
    # A resumed run's checkpoint must equal an uninterrupted one byte for byte, or the export
    # cache (keyed by the file's hash) rebuilds; safetensors writes a metadata map in a random
    # order, so eight saves of one model once gave several different files.
    model = MoExtClassifier(tiny_cfg).eval()
    files = {save_checkpoint(model, tmp_path / f"c{i}.safetensors", extra={"epoch": 3, "a": 1}).read_bytes()
             for i in range(8)}
    assert len(files) == 1
    assert len({(tmp_path / f"c{i}.json").read_bytes() for i in range(8)}) == 1


def test_pretrain_round_trip(tmp_path, tiny_cfg):
    model = MoExtPretrain(tiny_cfg).eval()
    path = save_checkpoint(model, tmp_path / "pre.safetensors")
    loaded, _ = load_checkpoint(path, expect_kind="moext-pretrain")
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        s, t = model(x)
        s2, t2 = loaded(x)
        assert torch.equal(s, s2) and torch.equal(t, t2)
        assert torch.equal(model.reconstruct(s, t, s, x), loaded.reconstruct(s2, t2, s2, x))


def test_transfer_copies_shape_extractor_and_motion_extractor_only(tiny_cfg):
    pre = MoExtPretrain(tiny_cfg)
    clf = MoExtClassifier(tiny_cfg)
    head_before = {k: v.clone() for k, v in clf.state_dict().items() if k.startswith("head.")}
    copied = transfer_pretrained(pre, clf)

    pre_sd, clf_sd = pre.state_dict(), clf.state_dict()
    wanted = {
        k
        for k in pre_sd
        if k.startswith(("separator.backbone.", "separator.shape_branch.", "motion."))
    }
    assert set(copied) == wanted
    assert all(torch.equal(pre_sd[k], clf_sd[k]) for k in wanted)
    # the texture branch, reconstructor and projection are dropped, the head is untouched
    assert not any(k.startswith(("separator.texture_branch.", "reconstructor.", "projection."))
                   for k in copied)
    assert all(torch.equal(v, clf_sd[k]) for k, v in head_before.items())
    assert set(clf_sd) - wanted == set(head_before)


def test_missing_config_is_named(tmp_path, tiny_cfg):
    path = save_checkpoint(MoExtClassifier(tiny_cfg), tmp_path / "a.safetensors")
    path.with_suffix(".json").unlink()
    with pytest.raises(CheckpointError, match=r"a\.safetensors.*no config a\.json"):
        load_checkpoint(path)


def test_wrong_keys_and_shapes_are_listed(tmp_path, tiny_cfg):
    tiny_cfg = dataclasses.replace(tiny_cfg, arch="paper")  # its head is one Linear
    path = save_checkpoint(MoExtClassifier(tiny_cfg), tmp_path / "b.safetensors")
    state = load_file(str(path))
    state["head.weight"] = torch.zeros(7, tiny_cfg.feature_dim)  # wrong shape
    state.pop("head.bias")  # missing
    state["stray.weight"] = torch.zeros(1)  # unexpected
    save_file(state, str(path))
    with pytest.raises(CheckpointError) as e:
        load_checkpoint(path)
    msg = str(e.value)
    assert "b.safetensors" in msg and "head.bias" in msg and "stray.weight" in msg
    assert "head.weight" in msg and "(7, 32)" in msg


@pytest.mark.parametrize("arch, change", [("paper", {"feature_dim": 48}), ("unet", {"branch_channels": 12})])
def test_config_of_another_architecture_is_a_mismatch(tmp_path, tiny_cfg, arch, change):
    tiny_cfg = dataclasses.replace(tiny_cfg, arch=arch)
    path = save_checkpoint(MoExtClassifier(tiny_cfg), tmp_path / "c.safetensors")
    meta = json.loads(path.with_suffix(".json").read_text())
    meta["config"] = dataclasses.asdict(dataclasses.replace(tiny_cfg, **change))
    path.with_suffix(".json").write_text(json.dumps(meta))
    with pytest.raises(CheckpointError, match="shape mismatches"):
        load_checkpoint(path)


def test_expected_kind_and_garbage_files(tmp_path, tiny_cfg):
    path = save_checkpoint(MoExtPretrain(tiny_cfg), tmp_path / "d.safetensors")
    with pytest.raises(CheckpointError, match="holds a 'moext-pretrain' model"):
        load_checkpoint(path, expect_kind="moext-classifier")
    path.write_bytes(b"not a safetensors file")
    with pytest.raises(CheckpointError, match="not a readable safetensors"):
        load_checkpoint(path)
    path.with_suffix(".json").write_text("{")
    with pytest.raises(CheckpointError, match="not valid JSON"):
        load_checkpoint(path)
    with pytest.raises(CheckpointError, match="does not exist"):
        load_checkpoint(tmp_path / "nope.safetensors")


def test_unknown_config_field_is_named(tmp_path, tiny_cfg):
    path = save_checkpoint(MoExtClassifier(tiny_cfg), tmp_path / "e.safetensors")
    meta = json.loads(path.with_suffix(".json").read_text())
    meta["config"]["wings"] = 2
    path.with_suffix(".json").write_text(json.dumps(meta))
    with pytest.raises(CheckpointError, match="wings"):
        load_checkpoint(path)


@pytest.mark.parametrize("mask", [0o022, 0o077, 0o002])
def test_checkpoint_and_state_files_follow_the_umask(tmp_path, tiny_cfg, mask):
    """safetensors creates its files 0600: a shared group could not read trained weights."""
    import os

    from moext.io import atomic_save, atomic_write_text

    old = os.umask(mask)
    try:
        path = save_checkpoint(MoExtClassifier(tiny_cfg), tmp_path / "clf.safetensors")
        atomic_save(tmp_path / "state.pt", lambda tmp: torch.save({"a": 1}, tmp))
        atomic_write_text(tmp_path / "notes.txt", "x")
    finally:
        os.umask(old)
    for p in (path, path.with_suffix(".json"), tmp_path / "state.pt", tmp_path / "notes.txt"):
        assert oct(p.stat().st_mode & 0o777) == oct(0o666 & ~mask), p
    assert not list(tmp_path.glob(".*tmp*")), "temporary files left behind"


def test_atomic_save_leaves_the_old_file_when_the_writer_fails(tmp_path):
    from moext.io import atomic_save, atomic_write_text

    target = atomic_write_text(tmp_path / "run.json", "old")

    def broken(tmp):
        tmp.write_text("half")
        raise OSError("disk full")

    with pytest.raises(OSError, match="disk full"):
        atomic_save(target, broken)
    assert target.read_text() == "old" and sorted(p.name for p in tmp_path.iterdir()) == ["run.json"]
