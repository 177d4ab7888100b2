"""Action units as landmark moves in the face frame, and the dense displacement field that
spreads a few landmark moves over the face (Gaussian kernel regression)."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Iterable, Sequence

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


# Which half of the face each landmark that an AU moves lies in (the subject's right half is
# image left for a frontal face), filled by `_sym` as the AUs are defined; unilateral units
# (contempt's R14 / L14) keep one half's moves.
RIGHT_HALF: set[int] = set()
LEFT_HALF: set[int] = set()


def _sym(right: Iterable[int], left: Iterable[int], dx: float, dy: float, w: float = 1.0):
    """The same move on both sides; x mirrored (positive dx = away from the midline)."""
    right, left = tuple(right), tuple(left)
    if right and left:  # a mirrored pair: off the midline
        RIGHT_HALF.update(right)
        LEFT_HALF.update(left)
    out = {i: (-dx * w, dy * w) for i in right}
    out.update({i: (dx * w, dy * w) for i in left})
    return out


_R_NOSE_WING, _L_NOSE_WING = (98, 64, 48, 102, 129, 219), (327, 294, 278, 331, 358, 439)
_R_NOSE_SIDE, _L_NOSE_SIDE = (49, 209), (279, 429)
_R_NASOLABIAL, _L_NASOLABIAL = (203, 206, 216), (423, 426, 436)
_R_MOUTH_SIDE, _L_MOUTH_SIDE = (92, 186), (322, 410)  # skin just outside the lip corners
# Lips (outer contour, then inner), subject's right half / left half; corners and midline apart.
_R_UPPER_LIP, _L_UPPER_LIP = (37, 39, 40), (267, 269, 270)
_R_UPPER_INNER, _L_UPPER_INNER = (82, 81, 80, 191), (312, 311, 310, 415)
_R_LOWER_LIP, _L_LOWER_LIP = (84, 181, 91), (314, 405, 321)
_R_LOWER_INNER, _L_LOWER_INNER = (87, 178, 88, 95), (317, 402, 318, 324)
# Chin: the boss under the lower lip (midline, then both sides), and the jaw below it.
_CHIN_MID = (18, 200, 199, 175, 152)
_R_CHIN, _L_CHIN = (83, 201, 208, 171), (313, 421, 428, 396)
_R_JAW_LOW, _L_JAW_LOW = (148, 176, 140, 149, 150, 136, 172), (377, 400, 369, 378, 379, 365, 397)


def _mid(points: Iterable[int], dy: float, w: float = 1.0):
    """A vertical move of midline points (no side)."""
    return {i: (0.0, dy * w) for i in points}


def _per_point(right: Sequence[int], left: Sequence[int], dy: Sequence[float], dx: float = 0.0):
    """Points paired across the midline, each pair with its own vertical weight."""
    out = {}
    for r, l, y in zip(right, left, dy):
        out.update(_sym((r,), (l,), dx, y))
    return out


def _au_moves() -> dict[str, dict[int, tuple[float, float]]]:
    """Each AU's landmark moves, both sides (the face frame of `_sym`)."""
    au: dict[str, dict[int, tuple[float, float]]] = {}
    au["AU1"] = {**_sym(_R_INNER_BROW, _L_INNER_BROW, 0.0, -1.0), **_sym(_R_MID_BROW, _L_MID_BROW, 0.0, -0.5)}
    au["AU2"] = {**_sym(_R_OUTER_BROW, _L_OUTER_BROW, 0.0, -1.0), **_sym(_R_MID_BROW, _L_MID_BROW, 0.0, -0.6)}
    au["AU4"] = {**_sym(_R_INNER_BROW, _L_INNER_BROW, -0.6, 0.8), **_sym(_R_MID_BROW, _L_MID_BROW, -0.2, 0.5)}
    # AU5 and AU6 hold the opposite lid still (a zero move): without it the kernel would drag
    # the whole eye along, which reads as the eye moving, not opening or narrowing.
    au["AU5"] = {**_sym(_R_UPPER_LID, _L_UPPER_LID, 0.0, -0.6), **_sym(_R_LOWER_LID, _L_LOWER_LID, 0.0, 0.0)}
    au["AU6"] = {**_sym(_R_CHEEK, _L_CHEEK, 0.0, -0.7), **_sym(_R_LOWER_LID, _L_LOWER_LID, 0.0, -0.4),
                 **_sym(_R_UPPER_LID, _L_UPPER_LID, 0.0, 0.0)}
    au["AU7"] = {**_sym(_R_LOWER_LID, _L_LOWER_LID, 0.0, -0.6), **_sym(_R_UPPER_LID, _L_UPPER_LID, 0.0, 0.25)}
    # AU9 nose wrinkler: the nose wings and the skin beside the bridge go up, the upper lip a
    # little, and the brows' inner ends are drawn down (levator labii alaeque nasi, procerus).
    au["AU9"] = {
        **_sym(_R_NOSE_WING, _L_NOSE_WING, -0.15, -1.0), **_sym(_R_NOSE_SIDE, _L_NOSE_SIDE, 0.0, -0.8),
        **_sym(_R_NASOLABIAL, _L_NASOLABIAL, -0.1, -0.5), **_sym(_R_UPPER_LIP, _L_UPPER_LIP, 0.0, -0.35),
        **_mid((0,), -0.3), **_sym(_R_INNER_BROW, _L_INNER_BROW, -0.2, 0.35),
    }
    # AU10 upper lip raiser: the upper lip's outer parts rise most (an inverted U), the
    # nasolabial furrow deepens, the nose wings follow a little.
    au["AU10"] = {
        **_sym(_R_UPPER_LIP, _L_UPPER_LIP, 0.0, -1.0), **_sym(_R_UPPER_INNER, _L_UPPER_INNER, 0.0, -0.8),
        **_mid((0,), -0.8), **_mid((13,), -0.7), **_sym((185,), (409,), 0.0, -0.6),
        **_sym((61,), (291,), 0.0, -0.3), **_sym(_R_NASOLABIAL, _L_NASOLABIAL, 0.1, -0.5),
        **_sym(_R_NOSE_WING, _L_NOSE_WING, 0.0, -0.25),
    }
    au["AU12"] = {
        **_sym((61,), (291,), 0.55, -0.8),
        **_sym((78,), (308,), 0.55, -0.8, 0.7),
        **_sym((185, 146), (409, 375), 0.5, -0.8, 0.5),
        **_sym((40, 91), (270, 321), 0.5, -0.8, 0.3),
        **_sym((205, 207), (425, 427), 0.0, -1.0, 0.3),
    }
    # AU14 dimpler: the corners are tightened and drawn back (sideways in the image), the
    # lips beside them thin; no rise, unlike AU12.
    au["AU14"] = {
        **_sym((61,), (291,), 0.6, -0.1), **_sym((78,), (308,), 0.5, -0.05),
        **_sym((185,), (409,), 0.3, 0.15), **_sym((146,), (375,), 0.3, -0.15),
        **_sym(_R_MOUTH_SIDE, _L_MOUTH_SIDE, 0.4, 0.0),
    }
    # AU15 lip corner depressor: corners down and slightly out, the lips beside them follow.
    au["AU15"] = {
        **_sym((61,), (291,), 0.1, 1.0), **_sym((78,), (308,), 0.1, 0.8),
        **_sym((146,), (375,), 0.0, 0.7), **_sym((91,), (321,), 0.0, 0.4),
        **_sym((185,), (409,), 0.0, 0.5), **_sym((40,), (270,), 0.0, 0.25),
        **_sym(_R_MOUTH_SIDE, _L_MOUTH_SIDE, 0.05, 0.5),
    }
    # AU17 chin raiser: the chin boss pushes the lower lip up; the corners dip a little.
    au["AU17"] = {
        **{i: (0.0, y) for i, y in zip(_CHIN_MID, (-0.8, -1.0, -0.8, -0.5, -0.3))},
        **_per_point(_R_CHIN, _L_CHIN, (-0.7, -0.8, -0.6, -0.4)),
        **_mid((17,), -0.6), **_per_point(_R_LOWER_LIP, _L_LOWER_LIP, (-0.55, -0.45, -0.3)),
        **_mid((14,), -0.4), **_per_point(_R_LOWER_INNER[:2], _L_LOWER_INNER[:2], (-0.4, -0.35)),
        **_sym((61,), (291,), 0.0, 0.2),
    }
    # AU20 lip stretcher: corners pulled sideways and a little down, the lips flatten.
    au["AU20"] = {
        **_sym((61,), (291,), 0.8, 0.2), **_sym((78,), (308,), 0.8, 0.2),
        **_sym((146, 185), (375, 409), 0.5, 0.1), **_mid((17,), -0.15), **_mid((0,), 0.1),
    }
    # AU23 lip tightener: the red of the lips narrows and the mouth gets narrower.
    au["AU23"] = {
        **_sym((61,), (291,), -0.5, 0.0), **_sym((78,), (308,), -0.4, 0.0),
        **_sym(_R_UPPER_LIP, _L_UPPER_LIP, 0.0, 0.4), **_mid((0,), 0.4),
        **_sym(_R_LOWER_LIP, _L_LOWER_LIP, 0.0, -0.4), **_mid((17,), -0.4),
        **_sym((185, 146), (409, 375), -0.3, 0.0),
    }
    # AU24 lip pressor: the lips pressed together, mostly vertical.
    au["AU24"] = {
        **_sym(_R_UPPER_LIP, _L_UPPER_LIP, 0.0, 0.6), **_mid((0,), 0.6),
        **_sym(_R_LOWER_LIP, _L_LOWER_LIP, 0.0, -0.7), **_mid((17,), -0.7),
        **_mid((18, 200), -0.2), **_sym((61,), (291,), -0.2, 0.0),
    }
    # AU26 jaw drop: the lower lip and the chin go down with the jaw; the upper lip stays.
    au["AU26"] = {
        **_mid((17, 14), 1.0), **_per_point(_R_LOWER_LIP, _L_LOWER_LIP, (0.95, 0.85, 0.7)),
        **_per_point(_R_LOWER_INNER, _L_LOWER_INNER, (0.95, 0.85, 0.7, 0.5)), **_sym((146,), (375,), 0.0, 0.5),
        **_mid(_CHIN_MID, 1.0), **_per_point(_R_CHIN, _L_CHIN, (0.9, 0.9, 0.9, 0.85)),
        **_per_point(_R_JAW_LOW, _L_JAW_LOW, (0.9, 0.9, 0.8, 0.75, 0.6, 0.4, 0.2)),
        **_sym((61,), (291,), 0.0, 0.35),
    }
    return au


