"""The MoExt network (Li et al., "Micro-Expression Recognition by Motion Feature Extraction
based on Pre-training"): feature separator F, motion extractor E, apex reconstructor R, and
the classifier of §3.4. Equation numbers refer to the paper.
"""

from __future__ import annotations

import torch
from torch import nn

from moext.config import ModelConfig
from moext.modeling.backbone import Backbone


def conv_block(c_in: int, c_out: int) -> nn.Sequential:
    """`Conv(out, 3, 1)-BN-ReLU` of Tables 1 and 2 (3x3 kernel, stride 1, same padding)."""
    return nn.Sequential(
        nn.Conv2d(c_in, c_out, 3, 1, 1, bias=False), nn.BatchNorm2d(c_out), nn.ReLU(inplace=True)
    )


class SeparatorBranch(nn.Module):
    """One branch of F (Table 1): two Conv blocks, then FC to a feature vector."""

    def __init__(self, c_in: int, channels: int, feature_dim: int, pool: int = 1):
        super().__init__()
        self.convs = nn.Sequential(conv_block(c_in, channels), conv_block(channels, channels))
        # The paper does not say how the map becomes a vector. Average pooling to pool x pool
        # cells keeps the FC small (pool=1: 512x512, where flattening 7x7 would need 12.8 M
        # weights); pool > 1 keeps where on the face a feature fired, which tiny motions need.
        self.pool = nn.AdaptiveAvgPool2d(pool)
        self.fc = nn.Linear(channels * pool * pool, feature_dim)

    def forward(self, g: torch.Tensor) -> torch.Tensor:
        g = self.convs(g)  # (B, C, h, w) -> (B, channels, h, w)
        return self.fc(self.pool(g).flatten(1))  # (B, channels*pool^2) -> (B, feature_dim)


class FeatureSeparator(nn.Module):
    """F: X -> (S, T), shape and texture features from one backbone pass (eq. 1)."""

    def __init__(self, cfg: ModelConfig, with_texture: bool = True):
        super().__init__()
        self.backbone = Backbone(cfg.backbone, cfg.backbone_weights)
        c = self.backbone.out_channels
        branch = lambda: SeparatorBranch(c, cfg.branch_channels, cfg.feature_dim, cfg.branch_pool)  # noqa: E731
        self.shape_branch = branch()
        self.texture_branch = branch() if with_texture else None

    def shape(self, x: torch.Tensor) -> torch.Tensor:
        return self.shape_branch(self.backbone(x))  # (B, 3, H, W) -> (B, D)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        if self.texture_branch is None:
            raise RuntimeError("this FeatureSeparator was built without its texture branch")
        g = self.backbone(x)  # (B, C, H/32, W/32)
        return self.shape_branch(g), self.texture_branch(g)  # S, T: (B, D) each


class MotionExtractor(nn.Module):
    """E (eq. 2-3): dS = |S_a - S_o|, M = C2(Concat(C1(dS), S_a))."""

    def __init__(self, dim: int):
        super().__init__()
        # C1 and C2 are FC layers: S is a vector after the branch FC, so convolutions would
        # have nothing spatial to act on.
        self.c1 = nn.Sequential(nn.Linear(dim, dim), nn.ReLU(inplace=True))
        self.c2 = nn.Sequential(nn.Linear(2 * dim, dim), nn.ReLU(inplace=True))

    def forward(self, s_o: torch.Tensor, s_a: torch.Tensor) -> torch.Tensor:
        ds = (s_a - s_o).abs()  # eq. 2, (B, D)
        return self.c2(torch.cat([self.c1(ds), s_a], dim=1))  # eq. 3, (B, 2D) -> (B, D)


