"""Facial motion from landmarks, with the head's rigid motion removed.

The current landmarks are mapped onto the onset reference by a least-squares similarity
(Procrustes / Umeyama) fitted on points that expressions barely move (nose ridge and tip,
eye corners, the face's contour at the eyes' and cheeks' height), so head translation,
in-plane rotation and scale do not count as motion. What remains, per region (brows, eyes, mouth), is expression plus tracker jitter.
Distances are in per cent of the reference's inter-ocular distance (IOD), the unit of the
jitter measurements in docs/DESIGN.md (median 0.12-0.22 % frame to frame).

Indices are MediaPipe Face Mesh's 468 (+10 iris) landmark topology.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from moext.geometry import LEFT_EYE_CORNERS, RIGHT_EYE_CORNERS

# Points that expressions hardly move: the nose ridge and tip, the four eye corners and the
# face's contour at the eyes' height. The similarity is fitted on these only, so an
# expression cannot pull the fit and hide itself. Not the forehead nor the brows' level: the
# forehead's landmarks rise with a brow raise (a generated 2 % IOD surprise whose forehead
# points rose by half the brows' lift measured 1.51 % at the brows with a fit that held them,
# 2.0 without); not the jaw line, which drops with AU26; not the contour at the cheeks'
# height (93, 323), which the skin of a smile pulls (with them a weak 6+12 smile of a
# development video, multi_face_1 seed 0, did not come back by flow and was dropped).
RIGID_POINTS = np.array(
    [6, 168, 197, 195, 5, 4, 1, 19, 94,  # nose ridge, tip, columella
     33, 133, 362, 263,  # eye corners (outer, inner; the lids and brows move, not these)
     127, 356, 234, 454]  # contour at the eyes' height
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

RIGHT_EYE = np.array(RIGHT_EYE_CORNERS)
LEFT_EYE = np.array(LEFT_EYE_CORNERS)


@dataclass
class MotionMeasure:
    """Motion of one frame relative to a reference.

    Attributes:
        groups: (G,) displacement of each landmark group and mirror pair (`GROUP_NAMES`
            order), % IOD.
        vectors: (12, 2) mean displacement vector of each single group, in the face's own
            axes (x along the eye line, y down the face), % IOD.
        regions: region -> max of its groups, % IOD.
        motion: max over groups, % IOD.
        rigid_residual: RMS residual of the rigid points after the fit, % IOD. Large when the
            head turns out of plane (yaw, pitch), which a 2-D similarity cannot undo.
        rotation_deg, scale, shift: the head's rigid motion from the reference (shift of the
            rigid points' centre, % IOD; scale > 1: the face grew).
    """

    groups: np.ndarray
    vectors: np.ndarray
    regions: dict[str, float]
    motion: float
    rigid_residual: float
    rotation_deg: float
    scale: float
    shift: float


# Only these points enter a measurement: the rigid ones and the groups' (~150 of 478).
_USED = np.unique(np.concatenate([RIGID_POINTS, *GROUPS.values(), RIGHT_EYE, LEFT_EYE]))
_POS = {int(k): i for i, k in enumerate(_USED)}
_RIGID_U = np.array([_POS[int(k)] for k in RIGID_POINTS])
_EYES_U = (np.array([_POS[int(k)] for k in RIGHT_EYE]), np.array([_POS[int(k)] for k in LEFT_EYE]))
# (12, U) averaging matrix: group mean displacement vectors in one matrix product.
_GROUP_MEAN = np.zeros((len(GROUPS), len(_USED)))
for _g, _idx in enumerate(GROUPS.values()):
    _GROUP_MEAN[_g, [_POS[int(k)] for k in _idx]] = 1.0 / len(_idx)
# (2G, 24): the flattened (12, 2) face-frame group vectors -> the (x, y) components of every
# group and mirror pair (a pair: half the difference of x, mirrored; half the sum of y).
_COMPONENTS = np.zeros((2 * len(GROUP_NAMES), 2 * len(GROUPS)))
for _g in range(len(GROUPS)):
    _COMPONENTS[2 * _g, 2 * _g] = _COMPONENTS[2 * _g + 1, 2 * _g + 1] = 1.0
for _k, (_a, _b) in enumerate(_PAIR_INDEX):
    _r = 2 * (len(GROUPS) + _k)
    _COMPONENTS[_r, 2 * _b], _COMPONENTS[_r, 2 * _a] = 0.5, -0.5
    _COMPONENTS[_r + 1, 2 * _a + 1] = _COMPONENTS[_r + 1, 2 * _b + 1] = 0.5


# Row vectors / matrices over the used points, so that means are matrix products.
_EYE_MEAN = np.zeros((2, len(_USED)))
_EYE_MEAN[0, _EYES_U[0]] = 0.5
_EYE_MEAN[1, _EYES_U[1]] = 0.5
_REGION_LIST = list(_REGION_INDEX.items())
_N_RIGID = len(_RIGID_U)


def group_magnitudes(local: np.ndarray) -> np.ndarray:
    """(12, 2) face-frame group vectors -> (G,) magnitudes of the groups and mirror pairs."""
    c = _COMPONENTS @ local.reshape(-1)
    c *= c
    return np.sqrt(c[0::2] + c[1::2])


def measure_motion(current: np.ndarray, reference: np.ndarray) -> MotionMeasure:
    """Displacement of `current` landmarks from `reference` after removing rigid head motion.

    Runs several times per frame, so it is written as a few matrix products (~0.1 ms).

    Args:
        current, reference: (478, 2) (or (468, 2)) landmark positions, same pixel frame.
    """
    cur_raw = np.asarray(current, dtype=np.float64)[_USED]  # (U, 2)
    ref = np.asarray(reference, dtype=np.float64)[_USED]
    # moext.geometry.fit_similarity on the rigid points, current -> reference, written out
    # here because it runs several times a frame (tests/test_spotting.py checks they agree).
    cr, rr = cur_raw[_RIGID_U], ref[_RIGID_U]
    mu_c, mu_r = cr.sum(0) / _N_RIGID, rr.sum(0) / _N_RIGID
    cs, rs = cr - mu_c, rr - mu_r
    den = max(float(cs.ravel() @ cs.ravel()), 1e-12)
    a_re = float(cs.ravel() @ rs.ravel()) / den  # Re(sum conj(c) r) / sum |c|^2
    a_im = float(cs[:, 0] @ rs[:, 1] - cs[:, 1] @ rs[:, 0]) / den
    rot_t = np.array([[a_re, a_im], [-a_im, a_re]])  # (scale * R(angle)) transposed
    eyes = _EYE_MEAN @ ref  # (2, 2): right, left eye centre
    e = eyes[1] - eyes[0]
    iod = max(float(np.sqrt(e @ e)), 1e-6)
    k = 100.0 / iod
    # The current points with the head's motion removed, minus the reference: % IOD.
    disp = ((cur_raw - mu_c) @ rot_t + (mu_r - ref)) * k  # (U, 2)
    vec = _GROUP_MEAN @ disp  # (12, 2) mean displacement of each group
    # The face's own axes (x along the eye line): mirroring is about the facial midline.
    ex0, ex1 = e[0] / iod, e[1] / iod
    local = vec @ np.array([[ex0, -ex1], [ex1, ex0]])  # (12, 2) face frame
    groups = group_magnitudes(local)
    gl = groups.tolist()
    regions = {r: max(gl[i] for i in ix) for r, ix in _REGION_LIST}
    dr = disp[_RIGID_U].ravel()
    rigid = float(np.sqrt((dr @ dr) / _N_RIGID))
    sh = mu_c - mu_r
    scale = float(np.hypot(a_re, a_im))
    return MotionMeasure(
        groups=groups,
        vectors=local,
        regions=regions,
        motion=max(gl),
        rigid_residual=rigid,
        rotation_deg=-float(np.degrees(np.arctan2(a_im, a_re))),
        scale=1.0 / max(scale, 1e-6),
        shift=float(np.sqrt(sh @ sh)) * k,
    )


# --- the image cue: optical flow inside the aligned crop --------------------------------

FLOW_SIZE = 112  # side of the grey crop the flow runs on (the 224 aligned crop, halved)


def motion_image(crop_bgr: np.ndarray, crop_landmarks: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Aligned crop (S, S, 3) BGR and its landmarks in crop pixels -> the grey
    `FLOW_SIZE` crop that `FlowMeter` compares, and the landmarks in its pixels."""
    import cv2

    s = crop_bgr.shape[0]
    grey = cv2.cvtColor(crop_bgr, cv2.COLOR_BGR2GRAY)
    if s != FLOW_SIZE:
        grey = cv2.resize(grey, (FLOW_SIZE, FLOW_SIZE), interpolation=cv2.INTER_AREA)
    return grey, np.asarray(crop_landmarks, np.float32) * (FLOW_SIZE / s)