def _one_side(moves: dict[int, tuple[float, float]], half: set[int]) -> dict[int, tuple[float, float]]:
    return {i: v for i, v in moves.items() if i in half}


AU_MOVES = _au_moves()
# Unilateral variants, FACS style: "R14" is AU14 on the subject's right side only.
for _name in list(AU_MOVES):
    AU_MOVES["R" + _name[2:]] = _one_side(AU_MOVES[_name], RIGHT_HALF)
    AU_MOVES["L" + _name[2:]] = _one_side(AU_MOVES[_name], LEFT_HALF)
# The first generator's AU5 and AU6 (without the opposite lid held), so that
# `style="classic"` renders exactly what it did before issue 12.
CLASSIC_AU_MOVES = {
    **AU_MOVES,
    "AU5": _sym(_R_UPPER_LID, _L_UPPER_LID, 0.0, -0.6),
    "AU6": {**_sym(_R_CHEEK, _L_CHEEK, 0.0, -0.7), **_sym(_R_LOWER_LID, _L_LOWER_LID, 0.0, -0.4)},
}
# The generator's first class patterns (one per class), kept for `style="classic"` outputs
# (the long videos the spotter was tuned and tested on): AU5 joins surprise in about half.
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


# --- class patterns as the datasets annotate them -------------------------------------
# CASME II / SAMM / CAS(ME)^3 code their clips with these AU combinations (EMFACS-style);
# MEGC 2019's composite classes pool them: negative = sadness, contempt, disgust,
# repression, anger; positive = happiness; surprise. Each draw picks one pattern of the
# class and its optional units, so a class is several different movements, as in the data.
NEGATIVE_PATTERNS = ("sadness", "contempt", "disgust", "repression", "anger")
NEGATIVE_P = (0.2, 0.15, 0.25, 0.2, 0.2)


