"""Synthetic micro-expressions on real face photos — for tests and demos only.

A real photo (by default scikit-image's public-domain astronaut) is turned into several
"subjects" by per-subject face-shape, colour, pose and mirror variation. Expressions are
FACS-like, localized warps driven by the face-mesh landmarks: each action unit (AU) moves a
few landmarks along the face's own axes, a Gaussian-kernel regression spreads those moves
into a dense displacement field (zero far from the moving landmarks and at anchor points
such as the eye corners and the nose), and `cv2.remap` applies the field scaled by an
onset -> apex -> offset profile. Small rigid head sway, illumination drift and sensor noise
are added per frame.

Outputs (see `write_dataset`):
- the CASME II layout (`CASME2_RAW_selected/subXX/EPxx_yy/img{N}.jpg` + a coding sheet with
  the real columns), so that the real CASME II reader is what tests exercise;
- macro-expression clips (larger, longer) as frame folders + `labels.csv` for the macro reader;
- long 30 fps videos with ground-truth intervals (micro, macro, head turns) for spotting,
  also callable as `make_long_video`.

Numbers measured on this data say nothing about real micro-expressions.
"""

from __future__ import annotations

import csv
import json
import math
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Iterable, Sequence

import cv2
import numpy as np

from moext.face import FaceDetection, FaceMesh, eye_centres, inter_ocular_distance

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


@dataclass
class Identity:
    """One synthetic subject at rest, precomputed once and rendered many times.

    Attributes:
        face: (H, W, 3) uint8 BGR frame of the subject (its photo background around it).
        alpha: (H, W) float32 in [0, 1] where the face layer covers a scene background, or
            None when the face layer is the whole frame.
        landmarks: (478, 2) float32 face-mesh landmarks of `face` (detected once).
        iod: inter-ocular distance in pixels.
    """

    name: str
    face: np.ndarray
    alpha: np.ndarray | None
    landmarks: np.ndarray
    iod: float
    fields: dict[str, np.ndarray] = field(default_factory=dict, repr=False)

    @property
    def size(self) -> tuple[int, int]:
        return self.face.shape[1], self.face.shape[0]

    def face_axes(self) -> tuple[np.ndarray, np.ndarray]:
        r, l = eye_centres(self.landmarks)
        ex = (l - r) / np.linalg.norm(l - r)
        return ex, np.array([-ex[1], ex[0]])

    def field_for(self, key: str, aus: Sequence[tuple[str, float]]) -> np.ndarray:
        """(H, W, 2) float32 displacement field whose largest landmark move is 1 IOD (px)."""
        if key not in self.fields:
            ex, ey = self.face_axes()
            moves: dict[int, np.ndarray] = {}
            for au, w in aus:
                for i, (dx, dy) in AU_MOVES[au].items():
                    moves[i] = moves.get(i, 0.0) + w * (dx * ex + dy * ey)
            self.fields[key] = landmark_field(
                self.landmarks, moves, self.face.shape[:2], EXPRESSION_SIGMA_IOD * self.iod, ANCHORS
            ) * self.iod
        return self.fields[key]


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


# --- temporal profiles ---------------------------------------------------------------

def event_profile(n: int, onset: int, apex: int, offset: int, hold: int = 0, release: float = 0.0) -> np.ndarray:
    """(n,) amplitude in [0, 1]: raised-cosine rise onset->apex, optional hold, fall to offset.

    `release` is the fraction still present at the offset (macro expressions often fade
    slowly); 0 means back to neutral.
    """
    t = np.arange(n, dtype=np.float64)
    a = np.zeros(n)
    rise = (t >= onset) & (t <= apex)
    a[rise] = 0.5 - 0.5 * np.cos(np.pi * (t[rise] - onset) / max(apex - onset, 1))
    top = apex + hold
    a[(t > apex) & (t <= top)] = 1.0
    fall = (t > top) & (t <= offset)
    a[fall] = release + (1 - release) * (0.5 + 0.5 * np.cos(np.pi * (t[fall] - top) / max(offset - top, 1)))
    return a


def _sway(n: int, rng: np.random.Generator, rot_deg: float, shift_px: float, period: float) -> np.ndarray:
    """(n, 3) small smooth rigid motion per frame: rotation (deg), dx, dy (px)."""
    t = np.arange(n, dtype=np.float64)
    out = np.zeros((n, 3))
    for k, amp in enumerate((rot_deg, shift_px, shift_px)):
        ph, f = rng.uniform(0, 2 * np.pi), rng.uniform(0.6, 1.4) / period
        out[:, k] = rng.uniform(0.3, 1.0) * amp * np.sin(2 * np.pi * f * t + ph)
    return out


