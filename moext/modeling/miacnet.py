"""MIACNet and its MA2MI pre-training (Li, Niu, Zhao, "From Macro to Micro: Boosting
micro-expression recognition via pre-training on macro-expression videos", arXiv 2405.16451).

MA2MI pre-trains on macro-expression videos: an **action branch** encodes the change between
two frames `I_t` and `I_{t+δ}` of a clip into a latent motion code `C_Δ`, and a predictor
reconstructs `I_{t+δ}` from `I_t` and `C_Δ` in a latent space. The classifier MIACNet keeps
the action branch and adds a **position branch** that encodes the reference (onset) frame's
facial layout, so that *what moved* and *where on the face* are decoupled and fused for the
class; the spatial action code is what the heat maps in `moext.explain` show.

The paper's text beyond its abstract was not available to us: every layer width, the latent
space and the fusion below are our choices, each marked "choice:" in one line next to it.
Pieces are separate modules (ActionEncoder, PositionEncoder, FusionHead, LatentAutoencoder,
FuturePredictor) so that any one can be swapped without touching the others.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import nn

from moext.checkpoint import transfer_pretrained
from moext.config import DEFAULT_CLASSES, JsonConfig
from moext.flow import FlowFields
from moext.modeling.flownet import FlowLogits
from moext.modeling.backbone import Backbone
from moext.modeling.moext import conv_block


@dataclass
class MIACNetConfig(FlowFields, JsonConfig):
    """Everything needed to rebuild a MIACNet classifier or its MA2MI pre-training net.

    Attributes:
        backbone: torchvision backbone name, see `moext.modeling.backbone.BACKBONES`; shared
            by both frames and both branches (one pass per frame).
        backbone_weights: optional local weights file for the backbone; never downloaded.
        image_size: side of the square network input in pixels; a multiple of 32.
        feature_stride: the backbone map both branches read: 8 (the default: the backbone is
            cut after its last stride-8 layer), 16, or 32 (its last layer, as before this
            option; configs written without it load as 32). A micro-expression moves the
            face by a pixel or two; by stride 32 that change is a small part of features
            that mostly carry identity: on three folds of the learning benchmark MIACNet
            did not fit its training data at stride 32 (training accuracy 0.33-0.49), fitted
            partly at 16 (0.56-0.72) and fitted at 8 (0.86-0.92; docs/TRAINING.md).
        action_channels: channels of the spatial motion code C_Δ.
        position_channels: channels of the position features of the reference frame.
        fusion_channels: channels of the fused map before pooling and the head.
        num_classes / class_names: the classifier head; names travel with the weights.
        dropout: dropout before the classifier head.
        use_position_branch: False is the ablation without the position branch (the action
            code alone goes to the fusion and the predictor).
        delta_min, delta_max: MA2MI samples the frame gap δ uniformly from this closed range.
        latent_channels: channels of the latent space in which I_{t+δ} is reconstructed.
        latent_width: channels of the latent autoencoder's and the predictor's conv blocks.
        alpha_pixel: weight of the latent autoencoder's own pixel loss in the pretext loss.
        flow_input: the onset -> apex optical flow (u, v, strain; `moext.flow`) is an extra
            input of the head: an STSTNet branch whose logits are added to the fusion's.
    """

    backbone: str = "resnet18"
    backbone_weights: str | None = None
    image_size: int = 224
    # choice: stride 8, the resolution at which the classifier fits (see above); MoExt's
    # motion maps are at stride 4 for the same reason.
    feature_stride: int = 8
    action_channels: int = 128
    position_channels: int = 64
    fusion_channels: int = 128
    num_classes: int = len(DEFAULT_CLASSES)
    class_names: list[str] = field(default_factory=lambda: list(DEFAULT_CLASSES))
    dropout: float = 0.2
    use_position_branch: bool = True
    # choice: δ in [1, 4] frames; at 30 fps that is 33-133 ms, the motion size of an ME onset.
    delta_min: int = 1
    delta_max: int = 4
    latent_channels: int = 8
    latent_width: int = 32
    alpha_pixel: float = 1.0
    flow_input: bool = False

    def __post_init__(self) -> None:
        self.check_flow("MIACNetConfig")
        if len(self.class_names) != self.num_classes:
            raise ValueError(
                f"MIACNetConfig: num_classes={self.num_classes} but {len(self.class_names)} "
                f"class_names {self.class_names}; give one name per class."
            )
        if not 1 <= self.delta_min <= self.delta_max:
            raise ValueError(
                f"MIACNetConfig: need 1 <= delta_min <= delta_max, got delta_min="
                f"{self.delta_min}, delta_max={self.delta_max}"
            )
        if self.feature_stride not in (8, 16, 32):
            raise ValueError(
                f"MIACNetConfig: feature_stride={self.feature_stride}; choose 8, 16 or 32"
            )
        if self.image_size % 32:
            raise ValueError(
                f"MIACNetConfig: image_size={self.image_size} must be a multiple of 32 (the "
                "backbone's stride), e.g. 224"
            )


class ActionEncoder(nn.Module):
    """Action branch: backbone maps of I_t and I_{t+δ} -> spatial motion code C_Δ."""

    def __init__(self, c_feat: int, channels: int):
        super().__init__()
        # choice: the input is Concat(f_b - f_a, f_a), the change plus the context it happens
        # in; two Conv blocks then a linear 1x1 conv so that C_Δ is signed.
        self.convs = nn.Sequential(conv_block(2 * c_feat, channels), conv_block(channels, channels))
        self.code = nn.Conv2d(channels, channels, 1)

    def forward(self, f_a: torch.Tensor, f_b: torch.Tensor) -> torch.Tensor:
        d = torch.cat([f_b - f_a, f_a], dim=1)  # (B, 2C, h, w)
        return self.code(self.convs(d))  # C_Δ: (B, action_channels, h, w)


class PositionEncoder(nn.Module):
    """Position branch: the reference frame's backbone map -> facial layout features."""

    def __init__(self, c_feat: int, channels: int):
        super().__init__()
        # choice: two Conv blocks on the shared backbone map; a separate backbone would double
        # the cost of a live frame for a branch that sees only the cached onset.
        self.convs = nn.Sequential(conv_block(c_feat, channels), conv_block(channels, channels))

    def forward(self, f_o: torch.Tensor) -> torch.Tensor:
        return self.convs(f_o)  # (B, position_channels, h, w)


