"""Facial motion from landmarks, with the head's rigid motion removed.

The current landmarks are mapped onto the onset reference by a least-squares similarity
(Procrustes / Umeyama) fitted on points that expressions barely move (nose ridge, forehead,
upper face outline), so head translation, in-plane rotation and scale do not count as
motion. What remains, per region (brows, eyes, mouth), is expression plus tracker jitter.
Distances are in per cent of the reference's inter-ocular distance (IOD), the unit of the
jitter measurements in DESIGN.md (median 0.12-0.22 % frame to frame).

Indices are MediaPipe Face Mesh's 468 (+10 iris) landmark topology.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

# Points that expressions hardly move: nose ridge and tip, forehead midline, upper face
# outline and the inner eye corners. The similarity is fitted on these only, so an
# expression (which moves brows, lids, mouth) cannot pull the fit and hide itself.
RIGID_POINTS = np.array(
    [6, 168, 197, 195, 5, 4, 1, 19, 94,  # nose ridge, tip, columella
     10, 151, 9, 8,  # forehead midline
     109, 338, 67, 297, 103, 332, 54, 284, 21, 251, 162, 389, 127, 356, 234, 454,  # outline
     133, 362]  # inner eye corners
)

# Regions that expressions move (AU1/2/4: brows; AU5/6/7: lids and cheeks; AU12/15..: mouth).
REGIONS: dict[str, np.ndarray] = {
    "brows": np.array(
        [70, 63, 105, 66, 107, 55, 65, 52, 53, 46,
         300, 293, 334, 296, 336, 285, 295, 282, 283, 276]
    ),
    "eyes": np.array(
        [33, 7, 163, 144, 145, 153, 154, 155, 173, 157, 158, 159, 160, 161, 246,
         263, 249, 390, 373, 374, 380, 381, 382, 398, 384, 385, 386, 387, 388, 466,
         # lower lids / cheek just below (AU6 raises it)
         111, 117, 118, 119, 340, 346, 347, 348]
    ),
    "mouth": np.array(
        [61, 146, 91, 181, 84, 17, 314, 405, 321, 375, 291, 409, 270, 269, 267, 0, 37, 39, 40,
         185, 78, 95, 88, 178, 87, 14, 317, 402, 318, 324, 308, 415, 310, 311, 312, 13, 82, 81,
         80, 191]
    ),
}
REGION_NAMES = list(REGIONS)

RIGHT_EYE = np.array([33, 133])  # outer, inner corner (image left for a frontal face)
LEFT_EYE = np.array([362, 263])


def inter_ocular(landmarks: np.ndarray) -> float:
    """Distance between the eye centres (mean of each eye's corners), in the landmarks' units."""
    return float(
        np.linalg.norm(landmarks[RIGHT_EYE].mean(0) - landmarks[LEFT_EYE].mean(0))
    )


@dataclass
class Similarity:
    """x -> scale * R(angle) x + t, the rigid part of the head's motion."""

    scale: float
    angle_deg: float
    translation: np.ndarray  # (2,)
    matrix: np.ndarray  # (2, 3)

    def apply(self, pts: np.ndarray) -> np.ndarray:
        return pts @ self.matrix[:, :2].T + self.matrix[:, 2]


def fit_similarity(src: np.ndarray, dst: np.ndarray) -> Similarity:
    """Least-squares similarity mapping `src` onto `dst` (Umeyama 1991), both (N, 2).

    A closed form rather than cv2.estimateAffinePartial2D: no RANSAC randomness, so the
    motion signal is a deterministic function of the landmarks.
    """
    mu_s, mu_d = src.mean(0), dst.mean(0)
    s, d = src - mu_s, dst - mu_d
    var_s = (s**2).sum() / len(src)
    cov = d.T @ s / len(src)  # (2, 2)
    u, sig, vt = np.linalg.svd(cov)
    sign = np.eye(2)
    if np.linalg.det(u) * np.linalg.det(vt) < 0:  # no reflections
        sign[1, 1] = -1
    rot = u @ sign @ vt
    scale = float(np.trace(np.diag(sig) @ sign) / max(var_s, 1e-12))
    t = mu_d - scale * rot @ mu_s
    m = np.concatenate([scale * rot, t[:, None]], axis=1)
    angle = float(np.degrees(np.arctan2(rot[1, 0], rot[0, 0])))
    return Similarity(scale, angle, t, m)


@dataclass
class MotionMeasure:
    """Motion of one frame relative to a reference.

    Attributes:
        regions: region -> displacement, % IOD (mean of the region's most-moved third).
        motion: max over regions, % IOD.
        rigid_residual: RMS residual of the rigid points after the fit, % IOD. Large when the
            head turns out of plane (yaw, pitch), which a 2-D similarity cannot undo.
        rotation_deg, scale, shift: the head's rigid motion from the reference (shift in % IOD).
    """

    regions: dict[str, float]
    motion: float
    rigid_residual: float
    rotation_deg: float
    scale: float
    shift: float


def measure_motion(current: np.ndarray, reference: np.ndarray) -> MotionMeasure:
    """Displacement of `current` landmarks from `reference` after removing rigid head motion.

    Args:
        current, reference: (478, 2) (or (468, 2)) landmark positions, any pixel frame.
    """
    sim = fit_similarity(current[RIGID_POINTS], reference[RIGID_POINTS])
    cur = sim.apply(current.astype(np.float64))
    ref = reference.astype(np.float64)
    iod = max(inter_ocular(ref), 1e-6)
    disp = np.linalg.norm(cur - ref, axis=1) * (100.0 / iod)  # (N,) % IOD
    regions = {}
    for name, idx in REGIONS.items():
        d = np.sort(disp[idx])
        # A local action unit moves part of a region; the most-moved third keeps it from
        # being diluted by the still points, while still averaging out single-point jitter.
        k = max(3, len(d) // 3)
        regions[name] = float(d[-k:].mean())
    rigid = float(np.sqrt((disp[RIGID_POINTS] ** 2).mean()))
    centre_shift = np.linalg.norm(
        current[RIGID_POINTS].mean(0) - reference[RIGID_POINTS].mean(0)
    ) * (100.0 / iod)
    return MotionMeasure(
        regions=regions,
        motion=max(regions.values()),
        rigid_residual=rigid,
        rotation_deg=sim.angle_deg,
        scale=1.0 / max(sim.scale, 1e-6),
        shift=float(centre_shift),
    )
