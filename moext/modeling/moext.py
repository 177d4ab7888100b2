"""The MoExt network (Li et al., "Micro-Expression Recognition by Motion Feature Extraction
based on Pre-training"): feature separator F, motion extractor E, apex reconstructor R, and
the classifier of §3.4. Equation numbers refer to the paper.

Two architectures go through the same losses, transfer and classifier seam (`cfg.arch`):
- "paper": Tables 1-2 as printed. S and T are vectors (branch FC), E is FC layers on
  |S_a - S_o| and S_a, R decodes the 1024x1x1 concat to the image.
- "unet": the architecture of the authors' released code (github ppppear/Moext,
  `pre_train/unet_base.py`; read, not copied): S and T are spatial maps from a U-Net decoder
  over the backbone's multi-scale features, E refines the maps' difference S_a - S_o with
  conv blocks and adds it back (a residual), R decodes Concat(T_o, M) at map resolution and
  upsamples to the image. A vector cannot carry a face (measured: the paper arch's
  reconstruction ignored M), a map can, so only here can L_re depend on the motion.
"""

from __future__ import annotations

import torch
from torch import nn

from moext.config import ModelConfig
from moext.modeling.backbone import Backbone
from moext.modeling.flownet import FlowLogits


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


# --- arch=unet: the released code's spatial maps ----------------------------------------


class MapBranch(nn.Module):
    """One branch of F with arch=unet: the backbone's stride-32 map decoded up to stride
    `map_stride` through its skips (U-Net), giving S or T as a (C, S/stride, S/stride) map.

    The released code decodes its own 4-block encoder the same way (up, concat skip, conv);
    we decode the torchvision backbone's stages, so the classifier keeps one backbone pass.
    """

    def __init__(self, stage_channels: dict[int, int], channels: int, map_stride: int):
        super().__init__()
        self.strides = [s for s in (16, 8, 4, 2) if s >= map_stride]
        self.top = conv_block(stage_channels[32], channels)
        self.ups = nn.ModuleList([conv_block(channels + stage_channels[s], channels) for s in self.strides])

    def forward(self, feats: dict[int, torch.Tensor]) -> torch.Tensor:
        x = self.top(feats[32])  # (B, C, S/32, S/32)
        for s, block in zip(self.strides, self.ups):
            # x2 up to the skip's size: the same as scale_factor=2, but a Resize whose output
            # size ONNX Runtime's shape inference can follow (int8 quantisation needs it).
            x = nn.functional.interpolate(x, size=feats[s].shape[-2:], mode="nearest")  # (B, C, S/s, S/s)
            x = block(torch.cat([x, feats[s]], dim=1))  # skip: (B, C + C_s, S/s, S/s) -> (B, C, S/s, S/s)
        return x  # (B, C, S/map_stride, S/map_stride)


class MapFeatureSeparator(nn.Module):
    """F with arch=unet: X -> (S, T) maps from one backbone pass (eq. 1)."""

    def __init__(self, cfg: ModelConfig, with_texture: bool = True):
        super().__init__()
        self.backbone = Backbone(cfg.backbone, cfg.backbone_weights)
        branch = lambda: MapBranch(self.backbone.stage_channels, cfg.branch_channels, cfg.map_stride)  # noqa: E731
        self.shape_branch = branch()
        self.texture_branch = branch() if with_texture else None

    def shape(self, x: torch.Tensor) -> torch.Tensor:
        return self.shape_branch(self.backbone.stages(x))  # (B, 3, S, S) -> (B, C, h, w)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        if self.texture_branch is None:
            raise RuntimeError("this MapFeatureSeparator was built without its texture branch")
        feats = self.backbone.stages(x)  # {stride: (B, C_s, S/stride, S/stride)}
        return self.shape_branch(feats), self.texture_branch(feats)  # S, T: (B, C, h, w) each


class MapMotionExtractor(nn.Module):
    """E with arch=unet (eq. 2-3 as released): dS = S_a - S_o, M = dS + C2(C1(dS)).

    choice (the released code): the signed difference, not |.| (a map's sign says which way
    an edge moved), and a residual instead of eq. 3's concat with S_a.
    """

    def __init__(self, channels: int):
        super().__init__()
        self.c1 = conv_block(channels, channels)
        self.c2 = nn.Conv2d(channels, channels, 3, 1, 1)  # linear: M is signed like dS

    def forward(self, s_o: torch.Tensor, s_a: torch.Tensor) -> torch.Tensor:
        ds = s_a - s_o  # eq. 2, (B, C, h, w)
        return ds + self.c2(self.c1(ds))  # eq. 3 as released: refined with a residual