# --- rendering -----------------------------------------------------------------------

class Renderer:
    """Renders frames of one identity: expression field x amplitude, rigid pose, light, noise.

    Per-frame work is limited to the head's bounding box when the face is composited over
    a static background, and sensor noise comes from a bank drawn once (with random flips
    per frame): generating fresh Gaussian noise dominated the frame time.
    """

    NOISE_BANK = 12

    def __init__(self, ident: Identity, background: np.ndarray | None = None, seed: int = 0) -> None:
        self.ident = ident
        w, h = ident.size
        self.background = background
        gy, gx = np.mgrid[0:h, 0:w].astype(np.float32)
        self.gx, self.gy = gx, gy
        self.xnorm = ((gx[:1] - w / 2) / w)[..., None]  # (1, W, 1) for a left-right light slope
        self.pivot = ident.landmarks[[1, 168]].mean(0)  # rotate the head about the nose
        if ident.alpha is not None and background is not None:
            ys, xs = np.nonzero(ident.alpha > 1e-3)
            self.layer_box = np.array([[xs.min(), ys.min()], [xs.max() + 1, ys.min()],
                                       [xs.min(), ys.max() + 1], [xs.max() + 1, ys.max() + 1]], np.float64)
        else:
            self.layer_box = None
        nrng = np.random.default_rng([seed, 99])
        self.noise = nrng.standard_normal((self.NOISE_BANK, h, w, 3), dtype=np.float32)

    def rigid(self, rot_deg: float, dx: float, dy: float, scale: float = 1.0) -> np.ndarray:
        m = cv2.getRotationMatrix2D((float(self.pivot[0]), float(self.pivot[1])), rot_deg, scale)
        m[:, 2] += (dx, dy)
        return m

    def _roi(self, rigid: np.ndarray | None) -> tuple[int, int, int, int]:
        w, h = self.ident.size
        if self.layer_box is None:
            return 0, 0, w, h
        box = self.layer_box if rigid is None else self.layer_box @ rigid[:, :2].T + rigid[:, 2]
        x0, y0 = np.floor(box.min(0)).astype(int) - 2
        x1, y1 = np.ceil(box.max(0)).astype(int) + 2
        return max(x0, 0), max(y0, 0), min(x1, w), min(y1, h)

    def frame(
        self,
        field: np.ndarray | None,
        amp_px_per_iod: float,
        rigid: np.ndarray | None,
        gain: float,
        gradient: float,
        noise_sigma: float,
        rng: np.random.Generator,
    ) -> np.ndarray:
        """One HWC uint8 BGR frame.

        Args:
            field: unit expression field (H, W, 2) (largest landmark move = 1 IOD), or None.
            amp_px_per_iod: expression amplitude as a fraction of the IOD.
            rigid: (2, 3) forward head motion in frame pixels, or None for none.
            gain, gradient: global brightness gain and left-right brightness slope.
        """
        ident = self.ident
        x0, y0, x1, y1 = self._roi(rigid)
        gx, gy = self.gx[y0:y1, x0:x1], self.gy[y0:y1, x0:x1]
        if rigid is None:
            qx, qy = gx, gy
        else:  # backward map: output pixel p shows the resting face at A^-1 p
            # float32 like the grids: OpenCV 5's remap takes float32 maps only, and numpy 2
            # would promote float32 grids times float64 scalars to float64.
            inv = cv2.invertAffineTransform(rigid).astype(np.float32)
            qx = inv[0, 0] * gx + inv[0, 1] * gy + inv[0, 2]
            qy = inv[1, 0] * gx + inv[1, 1] * gy + inv[1, 2]
        if field is not None and amp_px_per_iod != 0.0:
            if rigid is None:
                d = field[y0:y1, x0:x1]
            else:
                d = cv2.remap(field, qx, qy, cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT)
            # Content moves by +a*D: output p samples the resting face at p - a*D(p).
            mx, my = qx - amp_px_per_iod * d[..., 0], qy - amp_px_per_iod * d[..., 1]
        else:
            mx, my = qx, qy
        layer = cv2.remap(ident.face, mx, my, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT)
        if self.layer_box is not None:
            alpha = cv2.remap(ident.alpha, qx, qy, cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT)
            img = self.background.copy()
            img[y0:y1, x0:x1] = cv2.blendLinear(layer, self.background[y0:y1, x0:x1], alpha, 1.0 - alpha)
        else:
            img = layer
        out = img.astype(np.float32)
        out *= gain * (1.0 + gradient * self.xnorm)
        if noise_sigma > 0:
            k = int(rng.integers(self.NOISE_BANK * 4))
            noise = self.noise[k % self.NOISE_BANK]
            noise = noise[::-1] if k // self.NOISE_BANK % 2 else noise
            noise = noise[:, ::-1] if k // self.NOISE_BANK >= 2 else noise
            out += noise_sigma * noise
        out += 0.5  # round, not truncate
        np.clip(out, 0, 255, out=out)
        return out.astype(np.uint8)


