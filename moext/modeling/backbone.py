"""Backbones from torchvision: a generic feature map for the feature separator.

The paper leaves the backbone open; its 1024-wide concat (M ++ T_o) implies 512-d features,
so ResNet-18 is the default. MobileNetV3-Small is the fast option for CPU real time.
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn
from torchvision import models

from moext.checkpoint import CheckpointError

# name -> (constructor, channels of the final feature map)
BACKBONES: dict[str, tuple] = {
    "resnet18": (models.resnet18, 512),
    "resnet34": (models.resnet34, 512),
    "mobilenet_v3_small": (models.mobilenet_v3_small, 576),
    "mobilenet_v3_large": (models.mobilenet_v3_large, 960),
}


class Backbone(nn.Module):
    """A torchvision classifier cut before its pooling: image -> (B, C, H/32, W/32), or cut
    earlier, after the last layer at `out_stride` (16 or 8): (B, C_s, H/s, W/s)."""

    def __init__(self, name: str, weights_path: str | None = None, out_stride: int = 32):
        super().__init__()
        if name not in BACKBONES:
            raise ValueError(f"unknown backbone {name!r}; choose one of {sorted(BACKBONES)}")
        ctor, self.out_channels = BACKBONES[name]
        net = ctor(weights=None)  # never a download: weights come from a local file only
        if weights_path is not None:
            _load_backbone_weights(net, name, weights_path)
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

        # Which layer ends each stride (2, 4, 8, 16, 32) and its channels, for the U-Net
        # branches of arch=unet; read off one small dummy pass, so no per-backbone table is
        # needed, and fixed here so that `stages` does no shape arithmetic (ONNX tracing).
        with torch.no_grad():
            was = self.body.training
            self.body.eval()
            x, strides, channels = torch.zeros(1, 3, 64, 64), [], []
            for layer in self.body:
                x = layer(x)
                strides.append(64 // x.shape[-1])
                channels.append(x.shape[1])
            self.body.train(was)
        self._stage_ends = {i: s for i, s in enumerate(strides) if i + 1 == len(strides) or strides[i + 1] != s}
        self.stage_channels = {s: channels[i] for i, s in self._stage_ends.items()}
        if out_stride != 32:
            end = {s: i for i, s in self._stage_ends.items()}.get(out_stride)
            if end is None:
                raise ValueError(f"out_stride={out_stride}: {name} has stages at strides "
                                 f"{sorted(self.stage_channels)}; choose one of them")
            self.body = self.body[: end + 1]  # keeps the layers' names: weights still load
            self.out_channels = self.stage_channels[out_stride]
            self._stage_ends = {i: s for i, s in self._stage_ends.items() if s <= out_stride}
            self.stage_channels = {s: c for s, c in self.stage_channels.items() if s <= out_stride}

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x)  # (B, 3, H, W) -> (B, C, H/out_stride, W/out_stride)

    def stages(self, x: torch.Tensor) -> dict[int, torch.Tensor]:
        """The last feature map at each stride: {2: (B, C2, H/2, W/2), ..., 32: (B, C, H/32, W/32)}."""
        out: dict[int, torch.Tensor] = {}
        for i, layer in enumerate(self.body):
            x = layer(x)
            if i in self._stage_ends:
                out[self._stage_ends[i]] = x
        return out


def _load_backbone_weights(net: nn.Module, name: str, path: str) -> None:
    """Load a torchvision state dict into `net`, refusing a file for another architecture.

    Only the classifier head (resnet `fc.*`, mobilenet `classifier.*`) may be missing or
    extra; any other missing, unexpected or wrongly shaped tensor is an error naming them
    (with strict=False a file for the wrong network initialised nothing and said nothing).
    """
    state = _read_state_dict(path)
    head = ("fc.", "classifier.")
    want = net.state_dict()
    missing = sorted(k for k in set(want) - set(state) if not k.startswith(head))
    unexpected = sorted(k for k in set(state) - set(want) if not k.startswith(head))
    shapes = sorted(k for k in set(want) & set(state) if want[k].shape != state[k].shape and not k.startswith(head))
    if missing or unexpected or shapes:
        parts = []
        if missing:
            parts.append(f"{len(missing)} missing (e.g. {missing[:3]})")
        if unexpected:
            parts.append(f"{len(unexpected)} unexpected (e.g. {unexpected[:3]})")
        if shapes:
            parts.append(f"{len(shapes)} of another shape (e.g. {shapes[:3]})")
        raise CheckpointError(
            f"backbone weights {path} do not fit {name}: " + "; ".join(parts)
            + f". Pass torchvision's {name} weights (a state dict saved from torchvision.models.{name})"
        )
    net.load_state_dict({k: v for k, v in state.items() if k in want and want[k].shape == v.shape}, strict=False)


def _read_state_dict(path: str) -> dict[str, torch.Tensor]:
    p = Path(path)
    if not p.is_file():
        raise FileNotFoundError(f"backbone weights {p} not found; pass an existing file or none")
    if p.suffix == ".safetensors":
        from safetensors.torch import load_file

        return load_file(str(p))
    # torchvision ships .pth state dicts; weights_only refuses anything but tensors.
    return torch.load(str(p), map_location="cpu", weights_only=True)
