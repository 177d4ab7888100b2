"""Typed configuration of the MoExt network and its pre-training losses.

A checkpoint stores its `ModelConfig` as JSON beside the weights, so loading never guesses.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

from moext.flow import FlowFields

# The five classes of the CASME II protocol are only a default; a checkpoint carries its own.
DEFAULT_CLASSES = ("negative", "positive", "surprise")
ARCHS = ("unet", "paper")


class JsonConfig:
    """`to_dict` / `from_dict` for a config dataclass stored as JSON beside the weights;
    unknown keys are refused by name (a typo must not silently fall back to a default)."""

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]):
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(d) - known)
        if unknown:
            raise ValueError(f"unknown {cls.__name__} fields {unknown}; known: {sorted(known)}")
        return cls(**d)


@dataclass
class ModelConfig(FlowFields, JsonConfig):
    """Everything needed to rebuild a MoExt network exactly.

    Attributes:
        arch: "unet" (the architecture the authors released, github ppppear/Moext: shape and
            texture are spatial maps from a U-Net decoder over the backbone's skips, the motion
            is the shape maps' difference refined by conv blocks with a residual, the apex is
            reconstructed from texture + motion maps) or "paper" (Tables 1-2 as printed:
            vector features S and T, a 1024x1x1 reconstructor input). Checkpoints from before
            this field are "paper" (see `moext.checkpoint`).
        backbone_weights: optional local file (safetensors, or a torchvision `.pth` read with
            `weights_only=True`) used to initialise the backbone; never downloaded.
        image_size: side of the square network input in pixels (the paper uses 224).
        branch_channels: output channels of the Conv blocks of each separator branch (Table 1);
            with arch=unet, the channels of the S and T maps.
        branch_pool: arch=paper: each branch average-pools its map to branch_pool x branch_pool
            cells before the FC (1 = global pooling; larger keeps the location of a movement);
            arch=unet: the classifier head pools the motion map to that grid.
        feature_dim: arch=paper: width of the vector features S and T after the branch FC
            (512 makes the reconstructor's input concat 1024-wide, as Table 2 implies).
            arch=unet: unused by the maps (kept in the config for the paper arch).
        map_stride: arch=unet: the S and T maps are image_size / map_stride wide (2, 4 or 8;
            the authors' code uses 2 at 224 px).
        reconstruction: "residual": X~_a = X_o + R(Concat(M, T_o)), R predicts the change from
            the onset; "full": X~_a = R(Concat(M, T_o)) as eq. 4 and the released code write
            it. choice: at CPU sizes a decoder cannot redraw the onset's pixels from T_o
            (measured: L_re 0.18 against 0.065 for copying the onset after 5 epochs, and
            zeroing M did not change it), so the residual form leaves R only the change to
            predict, and the change is what M must carry. "full" with arch=paper is Tables 1-2
            exactly.
        projection_dim: output width of the projection f(.) shared by L_st and L_ss.
        num_classes / class_names: the classifier head; names travel with the weights.
        use_motion_extractor: False is the Table 7 ablation that feeds |S_a - S_o| to the head.
        alpha_st: alpha1 of eq. 9, the weight of L_st (0 = Table 7 "no L_st").
        alpha_ss: alpha2 of eq. 9, the weight of L_ss (0 = Table 7 "no L_ss").
        margin_st: epsilon of eq. 7 (the paper gives [0.2, 0.5]).
        margin_ss: epsilon of eq. 8 (the paper gives [0.2, 0.5]).
        dropout: dropout before the classifier head.
        flow_input: the onset -> apex optical flow (u, v, strain; `moext.flow`) is an extra
            input of the head: an STSTNet branch whose logits are added to the motion
            head's. choice: the paper has no flow; real micro-expressions reward explicit
            motion (a 16-filter flow network beat our two-frame MoExt on real CASME II).
        flow_target: weight of a pre-training term L_flow (arch=unet): M predicts the onset
            -> apex optical flow (u, v) at its map's resolution through a 1x1 convolution,
            mean absolute error in pixels of the flow grid. 0 = the paper's pretext alone.
            choice: the paper's pretext has no flow; this tells E what motion is explicitly.
    """

    arch: str = "unet"
    backbone: str = "resnet18"
    backbone_weights: str | None = None
    image_size: int = 224
    branch_channels: int = 512
    branch_pool: int = 1
    feature_dim: int = 512
    map_stride: int = 4
    reconstruction: str = "residual"
    projection_dim: int = 128
    num_classes: int = len(DEFAULT_CLASSES)
    class_names: list[str] = field(default_factory=lambda: list(DEFAULT_CLASSES))
    use_motion_extractor: bool = True
    alpha_st: float = 0.5
    alpha_ss: float = 1.0
    margin_st: float = 0.3
    margin_ss: float = 0.3
    dropout: float = 0.2
    flow_input: bool = False
    flow_target: float = 0.0

    def __post_init__(self) -> None:
        self.check_flow("ModelConfig")
        if len(self.class_names) != self.num_classes:
            raise ValueError(
                f"ModelConfig: num_classes={self.num_classes} but {len(self.class_names)} "
                f"class_names {self.class_names}; give one name per class."
            )

        if self.flow_target < 0 or (self.flow_target > 0 and self.arch != "unet"):
            raise ValueError(f"ModelConfig: flow_target={self.flow_target}; a weight >= 0, and only with "
                             "arch=unet (the flow is predicted from the motion map M)")
        if self.reconstruction not in ("residual", "full"):
            raise ValueError(f"ModelConfig: reconstruction={self.reconstruction!r}; choose residual or full")
        if self.arch not in ARCHS:
            raise ValueError(f"ModelConfig: arch={self.arch!r}; choose one of {', '.join(ARCHS)}")
        if self.arch == "unet":
            if self.map_stride not in (2, 4, 8):
                raise ValueError(f"ModelConfig: map_stride={self.map_stride}; choose 2, 4 or 8")
            side = self.image_size // self.map_stride
            if self.image_size % 32 or side % self.branch_pool:
                raise ValueError(
                    f"ModelConfig: image_size={self.image_size}, map_stride={self.map_stride} and "
                    f"branch_pool={self.branch_pool}: image_size must be a multiple of 32 and branch_pool "
                    f"must divide the motion map's side image_size/map_stride (={side}), or the head cannot "
                    "be exported to ONNX; e.g. 128 with map_stride 4 and branch_pool 4."
                )
            return
        side = self.image_size // 32  # the backbones' feature map is image_size / 32 wide
        if self.image_size % 32 or side % self.branch_pool:
            raise ValueError(
                f"ModelConfig: image_size={self.image_size} and branch_pool={self.branch_pool}: "
                "image_size must be a multiple of 32 and branch_pool must divide image_size/32 "
                f"(={side}), or the separator cannot be exported to ONNX; e.g. 224 with 1 or 7, "
                "128 with 1, 2 or 4."
            )