# --- identities ----------------------------------------------------------------------

def default_faces() -> list[tuple[str, np.ndarray]]:
    """scikit-image's astronaut photo (public domain, ships with the dependency), as BGR."""
    from skimage import data

    return [("astronaut", np.ascontiguousarray(data.astronaut()[:, :, ::-1]))]


IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp"}


def load_faces(faces_dir: str | Path | None) -> list[tuple[str, np.ndarray]]:
    """Photos from a folder (sorted by name), or the default photo when `faces_dir` is None."""
    if faces_dir is None:
        return default_faces()
    d = Path(faces_dir)
    if not d.is_dir():
        raise SynthError(f"--faces {d}: not a folder; give a folder of face photos (jpg/png).")
    out = []
    for p in sorted(d.iterdir()):
        if p.suffix.lower() in IMAGE_SUFFIXES:
            img = cv2.imread(str(p), cv2.IMREAD_COLOR)
            if img is not None:
                out.append((p.stem, img))
    if not out:
        raise SynthError(f"--faces {d}: no readable images ({', '.join(sorted(IMAGE_SUFFIXES))}).")
    return out


class SynthError(RuntimeError):
    """A user error in synthesis (bad faces folder, no face found); the message says the fix."""


@dataclass
class _Photo:
    name: str
    image: np.ndarray
    landmarks: np.ndarray


def detect_photos(photos: list[tuple[str, np.ndarray]], mesh: FaceMesh) -> list[_Photo]:
    found, missing = [], []
    for name, img in photos:
        det = mesh.detect(img)
        if isinstance(det, FaceDetection):
            found.append(_Photo(name, img, det.landmarks))
        else:
            missing.append(name)
    if not found:
        raise SynthError(f"no face found in any photo ({', '.join(missing)}); use frontal, well-lit face photos.")
    return found


_SHAPE_GROUPS = {
    # group -> (landmarks, direction in the face frame; sign +x = away from the midline)
    "eyes_apart": ((33, 133, 159, 145, 160, 144, 468), (362, 263, 386, 374, 387, 373, 473), (1.0, 0.0)),
    "jaw_wide": ((234, 93, 132, 58, 172, 136, 150), (454, 323, 361, 288, 397, 365, 379), (1.0, 0.0)),
    "chin_long": ((152, 175, 148, 377, 199), (), (0.0, 1.0)),
    "mouth_wide": ((61, 78, 146, 91), (291, 308, 375, 321), (1.0, 0.0)),
    "mouth_low": ((0, 13, 14, 17, 61, 291, 78, 308), (), (0.0, 1.0)),
    "nose_long": ((1, 4, 5, 2, 98, 327), (), (0.0, 1.0)),
    "brows_high": (_R_INNER_BROW + _R_MID_BROW + _R_OUTER_BROW, _L_INNER_BROW + _L_MID_BROW + _L_OUTER_BROW, (0.0, -1.0)),
}


