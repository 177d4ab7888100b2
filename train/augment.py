"""Augmentations on aligned face crops (HWC uint8 BGR, as cached by `moext-train preprocess`).

All functions take an explicit `numpy.random.Generator`, so a caller that seeds it from
(seed, epoch, item) replays exactly the same data after a resume or on another DDP rank.
Pixels stay uint8 BGR; `moext.preprocess.crops_to_tensor` turns them into network input
afterwards, the same function the live recognizer uses.
"""

from __future__ import annotations

import math

import cv2
import numpy as np

from train.config import AugmentConfig


def pair_transforms(rng: np.random.Generator, cfg: AugmentConfig, size: int) -> tuple[np.ndarray, np.ndarray, bool]:
    """Draw the geometric augmentation of an onset/apex pair.

    The mirror and rotation are shared by both frames (the motion between them must survive);
    the optional rigid jitter moves the apex only, like head motion and alignment jitter
    between a live onset and the current frame.

    Returns:
        (2, 3) affine matrices for the onset and the apex (crop pixels -> crop pixels), and
        whether to mirror both first.
    """
    flip = bool(cfg.mirror and rng.random() < 0.5)
    angle = float(rng.uniform(-cfg.max_rotation_deg, cfg.max_rotation_deg)) if cfg.max_rotation_deg else 0.0
    centre = (size / 2.0, size / 2.0)
    m_onset = cv2.getRotationMatrix2D(centre, angle, 1.0)
    if cfg.rigid_px or cfg.rigid_deg or cfg.rigid_scale:
        d_angle = float(rng.uniform(-cfg.rigid_deg, cfg.rigid_deg))
        scale = 1.0 + float(rng.uniform(-cfg.rigid_scale, cfg.rigid_scale))
        dx, dy = rng.uniform(-cfg.rigid_px, cfg.rigid_px, size=2)
        m_apex = cv2.getRotationMatrix2D(centre, angle + d_angle, scale)
        m_apex[:, 2] += (dx, dy)
    else:
        m_apex = m_onset.copy()
    return m_onset, m_apex, flip


def warp(img: np.ndarray, matrix: np.ndarray, flip: bool) -> np.ndarray:
    """Mirror (exact) then apply an affine; identity matrices skip the resampling."""
    if flip:
        img = cv2.flip(img, 1)
    if np.allclose(matrix, [[1, 0, 0], [0, 1, 0]]):
        return np.ascontiguousarray(img)
    h, w = img.shape[:2]
    # Reflection keeps face-like texture at the corners instead of black wedges.
    return cv2.warpAffine(img, matrix, (w, h), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT_101)


def add_noise(img: np.ndarray, rng: np.random.Generator, std: float) -> np.ndarray:
    """Additive Gaussian noise with `std` in 0..255 units (expansion variant, sensor noise)."""
    if std <= 0:
        return img
    noisy = img.astype(np.float32) + rng.normal(0.0, std, size=img.shape).astype(np.float32)
    return np.clip(np.rint(noisy), 0, 255).astype(np.uint8)


def increase_contrast(img: np.ndarray, rng: np.random.Generator, gain: tuple[float, float]) -> np.ndarray:
    """Stretch intensities about the image mean by a gain drawn from `gain` (> 1)."""
    g = float(rng.uniform(*gain))
    f = img.astype(np.float32)
    mean = f.mean(axis=(0, 1), keepdims=True)
    return np.clip(np.rint((f - mean) * g + mean), 0, 255).astype(np.uint8)


def grayscale(img: np.ndarray) -> np.ndarray:
    return cv2.cvtColor(cv2.cvtColor(img, cv2.COLOR_BGR2GRAY), cv2.COLOR_GRAY2BGR)


EXPANSION_VARIANTS = ("noise", "contrast", "grayscale")


def expansion_set(img: np.ndarray, rng: np.random.Generator, cfg: AugmentConfig) -> list[np.ndarray]:
    """The m instances of a frame's expansion set (§3.2): itself, then m-1 variants drawn
    from {random noise, contrast increase, grayscale} (without repetition while they last)."""
    n = cfg.expansion_m - 1
    kinds = list(rng.permutation(len(EXPANSION_VARIANTS)))
    while len(kinds) < n:
        kinds += list(rng.permutation(len(EXPANSION_VARIANTS)))
    out = [img]
    for k in kinds[:n]:
        name = EXPANSION_VARIANTS[k]
        if name == "noise":
            out.append(add_noise(img, rng, cfg.noise_std))
        elif name == "contrast":
            out.append(increase_contrast(img, rng, cfg.contrast_gain))
        else:
            out.append(grayscale(img))
    return out


def augment_pair(
    onset: np.ndarray, apex: np.ndarray, rng: np.random.Generator, cfg: AugmentConfig
) -> tuple[np.ndarray, np.ndarray]:
    """Shared mirror + rotation, apex-only rigid jitter, independent sensor noise."""
    onset, apex, _, _ = augment_pair_geometry(onset, apex, rng, cfg)
    return onset, apex


def augment_pair_geometry(
    onset: np.ndarray | None, apex: np.ndarray | None, rng: np.random.Generator, cfg: AugmentConfig,
    size: int = 224,
) -> tuple[np.ndarray | None, np.ndarray | None, bool, float]:
    """`augment_pair`, also returning the shared (mirror, rotation in degrees), so a cached
    onset -> apex flow can follow the frames (`moext.flow.transform_field`). With no frames
    (a flow-only classifier) only the draws are made, in the same order: the same seed gives
    the same mirror and rotation either way."""
    m_o, m_a, flip = pair_transforms(rng, cfg, onset.shape[0] if onset is not None else size)
    if onset is not None:
        onset, apex = warp(onset, m_o, flip), warp(apex, m_a, flip)
        if cfg.sensor_noise_std > 0:
            onset = add_noise(onset, rng, cfg.sensor_noise_std)
            apex = add_noise(apex, rng, cfg.sensor_noise_std)
    return onset, apex, flip, rotation_degrees(m_o)


def rotation_degrees(matrix: np.ndarray) -> float:
    """Rotation angle (degrees, counter-clockwise) of a similarity matrix; for tests."""
    return math.degrees(math.atan2(-matrix[0, 1], matrix[0, 0]))
