"""Face landmarks (MediaPipe Face Mesh) and the similarity alignment shared by training and
the live recognizer.

`FaceMesh.detect(frame)` gives 478 landmarks of the largest face, or a `NoFace` value;
`align_face(frame, landmarks)` warps the frame to a canonical square crop in which the eye
centres and the mouth centre sit at fixed positions (the paper aligns with five dlib
landmarks; we use the mesh's eye corners and mouth instead).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

# Face-mesh indices (subject's right eye is on the image left for a frontal face).
RIGHT_EYE_CORNERS = (33, 133)  # outer, inner
LEFT_EYE_CORNERS = (362, 263)  # inner, outer
# Corners 61/291 plus lip midpoints 0/17: the mean moves less under AU12 than corners alone.
MOUTH_POINTS = (61, 291, 0, 17)
NUM_LANDMARKS = 478

# Canonical positions as fractions of the crop side. The eye line at 0.38 and the mouth at
# 0.74 keep brows, lids and chin in the crop (our choice; inter-ocular distance = 0.32 side).
CANONICAL_RIGHT_EYE = (0.34, 0.38)
CANONICAL_LEFT_EYE = (0.66, 0.38)
CANONICAL_MOUTH = (0.50, 0.74)


@dataclass(frozen=True)
class FaceDetection:
    """One face found in a frame.

    Attributes:
        landmarks: (478, 2) float32, x, y in frame pixels.
        box: (x0, y0, x1, y1) landmark bounding box in frame pixels.
        num_faces: how many faces the mesh saw (the largest is returned).
    """

    landmarks: np.ndarray
    box: tuple[float, float, float, float]
    num_faces: int = 1


@dataclass(frozen=True)
class NoFace:
    """No usable face in a frame; a value, so that a stream can skip the frame and count it."""

    reason: str


@dataclass(frozen=True)
class AlignedFace:
    """A face warped to the canonical crop.

    Attributes:
        crop: (size, size, 3) uint8 BGR.
        landmarks: (478, 2) float32 landmarks in crop pixels.
        transform: (2, 3) float64 similarity, frame pixels -> crop pixels.
    """

    crop: np.ndarray
    landmarks: np.ndarray
    transform: np.ndarray


def eye_centres(landmarks: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(right eye, left eye) centres as midpoints of the eye corners.

    Corners, not the lid contour or iris: lids move with AU5/AU7 and the iris with gaze, and
    either would leak expression into the alignment.
    """
    lm = np.asarray(landmarks, dtype=np.float64)
    return lm[list(RIGHT_EYE_CORNERS)].mean(0), lm[list(LEFT_EYE_CORNERS)].mean(0)


def mouth_centre(landmarks: np.ndarray) -> np.ndarray:
    return np.asarray(landmarks, dtype=np.float64)[list(MOUTH_POINTS)].mean(0)


def inter_ocular_distance(landmarks: np.ndarray) -> float:
    """Distance between the eye centres in the landmarks' pixels (the motion unit, "IOD")."""
    r, l = eye_centres(landmarks)
    return float(np.linalg.norm(l - r))


def _similarity(src: np.ndarray, dst: np.ndarray) -> np.ndarray:
    """Least-squares similarity (rotation, uniform scale, translation) mapping src -> dst.

    Umeyama's closed form without reflection; (2, 3) float64.
    """
    mu_s, mu_d = src.mean(0), dst.mean(0)
    s, d = src - mu_s, dst - mu_d
    cov = d.T @ s / len(src)
    u, sig, vt = np.linalg.svd(cov)
    sign = np.eye(2)
    if np.linalg.det(u) * np.linalg.det(vt) < 0:
        sign[1, 1] = -1.0
    rot = u @ sign @ vt
    scale = float(np.trace(np.diag(sig) @ sign) / (s**2).sum(1).mean())
    m = np.zeros((2, 3), dtype=np.float64)
    m[:, :2] = scale * rot
    m[:, 2] = mu_d - scale * rot @ mu_s
    return m