@dataclass(frozen=True)
class Pattern:
    """One drawn expression: the EMFACS emotion it stands for and its (AU, weight) list
    (weights relative; the combined field is normalised to a largest move of 1 IOD)."""

    emotion: str
    aus: tuple[tuple[str, float], ...]


def draw_pattern(cls: str, rng: np.random.Generator) -> Pattern:
    """A pattern of composite class `cls` (negative | positive | surprise), drawn by `rng`."""
    if cls == "positive":  # happiness 6+12, the cheek raiser's share varying
        return Pattern("happiness", (("AU12", 1.0), ("AU6", round(float(rng.uniform(0.3, 0.8)), 1))))
    if cls == "surprise":  # 1+2, with 5 and 26 often
        aus = [("AU1", 1.0), ("AU2", 1.0)]
        if rng.random() < 0.5:
            aus.append(("AU5", 0.5))
        if rng.random() < 0.4:
            aus.append(("AU26", 0.6))
        return Pattern("surprise", tuple(aus))
    if cls != "negative":
        raise ValueError(f"unknown class {cls!r}; classes are {CLASSES}")
    emotion = str(rng.choice(NEGATIVE_PATTERNS, p=NEGATIVE_P))
    if emotion == "sadness":  # 1+4+15
        aus = [("AU1", 0.6), ("AU4", 1.0), ("AU15", 0.8)]
    elif emotion == "contempt":  # 14, usually on one side
        aus = [(str(rng.choice(["R14", "L14"])) if rng.random() < 0.8 else "AU14", 1.0)]
    elif emotion == "disgust":  # 9 or 10, maybe with 15 or 17
        aus = [(str(rng.choice(["AU9", "AU10"])), 1.0)]
        if rng.random() < 0.5:
            aus.append((str(rng.choice(["AU15", "AU17"])), 0.5))
    elif emotion == "repression":  # 15 or 17 (CASME II's repression), sometimes both
        first = str(rng.choice(["AU15", "AU17"]))
        aus = [(first, 1.0)]
        if rng.random() < 0.3:
            aus.append(("AU17" if first == "AU15" else "AU15", 0.5))
    else:  # anger 4+7+23 (or 24)
        aus = [("AU4", 1.0), ("AU7", 0.5), (str(rng.choice(["AU23", "AU24"])), 0.6)]
    return Pattern(emotion, tuple(aus))


def field_key(aus: Sequence[tuple[str, float]]) -> str:
    """A cache key that tells two patterns with the same units but other weights apart."""
    return "+".join(f"{a}:{w:g}" for a, w in aus)
