"""Face geometry that alignment, the live motion measure and the generators share.

- the eye centres (midpoints of each eye's corners) and the mouth centre;
- the inter-ocular distance (IOD) between the eye centres: the unit of every motion figure;
- one least-squares similarity fit (rotation, uniform scale, translation), used to align a
  face to the canonical crop and to take the head's motion out of the landmarks' motion.

Indices are MediaPipe's 478-point face mesh; the subject's right eye is on the image left for
a frontal face.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

RIGHT_EYE_CORNERS = (33, 133)  # outer, inner
LEFT_EYE_CORNERS = (362, 263)  # inner, outer
# Corners 61/291 plus lip midpoints 0/17: the mean moves less under AU12 than corners alone.
MOUTH_POINTS = (61, 291, 0, 17)


def eye_centres(landmarks: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(right eye, left eye) centres as midpoints of the eye corners, float64.

    Corners, not the lid contour or iris: lids move with AU5/AU7 and the iris with gaze, and
    either would leak expression into the alignment and the motion unit.
    """
    lm = np.asarray(landmarks, dtype=np.float64)
    return lm[list(RIGHT_EYE_CORNERS)].mean(0), lm[list(LEFT_EYE_CORNERS)].mean(0)


def mouth_centre(landmarks: np.ndarray) -> np.ndarray:
    return np.asarray(landmarks, dtype=np.float64)[list(MOUTH_POINTS)].mean(0)


def inter_ocular_distance(landmarks: np.ndarray) -> float:
    """Distance between the eye centres in the landmarks' units (the motion unit, "IOD")."""
    r, l = eye_centres(landmarks)
    return float(np.linalg.norm(l - r))


@dataclass
class Similarity:
    """x -> scale * R(angle) x + t."""

    scale: float
    angle_deg: float
    translation: np.ndarray  # (2,)
    matrix: np.ndarray  # (2, 3) float64

    def apply(self, pts: np.ndarray) -> np.ndarray:
        return pts @ self.matrix[:, :2].T + self.matrix[:, 2]


def fit_similarity(src: np.ndarray, dst: np.ndarray) -> Similarity:
    """Least-squares similarity mapping `src` onto `dst`, both (N, 2) with N >= 2.

    In complex numbers a similarity is z -> a z + b, and the least-squares `a` for centred
    points is sum(conj(s) d) / sum(|s|^2): Umeyama's solution without reflection in closed
    form (no SVD, no RANSAC randomness), so whatever follows from it is a deterministic and
    cheap function of the points. Two points give the exact similarity between them.
    """
    src = np.asarray(src, dtype=np.float64)
    dst = np.asarray(dst, dtype=np.float64)
    mu_s, mu_d = src.mean(0), dst.mean(0)
    s = (src[:, 0] - mu_s[0]) + 1j * (src[:, 1] - mu_s[1])
    d = (dst[:, 0] - mu_d[0]) + 1j * (dst[:, 1] - mu_d[1])
    a = np.vdot(s, d) / max(float(np.vdot(s, s).real), 1e-12)
    rot = np.array([[a.real, -a.imag], [a.imag, a.real]])  # scale * R(angle)
    t = mu_d - rot @ mu_s
    m = np.concatenate([rot, t[:, None]], axis=1)
    return Similarity(float(abs(a)), float(np.degrees(np.angle(a))), t, m)