def make_identity(
    photo: _Photo,
    rng: np.random.Generator,
    mesh: FaceMesh,
    width: int,
    height: int,
    iod_frac: float,
    name: str,
    composite: bool = False,
    vary: bool = True,
) -> Identity:
    """A subject: the photo reshaped, recoloured and posed in a `width` x `height` frame.

    Args:
        iod_frac: target inter-ocular distance as a fraction of `width`.
        composite: cut the head out with a soft elliptic mask (alpha) so a scene background
            can be put behind it (long videos); otherwise the photo's own surroundings fill
            the frame (dataset clips, like the plain backdrop of CASME II).
        vary: False keeps the photo's face (first subject of a sweep, tests).
    """
    for _attempt in range(6):
        img, lm = photo.image, photo.landmarks
        if vary and rng.random() < 0.5:  # mirror: the mesh is re-detected below, so safe
            img = np.ascontiguousarray(img[:, ::-1])
            lm = lm.copy()
            lm[:, 0] = img.shape[1] - 1 - lm[:, 0]
        # Place the eyes: similarity from the photo to the frame.
        r, l = eye_centres(lm)
        if r[0] > l[0]:
            r, l = l, r
        iod = iod_frac * width * (rng.uniform(0.92, 1.08) if vary else 1.0)
        roll = math.radians(rng.uniform(-5, 5) if vary else 0.0)
        centre = np.array([width / 2, height * 0.42])
        if vary:
            centre += rng.normal(0, 0.02, 2) * (width, height)
        src = np.stack([r, l])
        half = np.array([math.cos(roll), math.sin(roll)]) * iod / 2
        dst = np.stack([centre - half, centre + half])
        m = _two_point_similarity(src, dst)
        face = cv2.warpAffine(img, m, (width, height), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT)
        lm_f = (lm @ m[:, :2].T + m[:, 2]).astype(np.float32)
        alpha = _head_mask(lm_f, (height, width)) if composite else None
        if vary:
            face = _reshape_face(face, lm_f, rng)
            face = _recolour(face, rng)
        det = mesh.detect(face if alpha is None else _over_grey(face, alpha))
        if isinstance(det, FaceDetection):
            return Identity(name=name, face=face, alpha=alpha, landmarks=det.landmarks,
                            iod=inter_ocular_distance(det.landmarks))
    raise SynthError(f"face mesh lost the face of photo {photo.name!r} after variation; try another photo.")


def _two_point_similarity(src: np.ndarray, dst: np.ndarray) -> np.ndarray:
    vs, vd = src[1] - src[0], dst[1] - dst[0]
    s = np.linalg.norm(vd) / np.linalg.norm(vs)
    a = math.atan2(vd[1], vd[0]) - math.atan2(vs[1], vs[0])
    rot = s * np.array([[math.cos(a), -math.sin(a)], [math.sin(a), math.cos(a)]])
    return np.hstack([rot, (dst[0] - rot @ src[0])[:, None]])


