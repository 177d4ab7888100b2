"""Classifiers of onset -> apex optical flow: STSTNet (Liong et al., "Shallow Triple Stream
Three-dimensional CNN (STSTNet) for micro-expression recognition", FG 2019), and the flow
branch that MoExt and MIACNet add to their heads with `flow_input` (docs/TRAINING.md).

The input is `moext.flow.motion_channels`: (B, 3, n, n) u, v and optical strain, n = 28 as
STSTNet has it. Each channel is standardised by statistics of the training set that travel
with the weights (`FlowStandardiser`), so a checkpoint scores new flow the way it was trained.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import nn

from moext.config import DEFAULT_CLASSES, JsonConfig
from moext.flow import FlowFields


class FlowStandardiser(nn.Module):
    """Per-channel (x - mean) / std with the training set's statistics as buffers: they are
    set once before training (`set_stats`) and saved with the weights."""

    def __init__(self, channels: int = 3):
        super().__init__()
        self.register_buffer("mean", torch.zeros(channels))
        self.register_buffer("std", torch.ones(channels))

    @torch.no_grad()
    def set_stats(self, flows: torch.Tensor) -> None:
        """flows: (N, C, n, n) of the training set."""
        self.mean.copy_(flows.mean(dim=(0, 2, 3)))
        self.std.copy_(flows.std(dim=(0, 2, 3)).clamp_min(1e-6))

    def forward(self, f: torch.Tensor) -> torch.Tensor:
        return (f - self.mean[None, :, None, None]) / self.std[None, :, None, None]  # (B, C, n, n)


class FlowBranch(nn.Module):
    """STSTNet's trunk: three parallel 3x3 convolutions of 3, 5 and 8 filters, each ReLU,
    BatchNorm, 3x3 max-pool (stride 3) and dropout, concatenated (16 channels), 2x2 average
    pool, flattened: 16 * 5 * 5 = 400 features for a 28 x 28 input."""

    def __init__(self, out_size: int = 28, widths: tuple[int, ...] = (3, 5, 8), dropout: float = 0.5):
        super().__init__()
        self.standardise = FlowStandardiser(3)
        self.streams = nn.ModuleList(
            nn.Sequential(
                nn.Conv2d(3, w, 3, padding=1), nn.ReLU(inplace=True), nn.BatchNorm2d(w),
                nn.MaxPool2d(3, stride=3, padding=1), nn.Dropout(dropout),
            )
            for w in widths
        )
        self.pool = nn.AvgPool2d(2)
        side = ((out_size + 2 - 3) // 3 + 1) // 2
        self.out_features = sum(widths) * side * side

    def forward(self, flow: torch.Tensor) -> torch.Tensor:
        f = self.standardise(flow)  # (B, 3, n, n)
        z = torch.cat([s(f) for s in self.streams], dim=1)  # (B, 16, n/3, n/3)
        return self.pool(z).flatten(1)  # (B, 16 * (n/6)^2)


@dataclass
class STSTNetConfig(FlowFields, JsonConfig):
    """STSTNet, the 2019 flow baseline (its paper's network; the reference row of every
    learning table).

    Attributes:
        widths: filters of the three parallel convolutions (the paper: 3, 5, 8).
        dropout: dropout after each stream's max-pool (0.5 as in the reference).
        num_classes / class_names: the classifier head; names travel with the weights.
    """

    widths: list[int] = field(default_factory=lambda: [3, 5, 8])
    dropout: float = 0.5
    num_classes: int = len(DEFAULT_CLASSES)
    class_names: list[str] = field(default_factory=lambda: list(DEFAULT_CLASSES))

    # The classifier seam of the other methods: what the live recognizer and training feed.
    uses_images = False
    flow_input = True

    def __post_init__(self) -> None:
        if len(self.class_names) != self.num_classes:
            raise ValueError(f"STSTNetConfig: num_classes={self.num_classes} but class_names {self.class_names}")
        if not self.widths or any(int(w) < 1 for w in self.widths):
            raise ValueError(f"STSTNetConfig: widths={self.widths}; give positive filter counts, e.g. [3, 5, 8]")
        self.check_flow("STSTNetConfig")


class STSTNet(nn.Module):
    """Onset -> apex flow (u, v, strain) -> class logits. `forward(x_o, x_a, flow)` keeps the
    seam of the image classifiers; the frames are not read."""

    def __init__(self, cfg: STSTNetConfig):
        super().__init__()
        self.cfg = cfg
        self.branch = FlowBranch(cfg.flow_out_size, tuple(cfg.widths), cfg.dropout)
        self.fc = nn.Linear(self.branch.out_features, cfg.num_classes)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """The frames' part of the seam: STSTNet reads no frame, so a (B, 1) zero stands in
        (a real tensor keeps the exported graphs and the live feature cache uniform)."""
        return x[:, :1, 0, 0] * 0.0  # (B, 1)

    def forward_head(self, f_o: torch.Tensor, f_a: torch.Tensor, flow: torch.Tensor | None = None) -> torch.Tensor:
        if flow is None:
            raise ValueError("STSTNet classifies the onset -> apex flow: pass it (B, 3, n, n)")
        return self.fc(self.branch(flow))  # (B, 3, n, n) -> (B, num_classes)

    def forward(self, x_o: torch.Tensor | None, x_a: torch.Tensor | None, flow: torch.Tensor) -> torch.Tensor:
        return self.forward_head(x_o, x_a, flow)  # (B, num_classes)


class FlowLogits(nn.Module):
    """The flow branch of a two-frame classifier with `flow_input`: its 400 features through
    one linear layer, added to the image head's logits (the same as one linear layer on the
    concatenated features, without touching the image head's weights)."""

    def __init__(self, out_size: int, num_classes: int, dropout: float = 0.5):
        super().__init__()
        self.branch = FlowBranch(out_size, dropout=dropout)
        self.fc = nn.Linear(self.branch.out_features, num_classes)

    def forward(self, flow: torch.Tensor) -> torch.Tensor:
        return self.fc(self.branch(flow))  # (B, 3, n, n) -> (B, num_classes)


def flow_standardisers(model: nn.Module) -> list[FlowStandardiser]:
    return [m for m in model.modules() if isinstance(m, FlowStandardiser)]