class MapApexReconstructor(nn.Module):
    """R with arch=unet (eq. 4): X~_a = R(Concat(M, T_o)) from maps: two conv blocks at map
    resolution, then (upsample x2, conv block) up to the image and a linear 3-channel conv."""

    def __init__(self, channels: int, map_stride: int):
        super().__init__()
        c = channels
        self.fuse = nn.Sequential(conv_block(2 * c, c), conv_block(c, c))
        ups = []
        for _ in range({2: 1, 4: 2, 8: 3}[map_stride]):
            ups += [nn.Upsample(scale_factor=2.0, mode="bilinear", align_corners=False), conv_block(c, c)]
        self.up = nn.Sequential(*ups)
        self.out = nn.Conv2d(c, 3, 3, 1, 1)  # linear output: reconstructs the normalised input

    def forward(self, m: torch.Tensor, t_o: torch.Tensor) -> torch.Tensor:
        z = self.fuse(torch.cat([m, t_o], dim=1))  # (B, 2C, h, w) -> (B, C, h, w)
        return self.out(self.up(z))  # (B, 3, S, S)


class MapHead(nn.Module):
    """The classifier head with arch=unet: M map -> conv block -> pool to a p x p grid (where
    on the face it moved) -> dropout -> linear. choice: the released classifier is not in
    the repository we read; this is the smallest head that keeps the location."""

    def __init__(self, channels: int, pool: int, num_classes: int, dropout: float):
        super().__init__()
        self.conv = conv_block(channels, channels)
        self.pool = nn.AdaptiveAvgPool2d(pool)
        self.dropout = nn.Dropout(dropout)
        self.fc = nn.Linear(channels * pool * pool, num_classes)

    def forward(self, m: torch.Tensor) -> torch.Tensor:
        z = self.pool(self.conv(m)).flatten(1)  # (B, C, h, w) -> (B, C p^2)
        return self.fc(self.dropout(z))  # (B, num_classes)


