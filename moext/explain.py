"""Heat maps of where MIACNet's action branch responds for a pair of frames (onset, apex).

Two ways to read the spatial motion code C_Δ (B, A, h, w), h = w = S / feature_stride:
- "gradcam": Grad-CAM on C_Δ for one class (default: the predicted one): channel weights are
  the spatially averaged gradients of that class's logit, map = ReLU(Σ_k w_k C_Δ[k]).
  Needs a classifier (MIACNet).
- "magnitude": ||C_Δ(onset, apex) - C_Δ(onset, onset)||_2 over channels, i.e. how much the
  action code at each place differs from the code of "nothing moved". Needs no head, so it
  also works on an MA2MI pre-training checkpoint.

Library side only: arrays in, arrays out; the CLI (`moext-train explain`) reads and writes
the files.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

METHODS = ("gradcam", "magnitude")


@dataclass
class HeatMap:
    """A heat map for one onset/apex pair.

    Attributes:
        heat: (S, S) float32 in [0, 1], S = the model's image_size; all zeros if the action
            branch does not respond anywhere.
        method: "gradcam" or "magnitude".
        peak: the un-normalised range of the map before scaling to [0, 1] (max for
            "magnitude", max - min for "gradcam"; 0 = no response / no spatial contrast).
        class_index / class_name / probabilities: the class Grad-CAM explains and the
            classifier's softmax; None for a model without a head.
    """

    heat: np.ndarray
    method: str
    peak: float
    class_index: int | None = None
    class_name: str | None = None
    probabilities: np.ndarray | None = None


def _to_unit(cam: torch.Tensor, size: int, subtract_min: bool) -> tuple[np.ndarray, float]:
    """(h, w) non-negative map -> (size, size) float32 in [0, 1] and its un-normalised range.

    Grad-CAM is scaled min..max (as usual for it); the magnitude map 0..max, so that 0 keeps
    meaning "the action code did not change here". A flat map (no spatial contrast) is zeros.
    """
    cam = cam.detach().float()
    lo = float(cam.min()) if subtract_min else 0.0
    peak = float(cam.max()) - lo
    if peak <= 1e-12:
        return np.zeros((size, size), np.float32), 0.0
    up = F.interpolate(cam[None, None], size=(size, size), mode="bilinear", align_corners=False)[0, 0]
    # scaled after upsampling: pixel centres never hit an inner cell's centre, so the raw
    # peak would leave an inner hot spot below 1
    up = up - (up.min() if subtract_min else 0.0)
    return (up / up.max()).clamp(0.0, 1.0).cpu().numpy().astype(np.float32), peak


def action_heatmap(
    model: nn.Module,
    x_o: torch.Tensor,
    x_a: torch.Tensor,
    method: str = "gradcam",
    class_index: int | None = None,
) -> HeatMap:
    """Where the action branch responds for one pair.

    Args:
        model: a MIACNet (both methods) or an MA2MIPretrain ("magnitude" only); anything with
            `forward_features` and `action_code` (and `head_from_code` for Grad-CAM).
        x_o, x_a: (1, 3, S, S) normalised network inputs of the onset and the apex.
        method: "gradcam" or "magnitude".
        class_index: the class to explain with Grad-CAM; the predicted class when None.
    """
    if method not in METHODS:
        raise ValueError(f"unknown heat-map method {method!r}; choose one of {METHODS}")
    if not hasattr(model, "action_code"):
        raise ValueError(
            f"{type(model).__name__} has no action branch; heat maps need a MIACNet or MA2MI "
            "checkpoint (kinds 'miacnet', 'miacnet-pretrain')"
        )
    if x_o.shape[0] != 1 or x_a.shape[0] != 1:
        raise ValueError(f"one pair at a time: got batches {x_o.shape[0]} and {x_a.shape[0]}")
    size = x_o.shape[-1]
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            f_o = model.forward_features(x_o)  # (1, C, h, w)
            f_a = model.forward_features(x_a)
        if method == "magnitude":
            with torch.no_grad():
                c = model.action_code(f_o, f_a)  # (1, A, h, w)
                c0 = model.action_code(f_o, f_o)  # the code of "no motion"
                cam = (c - c0).norm(dim=1)[0]  # (h, w)
            heat, peak = _to_unit(cam, size, subtract_min=False)
            result = HeatMap(heat=heat, method=method, peak=peak)
            if hasattr(model, "head_from_code"):
                with torch.no_grad():
                    probs = model.head_from_code(c, f_o).softmax(-1)[0].numpy()
                _fill_class(result, model, probs, int(probs.argmax()))
            return result
        if not hasattr(model, "head_from_code"):
            raise ValueError(
                f"Grad-CAM needs a classifier head; {type(model).__name__} has none (use "
                "method='magnitude' for a pre-training checkpoint)"
            )
        with torch.enable_grad():
            c = model.action_code(f_o, f_a).detach().requires_grad_(True)  # (1, A, h, w)
            logits = model.head_from_code(c, f_o)  # (1, K)
            k = int(logits.argmax(-1)) if class_index is None else int(class_index)
            if not 0 <= k < logits.shape[-1]:
                raise ValueError(f"class_index {k} out of range [0, {logits.shape[-1]})")
            (grad,) = torch.autograd.grad(logits[0, k], c)
        weights = grad.mean(dim=(2, 3), keepdim=True)  # (1, A, 1, 1)
        cam = F.relu((weights * c).sum(dim=1))[0].detach()  # (h, w)
        heat, peak = _to_unit(cam, size, subtract_min=True)
        result = HeatMap(heat=heat, method=method, peak=peak)
        _fill_class(result, model, logits.detach().softmax(-1)[0].numpy(), k)
        return result
    finally:
        model.train(was_training)


def _fill_class(result: HeatMap, model: nn.Module, probs: np.ndarray, k: int) -> None:
    result.class_index = k
    result.probabilities = probs.astype(np.float32)
    names = getattr(model.cfg, "class_names", None)
    result.class_name = names[k] if names and k < len(names) else None


def overlay_heatmap(image_bgr: np.ndarray, heat: np.ndarray, alpha: float = 0.45) -> np.ndarray:
    """Blend a [0, 1] heat map (any size; resized) over an HWC uint8 BGR image (JET colours).

    Returns:
        HWC uint8 BGR image of the same size as `image_bgr`.
    """
    img = np.asarray(image_bgr)
    if img.dtype != np.uint8 or img.ndim != 3 or img.shape[2] != 3:
        raise ValueError(f"overlay needs an HxWx3 uint8 BGR image, got {img.dtype} {img.shape}")
    h, w = img.shape[:2]
    hm = cv2.resize(np.asarray(heat, np.float32), (w, h), interpolation=cv2.INTER_LINEAR)
    colour = cv2.applyColorMap(np.clip(np.rint(hm * 255), 0, 255).astype(np.uint8), cv2.COLORMAP_JET)
    return cv2.addWeighted(colour, alpha, img, 1.0 - alpha, 0.0)


def explain_crops(
    model: nn.Module,
    onset_bgr: np.ndarray,
    apex_bgr: np.ndarray,
    method: str = "gradcam",
    class_index: int | None = None,
    alpha: float = 0.45,
) -> tuple[HeatMap, np.ndarray]:
    """Aligned onset and apex crops (HWC uint8 BGR) -> (heat map, overlay on the apex crop).

    The crops go through `moext.preprocess.crops_to_tensor`, the same input path as training
    and the live recognizer.
    """
    from moext.preprocess import crops_to_tensor  # the one preprocessing path

    s = model.cfg.image_size
    x_o = crops_to_tensor(onset_bgr, s)  # (1, 3, S, S)
    x_a = crops_to_tensor(apex_bgr, s)
    hm = action_heatmap(model, x_o, x_a, method=method, class_index=class_index)
    return hm, overlay_heatmap(apex_bgr, hm.heat, alpha)