class ApexReconstructor(nn.Module):
    """R (eq. 4, Table 2): Concat(M, T_o) as 1024x1x1 -> the apex frame, 3x224x224.

    `ROWS` lists each stage's output (C, H, W) for a 224 input so that a test can check every
    row of Table 2. Table 2's last row reads `Conv2d(512,3,1)` but outputs 3 channels; the
    output conv here has 3. The widths between 512x7x7 and 32x112x112 halve at each
    upsampling (the paper gives only the spatial sizes there).
    """

    ROWS = [
        (512, 8, 8),  # upsample x8 + Conv block
        (512, 7, 7),  # AvgPool(2, stride 1)
        (256, 14, 14),  # upsample x2 + Conv block
        (128, 28, 28),
        (64, 56, 56),
        (32, 112, 112),
        (32, 224, 224),  # upsample x2 + Conv block of 32
        (3, 224, 224),  # output conv
    ]

    def __init__(self, in_dim: int, image_size: int = 224):
        super().__init__()
        up = lambda s: nn.Upsample(scale_factor=s, mode="nearest")  # noqa: E731
        self.stages = nn.ModuleList(
            [
                nn.Sequential(up(8), conv_block(in_dim, 512)),
                nn.AvgPool2d(2, stride=1),
                nn.Sequential(up(2), conv_block(512, 256)),
                nn.Sequential(up(2), conv_block(256, 128)),
                nn.Sequential(up(2), conv_block(128, 64)),
                nn.Sequential(up(2), conv_block(64, 32)),
                nn.Sequential(nn.Upsample(size=image_size, mode="bilinear"), conv_block(32, 32)),
                nn.Conv2d(32, 3, 3, 1, 1),  # linear output: reconstructs the normalised input
            ]
        )

    def forward(self, m: torch.Tensor, t_o: torch.Tensor) -> torch.Tensor:
        z = torch.cat([m, t_o], dim=1)[:, :, None, None]  # (B, 2D, 1, 1)
        for stage in self.stages:
            z = stage(z)
        return z  # (B, 3, image_size, image_size)


class Projection(nn.Module):
    """f(.) of eq. 6-8, shared by L_st and L_ss.

    The paper leaves f open; we choose Linear + L2 normalisation so that distances lie in
    [0, 2] and the margins epsilon in [0.2, 0.5] have a fixed meaning.
    """

    def __init__(self, dim: int, out_dim: int):
        super().__init__()
        self.fc = nn.Linear(dim, out_dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return nn.functional.normalize(self.fc(x), dim=-1)  # (..., out_dim), unit norm


class MoExtPretrain(nn.Module):
    """The pre-training network (eq. 1-4): reconstruct the apex from onset texture + motion."""

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.cfg = cfg
        self.separator = FeatureSeparator(cfg, with_texture=True)
        self.motion = MotionExtractor(cfg.feature_dim) if cfg.use_motion_extractor else None
        self.reconstructor = ApexReconstructor(2 * cfg.feature_dim, cfg.image_size)
        self.projection = Projection(cfg.feature_dim, cfg.projection_dim)

    def motion_features(self, s_o: torch.Tensor, s_a: torch.Tensor) -> torch.Tensor:
        if self.motion is None:  # Table 7 ablation: no motion extractor
            return (s_a - s_o).abs()
        return self.motion(s_o, s_a)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Shape and texture features of a batch of frames: (N, 3, H, W) -> S, T (N, D)."""
        return self.separator(x)

    def reconstruct(self, s_o, t_o, s_a) -> torch.Tensor:
        """Eq. 4: X~_a = R(Concat(E(S_o, S_a), T_o)), (B, 3, H, W)."""
        return self.reconstructor(self.motion_features(s_o, s_a), t_o)


class MoExtClassifier(nn.Module):
    """Objective learning (§3.4): shape extractor + motion extractor + head; no texture.

    `forward_features` (one backbone pass per frame) and `forward_head` are separate so that a
    live recognizer can compute the onset's features once and reuse them every frame.
    """

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.cfg = cfg
        self.separator = FeatureSeparator(cfg, with_texture=False)
        self.motion = MotionExtractor(cfg.feature_dim) if cfg.use_motion_extractor else None
        self.dropout = nn.Dropout(cfg.dropout)
        self.head = nn.Linear(cfg.feature_dim, cfg.num_classes)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        return self.separator.shape(x)  # (B, 3, H, W) -> S (B, D)

    def forward_head(self, s_o: torch.Tensor, s_a: torch.Tensor) -> torch.Tensor:
        if self.motion is None:  # Table 7 ablation: |S_a - S_o| straight to the head
            m = (s_a - s_o).abs()
        else:
            m = self.motion(s_o, s_a)  # (B, D)
        return self.head(self.dropout(m))  # (B, num_classes) logits

    def forward(self, x_o: torch.Tensor, x_a: torch.Tensor) -> torch.Tensor:
        return self.forward_head(self.forward_features(x_o), self.forward_features(x_a))
