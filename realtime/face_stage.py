"""The face stage of the live recognizer: a frame in, a `Prepared` face out.

One job: the face tracker (MediaPipe's face landmarker, or the fast tracker), the blendshape
step, the alignment to the canonical crop and the network input from it, and the stage's own
optical flow (each frame against the one `transient_lag_ms` before it, the pair the
spotter's transient detector asks for, so the spotter only looks the result up). It touches
no state but its own, so a pipeline may run it in another thread, one frame ahead of the
rest (`realtime.pipeline`); frames must still come in stream order.
"""

from __future__ import annotations

import time
from collections import deque
from dataclasses import dataclass, replace

import numpy as np

from moext.face import AlignedFace, FaceDetection, NoFace
from realtime.motion import FlowMeter, motion_image


class FaceStageError(ValueError):
    """The face stage cannot start (a missing optional runtime); the message says why."""


@dataclass
class Prepared:
    """A frame after the face stage: face, aligned crop, network input."""

    detection: FaceDetection | NoFace
    x: np.ndarray | None  # (1, 3, S, S) float32 network input; None without a face
    aligned: AlignedFace | None  # None without a face (or before the warp)
    timings: dict[str, float]
    grey: np.ndarray | None = None  # the optical-flow crop (`realtime.motion.motion_image`)
    grey_points: np.ndarray | None = None
    flow_hop: tuple | None = None  # (earlier frame's ms, its motion to this frame by flow)
    fixed_ms: float = 0.0  # face-stage work that cannot move to a later stage (decode excluded)


class FaceStage:
    """Tracker, blendshapes, alignment and the flow hop of each frame.

    Args:
        landmarks: "mesh" or "fast" (`RecognizerConfig.landmarks`).
        blendshapes: run the blendshape step.
        max_faces, min_face_size: the tracker's settings.
        image_size: side of the network's input crop.
        flow_lag_ms: the flow hop's lag (`SpottingConfig.transient_lag_ms`); None: no flow.
    """

    def __init__(self, landmarks: str, blendshapes: bool, max_faces: int, min_face_size: float,
                 image_size: int, flow_lag_ms: float | None):
        self.landmarks = landmarks
        self.use_blendshapes = blendshapes
        self.max_faces = max_faces
        self.min_face_size = min_face_size
        self.image_size = int(image_size)
        self.flow_lag_ms = flow_lag_ms
        self.flow_meter = FlowMeter() if flow_lag_ms is not None else None
        self._greys: deque[tuple[float, np.ndarray, np.ndarray]] = deque()
        self.prepared = 0  # frames the tracker accepted: the next frame's index in the stream
        self.tracker = self._new_tracker()

    def _new_tracker(self):
        from moext.blendshapes import BlendshapeModel
        from moext.face import FaceMesh, FastFaceTracker

        try:
            self.blendshapes = BlendshapeModel() if self.use_blendshapes else None
            if self.landmarks == "fast":
                return FastFaceTracker(blendshapes=False, min_face_size=self.min_face_size)
        except ImportError as e:  # ai-edge-litert missing: say so, no traceback
            raise FaceStageError(str(e)) from None
        # No head pose: nothing downstream uses MediaPipe's transformation matrix (the rigid
        # fit on the landmarks and the action units cover head motion), and it costs time.
        return FaceMesh(video_mode=True, max_faces=self.max_faces, blendshapes=False,
                        head_pose=False, min_face_size=self.min_face_size)

    def reset(self) -> None:
        """A new stream: a fresh tracker, no flow history."""
        self.tracker.close()
        self.tracker = self._new_tracker()
        self._greys.clear()
        self.prepared = 0

    def close(self) -> None:
        self.tracker.close()

    def prepare(self, frame_bgr: np.ndarray, align: bool, timestamp_ms: float | None,
                classify_every: int = 1) -> Prepared:
        """Landmarks, blendshapes, the flow hop and (with `align`, on a frame the classifier
        reads: every `classify_every`-th) the network input of one checked frame."""
        # Prepared frames come in stream order, one each, so this count is the frame's index
        # in the recognizer (which decides the same way whether to classify it).
        classify = self.prepared % classify_every == 0
        timings: dict[str, float] = {}
        t0 = time.perf_counter()
        det = self.tracker.detect(frame_bgr, timestamp_ms)
        self.prepared += 1  # after the tracker: a frame it refused was not prepared
        t1 = time.perf_counter()
        timings["landmarks"] = (t1 - t0) * 1e3
        if isinstance(det, NoFace):
            self._greys.clear()
            return Prepared(det, None, None, timings)
        # The blendshape step runs here, not inside the tracker, so that its cost is a
        # stage of its own (the same step for either landmark source).
        if self.blendshapes is not None:
            det = replace(det, blendshapes=self.blendshapes.predict(det.landmarks))
            timings["blendshapes"] = (time.perf_counter() - t1) * 1e3
        prepared = Prepared(det, None, None, timings)
        if self.flow_meter is not None:
            self._flow_step(frame_bgr, prepared, timestamp_ms)
        if align and classify:
            self.align(frame_bgr, prepared)
        return prepared

    def warp(self, frame_bgr: np.ndarray, prepared: Prepared) -> None:
        """The aligned crop of a prepared face."""
        from moext.face import align_face
        from moext.preprocess import CROP_SIZE

        t0 = time.perf_counter()
        prepared.aligned = align_face(frame_bgr, prepared.detection.landmarks, CROP_SIZE)
        prepared.timings["align"] = prepared.timings.get("align", 0.0) + (time.perf_counter() - t0) * 1e3

    def align(self, frame_bgr: np.ndarray, prepared: Prepared) -> None:
        """The aligned crop (unless the flow step made it) and the network input from it;
        the same as `moext.preprocess.face_to_input`."""
        from moext.preprocess import crops_to_array

        if prepared.aligned is None:
            self.warp(frame_bgr, prepared)
        t0 = time.perf_counter()
        prepared.x = crops_to_array(prepared.aligned.crop, self.image_size)
        prepared.timings["align"] = prepared.timings.get("align", 0.0) + (time.perf_counter() - t0) * 1e3

    def _flow_step(self, frame_bgr: np.ndarray, prepared: Prepared, ts: float | None) -> None:
        """Grey crop for the flow cue and, with a timestamp, the flow from the frame
        `flow_lag_ms` earlier (a ring keeps the faces of the last lag, plus the newest one at
        or before it)."""
        t0 = time.perf_counter()
        self.warp(frame_bgr, prepared)
        t1 = time.perf_counter()
        prepared.grey, prepared.grey_points = motion_image(prepared.aligned.crop, prepared.aligned.landmarks)
        if ts is not None:
            lag = self.flow_lag_ms
            partner = next((g for g in reversed(self._greys) if g[0] <= ts - lag), None)
            if partner is not None:
                prepared.flow_hop = (partner[0], self.flow_meter.measure(partner[1], partner[2], prepared.grey))
            self._greys.append((float(ts), prepared.grey, prepared.grey_points))
            while len(self._greys) > 1 and self._greys[1][0] <= ts - lag:
                self._greys.popleft()  # keep one frame at or before ts - lag
        t2 = time.perf_counter()
        prepared.timings["flow"] = (t2 - t1) * 1e3
        prepared.fixed_ms = (t2 - t0) * 1e3
