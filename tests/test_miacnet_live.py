"""MIACNet in the live path: ONNX Runtime agrees with PyTorch through the realtime backends
and through the whole recognizer; a pre-training checkpoint is refused. Frames are a real
photo (scikit-image's astronaut) on a grey canvas: synthetic, for tests only."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
import torch

from moext import MA2MIPretrain, MIACNet, MIACNetConfig, save_checkpoint
from realtime import backends as B


def tiny(**kw) -> MIACNetConfig:
    base = dict(backbone="resnet18", image_size=64, action_channels=8, position_channels=8,
                fusion_channels=8, num_classes=3, class_names=["negative", "positive", "surprise"])
    base.update(kw)
    return MIACNetConfig(**base)


@pytest.fixture
def checkpoint(tmp_path, monkeypatch):
    monkeypatch.setenv("MOEXT_CACHE_DIR", str(tmp_path / "cache"))
    torch.manual_seed(0)
    model = MIACNet(tiny()).eval()
    # Non-trivial BatchNorm statistics, so that a wrong eval/train export would show.
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.running_mean.uniform_(-0.2, 0.2)
                m.running_var.uniform_(0.5, 1.5)
    return save_checkpoint(model, tmp_path / "miacnet.safetensors"), model


def _softmax(z):
    e = np.exp(z - z.max(-1, keepdims=True))
    return e / e.sum(-1, keepdims=True)


def test_onnx_backend_matches_torch_for_miacnet(checkpoint):
    ck, model = checkpoint
    t = B.TorchBackend(model)
    o, choice = B.load_backend(ck, model, "onnx")
    assert isinstance(o, B.OnnxBackend) and choice.name == "onnx"
    x = np.random.default_rng(0).normal(size=(3, 3, 64, 64)).astype(np.float32)
    f_t, f_o = t.features(x), o.features(x)
    assert f_t.shape == (3, 128, 8, 8)  # resnet18 at stride 8 (64 px): the action branch needs the map
    assert np.abs(f_t - f_o).max() < 1e-3
    z_t, z_o = t.head(f_t[:1].repeat(3, 0), f_t), o.head(f_o[:1].repeat(3, 0), f_o)
    assert np.abs(z_t - z_o).max() < 1e-3 and z_t.std() > 1e-3
    with torch.no_grad():
        ref = model(torch.from_numpy(x[:1]).repeat(3, 1, 1, 1), torch.from_numpy(x)).numpy()
    assert np.abs(_softmax(ref) - _softmax(z_o)).max() < 1e-3


def test_recognizer_refuses_a_pretraining_checkpoint(tmp_path):
    from realtime.recognizer import Recognizer, RecognizerError

    ck = save_checkpoint(MA2MIPretrain(tiny()), tmp_path / "pre.safetensors")
    with pytest.raises(RecognizerError, match="miacnet-pretrain"):
        Recognizer.from_checkpoint(ck, backend="torch")


@pytest.mark.slow
def test_recognizer_onnx_and_torch_agree_frame_by_frame(checkpoint):
    import skimage.data

    from realtime.recognizer import Recognizer

    ck, _ = checkpoint
    face = cv2.resize(cv2.cvtColor(skimage.data.astronaut(), cv2.COLOR_RGB2BGR)[0:300, 90:390], (240, 240))
    frames = []
    for i in range(40):
        img = face.copy()
        if 20 <= i < 26:  # a brief brightening around the mouth: something for the head to see
            img[170:200, 80:160] = np.clip(img[170:200, 80:160].astype(int) + 12 * (3 - abs(i - 23)), 0, 255)
        canvas = np.full((360, 640, 3), 90, np.uint8)
        canvas[60:300, 200:440] = img
        frames.append(canvas)
    probs = {}
    for backend in ("torch", "onnx"):
        rec = Recognizer.from_checkpoint(ck, backend=backend)
        try:
            out = [rec.process(f, 1000.0 * i / 30) for i, f in enumerate(frames)]
        finally:
            rec.close()
        probs[backend] = [r.probabilities for r in out]
    have = [i for i, p in enumerate(probs["torch"]) if p is not None]
    assert len(have) >= 10, "the recognizer classified too few frames to compare"
    assert [p is None for p in probs["onnx"]] == [p is None for p in probs["torch"]]
    worst = max(abs(probs["torch"][i][k] - probs["onnx"][i][k]) for i in have for k in probs["torch"][i])
    assert worst < 1e-3
