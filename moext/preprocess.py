"""The one path from an aligned face crop to the network's input.

Training reads cached crops (lossless PNG written from `align_face`) and calls
`crops_to_tensor`; the live recognizer calls `face_to_input` on the frame. Both align at
`CROP_SIZE` first and then resize to the model's `image_size` with the same call, so that a
test can prove they give the same array for the same frame.
"""

from __future__ import annotations

import cv2
import numpy as np
import torch

from moext.face import AlignedFace, align_face

CROP_SIZE = 224  # side of the cached / live aligned crop, the paper's input size
IMAGENET_MEAN = np.array([0.485, 0.456, 0.406], dtype=np.float32)  # RGB
IMAGENET_STD = np.array([0.229, 0.224, 0.225], dtype=np.float32)
# (3, 256): the normalised value of each uint8 level, per RGB channel.
_LUT = (
    (np.arange(256, dtype=np.float32)[None] / 255.0 - IMAGENET_MEAN[:, None]) / IMAGENET_STD[:, None]
).astype(np.float32)


def crops_to_array(crops_bgr: np.ndarray, image_size: int) -> np.ndarray:
    """Aligned crops -> normalised network input.

    Args:
        crops_bgr: uint8 BGR, (N, H, W, 3) or one crop (H, W, 3); resized to `image_size`
            when H or W differ (area interpolation: the crops are only ever shrunk).
        image_size: side of the network input.

    Returns:
        float32 (N, 3, image_size, image_size), RGB, ImageNet mean/std normalised.
    """
    crops = np.asarray(crops_bgr)
    if crops.dtype != np.uint8:
        raise ValueError(f"crops must be uint8 BGR images, got dtype {crops.dtype}")
    if crops.ndim == 3:
        crops = crops[None]
    if crops.ndim != 4 or crops.shape[-1] != 3:
        raise ValueError(f"crops must be (N, H, W, 3) or (H, W, 3), got shape {crops.shape}")
    if crops.shape[1:3] != (image_size, image_size):
        interp = cv2.INTER_AREA if crops.shape[1] >= image_size else cv2.INTER_LINEAR
        crops = np.stack([cv2.resize(c, (image_size, image_size), interpolation=interp) for c in crops])
    # (v / 255 - mean) / std per channel, looked up from a 256-entry table per channel: the
    # same float32 values as the arithmetic, 1.1 -> 0.3 ms for one 224 crop here.
    n, s = crops.shape[0], crops.shape[1]
    x = np.empty((n, 3, s, s), np.float32)
    for c_rgb in range(3):
        np.take(_LUT[c_rgb], crops[..., 2 - c_rgb], out=x[:, c_rgb])  # BGR -> RGB
    return x  # (N, 3, S, S)


def crops_to_tensor(crops_bgr: np.ndarray, image_size: int) -> torch.Tensor:
    """`crops_to_array` as a float32 torch tensor (N, 3, S, S) on the CPU."""
    return torch.from_numpy(crops_to_array(crops_bgr, image_size))


def face_to_input(
    frame_bgr: np.ndarray,
    landmarks: np.ndarray,
    image_size: int,
    *,
    transform: np.ndarray | None = None,
) -> tuple[np.ndarray, AlignedFace]:
    """A frame and its landmarks -> (network input (1, 3, S, S) float32, the aligned face).

    `transform` (optional, frame->crop) reuses an earlier alignment, see `align_face`.
    """
    face = align_face(frame_bgr, landmarks, CROP_SIZE, transform=transform)
    return crops_to_array(face.crop, image_size), face


def denormalise(x: np.ndarray | torch.Tensor) -> np.ndarray:
    """Network input (N, 3, S, S) -> uint8 BGR crops (N, S, S, 3), for figures and checks."""
    a = x.detach().cpu().numpy() if isinstance(x, torch.Tensor) else np.asarray(x)
    rgb = a.transpose(0, 2, 3, 1) * IMAGENET_STD + IMAGENET_MEAN
    return np.clip(np.rint(rgb[..., ::-1] * 255.0), 0, 255).astype(np.uint8)