class FlowMeter:
    """Facial motion between two aligned crops from dense optical flow (the image cue of
    docs/DESIGN.md, beside landmark displacement).

    Landmark jitter (0.12-0.22 % IOD frame to frame, per point) is as large as a weak
    micro-expression; the texture of the skin moves with the expression and is measured
    over many pixels at once. OpenCV's DIS flow (ultrafast preset, finest scale 1, i.e. a
    56 px flow field over the 112 px grey crop) is box-averaged over 7 px and sampled at
    the earlier crop's landmarks; the moved points then go through `measure_motion`, so the
    similarity fit on the rigid points removes most of the crop's own alignment jitter and
    the groups, mirror pairs and % IOD units are those of the landmark measure. A whole
    `measure` took 1.3-1.8 ms on one core here (DIS ~1.0-1.3 of it).

    On the synthetic spotting videos (seeds 0-7, transient score over a 270 ms lag, in units
    of each group's median quiet level) every micro event cleared the largest score of any
    quiet stretch (14.7 and up against 5.2); with landmarks alone a third did not (3.1 and
    up against 5.7). The 56 px field under-measures small local motions by about a third
    (a test pins this), which the z-scores do not mind.
    """

    def __init__(self, blur: int = 7):
        import cv2

        from moext.flow import DenseFlow

        self._cv2 = cv2
        # The flow function the classifiers' inputs come from, at the spotting cue's speed.
        self.dense = DenseFlow("ultrafast", finest_scale=1)
        self.blur = blur

    def measure(self, grey_a: np.ndarray, points_a: np.ndarray, grey_b: np.ndarray) -> MotionMeasure:
        """Motion from crop `a` (landmarks `points_a` in its pixels) to crop `b`."""
        cv2 = self._cv2
        flow = self.dense(grey_a, grey_b)
        if self.blur > 1:
            flow = cv2.blur(flow, (self.blur, self.blur))
        pts = np.asarray(points_a, np.float32)
        used = pts[_USED]
        d = cv2.remap(flow, used[None, :, 0], used[None, :, 1], cv2.INTER_LINEAR)[0]
        moved = pts.astype(np.float64)
        moved[_USED] += d
        return measure_motion(moved, pts)