class FusionHead(nn.Module):
    """Fuse C_Δ with the position features at each location, pool, classify."""

    def __init__(self, c_act: int, c_pos: int, channels: int, num_classes: int, dropout: float):
        super().__init__()
        # choice: concatenation + Conv block, so each location's action is read with where it
        # sits on the face; then global average pooling and a linear head.
        self.fuse = conv_block(c_act + c_pos, channels)
        self.dropout = nn.Dropout(dropout)
        self.fc = nn.Linear(channels, num_classes)

    def forward(self, c_delta: torch.Tensor, p: torch.Tensor | None) -> torch.Tensor:
        z = c_delta if p is None else torch.cat([c_delta, p], dim=1)  # (B, Ca + Cp, h, w)
        z = self.fuse(z)  # (B, channels, h, w)
        z = z.mean(dim=(2, 3))  # (B, channels)
        return self.fc(self.dropout(z))  # (B, num_classes) logits


def _position_branch(c_feat: int, cfg: MIACNetConfig) -> PositionEncoder | None:
    return PositionEncoder(c_feat, cfg.position_channels) if cfg.use_position_branch else None


class MIACNet(nn.Module):
    """The two-branch micro-action network: position branch + action branch, fused.

    Follows the classifier seam of docs/ARCHITECTURE.md: `forward_features` is one backbone
    pass per frame (the live recognizer caches the onset's), `forward_head(f_o, f_a)` runs
    both branches and the fusion.
    """

    def __init__(self, cfg: MIACNetConfig):
        super().__init__()
        self.cfg = cfg
        self.backbone = Backbone(cfg.backbone, cfg.backbone_weights, cfg.feature_stride)
        c = self.backbone.out_channels
        self.action = ActionEncoder(c, cfg.action_channels)
        self.position = _position_branch(c, cfg)
        c_pos = cfg.position_channels if cfg.use_position_branch else 0
        self.fusion = FusionHead(
            cfg.action_channels, c_pos, cfg.fusion_channels, cfg.num_classes, cfg.dropout
        )
        self.flow_head = FlowLogits(cfg.flow_out_size, cfg.num_classes) if cfg.flow_input else None

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        return self.backbone(x)  # (B, 3, S, S) -> (B, C, S/stride, S/stride)

    def action_code(self, f_o: torch.Tensor, f_a: torch.Tensor) -> torch.Tensor:
        return self.action(f_o, f_a)  # C_Δ: (B, action_channels, S/stride, S/stride)

    def head_from_code(self, c_delta: torch.Tensor, f_o: torch.Tensor) -> torch.Tensor:
        """Logits from a motion code and the reference features (Grad-CAM hooks in here)."""
        p = None if self.position is None else self.position(f_o)  # (B, Cp, h, w)
        return self.fusion(c_delta, p)  # (B, num_classes)

    def head_parts(self, f_o: torch.Tensor, f_a: torch.Tensor,
                   flow: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor | None]:
        """(the fusion's logits, the flow branch's logits or None), each (B, num_classes)."""
        logits = self.head_from_code(self.action_code(f_o, f_a), f_o)  # (B, num_classes)
        if self.flow_head is None:
            return logits, None
        if flow is None:
            raise ValueError("this MIACNet has flow_input: pass the onset -> apex flow (B, 3, n, n)")
        return logits, self.flow_head(flow)  # (B, 3, n, n) -> (B, num_classes)

    def forward_head(self, f_o: torch.Tensor, f_a: torch.Tensor, flow: torch.Tensor | None = None) -> torch.Tensor:
        logits, flow_logits = self.head_parts(f_o, f_a, flow)
        return logits if flow_logits is None else logits + flow_logits  # (B, num_classes)

    def forward_parts(self, x_o: torch.Tensor, x_a: torch.Tensor, flow: torch.Tensor | None = None):
        b = x_o.shape[0]
        # One batch for both frames: in training, BatchNorm then normalises onset and apex with
        # the same statistics, so f_a - f_o means in training what it means in eval.
        f = self.forward_features(torch.cat([x_o, x_a], dim=0))  # (2B, C, h, w)
        return self.head_parts(f[:b], f[b:], flow)

    def forward(self, x_o: torch.Tensor, x_a: torch.Tensor, flow: torch.Tensor | None = None) -> torch.Tensor:
        logits, flow_logits = self.forward_parts(x_o, x_a, flow)
        return logits if flow_logits is None else logits + flow_logits  # (B, num_classes)