class Projection(nn.Module):
    """f(.) of eq. 6-8, shared by L_st and L_ss.

    The paper leaves f open; we choose Linear + L2 normalisation so that distances lie in
    [0, 2] and the margins epsilon in [0.2, 0.5] have a fixed meaning.
    """

    def __init__(self, dim: int, out_dim: int):
        super().__init__()
        self.fc = nn.Linear(dim, out_dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.ndim >= 4:  # a map (arch=unet): average over its cells first, (..., C, h, w) -> (..., C)
            x = x.mean(dim=(-2, -1))
        return nn.functional.normalize(self.fc(x), dim=-1)  # (..., out_dim), unit norm


class MoExtPretrain(nn.Module):
    """The pre-training network (eq. 1-4): reconstruct the apex from onset texture + motion."""

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.cfg = cfg
        self.separator = _separator(cfg, with_texture=True)
        self.motion = _motion_extractor(cfg)
        if cfg.arch == "unet":
            self.reconstructor = MapApexReconstructor(cfg.branch_channels, cfg.map_stride)
            self.projection = Projection(cfg.branch_channels, cfg.projection_dim)
        else:
            self.reconstructor = ApexReconstructor(2 * cfg.feature_dim, cfg.image_size)
            self.projection = Projection(cfg.feature_dim, cfg.projection_dim)
        if cfg.reconstruction == "residual":
            # Start at X~_a = X_o exactly up to a small change, so L_re starts at the copy
            # baseline and falls below it only as far as M predicts the change. Not zero: the
            # layers before the output would get no gradient on the first step.
            out = self.reconstructor.out if cfg.arch == "unet" else self.reconstructor.stages[-1]
            with torch.no_grad():
                out.weight.mul_(0.01)
                if out.bias is not None:
                    out.bias.zero_()

        # flow_target: M -> the onset -> apex flow (u, v) at M's resolution (L_flow).
        self.flow_predictor = nn.Conv2d(cfg.branch_channels, 2, 1) if cfg.flow_target > 0 else None

    def motion_features(self, s_o: torch.Tensor, s_a: torch.Tensor) -> torch.Tensor:
        return _motion(self.motion, self.cfg, s_o, s_a)

    def predict_flow(self, m: torch.Tensor) -> torch.Tensor:
        """(B, C, h, w) motion map -> (B, 2, h, w) predicted flow (u, v); needs flow_target."""
        return self.flow_predictor(m)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Shape and texture features of a batch of frames: (N, 3, H, W) -> S, T (N, D) with
        arch=paper, (N, C, h, w) maps with arch=unet."""
        return self.separator(x)

    def reconstruct(self, s_o, t_o, s_a, x_o: torch.Tensor | None = None, motion_scale: float = 1.0) -> torch.Tensor:
        """Eq. 4: X~_a = R(Concat(E(S_o, S_a), T_o)), (B, 3, H, W); with
        `reconstruction="residual"`, X~_a = X_o + R(...) (`x_o`, the onset frame, required).
        `motion_scale=0` is the diagnostic "M zeroed": what R makes of the onset's texture alone."""
        r = self.reconstructor(motion_scale * self.motion_features(s_o, s_a), t_o)  # (B, 3, H, W)
        if self.cfg.reconstruction == "full":
            return r
        if x_o is None:
            raise ValueError("reconstruction='residual' predicts the change from the onset: pass x_o")
        return x_o + r


class MoExtClassifier(nn.Module):
    """Objective learning (§3.4): shape extractor + motion extractor + head; no texture.

    `forward_features` (one backbone pass per frame) and `forward_head` are separate so that a
    live recognizer can compute the onset's features once and reuse them every frame.
    """

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.cfg = cfg
        self.separator = _separator(cfg, with_texture=False)
        self.motion = _motion_extractor(cfg)
        if cfg.arch == "unet":
            self.head = MapHead(cfg.branch_channels, cfg.branch_pool, cfg.num_classes, cfg.dropout)
        else:
            self.dropout = nn.Dropout(cfg.dropout)
            self.head = nn.Linear(cfg.feature_dim, cfg.num_classes)
        self.flow_head = FlowLogits(cfg.flow_out_size, cfg.num_classes) if cfg.flow_input else None

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        return self.separator.shape(x)  # (B, 3, H, W) -> S: (B, D), or (B, C, h, w) with arch=unet

    def head_parts(self, s_o: torch.Tensor, s_a: torch.Tensor,
                   flow: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor | None]:
        """(the motion head's logits, the flow branch's logits or None), each (B, num_classes)."""
        m = _motion(self.motion, self.cfg, s_o, s_a)  # (B, D) or (B, C, h, w)
        logits = self.head(m) if self.cfg.arch == "unet" else self.head(self.dropout(m))  # (B, num_classes)
        if self.flow_head is None:
            return logits, None
        if flow is None:
            raise ValueError("this MoExt classifier has flow_input: pass the onset -> apex flow (B, 3, n, n)")
        return logits, self.flow_head(flow)  # (B, 3, n, n) -> (B, num_classes)

    def forward_head(self, s_o: torch.Tensor, s_a: torch.Tensor, flow: torch.Tensor | None = None) -> torch.Tensor:
        logits, flow_logits = self.head_parts(s_o, s_a, flow)
        return logits if flow_logits is None else logits + flow_logits  # (B, num_classes)

    def forward_parts(self, x_o: torch.Tensor, x_a: torch.Tensor, flow: torch.Tensor | None = None):
        return self.head_parts(self.forward_features(x_o), self.forward_features(x_a), flow)

    def forward(self, x_o: torch.Tensor, x_a: torch.Tensor, flow: torch.Tensor | None = None) -> torch.Tensor:
        return self.forward_head(self.forward_features(x_o), self.forward_features(x_a), flow)


def _separator(cfg: ModelConfig, with_texture: bool) -> nn.Module:
    return MapFeatureSeparator(cfg, with_texture) if cfg.arch == "unet" else FeatureSeparator(cfg, with_texture)


def _motion_extractor(cfg: ModelConfig) -> nn.Module | None:
    if not cfg.use_motion_extractor:
        return None
    return MapMotionExtractor(cfg.branch_channels) if cfg.arch == "unet" else MotionExtractor(cfg.feature_dim)


def _motion(extractor: nn.Module | None, cfg: ModelConfig, s_o: torch.Tensor, s_a: torch.Tensor) -> torch.Tensor:
    """M, or the Table 7 ablation without E: the plain difference (|S_a - S_o| as eq. 2 writes
    it for the paper arch, the signed S_a - S_o that the released E starts from for maps)."""
    if extractor is not None:
        return extractor(s_o, s_a)
    return s_a - s_o if cfg.arch == "unet" else (s_a - s_o).abs()
