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
        s, t: shape and texture features of every instance in the batch, (N, D) vectors or
            (N, C, h, w) maps (f pools a map first).
        f: the projection f(.).
        margin: eps.

    The anchor S_bar is the batch mean of the shape features (eq. 6), taken before f.
    """
    s_bar = s.mean(dim=0, keepdim=True)  # (1, ...) anchor: the batch mean of shape features
    fa, fs, ft = f(s_bar), f(s), f(t)  # (1, P), (N, P), (N, P)
    pos = (fa - fs).norm(dim=1)  # (N,)
    neg = (fs - ft).norm(dim=1)  # (N,)
    return F.relu(pos - neg + margin).mean()


def shape_shape_loss(
    s: torch.Tensor, is_apex: torch.Tensor, f: Projection, margin: float
) -> torch.Tensor:
    """L_ss (eq. 8) over the 2m shape features of each onset/apex pair:

        L_ss = 1/(2m)^2 sum_j sum_k [ y_jk d_jk + (1 - y_jk) max(0, eps - d_jk) ],

    d_jk = |f(S_j) - f(S_k)| (not squared), y_jk = 1 when instances j and k come from the same
    expansion set (both onset or both apex); every ordered (j, k) of the 2m x 2m set, divided
    by (2m)^2, then the mean over the batch. The j = k terms are y = 1, d = 0: they add
    nothing but count in (2m)^2, so they are left out of the sum (the distance's gradient at
    0 is undefined) and kept in the divisor.

    Args:
        s: shape features, (B, 2m, D) or (B, 2m, C, h, w): the 2m instances of each pair.
        is_apex: (2m,) bool, which instances belong to the apex expansion set.
        f: the projection f(.).
        margin: eps.
    """
    z = f(s)  # (B, 2m, P)
    n = z.shape[1]
    j, k = torch.triu_indices(n, n, offset=1, device=z.device)  # each unordered j != k once ...
    d = (z[:, j] - z[:, k]).norm(dim=-1)  # (B, K), K = 2m(2m-1)/2
    same = (is_apex[j] == is_apex[k]).to(d.dtype)  # (K,) y_jk
    per_pair = same * d + (1 - same) * F.relu(margin - d)  # (B, K)
    return 2 * per_pair.sum(dim=1).mean() / n**2  # ... and twice for (k, j): all ordered pairs


@dataclass
class PretrainLosses:
    total: torch.Tensor
    re: torch.Tensor
    st: torch.Tensor
    ss: torch.Tensor
    flow: torch.Tensor | None = None  # L_flow, with ModelConfig.flow_target > 0

    def items(self) -> dict[str, float]:
        keys = ("total", "re", "st", "ss") + (("flow",) if self.flow is not None else ())
        return {k: float(getattr(self, k).detach()) for k in keys}


def flow_target_loss(model: MoExtPretrain, m: torch.Tensor, flow: torch.Tensor) -> torch.Tensor:
    """L_flow (`ModelConfig.flow_target`): mean absolute error between the flow M predicts and
    the measured onset -> apex flow (u, v of `moext.flow.motion_channels`, resampled to M's
    (h, w)), in pixels of the flow grid."""
    target = F.interpolate(flow[:, :2], size=m.shape[-2:], mode="bilinear", align_corners=False)
    return (model.predict_flow(m) - target).abs().mean()  # (B, 2, h, w) -> scalar


def pretraining_loss(model: MoExtPretrain, x_o: torch.Tensor, x_a: torch.Tensor,
                     flow: torch.Tensor | None = None) -> PretrainLosses:
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
    s, t = model(x)  # (B*2m, D) or (B*2m, C, h, w) each
    s2 = s.view(b, 2 * m, *s.shape[1:])  # (B, 2m, ...): m onset instances, then m apex instances
    t2 = t.view(b, 2 * m, *t.shape[1:])
    x_rec = model.reconstruct(s2[:, 0], t2[:, 0], s2[:, m], x_o[:, 0])  # (B, 3, H, W)
    l_re = reconstruction_loss(x_a[:, 0], x_rec)
    l_st = shape_texture_loss(s, t, model.projection, cfg.margin_st)
    is_apex = torch.arange(2 * m, device=s.device) >= m
    l_ss = shape_shape_loss(s2, is_apex, model.projection, cfg.margin_ss)
    total = l_re + cfg.alpha_st * l_st + cfg.alpha_ss * l_ss
    l_flow = None
    if getattr(cfg, "flow_target", 0.0) > 0:
        if flow is None:
            raise ValueError("flow_target > 0: pass the onset -> apex flow (B, 3, n, n) of the real pairs")
        l_flow = flow_target_loss(model, model.motion_features(s2[:, 0], s2[:, m]), flow)
        total = total + cfg.flow_target * l_flow
    return PretrainLosses(total=total, re=l_re, st=l_st, ss=l_ss, flow=l_flow)


@torch.no_grad()
def pretext_diagnostics(model: MoExtPretrain, pairs) -> dict[str, float]:
    """Has the pretext learned motion? Measured on (x_o, x_a) batches of real frames.

    Returns:
        re: L_re of the reconstructor; re_copy_onset: L_re of "the apex is the onset"
        (X~_a = X_o); re_motion_zeroed: L_re with M set to 0 (the onset's texture alone);
        re_no_motion: L_re with S_a replaced by S_o (no change to extract);
        shape_cosine: mean pairwise cosine similarity of the shape features across samples
        (near 1: S collapsed to one direction); shape_norm: their mean norm;
        dead_units: fraction of shape channels that are zero for every sample;
        pairs: how many pairs were measured.
    A pretext that learned motion beats the copy baseline and gets worse without M.
    """
    was = model.training
    model.eval()
    sums = {"re": 0.0, "re_copy_onset": 0.0, "re_motion_zeroed": 0.0, "re_no_motion": 0.0}
    feats, count = [], 0
    for x_o, x_a in pairs:
        b = x_o.shape[0]
        s, t = model(torch.cat([x_o, x_a]))  # (2B, ...) each
        s_o, s_a, t_o = s[:b], s[b:], t[:b]
        sums["re"] += float(reconstruction_loss(x_a, model.reconstruct(s_o, t_o, s_a, x_o))) * b
        sums["re_copy_onset"] += float(reconstruction_loss(x_a, x_o)) * b
        zeroed = model.reconstruct(s_o, t_o, s_a, x_o, motion_scale=0.0)
        sums["re_motion_zeroed"] += float(reconstruction_loss(x_a, zeroed)) * b
        sums["re_no_motion"] += float(reconstruction_loss(x_a, model.reconstruct(s_o, t_o, s_o, x_o))) * b
        feats.append(s.flatten(1) if s.ndim == 2 else s)
        count += b
    model.train(was)
    out = {k: v / max(count, 1) for k, v in sums.items()}
    out.update(feature_spread(torch.cat(feats)))
    out["pairs"] = count
    return out


def feature_spread(s: torch.Tensor) -> dict[str, float]:
    """Collapse monitors of shape features (N, D) or maps (N, C, h, w): mean pairwise cosine
    similarity across samples, mean norm, and the fraction of dead units (channels zero, or
    constant, for every sample)."""
    v = s.flatten(1)  # (N, F)
    u = F.normalize(v, dim=1)
    n = len(u)
    cos = (u @ u.T).sum().sub(n).div(max(n * (n - 1), 1))  # mean over the off-diagonal pairs
    per_unit = s.transpose(0, 1).flatten(1) if s.ndim == 4 else v.T  # (C, N h w) or (D, N)
    dead = (per_unit.std(dim=1) < 1e-6).float().mean()
    return {"shape_cosine": float(cos), "shape_norm": float(v.norm(dim=1).mean()), "dead_units": float(dead)}


def learned_motion(d: dict[str, float], margin: float = 0.01, loss: str = "L_re", copy: str = "copying the onset",
                   code: str = "M") -> tuple[bool, str]:
    """The verdict on `pretext_diagnostics` (or MA2MI's), in words: motion is learned when the
    reconstruction beats the copy baseline and is at least `margin` (relative) worse with the
    motion code zeroed."""
    beats_copy = d["re"] < d["re_copy_onset"]
    uses_m = d["re_motion_zeroed"] > d["re"] * (1 + margin)
    if beats_copy and uses_m:
        return True, (f"the pretext learned motion: {loss} {d['re']:.4f} is below {copy} "
                      f"({d['re_copy_onset']:.4f}) and rises to {d['re_motion_zeroed']:.4f} with {code} zeroed")
    why = []
    if not beats_copy:
        why.append(f"{loss} {d['re']:.4f} does not beat {copy} ({d['re_copy_onset']:.4f})")
    if not uses_m:
        why.append(f"zeroing {code} changes {loss} only to {d['re_motion_zeroed']:.4f} (from {d['re']:.4f})")
    return False, "the pretext has NOT learned motion: " + "; ".join(why)
