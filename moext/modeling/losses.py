"""Pre-training losses of MoExt (eq. 5-9)."""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from moext.modeling.moext import MoExtPretrain, Projection


def reconstruction_loss(x_a: torch.Tensor, x_rec: torch.Tensor) -> torch.Tensor:
    """L_re (eq. 5): mean absolute error between the apex and its reconstruction."""
    return (x_a - x_rec).abs().mean()


def shape_texture_loss(
    s: torch.Tensor, t: torch.Tensor, f: Projection, margin: float
) -> torch.Tensor:
    """L_st (eq. 6-7): max(0, |f(S_bar) - f(S)| - |f(S) - f(T)| + eps), mean over instances.

    Args:
        s, t: shape and texture features of every instance in the batch, (N, D).
        f: the projection f(.).
        margin: eps.
    """
    s_bar = s.mean(dim=0, keepdim=True)  # (1, D) anchor: the batch mean of shape features
    fa, fs, ft = f(s_bar), f(s), f(t)  # (1, P), (N, P), (N, P)
    pos = (fa - fs).norm(dim=1)  # (N,)
    neg = (fs - ft).norm(dim=1)  # (N,)
    return F.relu(pos - neg + margin).mean()


def shape_shape_loss(
    s: torch.Tensor, is_apex: torch.Tensor, f: Projection, margin: float
) -> torch.Tensor:
    """L_ss (eq. 8): contrastive loss over the 2m shape features of each onset/apex pair.

    Two instances of the same expansion set (both onset or both apex) are pulled together
    (d^2); instances of different sets are pushed apart to at least eps
    (max(0, eps - d)^2). The mean runs over all unordered instance pairs and over the batch.

    Args:
        s: shape features, (B, 2m, D): the 2m instances of each pair.
        is_apex: (2m,) bool, which instances belong to the apex expansion set.
        f: the projection f(.).
        margin: eps.
    """
    z = f(s)  # (B, 2m, P)
    d = torch.cdist(z, z)  # (B, 2m, 2m)
    same = is_apex[:, None] == is_apex[None, :]  # (2m, 2m)
    iu = torch.triu_indices(len(is_apex), len(is_apex), offset=1, device=s.device)
    d = d[:, iu[0], iu[1]]  # (B, K) with K = 2m(2m-1)/2
    same = same[iu[0], iu[1]]  # (K,)
    per_pair = torch.where(same, d.pow(2), F.relu(margin - d).pow(2))
    return per_pair.mean()


@dataclass
class PretrainLosses:
    total: torch.Tensor
    re: torch.Tensor
    st: torch.Tensor
    ss: torch.Tensor

    def items(self) -> dict[str, float]:
        return {k: float(getattr(self, k).detach()) for k in ("total", "re", "st", "ss")}


def pretraining_loss(model: MoExtPretrain, x_o: torch.Tensor, x_a: torch.Tensor) -> PretrainLosses:
    """L = L_re + a1 L_st + a2 L_ss (eq. 9) for a batch of expanded onset/apex pairs.

    Args:
        x_o, x_a: (B, m, 3, H, W) expansion sets of the onset and the apex; instance 0 of each
            is the frame itself, the others its augmentations. Normalised network inputs.

    The reconstruction uses instance 0 (the real frames) so that the target apex carries the
    same texture the onset does; L_st and L_ss see all 2m instances.
    """
    cfg = model.cfg
    b, m = x_o.shape[:2]
    x = torch.cat([x_o, x_a], dim=1).flatten(0, 1)  # (B*2m, 3, H, W)
    s, t = model(x)  # (B*2m, D) each
    s2 = s.view(b, 2 * m, -1)  # (B, 2m, D): m onset instances, then m apex instances
    t2 = t.view(b, 2 * m, -1)
    x_rec = model.reconstruct(s2[:, 0], t2[:, 0], s2[:, m])  # (B, 3, H, W)
    l_re = reconstruction_loss(x_a[:, 0], x_rec)
    l_st = shape_texture_loss(s, t, model.projection, cfg.margin_st)
    is_apex = torch.arange(2 * m, device=s.device) >= m
    l_ss = shape_shape_loss(s2, is_apex, model.projection, cfg.margin_ss)
    total = l_re + cfg.alpha_st * l_st + cfg.alpha_ss * l_ss
    return PretrainLosses(total=total, re=l_re, st=l_st, ss=l_ss)
