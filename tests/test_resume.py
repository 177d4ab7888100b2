"""Kill-and-resume: a run stopped after its first checkpoint and resumed ends with the same
weights as one that was never stopped (same seed)."""

import os
import signal
import subprocess
import sys
import time

import pytest
import torch
from safetensors.torch import load_file
from train_data_helpers import TINY_MODEL, make_cache

from train.config import AugmentConfig, OptimConfig, RunConfig, TrainError
from train.finetune import build_classifier, protocol_rows, train_classifier
from train.methods import get_method
from train.pretrain import pretrain


class Killed(Exception):
    pass


def _run(cache, epochs=3, **kw):
    return RunConfig(model=dict(TINY_MODEL), optim=OptimConfig(batch_size=4, epochs=epochs),
                     augment=AugmentConfig(repeats=1, rigid_px=1.0, sensor_noise_std=2.0),
                     caches=[str(cache)], **kw)


def _weights(path):
    return load_file(str(path))


def _assert_same(a, b):
    assert a.keys() == b.keys()
    for k in a:
        assert torch.equal(a[k], b[k]), k


@pytest.mark.slow
def test_pretrain_resume_equals_uninterrupted(tmp_path, monkeypatch):
    torch.set_num_threads(1)
    cache = make_cache(tmp_path / "cache", subjects=2)
    run = _run(cache)
    full = pretrain(run, tmp_path / "full", progress=False)

    # Stop right after the first epoch's checkpoint is on disk, as a kill would.
    import train.loop as loop

    real_fit = loop.fit

    def fit_then_die(*a, **kw):
        def die(history):
            raise Killed

        kw["on_epoch"] = die
        return real_fit(*a, **kw)

    monkeypatch.setattr("train.pretrain.fit", fit_then_die)
    with pytest.raises(Killed):
        pretrain(run, tmp_path / "cut", progress=False)
    monkeypatch.undo()
    stopped = torch.load(tmp_path / "cut" / "train_state.pt", weights_only=True)
    assert stopped["epoch"] == 1
    with pytest.raises(TrainError, match="--resume"):
        pretrain(run, tmp_path / "cut", progress=False)  # refuses to overwrite silently
    resumed = pretrain(run, tmp_path / "cut", resume=True, progress=False)
    _assert_same(_weights(full), _weights(resumed))
    # A different run is not silently blended into the old one.
    with pytest.raises(TrainError, match="other settings"):
        pretrain(_run(cache, seed=1), tmp_path / "cut", resume=True, progress=False)
    import json

    assert json.loads((tmp_path / "cut" / "config.json").read_text())["run"]["seed"] == 0  # left as it was


def test_finetune_resume_equals_uninterrupted(tmp_path):
    torch.set_num_threads(1)
    cache = make_cache(tmp_path / "cache", subjects=2)
    run = _run(cache, protocol="cde")
    method = get_method("moext")
    rows, names = protocol_rows(run.caches, "cde")

    def train(out, on_epoch=None, resume=False):
        model, _ = build_classifier(method, run, names)
        return train_classifier(method, run, model, rows, out_dir=out, resume=resume, progress=False,
                                on_epoch=on_epoch).model

    full = train(tmp_path / "full")

    def die(history):
        if len(history) == 1:
            raise Killed

    with pytest.raises(Killed):
        train(tmp_path / "cut", on_epoch=die)
    resumed = train(tmp_path / "cut", resume=True)
    _assert_same(full.state_dict(), resumed.state_dict())


@pytest.mark.slow
def test_cli_pretrain_killed_by_signal_resumes(tmp_path):
    """A real SIGKILL while the CLI trains; the resumed run matches an uninterrupted one."""
    cache = make_cache(tmp_path / "cache", subjects=2)
    args = [sys.executable, "-m", "train.cli", "pretrain", str(cache), "--epochs", "4", "--batch-size", "4",
            "--repeats", "1", "--threads", "1", "--quiet"]
    args += [f"--{k.replace('_', '-')}={v}" for k, v in TINY_MODEL.items()]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    subprocess.run(args + ["--out", str(tmp_path / "full")], check=True, env=env, capture_output=True)
    proc = subprocess.Popen(args + ["--out", str(tmp_path / "cut")], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    state = tmp_path / "cut" / "train_state.pt"
    while not state.exists() and proc.poll() is None:
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    epoch = torch.load(state, weights_only=True)["epoch"]
    assert 1 <= epoch < 4, "the run finished before it could be killed; the test proves nothing"
    subprocess.run(args + ["--out", str(tmp_path / "cut"), "--resume"], check=True, env=env, capture_output=True)
    _assert_same(_weights(tmp_path / "full" / "pretrained.safetensors"),
                 _weights(tmp_path / "cut" / "pretrained.safetensors"))