def _head_mask(lm: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """Soft ellipse over face, hair and a bit of neck, from the landmarks' extent."""
    x0, y0 = lm.min(0)
    x1, y1 = lm.max(0)
    cx, cy = (x0 + x1) / 2, (y0 + y1) / 2 - 0.12 * (y1 - y0)
    ax, ay = 0.78 * (x1 - x0), 0.78 * (y1 - y0)
    mask = np.zeros(shape, np.float32)
    cv2.ellipse(mask, (int(cx), int(cy)), (int(ax), int(ay)), 0, 0, 360, 1.0, -1)
    k = int(0.15 * (x1 - x0)) | 1
    return cv2.GaussianBlur(mask, (k, k), 0)


def _over_grey(face: np.ndarray, alpha: np.ndarray) -> np.ndarray:
    return (alpha[..., None] * face + (1 - alpha[..., None]) * 128).astype(np.uint8)


def _reshape_face(face: np.ndarray, lm: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Per-subject face shape: eye spacing, jaw width, chin, mouth, nose, brows (±~6 % IOD)."""
    iod = inter_ocular_distance(lm)
    r, l = eye_centres(lm)
    ex = (l - r) / np.linalg.norm(l - r)
    ey = np.array([-ex[1], ex[0]])
    moves: dict[int, np.ndarray] = {}
    for right, left, (dx, dy) in _SHAPE_GROUPS.values():
        k = rng.normal(0, 0.045)
        for side, sgn in ((right, -1.0), (left, 1.0)):
            for i in side:
                moves[i] = moves.get(i, 0.0) + k * iod * (sgn * dx * ex + dy * ey)
    peak = max(np.linalg.norm(v) for v in moves.values())
    unit = landmark_field(lm, moves, face.shape[:2], SHAPE_SIGMA_IOD * iod)
    d = unit * np.float32(peak)  # float32: OpenCV 5's remap refuses float64 maps
    h, w = face.shape[:2]
    gy, gx = np.mgrid[0:h, 0:w].astype(np.float32)
    return cv2.remap(face, gx - d[..., 0], gy - d[..., 1], cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT)


def _recolour(face: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Skin tone and exposure: Lab shifts, a lightness gain and a gamma."""
    lab = cv2.cvtColor(face, cv2.COLOR_BGR2LAB).astype(np.float32)
    lab[..., 0] = lab[..., 0] * rng.uniform(0.85, 1.1)
    lab[..., 1] += rng.uniform(-7, 7)
    lab[..., 2] += rng.uniform(-10, 10)
    out = cv2.cvtColor(np.clip(lab, 0, 255).astype(np.uint8), cv2.COLOR_LAB2BGR)
    gamma = rng.uniform(0.85, 1.15)
    lut = np.clip(255 * (np.arange(256) / 255.0) ** gamma, 0, 255).astype(np.uint8)
    return cv2.LUT(out, lut)


def make_background(width: int, height: int, rng: np.random.Generator) -> np.ndarray:
    """A plausible indoor scene: smooth coloured shading plus a few flat panels."""
    low = (rng.uniform(70, 190, (4, 6, 1)) + rng.uniform(-25, 25, (4, 6, 3))).astype(np.float32)
    bg = cv2.resize(low, (width, height), interpolation=cv2.INTER_CUBIC)
    for _ in range(int(rng.integers(2, 5))):
        x0, y0 = int(rng.integers(0, width)), int(rng.integers(0, height))
        x1, y1 = x0 + int(rng.integers(width // 10, width // 3)), y0 + int(rng.integers(height // 10, height // 2))
        cv2.rectangle(bg, (x0, y0), (x1, y1), tuple(float(v) for v in rng.uniform(40, 220, 3)), -1)
    return np.clip(cv2.GaussianBlur(bg, (5, 5), 0), 0, 255).astype(np.uint8)


# --- clips ---------------------------------------------------------------------------

@dataclass
class ClipTruth:
    """What was rendered into one clip (frame indices are 0-based positions in the clip)."""

    subject: str
    sample: str
    kind: str  # micro | macro
    cls: str
    aus: str
    peak_iod: float
    num_frames: int
    onset: int
    apex: int
    offset: int
    iod_px: float


def class_aus(cls: str, rng: np.random.Generator) -> tuple[tuple[str, float], ...]:
    aus = CLASS_AUS[cls]
    if cls == "surprise" and rng.random() < 0.5:
        aus = aus + (SURPRISE_AU5,)
    return aus


def au_code(aus: Sequence[tuple[str, float]]) -> str:
    """FACS code as the coding sheets write it, e.g. "6+12"."""
    return "+".join(sorted((a[0][2:] for a in aus), key=int))


def render_clip(
    renderer: Renderer,
    aus: Sequence[tuple[str, float]],
    amps: np.ndarray,
    rng: np.random.Generator,
    sway_deg: float = 0.15,
    sway_px: float = 0.3,
) -> list[np.ndarray]:
    """Frames with expression amplitude `amps[t]` (fraction of IOD), sway, light drift, noise."""
    n = len(amps)
    key = "+".join(a for a, _ in aus)
    fld = renderer.ident.field_for(key, aus)
    sway = _sway(n, rng, sway_deg, sway_px, period=max(n, 20))
    g0, g1 = rng.uniform(0.95, 1.05), rng.uniform(-0.03, 0.03)  # exposure and its drift
    grad = rng.uniform(-0.08, 0.08)
    noise = rng.uniform(1.0, 2.5)
    frames = []
    for t in range(n):
        rig = renderer.rigid(*sway[t])
        gain = g0 + g1 * t / max(n - 1, 1)
        frames.append(renderer.frame(fld, float(amps[t]), rig, gain, grad, noise, rng))
    return frames


# --- writers -------------------------------------------------------------------------

def _imwrite_atomic(path: Path, img: np.ndarray, params: Sequence[int] = ()) -> None:
    ok, buf = cv2.imencode(path.suffix, img, list(params))
    if not ok:
        raise SynthError(f"could not encode {path}")
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_bytes(buf.tobytes())
    os.replace(tmp, path)


def _write_json_atomic(path: Path, obj: object) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(obj, indent=1))
    os.replace(tmp, path)


CASME2_COLUMNS = ("Subject", "Filename", "OnsetFrame", "ApexFrame", "OffsetFrame", "Action Units", "Estimated Emotion")
SHEET_NAME = "CASME2-coding-synthetic.xlsx"


def write_casme2_sheet(path: Path, rows: Sequence[dict]) -> None:
    from openpyxl import Workbook

    wb = Workbook()
    ws = wb.active
    ws.title = "Sheet1"
    ws.append(list(CASME2_COLUMNS))
    for r in rows:
        ws.append([r[c] for c in CASME2_COLUMNS])
    tmp = path.with_name(f".{path.name}.tmp")
    wb.save(tmp)
    os.replace(tmp, path)


@dataclass
class SynthConfig:
    """Options of `moext-train synth` (see its --help)."""

    out: Path
    faces: Path | None = None
    subjects: int = 4
    per_class: int = 2
    frames: int = 30
    width: int = 320
    height: int = 240
    iod_frac: float = 0.2
    micro_peak: tuple[float, float] = (0.02, 0.04)
    macro_per_class: int = 1
    macro_frames: int = 40
    macro_peak: tuple[float, float] = (0.06, 0.12)
    long_videos: int = 1
    long_seconds: float = 20.0
    seed: int = 0


def write_dataset(cfg: SynthConfig, progress: bool = True) -> dict:
    """Render everything `cfg` asks for under `cfg.out`; returns the truth written to
    `cfg.out/synth_truth.json`. Deterministic for `cfg.seed`."""
    from tqdm import tqdm

    out = Path(cfg.out)
    out.mkdir(parents=True, exist_ok=True)
    photos_raw = load_faces(cfg.faces)
    with FaceMesh(video_mode=False, max_faces=1) as mesh:
        photos = detect_photos(photos_raw, mesh)
        idents = []
        for s in range(cfg.subjects):
            rng = np.random.default_rng([cfg.seed, 1, s])
            idents.append(make_identity(photos[s % len(photos)], rng, mesh, cfg.width, cfg.height,
                                        cfg.iod_frac, f"sub{s + 1:02d}", vary=True))

    truth: dict = {"seed": cfg.seed, "note": "synthetic data for tests and demos only",
                   "config": {k: (str(v) if isinstance(v, Path) else v) for k, v in asdict(cfg).items()},
                   "micro": [], "macro": [], "long": []}
    n_micro = cfg.subjects * len(CLASSES) * cfg.per_class
    n_macro = cfg.subjects * len(CLASSES) * cfg.macro_per_class
    bar = tqdm(total=n_micro + n_macro + cfg.long_videos, desc="synth", unit="clip", disable=not progress)

    # Micro clips in the CASME II layout: the folder holds onset..offset, numbered from the
    # onset's frame number in the (imaginary) source video, as CASME2_RAW_selected does.
    rows = []
    for s, ident in enumerate(idents):
        renderer = Renderer(ident, seed=cfg.seed * 1000 + s)
        ep = 1
        for cls in CLASSES:
            for k in range(cfg.per_class):
                rng = np.random.default_rng([cfg.seed, 2, s, CLASSES.index(cls), k])
                n = max(cfg.frames, 5)
                apex = int(round(rng.uniform(0.3, 0.5) * (n - 1)))
                apex = min(max(apex, 1), n - 2)
                peak = float(rng.uniform(*cfg.micro_peak))
                amps = peak * event_profile(n, 0, apex, n - 1)
                aus = class_aus(cls, rng)
                sample = f"EP{ep:02d}_{k + 1:02d}" + ("f" if rng.random() < 0.3 else "")
                ep += 1
                first = int(rng.integers(1, 300))
                folder = out / "CASME2_RAW_selected" / ident.name / sample
                folder.mkdir(parents=True, exist_ok=True)
                for t, img in enumerate(render_clip(renderer, aus, amps, rng)):
                    _imwrite_atomic(folder / f"img{first + t}.jpg", img, (cv2.IMWRITE_JPEG_QUALITY, 95))
                rows.append({"Subject": s + 1, "Filename": sample, "OnsetFrame": first,
                             "ApexFrame": first + apex, "OffsetFrame": first + n - 1,
                             "Action Units": au_code(aus), "Estimated Emotion": CASME2_EMOTION[cls]})
                truth["micro"].append(asdict(ClipTruth(ident.name, sample, "micro", cls, au_code(aus), peak,
                                                       n, 0, apex, n - 1, ident.iod))
                                      | {"first_frame_number": first, "emotion": CASME2_EMOTION[cls]})
                bar.update()
    write_casme2_sheet(out / SHEET_NAME, rows)

    # Macro clips: larger and longer, neutral first frame = onset, then rise, hold, slow fade.
    macro_rows = []
    for s, ident in enumerate(idents):
        renderer = Renderer(ident, seed=cfg.seed * 1000 + s + 500)
        for cls in CLASSES:
            for k in range(cfg.macro_per_class):
                rng = np.random.default_rng([cfg.seed, 3, s, CLASSES.index(cls), k])
                n = max(cfg.macro_frames, 12)
                apex = int(round(rng.uniform(0.3, 0.45) * (n - 1)))
                hold = int(0.2 * n)
                peak = float(rng.uniform(*cfg.macro_peak))
                amps = peak * event_profile(n, 0, apex, n - 1, hold=hold, release=0.3)
                aus = class_aus(cls, rng)
                sample = f"{cls}_{k + 1:02d}"
                folder = out / "macro" / ident.name / sample
                folder.mkdir(parents=True, exist_ok=True)
                for t, img in enumerate(render_clip(renderer, aus, amps, rng)):
                    _imwrite_atomic(folder / f"img{t + 1}.jpg", img, (cv2.IMWRITE_JPEG_QUALITY, 95))
                # Frame numbers in labels.csv are the numbers in the file names (1-based).
                macro_rows.append({"subject": ident.name, "sample": sample, "emotion": CASME2_EMOTION[cls],
                                   "onset": 1, "apex": apex + 1, "offset": n})
                truth["macro"].append(asdict(ClipTruth(ident.name, sample, "macro", cls, au_code(aus), peak,
                                                       n, 0, apex, n - 1, ident.iod)))
                bar.update()
    if macro_rows:
        tmp = out / "macro" / ".labels.csv.tmp"
        with open(tmp, "w", newline="") as fh:
            wr = csv.DictWriter(fh, fieldnames=list(macro_rows[0]))
            wr.writeheader()
            wr.writerows(macro_rows)
        os.replace(tmp, out / "macro" / "labels.csv")

    # Long videos for spotting.
    if cfg.long_videos:
        (out / "long").mkdir(exist_ok=True)
    for v in range(cfg.long_videos):
        gt = make_long_video(out / "long" / f"long_{v + 1:02d}.mp4", seconds=cfg.long_seconds,
                             seed=cfg.seed * 1000 + v, faces=photos_raw[v % len(photos_raw):][:1], progress=False)
        truth["long"].append({"video": f"long/long_{v + 1:02d}.mp4", "truth": f"long/long_{v + 1:02d}.json",
                              "events": len(gt["events"])})
        bar.update()
    bar.close()
    _write_json_atomic(out / "synth_truth.json", truth)
    return truth


# --- long videos for spotting --------------------------------------------------------

LONG_KINDS = ("micro", "macro", "head_turn")


def plan_events(num_frames: int, fps: float, rng: np.random.Generator) -> list[dict]:
    """Non-overlapping events with quiet gaps (≥ 1.2 s) so that a spotter has neutral onsets.

    micro: 6-15 frames at 30 fps (0.2-0.5 s), warp peak 2-4 % IOD, localized AUs.
    macro: 1-2 s, warp peak 6-12 % IOD. head_turn: 0.7-1.5 s rigid roll/shift, no expression.
    """
    events: list[dict] = []
    t = int(rng.uniform(1.5, 2.5) * fps)
    kinds: list[str] = []
    while True:
        if not kinds:  # each round of four holds every kind, micro twice
            kinds = list(rng.permutation(["micro", "micro", "macro", "head_turn"]))
        kind = kinds.pop()
        if kind == "micro":
            dur = int(rng.integers(round(0.2 * fps), round(0.5 * fps) + 1))
        elif kind == "macro":
            dur = int(rng.integers(round(1.0 * fps), round(2.0 * fps) + 1))
        else:
            dur = int(rng.integers(round(0.7 * fps), round(1.5 * fps) + 1))
        dur = max(dur, 4)
        if t + dur >= num_frames - int(0.5 * fps):
            break
        apex = t + max(1, int(round(rng.uniform(0.35, 0.5) * dur)))
        ev = {"kind": kind, "onset_frame": t, "apex_frame": apex, "offset_frame": t + dur}
        if kind == "micro":
            ev["class"] = str(rng.choice(CLASSES))
            # Face mesh follows ~40-60 % of a warp this small (measured), so 2-4 % warp shows
            # up as ~1-2 % IOD of landmark motion, the range of real brief expressions.
            ev["peak_iod"] = float(rng.uniform(0.02, 0.04))
        elif kind == "macro":
            ev["class"] = str(rng.choice(CLASSES))
            ev["peak_iod"] = float(rng.uniform(0.06, 0.12))
        else:
            ev["class"] = None
            ev["rotation_deg"] = float(rng.uniform(4, 9) * rng.choice([-1, 1]))
            ev["shift_iod"] = [float(v) for v in rng.uniform(-0.25, 0.25, 2)]
        events.append(ev)
        t = t + dur + int(rng.uniform(1.2, 2.5) * fps)
    return events


def make_long_video(
    path: str | Path,
    *,
    seconds: float = 20.0,
    fps: float = 30.0,
    size: tuple[int, int] = (640, 360),
    seed: int = 0,
    faces: list[tuple[str, np.ndarray]] | None = None,
    iod_frac: float = 0.11,
    progress: bool = False,
) -> dict:
    """Write a long video of one synthetic subject with micro, macro and head-turn events.

    Args:
        path: output `.mp4` (mp4v); the ground truth goes to the same stem `.json`.
        seconds, fps, size: length, frame rate and (width, height).
        seed: everything (subject, schedule, noise) is deterministic for it.
        faces: [(name, BGR photo)]; the first is used. Default: the astronaut photo.
        iod_frac: inter-ocular distance as a fraction of the width (0.11 -> ~70 px at 640).

    Returns:
        The ground truth dict that was written (see README: "Long videos").
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    width, height = size
    rng = np.random.default_rng([seed, 4])
    photos_raw = faces or default_faces()
    with FaceMesh(video_mode=False, max_faces=1) as mesh:
        photo = detect_photos(photos_raw[:1], mesh)[0]
        ident = make_identity(photo, rng, mesh, width, height, iod_frac, "subject", composite=True)
    renderer = Renderer(ident, make_background(width, height, rng), seed=seed)
    n = int(round(seconds * fps))
    events = plan_events(n, fps, rng)

    amp = np.zeros(n)
    cls_at: list[str | None] = [None] * n
    aus_for: dict[int, tuple] = {}
    rigid = np.zeros((n, 3))  # rot deg, dx px, dy px of the event head turns
    for k, ev in enumerate(events):
        on, ap, off = ev["onset_frame"], ev["apex_frame"], ev["offset_frame"]
        if ev["kind"] == "head_turn":
            prof = event_profile(n, on, ap, off)
            rigid[:, 0] += prof * ev["rotation_deg"]
            rigid[:, 1] += prof * ev["shift_iod"][0] * ident.iod
            rigid[:, 2] += prof * ev["shift_iod"][1] * ident.iod
            continue
        hold = int(0.25 * (off - ap)) if ev["kind"] == "macro" else 0
        prof = event_profile(n, on, ap, off, hold=hold)
        amp += prof * ev["peak_iod"]
        aus = class_aus(ev["class"], rng)
        ev["aus"] = au_code(aus)
        for t in range(on, off + 1):
            cls_at[t] = ev["class"]
            aus_for[t] = aus
    sway = _sway(n, rng, 0.3, 0.8, period=4 * fps)
    gain = 1.0 + 0.03 * np.sin(2 * np.pi * np.arange(n) / (rng.uniform(6, 12) * fps) + rng.uniform(0, 6.28))
    grad = rng.uniform(-0.1, 0.1)

    tmp = path.with_name(f".{path.stem}.tmp{path.suffix}")
    writer = cv2.VideoWriter(str(tmp), cv2.VideoWriter_fourcc(*"mp4v"), fps, (width, height))
    if not writer.isOpened():
        raise SynthError(f"OpenCV cannot write {path} (mp4v); check the OpenCV build's FFmpeg support.")
    try:
        from tqdm import tqdm

        for t in tqdm(range(n), desc=path.name, unit="frame", disable=not progress):
            rig = renderer.rigid(*(rigid[t] + sway[t]))
            if cls_at[t] is not None:
                aus = aus_for[t]
                fld = ident.field_for("+".join(a for a, _ in aus), aus)
            else:
                fld = None
            writer.write(renderer.frame(fld, float(amp[t]), rig, float(gain[t]), grad, 1.5, rng))
    finally:
        writer.release()
    os.replace(tmp, path)

    for ev in events:
        for key in ("onset", "apex", "offset"):
            ev[f"{key}_ms"] = round(1000.0 * ev[f"{key}_frame"] / fps, 3)
    truth = {
        "video": path.name,
        "note": "synthetic data for tests and demos only",
        "fps": fps,
        "width": width,
        "height": height,
        "num_frames": n,
        "iod_px": round(ident.iod, 3),
        "seed": seed,
        "events": events,
    }
    _write_json_atomic(path.with_suffix(".json"), truth)
    return truth

