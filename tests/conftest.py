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