class LatentAutoencoder(nn.Module):
    """The latent space in which MA2MI reconstructs I_{t+δ}: image <-> (L, S/8, S/8).

    choice: the paper reconstructs in a latent space; with no pre-trained autoencoder weights
    available offline we learn a small one jointly, trained only by its own pixel loss.
    """

    def __init__(self, latent_channels: int, width: int):
        super().__init__()
        w = width
        down = lambda a, b: nn.Sequential(  # noqa: E731
            nn.Conv2d(a, b, 3, 2, 1, bias=False), nn.BatchNorm2d(b), nn.ReLU(inplace=True)
        )
        self.encoder = nn.Sequential(
            down(3, w), down(w, 2 * w), down(2 * w, 2 * w), nn.Conv2d(2 * w, latent_channels, 1)
        )
        # choice: unit-variance latents (BN without affine) so the latent loss has a fixed
        # scale however the autoencoder's own scale drifts during training.
        self.norm = nn.BatchNorm2d(latent_channels, affine=False)
        up = lambda a, b: nn.Sequential(nn.Upsample(scale_factor=2), conv_block(a, b))  # noqa: E731
        self.decoder = nn.Sequential(
            conv_block(latent_channels, 2 * w), up(2 * w, 2 * w), up(2 * w, w), up(w, w),
            nn.Conv2d(w, 3, 3, 1, 1),  # linear: reconstructs the normalised input
        )

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        return self.norm(self.encoder(x))  # (B, 3, S, S) -> (B, L, S/8, S/8)

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        return self.decoder(z)  # (B, L, S/8, S/8) -> (B, 3, S, S)


