"""Backends agree with eager PyTorch; exports are cached; missing backends explain themselves."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from moext import ModelConfig, MoExtClassifier, save_checkpoint
from realtime import backends as B
from realtime import export as ex


@pytest.fixture
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("MOEXT_CACHE_DIR", str(tmp_path / "cache"))
    return tmp_path / "cache"


def _checkpoint(tmp_path, cfg: ModelConfig):
    model = MoExtClassifier(cfg).eval()
    # Non-trivial BatchNorm statistics, so that a wrong eval/train export would show.
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.running_mean.uniform_(-0.2, 0.2)
                m.running_var.uniform_(0.5, 1.5)
    return save_checkpoint(model, tmp_path / f"{cfg.backbone}.safetensors"), model


def _softmax(z):
    e = np.exp(z - z.max(-1, keepdims=True))
    return e / e.sum(-1, keepdims=True)


@pytest.mark.parametrize("backbone", ["mobilenet_v3_small", "resnet18"])
def test_onnx_matches_torch(tmp_path, cache, tiny_cfg, backbone):
    tiny_cfg.backbone = backbone
    ck, model = _checkpoint(tmp_path, tiny_cfg)
    t = B.TorchBackend(model)
    o, choice = B.load_backend(ck, model, "onnx")
    assert isinstance(o, B.OnnxBackend) and choice.name == "onnx"
    rng = np.random.default_rng(0)
    x = rng.normal(size=(3, 3, 64, 64)).astype(np.float32)
    f_t, f_o = t.features(x), o.features(x)
    assert np.abs(f_t - f_o).max() < 1e-3
    p_t = _softmax(t.head(f_t[:1].repeat(3, 0), f_t))
    p_o = _softmax(o.head(f_o[:1].repeat(3, 0), f_o))
    assert np.abs(p_t - p_o).max() < 1e-3
    # And the seam composes to the model's own forward.
    with torch.no_grad():
        ref = model(torch.from_numpy(x[:1]).repeat(3, 1, 1, 1), torch.from_numpy(x))
    assert np.abs(_softmax(ref.numpy()) - p_o).max() < 1e-3


def test_onnx_export_is_cached_by_checkpoint_hash(tmp_path, cache, tiny_cfg):
    ck, model = _checkpoint(tmp_path, tiny_cfg)
    feat, head = ex.cached_onnx(ck, model)
    assert feat.is_file() and head.is_file() and str(feat).startswith(str(cache))
    stamp = feat.stat().st_mtime_ns
    assert ex.cached_onnx(ck) == (feat, head)
    assert feat.stat().st_mtime_ns == stamp  # reused, not exported again
    # Another model (different weights) gets another folder.
    ck2 = save_checkpoint(MoExtClassifier(tiny_cfg), tmp_path / "other.safetensors")
    assert ex.cached_onnx(ck2)[0].parent != feat.parent


def test_auto_without_cuda_picks_onnx_and_says_why(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    choice = B.choose_backend("auto")
    assert choice.name == "onnx"
    assert "CUDA" in choice.reason and "ONNX Runtime" in choice.reason


def test_tensorrt_without_cuda_explains_install(tmp_path, cache, tiny_cfg, monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    ck, model = _checkpoint(tmp_path, tiny_cfg)
    with pytest.raises(B.BackendUnavailable, match=r"pip install 'moext\[tensorrt\]'"):
        B.load_backend(ck, model, "tensorrt")


def test_unknown_backend_is_named():
    with pytest.raises(B.BackendUnavailable, match="unknown backend 'tpu'"):
        B.choose_backend("tpu")


def _tensorrt_skip_reason() -> str | None:
    if not torch.cuda.is_available():
        return "TensorRT needs an NVIDIA GPU with CUDA; none is available here"
    try:
        import torch_tensorrt  # noqa: F401
    except Exception as e:  # noqa: BLE001 - any import failure means no TensorRT here
        return f"torch-tensorrt is not importable ({e}); pip install 'moext[tensorrt]'"
    return None


@pytest.mark.cuda
@pytest.mark.skipif(_tensorrt_skip_reason() is not None, reason=str(_tensorrt_skip_reason()))
def test_tensorrt_matches_torch(tmp_path, cache, tiny_cfg):
    ck, model = _checkpoint(tmp_path, tiny_cfg)
    t = B.TorchBackend(model)
    trt, choice = B.load_backend(ck, MoExtClassifier(tiny_cfg).eval(), "tensorrt")
    rng = np.random.default_rng(0)
    x = rng.normal(size=(1, 3, 64, 64)).astype(np.float32)
    f_t, f_r = t.features(x), trt.features(x)
    p_t = _softmax(t.head(f_t, f_t * 0.9))
    p_r = _softmax(trt.head(f_r, f_r * 0.9))
    assert np.abs(p_t - p_r).max() < 1e-3
    # The engine is cached under a key with the GPU's name.
    assert torch.cuda.get_device_name().split()[0] in str(ex.tensorrt_dir(ck))


def test_int8_features_stay_close_to_fp32(tmp_path, cache, tiny_cfg, monkeypatch):
    tiny_cfg.backbone = "resnet18"
    ck, model = _checkpoint(tmp_path, tiny_cfg)
    rng = np.random.default_rng(1)
    calib = [rng.normal(size=(1, 3, 64, 64)).astype(np.float32) for _ in range(8)]
    monkeypatch.setattr(ex, "calibration_inputs", lambda size, *a, **k: calib)
    q, choice = B.load_backend(ck, model, "onnx", precision="int8")
    assert choice.name == "onnx-int8" and "int8" in choice.reason
    feat_path = ex.cached_onnx(ck, precision="int8")[0]
    assert feat_path.name == "features.int8.onnx"
    # Quantised: integer initialisers in the graph, and a smaller file than the fp32 one.
    import onnx

    g = onnx.load(str(feat_path)).graph
    assert any(init.data_type == onnx.TensorProto.INT8 for init in g.initializer)
    assert feat_path.stat().st_size < feat_path.with_name("features.onnx").stat().st_size
    x = rng.normal(size=(4, 3, 64, 64)).astype(np.float32)
    f32, f8 = B.TorchBackend(model).features(x), q.features(x)
    rel = np.linalg.norm(f8 - f32, axis=1) / np.linalg.norm(f32, axis=1)
    assert rel.max() < 0.2, rel  # quantised, so not equal; but the same features
    assert not np.array_equal(f8, f32)


def test_int8_needs_onnx_runtime(tmp_path, cache, tiny_cfg):
    ck, model = _checkpoint(tmp_path, tiny_cfg)
    with pytest.raises(B.BackendUnavailable, match="int8 runs on ONNX Runtime only"):
        B.load_backend(ck, model, "torch", precision="int8")
    with pytest.raises(B.BackendUnavailable, match="unknown precision"):
        B.load_backend(ck, model, "onnx", precision="int4")


def test_calibration_reads_faces_of_the_demo_video():
    inputs = ex.calibration_inputs(64, frames=3)
    assert len(inputs) == 3 and all(x.shape == (1, 3, 64, 64) for x in inputs)
    assert not np.allclose(inputs[0], inputs[-1])  # spread over the video, not one frame
    with pytest.raises(ValueError, match="cannot be read"):
        ex.calibration_inputs(64, video="/nonexistent.mp4")


def test_gpu_check_script_says_there_is_no_gpu_and_stops(tmp_path):
    import shutil
    import subprocess
    from pathlib import Path

    if shutil.which("nvidia-smi"):
        pytest.skip("this machine has nvidia-smi: the script would really run")
    script = Path(__file__).resolve().parents[1] / "benchmarks" / "gpu_check.sh"
    p = subprocess.run(["bash", str(script)], capture_output=True, text=True, timeout=60)
    assert p.returncode == 3, p.stderr
    assert "no NVIDIA GPU here" in p.stderr and "Nothing was run" in p.stderr


def test_a_registered_backend_is_offered_and_built(tmp_path, cache, tiny_cfg, monkeypatch):
    """docs/ARCHITECTURE.md's recipe: a BackendSpec is all a new backend needs."""
    ck, model = _checkpoint(tmp_path, tiny_cfg)

    class Echo:
        name = "echo"

        def __init__(self, model):
            self.inner = B.TorchBackend(model)

        def features(self, x):
            return self.inner.features(x)

        def head(self, f_o, f_a):
            return self.inner.head(f_o, f_a)

    monkeypatch.setattr(B, "REGISTRY", dict(B.REGISTRY))
    B.register_backend(B.BackendSpec("echo", "Echo", "torch, echoed", lambda: None,
                                     lambda checkpoint, model, threads, precision: Echo(model)))
    assert "echo" in B.backend_names() and "echo: torch, echoed" in B.backends_help()
    backend, choice = B.load_backend(ck, model, "echo")
    assert isinstance(backend, Echo) and choice.name == "echo"
    x = np.zeros((1, 3, 64, 64), np.float32)
    assert backend.head(backend.features(x), backend.features(x)).shape == (1, 3)
    B.register_backend(B.BackendSpec("never", "Never", "cannot run", lambda: "needs a TPU; pip install x",
                                     lambda *a: None))
    with pytest.raises(B.BackendUnavailable, match="needs a TPU"):
        B.load_backend(ck, model, "never")
