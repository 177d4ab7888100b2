"""Face landmarks (MediaPipe's face landmarker), blendshapes, and the similarity alignment
shared by training and the live recognizer.

`FaceMesh.detect(frame)` gives 478 landmarks, 52 blendshape scores and the head pose of the
largest face, or a `NoFace` value;
`align_face(frame, landmarks)` warps the frame to a canonical square crop in which the eye
centres and the mouth centre sit at fixed positions (the paper aligns with five dlib
landmarks; we use the mesh's eye corners and mouth instead).
"""

from __future__ import annotations

import atexit
from dataclasses import dataclass

import cv2
import numpy as np

from moext.geometry import eye_centres, fit_similarity, mouth_centre
from moext.task_model import task_member, task_member_all

NUM_LANDMARKS = 478

# Which landmarker made a set of landmarks; preprocessing caches record it (a cache made by
# another landmarker is refused, never mixed with live crops).
LANDMARKER_ID = "mediapipe-tasks-face-landmarker-v2"

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
        num_faces: how many faces the landmarker saw (the largest is returned).
        blendshapes: (52,) float32 scores in [0, 1] (`moext.blendshapes.BLENDSHAPE_NAMES`
            order), or None when the tracker was asked not to compute them.
        head_pose: (4, 4) float32 facial transformation matrix (canonical face -> camera,
            rotation and translation, cm), or None (the fast tracker has none).
    """

    landmarks: np.ndarray
    box: tuple[float, float, float, float]
    num_faces: int = 1
    blendshapes: np.ndarray | None = None
    head_pose: np.ndarray | None = None


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


def alignment_transform(landmarks: np.ndarray, size: int = 224) -> np.ndarray:
    """(2, 3) float64 similarity from frame pixels to the canonical `size` x `size` crop."""
    r, l = eye_centres(landmarks)
    src = np.stack([r, l, mouth_centre(landmarks)])
    dst = np.array([CANONICAL_RIGHT_EYE, CANONICAL_LEFT_EYE, CANONICAL_MOUTH]) * size
    return fit_similarity(src, dst).matrix


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



def _check_frame(frame_bgr) -> str | None:
    """Why a frame cannot go to a landmarker, or None. Types are the caller's business (the
    recognizer refuses them at its door with a ValueError); this covers empty/odd shapes."""
    if frame_bgr is None or not hasattr(frame_bgr, "ndim"):
        return f"not an image ({type(frame_bgr).__name__})"
    if frame_bgr.ndim != 3 or frame_bgr.shape[2] != 3 or frame_bgr.size == 0:
        return f"not an HxWx3 image (shape {frame_bgr.shape})"
    return None


def _box(pts: np.ndarray) -> tuple[float, float, float, float]:
    x0, y0 = pts.min(0)
    x1, y1 = pts.max(0)
    return float(x0), float(y0), float(x1), float(y1)


# Every open FaceLandmarker, held here so that none is ever freed by the cyclic garbage
# collector: mediapipe 1.2 closes a landmarker in `__del__` through a worker thread, and when
# the landmarker sits in a reference cycle the collector first fires the weak reference that
# tells that thread to exit, then runs `__del__`, which waits for it forever (seen as a hung
# test run). Held here, a landmarker is closed by `FaceMesh.close`, by `FaceMesh.__del__`
# (its thread still alive), or at exit.
_OPEN_LANDMARKERS: set = set()


@atexit.register
def _close_open_landmarkers() -> None:
    for lm in list(_OPEN_LANDMARKERS):
        _OPEN_LANDMARKERS.discard(lm)
        lm.close()


class FaceMesh:
    """MediaPipe's Tasks `FaceLandmarker` with the shipped face landmarker v2: 478 landmarks
    (irises included), 52 blendshape scores and the head pose of each face in one call.

    In video mode (`RunningMode.VIDEO`) the landmarker tracks the face from the previous
    frame and re-runs its detector only when tracking is lost, which is both faster and
    less jittery: feed frames of one stream in order, with their timestamps (ms; a counter
    stands in when none is given). For unrelated still images use `video_mode=False`. A
    change of frame size restarts tracking (a new stream).

    Blendshapes come from `moext.blendshapes.BlendshapeModel` on the returned landmarks, the
    step `FastFaceTracker` shares (mediapipe's own blendshape output agrees with it to 1e-5,
    tested), so the landmarker itself is asked for landmarks and head pose only.

    Args:
        video_mode: track across frames (True) or treat each frame alone (False).
        max_faces: faces to look for; the largest is returned.
        min_detection_confidence, min_tracking_confidence: the landmarker's thresholds.
        blendshapes: compute the 52 scores (~0.4 ms a face).
        head_pose: ask for the facial transformation matrix.
        min_face_size: faces whose landmark box is smaller than this many pixels on its
            longer side are refused as "face too small" (a few noisy pixels after a real
            face can keep a tracker going).
    """

    def __init__(
        self,
        video_mode: bool = True,
        max_faces: int = 1,
        min_detection_confidence: float = 0.5,
        min_tracking_confidence: float = 0.5,
        blendshapes: bool = True,
        head_pose: bool = True,
        min_face_size: float = 24.0,
    ) -> None:
        self.video_mode = video_mode
        self.max_faces = max_faces
        self.min_face_size = float(min_face_size)
        self._conf = (min_detection_confidence, min_tracking_confidence)
        self._head_pose = head_pose
        self._bs = _blendshape_model() if blendshapes else None
        self._landmarker = None
        self._shape: tuple[int, ...] | None = None
        self._t = -1
        self._open()

    def _open(self) -> None:
        from moext._quiet import quiet_native_logs

        with quiet_native_logs():
            import mediapipe as mp  # imported here: slow to import, and only this needs it
            from mediapipe.tasks.python import BaseOptions, vision

            det, trk = self._conf
            opts = vision.FaceLandmarkerOptions(
                base_options=BaseOptions(model_asset_buffer=task_member_all()),
                running_mode=vision.RunningMode.VIDEO if self.video_mode else vision.RunningMode.IMAGE,
                num_faces=self.max_faces,
                min_face_detection_confidence=det,
                min_face_presence_confidence=trk,
                min_tracking_confidence=trk,
                output_face_blendshapes=False,
                output_facial_transformation_matrixes=self._head_pose,
            )
            self._landmarker = vision.FaceLandmarker.create_from_options(opts)
        _OPEN_LANDMARKERS.add(self._landmarker)
        self._mp = mp
        self._first = True
        self._direct = True

    def detect(self, frame_bgr: np.ndarray, timestamp_ms: float | None = None) -> FaceDetection | NoFace:
        """Landmarks of the largest face in an HWC uint8 BGR frame, or `NoFace`.

        `timestamp_ms` (video mode): the frame's time; must increase from call to call (a
        value not after the previous one is nudged 1 ms past it, as the landmarker refuses
        it otherwise).
        """
        bad = _check_frame(frame_bgr)
        if bad:
            return NoFace(bad)
        if self._shape is not None and frame_bgr.shape != self._shape:
            self.close()  # new frame size: a new stream, no tracking carried over
            self._t = -1
            self._open()
        self._shape = frame_bgr.shape
        h, w = frame_bgr.shape[:2]
        # cv2.cvtColor, not frame[:, :, ::-1]: copying a reversed-stride view costs 2.4 ms
        # on a 640x360 frame here, cvtColor 0.03 ms.
        rgb = cv2.cvtColor(np.ascontiguousarray(frame_bgr), cv2.COLOR_BGR2RGB)
        image = self._mp.Image(image_format=self._mp.ImageFormat.SRGB, data=rgb)
        if self.video_mode:
            t = int(round(timestamp_ms)) if timestamp_ms is not None else self._t + 33
            self._t = max(t, self._t + 1)
        if self._first:  # the graph's first run logs warnings of its own
            from moext._quiet import quiet_native_logs

            with quiet_native_logs():
                faces, mats = self._run(image)
            self._first = False
        else:
            faces, mats = self._run(image)
        if not faces:
            return NoFace("no face found")
        best, best_area, k_best = None, -1.0, 0
        for k, face in enumerate(faces):
            pts = face * np.array([w, h], np.float32)
            x0, y0, x1, y1 = _box(pts)
            area = (x1 - x0) * (y1 - y0)
            if area > best_area:
                best, best_area, k_best = pts, area, k
        box = _box(best)
        if max(box[2] - box[0], box[3] - box[1]) < self.min_face_size:
            return NoFace(f"face too small ({box[2] - box[0]:.0f}x{box[3] - box[1]:.0f} px, "
                          f"min_face_size {self.min_face_size:.0f})")
        pose = None
        if self._head_pose and mats:
            pose = np.asarray(mats[k_best], np.float32)
        bs = self._bs.predict(best) if self._bs is not None else None
        return FaceDetection(landmarks=best, box=box, num_faces=len(faces), blendshapes=bs, head_pose=pose)

    def _run(self, image) -> tuple[list[np.ndarray], list]:
        """The landmarker on one image: each face's (478, 2) normalised x, y, and the
        transformation matrices. Reads the C result into numpy directly when this mediapipe
        has the C API this was written against (1.x): building 478 Python landmark objects
        per face costs ~0.37 ms a frame, the numpy read ~0.01 ms. Anything unexpected takes
        the public API (same numbers; a test compares them)."""
        if self._direct:
            try:
                return self._run_direct(image)
            except (AttributeError, TypeError, ValueError):
                self._direct = False
                self._t += 1  # the C call may have taken this timestamp already
        result = (self._landmarker.detect_for_video(image, self._t) if self.video_mode
                  else self._landmarker.detect(image))
        faces = [np.array([(p.x, p.y) for p in f], dtype=np.float32) for f in result.face_landmarks]
        return faces, list(result.facial_transformation_matrixes or [])

    def _run_direct(self, image) -> tuple[list[np.ndarray], list]:
        import ctypes

        from mediapipe.tasks.python.vision import face_landmarker as fl

        lmk = self._landmarker
        res = fl.MpFaceLandmarkerResultC()
        if self.video_mode:
            lmk._lib.MpFaceLandmarkerDetectForVideo(lmk._handle, image._image_ptr, None, self._t,
                                                    ctypes.byref(res))
        else:
            lmk._lib.MpFaceLandmarkerDetectImage(lmk._handle, image._image_ptr, None, ctypes.byref(res))
        try:
            faces = []
            rec = fl.landmark_c_lib.MpNormalizedLandmarkC
            xy = np.dtype({"names": ["x", "y"], "formats": ["<f4", "<f4"],
                           "offsets": [rec.x.offset, rec.y.offset], "itemsize": ctypes.sizeof(rec)})
            for k in range(res.face_landmarks_count):
                lst = res.face_landmarks[k]
                raw = ctypes.string_at(lst.landmarks, lst.landmarks_count * ctypes.sizeof(rec))
                arr = np.frombuffer(raw, xy)
                faces.append(np.stack([arr["x"], arr["y"]], 1).astype(np.float32))
            mats = []
            for k in range(res.facial_transformation_matrixes_count if self._head_pose else 0):
                mats.append(fl.matrix_c_lib.MpMatrixC.to_numpy(res.facial_transformation_matrixes[k])
                            if hasattr(fl.matrix_c_lib.MpMatrixC, "to_numpy") else None)
            if any(m is None for m in mats):  # no direct matrix reader: public API
                raise AttributeError("matrix")
            return faces, mats
        finally:
            lmk._lib.MpFaceLandmarkerCloseResult(ctypes.byref(res))

    def close(self) -> None:
        lm, self._landmarker = getattr(self, "_landmarker", None), None
        if lm is not None:
            # Explicitly, never from mediapipe's own __del__ (see _OPEN_LANDMARKERS).
            _OPEN_LANDMARKERS.discard(lm)
            lm.close()

    def __del__(self) -> None:
        self.close()

    def __enter__(self) -> "FaceMesh":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _blendshape_model():
    from moext.blendshapes import BlendshapeModel

    return BlendshapeModel()


# --- a faster tracker: the landmark model run directly ------------------------------------

LANDMARK_MODEL_INPUT = 192  # side of face_landmarks_detector.tflite's input
MESH_LANDMARKS = 468  # the mesh without the 10 iris points
# ROI of the next frame from this frame's landmarks, as MediaPipe's own face-mesh graph
# does it: the landmarks' box in the eye-line frame (outer eye corners 33 -> 263), made
# square on its long side and enlarged 1.5x.
ROI_SCALE = 1.5


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
    """478 face-mesh landmarks (and blendshapes) per frame at a fraction of `FaceMesh`'s cost.

    This tracker does what the landmarker's graph does between detections, with less
    around it: crop the face from the ROI the previous frame's landmarks give
    (`roi_from_landmarks`), run the landmark model of the shipped `.task`
    (`face_landmarks_detector.tflite`, 478 points with irises) with LiteRT
    (`ai-edge-litert`), map the points back, and keep tracking while the model's face score
    stays above `min_tracking_confidence`. When there is no track (first frame, face lost)
    `FaceMesh` in still-image mode finds the face (detector + mesh: slower, but only then).
    Blendshapes: the same `BlendshapeModel` step as `FaceMesh`. No head pose.
    Same interface as `FaceMesh` (detect / close); one face.
    """

    def __init__(self, min_detection_confidence: float = 0.5, min_tracking_confidence: float = 0.5,
                 threads: int = 1, blendshapes: bool = True, min_face_size: float = 24.0) -> None:
        try:
            from ai_edge_litert.interpreter import Interpreter
        except ImportError as e:
            raise ImportError(
                f"the fast landmark tracker needs ai-edge-litert ({e}); pip install ai-edge-litert, "
                "or use the default MediaPipe face landmarker"
            ) from None
        from moext._quiet import quiet_native_logs

        with quiet_native_logs():
            self._model = Interpreter(model_content=task_member("face_landmarks_detector.tflite"),
                                      num_threads=threads)
            self._model.allocate_tensors()
        self._in = self._model.get_input_details()[0]["index"]
        outs = {int(np.prod(o["shape"])): o["index"] for o in self._model.get_output_details()}
        self._out_pts, self._out_score = outs[NUM_LANDMARKS * 3], outs[1]
        self.min_tracking_confidence = min_tracking_confidence
        self.min_face_size = float(min_face_size)
        self._bs = _blendshape_model() if blendshapes else None
        self._detector = FaceMesh(video_mode=False, max_faces=1, blendshapes=False, head_pose=False,
                                  min_detection_confidence=min_detection_confidence,
                                  min_face_size=min_face_size)
        self._roi: np.ndarray | None = None
        self._shape: tuple[int, ...] | None = None
        self.redetections = 0

    def _track(self, frame_bgr: np.ndarray, roi: np.ndarray) -> tuple[np.ndarray, float]:
        s = LANDMARK_MODEL_INPUT
        crop = cv2.warpAffine(frame_bgr, roi, (s, s), flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP,
                              borderMode=cv2.BORDER_CONSTANT)
        x = cv2.cvtColor(crop, cv2.COLOR_BGR2RGB).astype(np.float32) * (1.0 / 255.0)
        self._model.set_tensor(self._in, x[None])
        self._model.invoke()
        pts = self._model.get_tensor(self._out_pts).reshape(NUM_LANDMARKS, 3)[:, :2]
        score = float(1.0 / (1.0 + np.exp(-self._model.get_tensor(self._out_score).item())))
        return apply_transform(roi, pts), score

    def detect(self, frame_bgr: np.ndarray, timestamp_ms: float | None = None) -> FaceDetection | NoFace:
        bad = _check_frame(frame_bgr)
        if bad:
            return NoFace(bad)
        if frame_bgr.shape != self._shape:
            self._roi = None  # new frame size: a new stream
            self._shape = frame_bgr.shape
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
            # the same model run the same way, so a re-detection does not jump between two
            # pipelines.
            pts, score = self._track(frame_bgr, roi_from_landmarks(det.landmarks))
            if score < self.min_tracking_confidence:
                return NoFace("no face found")
        box = _box(pts)
        if max(box[2] - box[0], box[3] - box[1]) < self.min_face_size:
            self._roi = None
            return NoFace(f"face too small ({box[2] - box[0]:.0f}x{box[3] - box[1]:.0f} px, "
                          f"min_face_size {self.min_face_size:.0f})")
        self._roi = roi_from_landmarks(pts)
        pts = pts.astype(np.float32)
        bs = self._bs.predict(pts) if self._bs is not None else None
        return FaceDetection(pts, box, 1, blendshapes=bs)

    def close(self) -> None:
        self._detector.close()

    def __enter__(self) -> "FastFaceTracker":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
