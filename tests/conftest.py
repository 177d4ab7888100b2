import numpy as np
import pytest
import torch

from moext import ModelConfig


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)
    np.random.seed(0)


@pytest.fixture
def tiny_cfg() -> ModelConfig:
    """A MoExt small enough to train in seconds on CPU (64 px, narrow branches)."""
    return ModelConfig(
        backbone="mobilenet_v3_small",
        branch_channels=16,
        feature_dim=32,
        projection_dim=8,
        image_size=64,
        num_classes=3,
        class_names=["negative", "positive", "surprise"],
        dropout=0.0,
    )


@pytest.fixture
def env(tmp_path, monkeypatch):
    """A run of the live CLI in a clean place: its own export cache, no display."""
    monkeypatch.setenv("MOEXT_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.delenv("DISPLAY", raising=False)
    return tmp_path


@pytest.fixture
def tiny_ck(env, tiny_cfg):
    """An untrained tiny classifier checkpoint (plumbing, not accuracy)."""
    from moext import MoExtClassifier, save_checkpoint

    return save_checkpoint(MoExtClassifier(tiny_cfg), env / "tiny.safetensors")
