"""Onset and apex spotting from landmark motion, and the MEGC spotting metric.

The `Spotter` is a small state machine fed one tracked frame at a time:

- **waiting**: the face was just found; the first tracked frames jump (0.5-1.7 % IOD in
  DESIGN.md's measurements), so none of them can be a reference.
- **settling**: waiting for the face to be still (frame-to-frame motion small) for
  `settle_ms`, after (re)acquisition, head motion, or a movement that did not return.
- **quiet**: the onset reference follows the stream `ref_lag_ms` behind (the most recent
  quiet frame, refreshed every frame while still, so slow landmark drift of 0.5-1 % IOD over
  seconds never builds up). Motion = regional displacement from that reference after
  removing the head's similarity motion, lightly smoothed. It rises above the entry
  threshold -> **active**, and the reference freezes: it is the event's onset reference.
- **active**: motion is followed against the frozen reference; the apex is its maximum. When
  motion falls back below a fraction of the peak the event closes, its onset and offset are
  refined on the whole (centred-smoothed) trace, and it is emitted: micro when it rose and
  fell within `micro_max_ms` and stayed below `micro_max_amplitude`, macro otherwise. Head
  motion during the event (rotation/translation speed, or out-of-plane residual on the
  rigid points) discards it: head motion is not an expression.

All thresholds live in `SpottingConfig`; distances are in % of the inter-ocular distance.
The defaults were set on the synthetic spotting videos of `moext-train synth` (real face
photo, generated motions) and against DESIGN.md's measured jitter levels; they are a
starting point for real cameras, not a fit to any real dataset.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field

import numpy as np

from realtime.buffer import BufferedFrame, RollingBuffer
from realtime.motion import MotionMeasure, measure_motion


@dataclass
class SpottingConfig:
    """Thresholds of the spotter (times in ms, distances in % IOD).

    Attributes:
        warmup_frames: tracked frames ignored after a face is (re)found (tracker jump).
        settle_ms: how long frame-to-frame motion must stay below `settle_threshold` before
            a reference is taken.
        settle_threshold: frame-to-frame motion counted as still (jitter p90 is ~0.33 % per
            point; the regional top-third measure sits near 0.3-0.6 %).
        ref_lag_ms: how far behind the current frame the quiet reference follows. Longer
            than a micro-expression's rise (onset to apex ~70-200 ms) so the reference is
            still neutral when the entry threshold is crossed.
        landmark_frames: landmarks are averaged over this many consecutive frames before
            motion is measured. On a still face MediaPipe's tracker can fall into a 2-frame
            oscillation (its ROI follows its own output), ~1 % IOD frame to frame here on a
            static photo; an even window cancels it exactly at half a frame of lag.
        smooth_frames: causal moving average over this many frames of the motion signal.
        enter_min: the entry threshold's floor.
        noise_k: entry threshold = max(enter_min, noise_k * running quiet-motion level), so
            a noisier camera needs a larger movement.
        noise_alpha: EMA rate of the quiet-motion level.
        exit_frac: an event closes when motion falls below exit_frac * peak...
        exit_min: ...or below this, whichever is larger.
        edge_frac: onset/offset are the last/first frames around the apex whose motion is
            at or below edge_frac * peak (on the centred-smoothed trace).
        min_duration_ms: shorter movements are tracker glitches, not expressions (MEs last
            at least 1/25 s).
        max_event_ms: a movement still going after this is closed as macro and the spotter
            settles again (a held expression or a new resting pose).
        micro_max_ms: onset-to-offset duration of a micro-expression (~0.5 s).
        micro_max_amplitude: peak motion above which a movement is macro however brief.
        head_rotation_speed: deg/s of in-plane head rotation counted as head motion.
        head_shift_speed: % IOD/s of head translation counted as head motion.
        head_scale_speed: relative scale change per second counted as head motion (towards
            or away from the camera).
        head_residual: RMS residual (% IOD) of the rigid points after the similarity fit,
            above which the head has turned out of plane (yaw/pitch).
    """

    warmup_frames: int = 3
    settle_ms: float = 250.0
    settle_threshold: float = 1.0
    ref_lag_ms: float = 230.0
    landmark_frames: int = 2
    smooth_frames: int = 3
    enter_min: float = 1.0
    noise_k: float = 3.0
    noise_alpha: float = 0.02
    exit_frac: float = 0.3
    exit_min: float = 0.5
    edge_frac: float = 0.2
    min_duration_ms: float = 60.0
    max_event_ms: float = 3000.0
    micro_max_ms: float = 500.0
    micro_max_amplitude: float = 8.0
    head_rotation_speed: float = 15.0
    head_shift_speed: float = 40.0
    head_scale_speed: float = 0.08
    head_residual: float = 2.5


@dataclass
class SpottedEvent:
    """A finished movement, in buffered frames (the recognizer adds the classifier)."""

    onset: BufferedFrame
    apex: BufferedFrame
    offset: BufferedFrame
    reference: BufferedFrame
    amplitude: float
    kind: str
    region: str


@dataclass
class SpotUpdate:
    """The spotter's view of one frame."""

    state: str
    reference: BufferedFrame | None = None
    motion: float | None = None
    measure: MotionMeasure | None = None
    events: list[SpottedEvent] = field(default_factory=list)
    discarded: str | None = None  # why a movement was dropped at this frame, if one was