def alignment_transform(landmarks: np.ndarray, size: int = 224) -> np.ndarray:
    """(2, 3) float64 similarity from frame pixels to the canonical `size` x `size` crop."""
    r, l = eye_centres(landmarks)
    src = np.stack([r, l, mouth_centre(landmarks)])
    dst = np.array([CANONICAL_RIGHT_EYE, CANONICAL_LEFT_EYE, CANONICAL_MOUTH]) * size
    return _similarity(src, dst)


def apply_transform(transform: np.ndarray, points: np.ndarray) -> np.ndarray:
    """Map (N, 2) points with a (2, 3) affine; float32."""
    pts = np.asarray(points, dtype=np.float64)
    return (pts @ transform[:, :2].T + transform[:, 2]).astype(np.float32)


def align_face(
    frame_bgr: np.ndarray,
    landmarks: np.ndarray,
    size: int = 224,
    *,
    transform: np.ndarray | None = None,
) -> AlignedFace:
    """Warp a frame so that the face's eyes and mouth land on the canonical crop positions.

    Args:
        frame_bgr: HWC uint8 BGR frame.
        landmarks: (478, 2) landmarks of that frame in frame pixels.
        size: side of the square crop.
        transform: optional (2, 3) frame->crop similarity to reuse (e.g. the onset's, so a
            whole clip shares one alignment); computed from `landmarks` when None.
    """
    m = alignment_transform(landmarks, size) if transform is None else np.asarray(transform, np.float64)
    # Bilinear + replicated border: deterministic, and no black wedges under head roll.
    crop = cv2.warpAffine(
        frame_bgr, m, (size, size), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE
    )
    return AlignedFace(crop=crop, landmarks=apply_transform(m, landmarks), transform=m)


def _landmarks_slow(landmark_list, w: int, h: int) -> np.ndarray:
    return np.array([(p.x * w, p.y * h) for p in landmark_list.landmark], dtype=np.float32)


# A NormalizedLandmarkList whose landmarks carry exactly x, y, z serialises to 17 bytes per
# landmark: 0x0a 0x0f (field 1, length 15), then 0x0d x, 0x15 y, 0x1d z (fixed32 floats).
_RECORD = 17
_RECORD_TAGS = {0: 0x0A, 1: 0x0F, 2: 0x0D, 7: 0x15, 12: 0x1D}


def landmarks_to_array(landmark_list, w: int, h: int) -> np.ndarray:
    """A MediaPipe `NormalizedLandmarkList` -> (N, 2) float32 pixel coordinates.

    Reading 478 protobuf messages attribute by attribute costs ~0.6 ms per frame; the
    serialised bytes have a fixed layout when every landmark holds exactly x, y, z, so they
    are read as a strided float view (0.14 ms measured here). Any other layout (visibility or presence set,
    a default-valued field omitted) takes the attribute path, which gives the same numbers.
    """
    raw = np.frombuffer(landmark_list.SerializeToString(), np.uint8)
    n = len(landmark_list.landmark)
    if n == 0 or raw.size != n * _RECORD:
        return _landmarks_slow(landmark_list, w, h)
    rec = raw.reshape(n, _RECORD)
    if any((rec[:, col] != tag).any() for col, tag in _RECORD_TAGS.items()):
        return _landmarks_slow(landmark_list, w, h)
    xy = np.stack([rec[:, 3:7].copy().view("<f4")[:, 0], rec[:, 8:12].copy().view("<f4")[:, 0]], 1)
    return (xy * np.array([w, h], np.float32)).astype(np.float32)


