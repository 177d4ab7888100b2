"""moext: the MoExt micro-expression network, its losses, and the face preprocessing that
training and the live recognizer share. No CLI, no file-system layout, no camera."""

from moext.checkpoint import (
    CheckpointError,
    load_checkpoint,
    register_model,
    save_checkpoint,
    transfer_pretrained,
)
from moext.config import ModelConfig
from moext.modeling import MoExtClassifier, MoExtPretrain

register_model("moext-pretrain", MoExtPretrain, ModelConfig)
register_model("moext-classifier", MoExtClassifier, ModelConfig)

__all__ = [
    "CheckpointError",
    "ModelConfig",
    "MoExtClassifier",
    "MoExtPretrain",
    "load_checkpoint",
    "register_model",
    "save_checkpoint",
    "transfer_pretrained",
]

# MIACNet and its MA2MI pre-training (arXiv 2405.16451).
from moext.modeling.miacnet import MA2MIPretrain, MIACNet, MIACNetConfig, transfer_ma2mi  # noqa: E402

register_model("miacnet-pretrain", MA2MIPretrain, MIACNetConfig)
register_model("miacnet", MIACNet, MIACNetConfig)
__all__ += ["MA2MIPretrain", "MIACNet", "MIACNetConfig", "transfer_ma2mi"]

# STSTNet, the 2019 optical-flow baseline (and the flow branch of `flow_input`).
from moext.modeling.flownet import STSTNet, STSTNetConfig  # noqa: E402

register_model("ststnet", STSTNet, STSTNetConfig)
__all__ += ["STSTNet", "STSTNetConfig", "classifier_inputs"]


def classifier_inputs(model) -> tuple[bool, bool]:
    """(reads the two frames, reads the onset -> apex flow) of a classifier: what training
    and the live recognizer must feed `model(x_o, x_a, flow)`."""
    cfg = model.cfg
    return bool(getattr(type(cfg), "uses_images", True)), bool(getattr(cfg, "flow_input", False))
