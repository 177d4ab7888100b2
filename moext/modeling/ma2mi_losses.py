"""MA2MI pretext loss: reconstruct the near-future frame I_{t+δ} in a latent space.

L = L_lat + alpha_pixel * L_pix, where
- L_lat: mean squared error between the predicted latent ẑ_{t+δ} = P(z_t, C_Δ, P_t) and the
  (stop-gradient) latent z_{t+δ} of the real future frame;
- L_pix: mean absolute error of the latent autoencoder on both frames (it keeps the latent
  space informative; the prediction never shapes it).
`copy` is a diagnostic, not a loss: L_lat of the trivial guess ẑ_{t+δ} = z_t. A ratio
L_lat / copy below 1 means the motion code carries the change.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from moext.modeling.miacnet import MA2MIPretrain, MIACNetConfig


@dataclass
class MA2MILosses:
    total: torch.Tensor
    latent: torch.Tensor
    pixel: torch.Tensor
    copy: torch.Tensor

    def items(self) -> dict[str, float]:
        return {k: float(getattr(self, k).detach()) for k in ("total", "latent", "pixel", "copy")}


def ma2mi_loss(model: MA2MIPretrain, x_t: torch.Tensor, x_td: torch.Tensor) -> MA2MILosses:
    """The pretext loss on a batch of frame pairs.

    Args:
        x_t, x_td: (B, 3, S, S) normalised network inputs of I_t and I_{t+δ}.
    """
    out = model(x_t, x_td)
    latent = F.mse_loss(out["z_hat"], out["z_td"])
    pixel = (out["x_rec"] - torch.cat([x_t, x_td], dim=0)).abs().mean()
    with torch.no_grad():
        copy = F.mse_loss(out["z_t"], out["z_td"])
    total = latent + model.cfg.alpha_pixel * pixel
    return MA2MILosses(total=total, latent=latent, pixel=pixel, copy=copy)


@torch.no_grad()
def ma2mi_diagnostics(model: MA2MIPretrain, pairs) -> dict[str, float]:
    """Has the pretext learned motion? On (x_t, x_td) batches: the latent loss of the
    predictor, of copying z_t (`copy`), and of the predictor with C_Δ zeroed (what it makes of
    I_t and its position alone). Learned: below copy, and worse without C_Δ."""
    was = model.training
    model.eval()
    sums, count = {"re": 0.0, "re_copy_onset": 0.0, "re_motion_zeroed": 0.0}, 0
    for x_t, x_td in pairs:
        b = x_t.shape[0]
        out = model(x_t, x_td)
        f_t = model.forward_features(x_t)
        p_t = None if model.position is None else model.position(f_t)
        c0 = torch.zeros_like(model.action_code(f_t, model.forward_features(x_td)))
        sums["re"] += float(F.mse_loss(out["z_hat"], out["z_td"])) * b
        sums["re_copy_onset"] += float(F.mse_loss(out["z_t"], out["z_td"])) * b
        sums["re_motion_zeroed"] += float(F.mse_loss(model.predictor(out["z_t"], c0, p_t), out["z_td"])) * b
        count += b
    model.train(was)
    out = {k: v / max(count, 1) for k, v in sums.items()}
    out["pairs"] = count
    out["measure"] = "latent MSE of I_(t+δ) (copy = predict z_t; zeroed = C_Δ set to 0)"
    return out


def sample_pair_indices(
    num_frames: int, cfg: MIACNetConfig, rng: np.random.Generator
) -> tuple[int, int]:
    """A pair (t, t+δ) along a clip of `num_frames` frames, δ uniform in [delta_min, delta_max].

    δ is clipped to the clip's length, so a clip shorter than delta_max + 1 frames still
    gives pairs (with smaller gaps); a clip of fewer than 2 frames has none.
    """
    if num_frames < 2:
        raise ValueError(
            f"a clip of {num_frames} frame(s) has no (t, t+δ) pair; MA2MI needs at least 2 frames"
        )
    delta = int(rng.integers(cfg.delta_min, cfg.delta_max + 1))
    delta = min(delta, num_frames - 1)
    t = int(rng.integers(0, num_frames - delta))
    return t, t + delta