class FaceMesh:
    """MediaPipe Face Mesh (legacy `solutions.face_mesh`, model shipped inside the wheel).

    In video mode the mesh tracks landmarks from the previous frame and only re-runs the
    detector when tracking is lost, which is both faster and less jittery; feed frames of
    one stream in order. For unrelated still images use `video_mode=False`.
    """

    def __init__(
        self,
        video_mode: bool = True,
        max_faces: int = 2,
        refine: bool = True,
        min_detection_confidence: float = 0.5,
        min_tracking_confidence: float = 0.5,
    ) -> None:
        import mediapipe as mp  # imported here: it is slow to import and only this needs it

        self.video_mode = video_mode
        self.refine = refine
        self._mesh = mp.solutions.face_mesh.FaceMesh(
            static_image_mode=not video_mode,
            max_num_faces=max_faces,
            refine_landmarks=refine,
            min_detection_confidence=min_detection_confidence,
            min_tracking_confidence=min_tracking_confidence,
        )

    def detect(self, frame_bgr: np.ndarray) -> FaceDetection | NoFace:
        """Landmarks of the largest face in an HWC uint8 BGR frame, or `NoFace`."""
        if frame_bgr is None or frame_bgr.ndim != 3 or frame_bgr.shape[2] != 3 or frame_bgr.size == 0:
            shape = None if frame_bgr is None else frame_bgr.shape
            return NoFace(f"not an HxWx3 image (shape {shape})")
        h, w = frame_bgr.shape[:2]
        # cv2.cvtColor, not frame[:, :, ::-1]: copying a reversed-stride view costs 2.4 ms
        # on a 640x360 frame here, cvtColor 0.03 ms.
        rgb = cv2.cvtColor(np.ascontiguousarray(frame_bgr), cv2.COLOR_BGR2RGB)
        result = self._mesh.process(rgb)
        faces = result.multi_face_landmarks
        if not faces:
            return NoFace("no face found")
        best, best_area, best_box = None, -1.0, None
        for face in faces:
            pts = landmarks_to_array(face, w, h)
            x0, y0 = pts.min(0)
            x1, y1 = pts.max(0)
            area = float((x1 - x0) * (y1 - y0))
            if area > best_area:
                best, best_area, best_box = pts, area, (float(x0), float(y0), float(x1), float(y1))
        return FaceDetection(landmarks=best, box=best_box, num_faces=len(faces))

    def close(self) -> None:
        self._mesh.close()

    def __enter__(self) -> "FaceMesh":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


# --- a faster tracker: MediaPipe's face-landmark model run directly ------------------------

LANDMARK_MODEL_INPUT = 192  # side of face_landmark.tflite's input
MESH_LANDMARKS = 468  # face_landmark.tflite: the mesh without the 10 iris points
# ROI of the next frame from this frame's landmarks, as MediaPipe's own face-mesh graph
# does it: the landmarks' box in the eye-line frame (outer eye corners 33 -> 263), made
# square on its long side and enlarged 1.5x.
ROI_SCALE = 1.5


def landmark_model_path() -> Path:
    """`face_landmark.tflite` inside the installed mediapipe wheel (no download)."""
    import mediapipe

    return Path(mediapipe.__file__).parent / "modules" / "face_landmark" / "face_landmark.tflite"


def roi_from_landmarks(landmarks: np.ndarray) -> np.ndarray:
    """(2, 3) affine from model-input pixels (192 x 192) to frame pixels for the next frame."""
    pts = np.asarray(landmarks, np.float64)[:MESH_LANDMARKS]
    d = pts[263] - pts[33]
    phi = np.arctan2(d[1], d[0])  # eye line angle in the image
    r = np.array([[np.cos(phi), -np.sin(phi)], [np.sin(phi), np.cos(phi)]])  # crop axes -> frame
    local = pts @ r  # coordinates along the eye line and across it
    lo, hi = local.min(0), local.max(0)
    centre = r @ ((lo + hi) / 2)
    side = float((hi - lo).max()) * ROI_SCALE
    a = r * (side / LANDMARK_MODEL_INPUT)
    return np.concatenate([a, (centre - a @ np.full(2, LANDMARK_MODEL_INPUT / 2))[:, None]], 1)