class Spotter:
    def __init__(self, cfg: SpottingConfig | None = None):
        self.cfg = cfg or SpottingConfig()
        self.noise = self.cfg.enter_min / self.cfg.noise_k
        self.discarded: dict[str, int] = {}
        self.reset()

    def reset(self) -> None:
        """Forget the face (lost, or a new stream): back to waiting."""
        self.state = "waiting"
        self.seen = 0
        self.still_since: float | None = None
        self.prev: BufferedFrame | None = None
        self.eligible_from = 0
        self.recent: deque[float] = deque(maxlen=self.cfg.smooth_frames)
        self.history: deque[np.ndarray] = deque(maxlen=self.cfg.landmark_frames)
        self._end_event()

    def _end_event(self) -> None:
        self.ref: BufferedFrame | None = None
        self.trace: list[tuple[BufferedFrame, MotionMeasure]] = []
        self.peak = 0.0
        self.peak_pos = -1
        self.head_moved = False

    def _settle(self) -> None:
        self.state = "settling"
        self.still_since = None
        self.recent.clear()
        self._end_event()

    def _discard(self, why: str) -> str:
        self.discarded[why] = self.discarded.get(why, 0) + 1
        return why

    @property
    def enter_threshold(self) -> float:
        return max(self.cfg.enter_min, self.cfg.noise_k * self.noise)

    def _head_moving(self, rec: BufferedFrame, prev: BufferedFrame | None, m_ref: MotionMeasure) -> bool:
        c = self.cfg
        if m_ref.rigid_residual > c.head_residual:
            return True
        if prev is None:
            return False
        dt = max(rec.t_ms - prev.t_ms, 1.0) / 1000.0
        step = measure_motion(rec.points, prev.points)
        return (
            abs(step.rotation_deg) / dt > c.head_rotation_speed
            or step.shift / dt > c.head_shift_speed
            or abs(step.scale - 1.0) / dt > c.head_scale_speed
        )

    def update(self, rec: BufferedFrame, buffer: RollingBuffer) -> SpotUpdate:
        """Advance by one tracked frame (already appended to `buffer`)."""
        c = self.cfg
        prev, self.prev = self.prev, rec
        self.history.append(rec.landmarks.astype(np.float64))
        rec.points = np.mean(self.history, axis=0)
        if self.state == "waiting":
            self.seen += 1
            if self.seen >= c.warmup_frames:
                self._settle()
            return SpotUpdate(self.state)

        if self.state == "settling":
            step = measure_motion(rec.points, prev.points) if prev is not None else None
            still = step is not None and step.motion < c.settle_threshold
            if step is not None:
                dt = max(rec.t_ms - prev.t_ms, 1.0) / 1000.0
                still = still and abs(step.rotation_deg) / dt < c.head_rotation_speed
                still = still and step.shift / dt < c.head_shift_speed
            if not still:
                self.still_since = None
            elif self.still_since is None:
                self.still_since = rec.t_ms
            if self.still_since is not None and rec.t_ms - self.still_since >= c.settle_ms:
                self.state = "quiet"
                self.eligible_from = rec.index
            return SpotUpdate(self.state)

        if self.state == "quiet":
            ref = buffer.latest_at_or_before(rec.t_ms - c.ref_lag_ms, self.eligible_from)
            if ref is None:
                ref = buffer.get(self.eligible_from)
            if ref is None or ref.index == rec.index:
                return SpotUpdate(self.state)
            m = measure_motion(rec.points, ref.points)
            self.recent.append(m.motion)
            smooth = float(np.mean(self.recent))
            if self._head_moving(rec, prev, m):
                self._settle()
                return SpotUpdate(self.state, ref, smooth, m, discarded=self._discard("head motion"))
            if smooth > self.enter_threshold:
                self.state = "active"
                self.ref = ref
                self.trace = [
                    (f, measure_motion(f.points, ref.points)) for f in buffer.since(ref.index)
                ]
                self._track_peak()
                return SpotUpdate(self.state, ref, smooth, m)
            # Only quiet frames teach the noise level, so a movement cannot raise its own bar.
            self.noise += c.noise_alpha * (m.motion - self.noise)
            return SpotUpdate(self.state, ref, smooth, m)

        # active
        ref = self.ref
        m = measure_motion(rec.points, ref.points)
        self.trace.append((rec, m))
        self.recent.append(m.motion)
        smooth = float(np.mean(self.recent))
        if self._head_moving(rec, prev, m):
            self.head_moved = True
        self._track_peak()
        falling = len(self.trace) - 1 > self.peak_pos
        if falling and smooth < max(c.exit_min, c.exit_frac * self.peak):
            return self._close(rec, smooth, m, returned=True)
        if rec.t_ms - ref.t_ms > c.max_event_ms:
            return self._close(rec, smooth, m, returned=False)
        return SpotUpdate(self.state, ref, smooth, m)

    def _track_peak(self) -> None:
        k = self.cfg.smooth_frames
        vals = [t[1].motion for t in self.trace[-k:]]
        v = float(np.mean(vals))
        if v > self.peak:
            self.peak, self.peak_pos = v, len(self.trace) - 1

    def _close(self, rec: BufferedFrame, smooth: float, m: MotionMeasure, returned: bool) -> SpotUpdate:
        c = self.cfg
        ref, trace, head = self.ref, self.trace, self.head_moved
        if head:
            self._settle()
            return SpotUpdate(self.state, ref, smooth, m, discarded=self._discard("head motion"))
        raw = np.array([t[1].motion for t in trace])
        # Centred 3-tap smoothing: the whole trace is known now, so no lag is needed.
        s = np.convolve(np.pad(raw, 1, mode="edge"), np.ones(3) / 3, mode="valid")
        apex = int(np.argmax(s))
        peak = float(s[apex])
        below = s <= c.edge_frac * peak
        before = np.nonzero(below[:apex])[0]
        after = np.nonzero(below[apex + 1 :])[0]
        on = int(before[-1]) if len(before) else 0
        off = apex + 1 + int(after[0]) if len(after) else len(s) - 1
        onset, apex_f, offset = trace[on][0], trace[apex][0], trace[off][0]
        regions = trace[apex][1].regions
        region = max(regions, key=regions.get)
        duration = offset.t_ms - onset.t_ms
        if returned:
            self.state = "quiet"
            self.eligible_from = rec.index
            self.recent.clear()
            self._end_event()
        else:
            self._settle()
        if duration < c.min_duration_ms:
            return SpotUpdate(self.state, ref, smooth, m, discarded=self._discard("too short"))
        micro = returned and duration <= c.micro_max_ms and peak <= c.micro_max_amplitude
        ev = SpottedEvent(
            onset=onset, apex=apex_f, offset=offset, reference=ref, amplitude=peak,
            kind="micro" if micro else "macro", region=region,
        )
        return SpotUpdate(self.state, ref, smooth, m, events=[ev])


