"""Backbones from torchvision: a generic feature map for the feature separator.

The paper leaves the backbone open; its 1024-wide concat (M ++ T_o) implies 512-d features,
so ResNet-18 is the default. MobileNetV3-Small is the fast option for CPU real time.
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn
from torchvision import models

# name -> (constructor, channels of the final feature map)
BACKBONES: dict[str, tuple] = {
    "resnet18": (models.resnet18, 512),
    "resnet34": (models.resnet34, 512),
    "mobilenet_v3_small": (models.mobilenet_v3_small, 576),
    "mobilenet_v3_large": (models.mobilenet_v3_large, 960),
}


class Backbone(nn.Module):
    """A torchvision classifier cut before its pooling: image -> (B, C, H/32, W/32)."""

    def __init__(self, name: str, weights_path: str | None = None):
        super().__init__()
        if name not in BACKBONES:
            raise ValueError(f"unknown backbone {name!r}; choose one of {sorted(BACKBONES)}")
        ctor, self.out_channels = BACKBONES[name]
        net = ctor(weights=None)  # never a download: weights come from a local file only
        if weights_path is not None:
            net.load_state_dict(_read_state_dict(weights_path), strict=False)
        if name.startswith("resnet"):
            self.body = nn.Sequential(*list(net.children())[:-2])
        else:
            self.body = net.features
            # torchvision's MobileNetV3 uses BatchNorm momentum 0.01 (tuned for long ImageNet
            # runs); on the few hundred steps an ME dataset gives, the running statistics stay
            # near their init and eval-mode features collapse. 0.1 is PyTorch's default.
            for m in self.body.modules():
                if isinstance(m, nn.BatchNorm2d):
                    m.momentum = 0.1

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x)  # (B, 3, H, W) -> (B, C, H/32, W/32)


def _read_state_dict(path: str) -> dict[str, torch.Tensor]:
    p = Path(path)
    if not p.is_file():
        raise FileNotFoundError(f"backbone weights {p} not found; pass an existing file or none")
    if p.suffix == ".safetensors":
        from safetensors.torch import load_file

        return load_file(str(p))
    # torchvision ships .pth state dicts; weights_only refuses anything but tensors.
    return torch.load(str(p), map_location="cpu", weights_only=True)