class FastFaceTracker:
    """468 face-mesh landmarks per frame at a fraction of `FaceMesh`'s cost.

    MediaPipe's legacy face-mesh graph costs 6-8 ms a frame here; the landmark model inside
    it, run by itself with LiteRT (`ai-edge-litert`), ~2 ms. This tracker does what the
    graph does between detections: crop the face from the ROI the previous frame's
    landmarks give (`roi_from_landmarks`), run `face_landmark.tflite` (the one in the
    mediapipe wheel) on it, map the 468 points back, and keep tracking while the model's
    face score stays above `min_tracking_confidence`. When there is no track (first frame,
    face lost) `FaceMesh` in still-image mode finds the face (detector + mesh: slower, but only then).

    Differences from `FaceMesh(refine=True)`: no iris points (468, not 478) and no attention
    refinement around eyes and lips; the motion and alignment code use only the first 468.
    Same interface as `FaceMesh` (detect / close); one face.
    """

    def __init__(self, min_detection_confidence: float = 0.5, min_tracking_confidence: float = 0.5,
                 threads: int = 1) -> None:
        try:
            from ai_edge_litert.interpreter import Interpreter
        except ImportError as e:
            raise ImportError(
                f"the fast landmark tracker needs ai-edge-litert ({e}); pip install ai-edge-litert, "
                "or use the default MediaPipe face mesh"
            ) from None
        self._model = Interpreter(model_path=str(landmark_model_path()), num_threads=threads)
        self._model.allocate_tensors()
        self._in = self._model.get_input_details()[0]["index"]
        outs = {int(np.prod(o["shape"])): o["index"] for o in self._model.get_output_details()}
        self._out_pts, self._out_score = outs[MESH_LANDMARKS * 3], outs[1]
        self.min_tracking_confidence = min_tracking_confidence
        self._detector = FaceMesh(video_mode=False, max_faces=1, refine=False,
                                  min_detection_confidence=min_detection_confidence)
        self._roi: np.ndarray | None = None
        self.redetections = 0

    def _track(self, frame_bgr: np.ndarray, roi: np.ndarray) -> tuple[np.ndarray, float]:
        s = LANDMARK_MODEL_INPUT
        crop = cv2.warpAffine(frame_bgr, roi, (s, s), flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP,
                              borderMode=cv2.BORDER_CONSTANT)
        x = cv2.cvtColor(crop, cv2.COLOR_BGR2RGB).astype(np.float32) * (1.0 / 255.0)
        self._model.set_tensor(self._in, x[None])
        self._model.invoke()
        pts = self._model.get_tensor(self._out_pts).reshape(MESH_LANDMARKS, 3)[:, :2]
        score = float(1.0 / (1.0 + np.exp(-self._model.get_tensor(self._out_score).item())))
        return apply_transform(roi, pts), score

    def detect(self, frame_bgr: np.ndarray) -> FaceDetection | NoFace:
        if frame_bgr is None or frame_bgr.ndim != 3 or frame_bgr.shape[2] != 3 or frame_bgr.size == 0:
            shape = None if frame_bgr is None else frame_bgr.shape
            return NoFace(f"not an HxWx3 image (shape {shape})")
        if self._roi is not None:
            pts, score = self._track(frame_bgr, self._roi)
            if score < self.min_tracking_confidence:
                self._roi = None
        if self._roi is None:
            det = self._detector.detect(frame_bgr)
            if isinstance(det, NoFace):
                return det
            self.redetections += 1
            # The detection's own landmarks only seed the ROI: every returned set comes from
            # the same model, so a re-detection does not jump between two landmark models.
            pts, score = self._track(frame_bgr, roi_from_landmarks(det.landmarks))
            if score < self.min_tracking_confidence:
                return NoFace("no face found")
        self._roi = roi_from_landmarks(pts)
        x0, y0 = pts.min(0)
        x1, y1 = pts.max(0)
        return FaceDetection(pts.astype(np.float32), (float(x0), float(y0), float(x1), float(y1)), 1)

    def close(self) -> None:
        self._detector.close()

    def __enter__(self) -> "FastFaceTracker":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
