"""Flow-fed classifiers in the live path (STSTNet, MoExt with `flow_input`): the recognizer
feeds them the onset -> current flow made by `moext.flow`, the function training caches its
inputs with; ONNX Runtime agrees with PyTorch. Frames are a real photo (scikit-image's
astronaut) with a generated brightening: synthetic, for tests only."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
import torch

from moext import ModelConfig, MoExtClassifier, STSTNet, STSTNetConfig, save_checkpoint
from moext.flow import FlowConfig, motion_channels
from moext.modeling.flownet import flow_standardisers
from realtime import backends as B
from realtime.classifier import ClassifierInputs, ClassifierStage

NAMES = ["negative", "positive", "surprise"]


def _models():
    torch.manual_seed(0)
    st = STSTNet(STSTNetConfig(class_names=NAMES))
    mo = MoExtClassifier(ModelConfig(backbone="mobilenet_v3_small", image_size=64, branch_channels=8,
                                     projection_dim=8, branch_pool=2, flow_input=True, class_names=NAMES))
    for m in (st, mo):
        for s in flow_standardisers(m):  # non-trivial statistics: they must travel to the backend
            s.set_stats(torch.randn(8, 3, 28, 28) * 0.3 + 0.1)
    return {"ststnet": st.eval(), "moext-flow": mo.eval()}


@pytest.fixture
def checkpoints(tmp_path, monkeypatch):
    monkeypatch.setenv("MOEXT_CACHE_DIR", str(tmp_path / "cache"))
    return {k: (save_checkpoint(m, tmp_path / f"{k}.safetensors"), m) for k, m in _models().items()}


def _frames(n=40):
    import skimage.data

    face = cv2.resize(cv2.cvtColor(skimage.data.astronaut(), cv2.COLOR_RGB2BGR)[0:300, 90:390], (240, 240))
    out = []
    for i in range(n):
        img = face.copy()
        if 20 <= i < 26:  # a brief brightening and shift around the mouth
            patch = img[170:200, 80:160].astype(int) + 12 * (3 - abs(i - 23))
            img[170:200, 80:160] = np.clip(np.roll(patch, 2 * (3 - abs(i - 23)), axis=1), 0, 255)
        canvas = np.full((360, 640, 3), 90, np.uint8)
        canvas[60:300, 200:440] = img
        out.append(canvas)
    return out


@pytest.mark.parametrize("name", ["ststnet", "moext-flow"])
def test_onnx_head_reads_the_flow_like_torch(checkpoints, name):
    ck, model = checkpoints[name]
    t = B.TorchBackend(model)
    o, _ = B.load_backend(ck, model, "onnx")
    size = ClassifierInputs.of(model).image_size  # STSTNet takes a small placeholder frame
    x = np.random.default_rng(0).normal(size=(2, 3, size, size)).astype(np.float32)
    flow = np.random.default_rng(1).normal(size=(2, 3, 28, 28)).astype(np.float32)
    f_t, f_o = t.features(x), o.features(x)
    z_t, z_o = t.head(f_t, f_t, flow), o.head(f_o, f_o, flow)
    assert np.abs(z_t - z_o).max() < 1e-3
    # the flow matters: another flow, other logits
    assert np.abs(o.head(f_o, f_o, flow * 3) - z_o).max() > 1e-3


def test_stage_feeds_the_flow_of_the_two_crops(checkpoints):
    ck, model = checkpoints["ststnet"]
    stage = ClassifierStage(B.TorchBackend(model), ClassifierInputs.of(model))
    assert stage.needs_crops and stage.inputs.flow == FlowConfig()
    frames = _frames()
    crop_a, crop_b = frames[0][60:284, 200:424], frames[23][60:284, 200:424]

    class F:  # a buffered frame: features and crop
        def __init__(self, crop):
            self.features, self.crop = np.zeros(1, np.float32), crop

    got = stage.logits(F(crop_a), F(crop_b))
    want = model(None, None, torch.from_numpy(motion_channels(crop_a, crop_b, FlowConfig())[None]))
    assert np.allclose(got, want.detach().numpy(), atol=1e-5)
    no_crop = F(crop_a)
    no_crop.crop = None
    assert stage.logits(no_crop, F(crop_b)) is None  # no crop, no flow: no guess


@pytest.mark.slow
@pytest.mark.parametrize("name", ["ststnet", "moext-flow"])
def test_recognizer_runs_a_flow_checkpoint_and_backends_agree(checkpoints, name):
    from realtime.recognizer import Recognizer, RecognizerConfig

    ck, _ = checkpoints[name]
    frames = _frames()
    probs = {}
    for backend in ("torch", "onnx"):
        # keep_crops off is overridden: the flow is measured on the buffered crops
        rec = Recognizer.from_checkpoint(ck, backend=backend, config=RecognizerConfig(keep_crops=False))
        try:
            assert rec.config.keep_crops
            out = [rec.process(f, 1000.0 * i / 30) for i, f in enumerate(frames)]
        finally:
            rec.close()
        probs[backend] = [r.probabilities for r in out]
    have = [i for i, p in enumerate(probs["torch"]) if p is not None]
    assert len(have) >= 10, "the recognizer classified too few frames to compare"
    worst = max(abs(probs["torch"][i][k] - probs["onnx"][i][k]) for i in have for k in probs["torch"][i])
    assert worst < 1e-3


def test_int8_is_refused_for_a_flow_only_classifier(checkpoints):
    ck, model = checkpoints["ststnet"]
    with pytest.raises(B.BackendUnavailable, match="reads only the optical flow"):
        B.load_backend(ck, model, "onnx", precision="int8")