# --- MEGC spotting metric ---------------------------------------------------------------


def interval_iou(a: tuple[float, float], b: tuple[float, float]) -> float:
    """IoU of two closed frame intervals [onset, offset] (frames counted inclusively)."""
    inter = min(a[1], b[1]) - max(a[0], b[0]) + 1
    if inter <= 0:
        return 0.0
    union = (a[1] - a[0] + 1) + (b[1] - b[0] + 1) - inter
    return inter / union


@dataclass
class SpottingScore:
    tp: int
    fp: int
    fn: int

    @property
    def precision(self) -> float:
        return self.tp / (self.tp + self.fp) if self.tp + self.fp else 0.0

    @property
    def recall(self) -> float:
        return self.tp / (self.tp + self.fn) if self.tp + self.fn else 0.0

    @property
    def f1(self) -> float:
        p, r = self.precision, self.recall
        return 2 * p * r / (p + r) if p + r else 0.0

    def to_dict(self) -> dict[str, float]:
        return {"tp": self.tp, "fp": self.fp, "fn": self.fn, "precision": self.precision,
                "recall": self.recall, "f1": self.f1}


def score_intervals(
    predicted: list[tuple[float, float]], truth: list[tuple[float, float]], iou: float = 0.5
) -> SpottingScore:
    """MEGC spotting: a prediction is a true positive when its IoU with a not yet matched
    ground-truth interval is >= `iou` (greedy, best IoU first); frame intervals [on, off]."""
    pairs = sorted(
        ((interval_iou(p, g), i, j) for i, p in enumerate(predicted) for j, g in enumerate(truth)),
        reverse=True,
    )
    used_p, used_g = set(), set()
    for v, i, j in pairs:
        if v < iou:
            break
        if i in used_p or j in used_g:
            continue
        used_p.add(i)
        used_g.add(j)
    tp = len(used_p)
    return SpottingScore(tp=tp, fp=len(predicted) - tp, fn=len(truth) - tp)