class FuturePredictor(nn.Module):
    """Reconstruct the latent of I_{t+δ} from the latent of I_t, C_Δ and I_t's position map."""

    def __init__(self, latent_channels: int, c_act: int, c_pos: int, width: int):
        super().__init__()
        self.convs = nn.Sequential(
            conv_block(latent_channels + c_act + c_pos, width), conv_block(width, width)
        )
        self.out = nn.Conv2d(width, latent_channels, 1)
        # choice: a near-zero output layer, so ẑ_{t+δ} starts as the copy guess z_t and a latent
        # loss below `copy` (see ma2mi_losses) means C_Δ carries the change. Not exactly zero:
        # the layers before it would get no gradient on the first step.
        with torch.no_grad():
            self.out.weight.mul_(0.01)
            self.out.bias.zero_()

    def forward(
        self, z_t: torch.Tensor, c_delta: torch.Tensor, p_t: torch.Tensor | None
    ) -> torch.Tensor:
        size = z_t.shape[-2:]
        codes = c_delta if p_t is None else torch.cat([c_delta, p_t], dim=1)  # (B, Ca+Cp, h, w)
        codes = F.interpolate(codes, size=size, mode="bilinear", align_corners=False)
        h = self.convs(torch.cat([z_t, codes], dim=1))  # (B, width, S/8, S/8)
        # choice: a residual prediction, so C_Δ has to carry only the change, not the face.
        return z_t + self.out(h)  # ẑ_{t+δ}: (B, L, S/8, S/8)


class MA2MIPretrain(nn.Module):
    """The MA2MI pretext network: from I_t and C_Δ(I_t, I_{t+δ}), reconstruct I_{t+δ}.

    `backbone`, `action` and `position` carry the same names and shapes as in MIACNet, so
    `transfer_ma2mi` copies them over; the autoencoder and predictor are dropped.
    """

    def __init__(self, cfg: MIACNetConfig):
        super().__init__()
        self.cfg = cfg
        self.backbone = Backbone(cfg.backbone, cfg.backbone_weights, cfg.feature_stride)
        c = self.backbone.out_channels
        self.action = ActionEncoder(c, cfg.action_channels)
        self.position = _position_branch(c, cfg)
        self.autoencoder = LatentAutoencoder(cfg.latent_channels, cfg.latent_width)
        c_pos = cfg.position_channels if cfg.use_position_branch else 0
        self.predictor = FuturePredictor(
            cfg.latent_channels, cfg.action_channels, c_pos, cfg.latent_width
        )

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        return self.backbone(x)  # (B, 3, S, S) -> (B, C, S/stride, S/stride)

    def action_code(self, f_t: torch.Tensor, f_td: torch.Tensor) -> torch.Tensor:
        return self.action(f_t, f_td)  # C_Δ: (B, action_channels, S/stride, S/stride)

    def forward(self, x_t: torch.Tensor, x_td: torch.Tensor) -> dict[str, torch.Tensor]:
        """One pretext step's tensors for frames I_t, I_{t+δ}: (B, 3, S, S) each.

        Returns:
            z_hat: predicted latent of I_{t+δ}; z_t, z_td: latents of both frames (stop-
            gradient: they are targets and inputs, trained only by the pixel loss);
            x_rec: the autoencoder's reconstruction of both frames, (2B, 3, S, S).
        """
        b = x_t.shape[0]
        x = torch.cat([x_t, x_td], dim=0)  # (2B, 3, S, S): one backbone batch
        f = self.backbone(x)  # (2B, C, h, w)
        f_t, f_td = f[:b], f[b:]
        c_delta = self.action(f_t, f_td)  # (B, Ca, h, w)
        p_t = None if self.position is None else self.position(f_t)  # (B, Cp, h, w)
        z = self.autoencoder.encode(x)  # (2B, L, S/8, S/8)
        x_rec = self.autoencoder.decode(z)  # (2B, 3, S, S)
        # choice: stop-gradient on the latents, so the prediction cannot make the latent space
        # collapse (it would gain by making E(I_t) == E(I_{t+δ})).
        zs = z.detach()
        z_t, z_td = zs[:b], zs[b:]
        z_hat = self.predictor(z_t, c_delta, p_t)  # (B, L, S/8, S/8)
        return {"z_hat": z_hat, "z_t": z_t, "z_td": z_td, "x_rec": x_rec}


# Pre-trained -> classifier: keep the backbone and both branches; drop the latent
# autoencoder and the predictor (they exist only for the pretext).
MA2MI_TRANSFER_PREFIXES = ("backbone.", "action.", "position.")


def transfer_ma2mi(pretrained: nn.Module, classifier: nn.Module) -> list[str]:
    """Copy backbone, action and position branches of an MA2MIPretrain into a MIACNet.

    Returns the copied keys; raises CheckpointError if a tensor has no same-shaped
    counterpart (the two were built with different backbones or widths).
    """
    return transfer_pretrained(pretrained, classifier, MA2MI_TRANSFER_PREFIXES)
