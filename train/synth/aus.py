"""Action units as landmark moves in the face frame, and the dense displacement field that
spreads a few landmark moves over the face (Gaussian kernel regression)."""

from __future__ import annotations

import math
from typing import Iterable

import cv2
import numpy as np

CLASSES = ("negative", "positive", "surprise")
# Estimated Emotion written to the CASME II coding sheet for each synthetic class.
CASME2_EMOTION = {"negative": "disgust", "positive": "happiness", "surprise": "surprise"}

# --- action units: landmark moves in the face frame (x: towards the subject's left eye,
# i.e. image right for a frontal face; y: down the face). Values are relative weights; a
# class's combined field is normalised so that its largest landmark move is 1 IOD.
_R_INNER_BROW, _L_INNER_BROW = (107, 66, 55, 65), (336, 296, 285, 295)
_R_MID_BROW, _L_MID_BROW = (105, 52), (334, 282)
_R_OUTER_BROW, _L_OUTER_BROW = (70, 63, 46, 53), (300, 293, 276, 283)
_R_UPPER_LID, _L_UPPER_LID = (246, 161, 160, 159, 158, 157, 173), (466, 388, 387, 386, 385, 384, 398)
_R_LOWER_LID, _L_LOWER_LID = (7, 163, 144, 145, 153, 154, 155), (249, 390, 373, 374, 380, 381, 382)
_R_CHEEK, _L_CHEEK = (117, 118, 119, 100, 101, 50, 123, 111), (346, 347, 348, 329, 330, 280, 352, 340)
# Points that stay put under every AU: eye corners (so alignment is not moved by the
# expression), nose, forehead, jaw and lip midline.
ANCHORS = (33, 133, 362, 263, 1, 4, 5, 6, 168, 197, 195, 10, 151, 152, 175, 199, 234, 454, 93,
           323, 132, 361, 58, 288, 172, 397, 136, 365, 0, 17)


def _sym(right: Iterable[int], left: Iterable[int], dx: float, dy: float, w: float = 1.0):
    """The same move on both sides; x mirrored (positive dx = away from the midline)."""
    out = {i: (-dx * w, dy * w) for i in right}
    out.update({i: (dx * w, dy * w) for i in left})
    return out


def _au_moves() -> dict[str, dict[int, tuple[float, float]]]:
    au: dict[str, dict[int, tuple[float, float]]] = {}
    au["AU1"] = {**_sym(_R_INNER_BROW, _L_INNER_BROW, 0.0, -1.0), **_sym(_R_MID_BROW, _L_MID_BROW, 0.0, -0.5)}
    au["AU2"] = {**_sym(_R_OUTER_BROW, _L_OUTER_BROW, 0.0, -1.0), **_sym(_R_MID_BROW, _L_MID_BROW, 0.0, -0.6)}
    au["AU4"] = {**_sym(_R_INNER_BROW, _L_INNER_BROW, -0.6, 0.8), **_sym(_R_MID_BROW, _L_MID_BROW, -0.2, 0.5)}
    au["AU5"] = _sym(_R_UPPER_LID, _L_UPPER_LID, 0.0, -0.6)
    au["AU6"] = {**_sym(_R_CHEEK, _L_CHEEK, 0.0, -0.7), **_sym(_R_LOWER_LID, _L_LOWER_LID, 0.0, -0.4)}
    au["AU7"] = {**_sym(_R_LOWER_LID, _L_LOWER_LID, 0.0, -0.6), **_sym(_R_UPPER_LID, _L_UPPER_LID, 0.0, 0.25)}
    au["AU12"] = {
        **_sym((61,), (291,), 0.55, -0.8),
        **_sym((78,), (308,), 0.55, -0.8, 0.7),
        **_sym((185, 146), (409, 375), 0.5, -0.8, 0.5),
        **_sym((40, 91), (270, 321), 0.5, -0.8, 0.3),
        **_sym((205, 207), (425, 427), 0.0, -1.0, 0.3),
    }
    return au


AU_MOVES = _au_moves()
# Class -> (AU, weight) combinations. AU5 joins surprise in about half of the samples.
CLASS_AUS = {
    "positive": (("AU12", 1.0), ("AU6", 0.6)),
    "negative": (("AU4", 1.0), ("AU7", 0.5)),
    "surprise": (("AU1", 1.0), ("AU2", 1.0)),
}
SURPRISE_AU5 = ("AU5", 0.5)
EXPRESSION_SIGMA_IOD = 0.12  # kernel width: localized motion (brows do not drag the cheeks)
SHAPE_SIGMA_IOD = 0.40  # identity variation: broad, smooth reshaping


def landmark_field(
    landmarks: np.ndarray,
    moves: dict[int, np.ndarray],
    shape: tuple[int, int],
    sigma: float,
    anchors: Iterable[int] = (),
    step: int = 4,
) -> np.ndarray:
    """Dense displacement field from a few landmark moves (Gaussian kernel regression).

    D(p) = sum_i w_i(p) d_i / (sum_i w_i(p) + w_0), w_i = exp(-|p - c_i|^2 / 2 sigma^2), over
    moving landmarks (d_i) and anchors (d_i = 0). Normalised regression never overshoots the
    largest move; w_0 = exp(-2) lets the field fade to zero ~2 sigma away from every control.
    Computed on a grid of `step` px and resized (the field is smooth at that scale).

    Returns:
        (H, W, 2) float32, scaled so that the largest move at a moving landmark is 1.
    """
    h, w = shape
    idx = sorted(moves)
    anchors = [a for a in anchors if a not in moves]
    ctrl = np.concatenate([landmarks[idx], landmarks[anchors]]).astype(np.float64)  # (K, 2)
    disp = np.concatenate([np.array([moves[i] for i in idx]).reshape(-1, 2), np.zeros((len(anchors), 2))])
    w0 = math.exp(-2.0)

    def evaluate(points: np.ndarray) -> np.ndarray:  # (P, 2) -> (P, 2)
        d2 = ((points[:, None, :] - ctrl[None]) ** 2).sum(-1)
        wts = np.exp(-d2 / (2 * sigma**2))
        return (wts @ disp) / (wts.sum(1, keepdims=True) + w0)

    peak = np.linalg.norm(evaluate(landmarks[idx].astype(np.float64)), axis=1).max()
    hs, ws = -(-h // step), -(-w // step)
    gy, gx = np.mgrid[0:hs, 0:ws].astype(np.float64)
    pts = np.stack([(gx + 0.5) * step - 0.5, (gy + 0.5) * step - 0.5], -1).reshape(-1, 2)
    coarse = (evaluate(pts) / peak).reshape(hs, ws, 2).astype(np.float32)
    fine = cv2.resize(coarse, (ws * step, hs * step), interpolation=cv2.INTER_LINEAR)
    return np.ascontiguousarray(fine[:h, :w])
