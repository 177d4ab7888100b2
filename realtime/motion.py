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

# Groups of landmarks that an action unit moves together, per side. Motion of a group is
# the length of its mean displacement vector: coherent expression motion adds up, while
# the points' independent jitter averages out (measured on the synthetic spotting videos:
# per-group vector means separate micro apexes from quiet frames better than per-point
# magnitudes). AU1/2/4: brows; AU5/7: lids; AU6: cheeks; AU12/15/20 and lips: mouth.
GROUPS: dict[str, np.ndarray] = {
    "brow_r": np.array([70, 63, 105, 66, 107, 55, 65, 52, 53, 46]),
    "brow_l": np.array([300, 293, 334, 296, 336, 285, 295, 282, 283, 276]),
    "upper_lid_r": np.array([246, 161, 160, 159, 158, 157, 173]),
    "upper_lid_l": np.array([466, 388, 387, 386, 385, 384, 398]),
    "lower_lid_r": np.array([7, 163, 144, 145, 153, 154, 155]),
    "lower_lid_l": np.array([249, 390, 373, 374, 380, 381, 382]),
    "cheek_r": np.array([117, 118, 119, 100, 101, 50, 123, 111]),
    "cheek_l": np.array([346, 347, 348, 329, 330, 280, 352, 340]),
    "mouth_corner_r": np.array([61, 146, 91, 185, 40, 78, 95]),
    "mouth_corner_l": np.array([291, 375, 321, 409, 270, 308, 324]),
    "upper_lip": np.array([0, 37, 267, 13, 82, 312]),
    "lower_lip": np.array([17, 84, 314, 14, 87, 317]),
}
# Mirror pairs: most action units act on both sides at once, and the symmetric part of a
# pair's motion (x mirrored about the face's midline) has ~1/sqrt(2) of one side's jitter.
# Single sides stay in the list, so one-sided movements are still seen.
PAIRS: dict[str, tuple[str, str]] = {
    "brows_both": ("brow_r", "brow_l"),
    "upper_lids_both": ("upper_lid_r", "upper_lid_l"),
    "lower_lids_both": ("lower_lid_r", "lower_lid_l"),
    "cheeks_both": ("cheek_r", "cheek_l"),
    "mouth_corners_both": ("mouth_corner_r", "mouth_corner_l"),
}
GROUP_NAMES = list(GROUPS) + list(PAIRS)
# The three regions reported to people; each is the max over its groups.
REGION_GROUPS = {
    "brows": ["brow_r", "brow_l", "brows_both"],
    "eyes": ["upper_lid_r", "upper_lid_l", "lower_lid_r", "lower_lid_l", "cheek_r", "cheek_l",
             "upper_lids_both", "lower_lids_both", "cheeks_both"],
    "mouth": ["mouth_corner_r", "mouth_corner_l", "upper_lip", "lower_lip", "mouth_corners_both"],
}
REGIONS: dict[str, np.ndarray] = {
    r: np.unique(np.concatenate([GROUPS[g] for g in gs if g in GROUPS]))
    for r, gs in REGION_GROUPS.items()
}
_PAIR_INDEX = [(GROUP_NAMES.index(a), GROUP_NAMES.index(b)) for a, b in PAIRS.values()]
_REGION_INDEX = {r: [GROUP_NAMES.index(g) for g in gs] for r, gs in REGION_GROUPS.items()}
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
        groups: (G,) displacement of each landmark group and mirror pair (`GROUP_NAMES`
            order), % IOD.
        regions: region -> max of its groups, % IOD.
        motion: max over groups, % IOD.
        rigid_residual: RMS residual of the rigid points after the fit, % IOD. Large when the
            head turns out of plane (yaw, pitch), which a 2-D similarity cannot undo.
        rotation_deg, scale, shift: the head's rigid motion from the reference (shift of the
            rigid points' centre, % IOD; scale > 1: the face grew).
    """

    groups: np.ndarray
    regions: dict[str, float]
    motion: float
    rigid_residual: float
    rotation_deg: float
    scale: float
    shift: float


def measure_motion(current: np.ndarray, reference: np.ndarray) -> MotionMeasure:
    """Displacement of `current` landmarks from `reference` after removing rigid head motion.

    Args:
        current, reference: (478, 2) (or (468, 2)) landmark positions, same pixel frame.
    """
    cur_raw = np.asarray(current, dtype=np.float64)
    ref = np.asarray(reference, dtype=np.float64)
    sim = fit_similarity(cur_raw[RIGID_POINTS], ref[RIGID_POINTS])
    cur = sim.apply(cur_raw)
    iod = max(inter_ocular(ref), 1e-6)
    disp = (cur - ref) * (100.0 / iod)  # (N, 2) % IOD
    vec = np.stack([disp[idx].mean(0) for idx in GROUPS.values()])  # (12, 2) mean vectors
    # The face's own axes (x along the eye line): mirroring is about the facial midline.
    ex = ref[LEFT_EYE].mean(0) - ref[RIGHT_EYE].mean(0)
    ex = ex / max(np.linalg.norm(ex), 1e-9)
    ey = np.array([-ex[1], ex[0]])
    local = np.stack([vec @ ex, vec @ ey], axis=1)  # (12, 2)
    pairs = [0.5 * np.array([local[b, 0] - local[a, 0], local[a, 1] + local[b, 1]])
             for a, b in _PAIR_INDEX]
    groups = np.concatenate([np.linalg.norm(vec, axis=1), np.linalg.norm(pairs, axis=1)])
    regions = {r: float(groups[ix].max()) for r, ix in _REGION_INDEX.items()}
    rigid = float(np.sqrt((disp[RIGID_POINTS] ** 2).sum(1).mean()))
    shift = np.linalg.norm(cur_raw[RIGID_POINTS].mean(0) - ref[RIGID_POINTS].mean(0)) * (100.0 / iod)
    return MotionMeasure(
        groups=groups,
        regions=regions,
        motion=float(groups.max()),
        rigid_residual=rigid,
        rotation_deg=-sim.angle_deg,
        scale=1.0 / max(sim.scale, 1e-6),
        shift=float(shift),
    )
