"""Onset and apex spotting from landmark motion and optical flow, and the MEGC metric.

Motion is the displacement of landmark groups (brows, lids, cheeks, mouth corners, lips,
per side, and their mirror-symmetric pairs) after removing the head's similarity motion
(`realtime.motion`), in % of the inter-ocular distance (IOD). Each group's displacement is
divided by that group's own running quiet level (lips jitter ~2x more than cheeks), and
thresholds apply to the largest of these scores. Two detectors share one state machine:

- **transient (micro)**: each frame is compared with the frames `bump_lag_ms` before and
  after it; the score is the smallest of its displacement from the past one, from the
  future one, and from their mean. Slow drift (0.5-1 % IOD over seconds, DESIGN.md) and
  the one-sided edges of longer movements score low; a movement that rises and falls
  within ~2 lags scores high. Results come `bump_lag_ms` after the frame. The
  displacements are measured by optical flow inside the aligned face crop
  (`realtime.motion.FlowMeter`, DESIGN.md's image cue) when frames carry a grey crop, as
  the recognizer's do, else by the landmarks: on the synthetic videos landmark jitter hid
  a third of the weak micro-expressions, flow none. A micro event is reported when such a
  transient closes, lasted at most `micro_max_ms`, stayed below `micro_max_amplitude`,
  came back to near its onset (flow cue: `return_frac`), and did not overlap a
  sustained movement or head motion.
- **sustained (macro)**: displacement from the frame `macro_lag_ms` back. Crossing
  `enter_z` (and `enter_min` % IOD) starts an event with that frame as onset reference;
  it closes when the score falls below `exit_frac` of its peak (or after `max_event_ms`).
  Longer or larger than a micro-expression -> a macro event; otherwise it is left to the
  transient detector.

Onset and offset of both come from the half-maximum crossings of the leading group's
curve, doubled back from the apex (a raised-cosine rise reaches half height halfway):
this depends on the steep part of the curve, not on where it meets the noise.

States: **waiting** (face just found; its first tracked frames jump 0.5-1.7 % IOD, so none
is a reference), **settling** (until the face holds still for `settle_ms`: after
(re)acquisition, head motion, or a movement that did not return), **quiet** (the onset
reference follows `ref_lag_ms` behind, refreshed every frame while still), **active** (a
sustained movement). Rigid head motion beyond the `head_*` limits (rotation, translation,
scale, or out-of-plane residual on the rigid points) makes a movement head motion, which
is not an expression: nothing is emitted.

All thresholds live in `SpottingConfig`. The defaults were set on synthetic spotting videos
of `moext-train synth` (a real face photo with generated motions, sensor noise and head
sway; seeds 0 and 1, the flow cue's on seeds 0-7) against DESIGN.md's measured jitter
levels; they are a starting point for real cameras, not a fit to any real dataset. Held-out
figures: `benchmarks/spotting.py`.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field

import numpy as np

from realtime.buffer import BufferedFrame, RollingBuffer
from realtime.motion import (
    GROUP_NAMES,
    REGION_GROUPS,
    FlowMeter,
    MotionMeasure,
    group_magnitudes,
    measure_motion,
)


@dataclass
class SpottingConfig:
    """Thresholds of the spotter (times in ms, distances in % IOD).

    Attributes:
        warmup_frames: tracked frames ignored after a face is (re)found (tracker jump).
        settle_ms: how long the face must stay still before a reference is taken.
        settle_threshold: largest group motion between consecutive frames counted as still.
        landmark_frames: landmarks are averaged over this many consecutive frames before
            motion is measured. On a still face MediaPipe's tracker can fall into a 2-frame
            oscillation (its ROI follows its own output), ~1 % IOD frame to frame on a
            static photo here; an even window cancels it, and 4 frames (1.5 frames of lag)
            also halves independent jitter.
        ref_lag_ms: how far behind the current frame the quiet reference follows. Longer
            than a micro-expression's rise (onset to apex ~70-250 ms) so that the reference
            is still neutral when the entry threshold is crossed.
        macro_lag_ms: the sustained-movement (macro) detector measures from the frame this
            far back: macro-expressions rise over 0.3-1 s, too slowly to stand out over
            `ref_lag_ms`.
        smooth_frames: causal moving average over this many frames of the score.
        noise_init: start-up guess of every group's quiet level (% IOD RMS); it weighs as
            one frame in a running mean, so it is replaced within a second. Set high so
            that the first second cannot produce events from a guess that was too low.
        noise_floor: the quiet level never goes below this (a perfectly still synthetic
            face must not make every 0.1 % wobble an event).
        noise_alpha: EMA rate of the quiet levels (per frame).
        enter_z: entry threshold of the sustained-movement (macro) detector on its score
            (group displacement from the lagged reference / that group's quiet RMS).
        enter_min: ...and its leading group must have moved at least this far (% IOD).
        bump_lag_ms: the transient (micro) detector compares each frame with the mean of
            the frames this far before and after it (a second difference): slow drift
            cancels, a movement that rises and falls within ~2x this does not. Results
            come this much later than the frame. Measured on the synthetic videos: micro
            apexes score 3.2-6.4 quiet-RMS units, quiet frames p99 2.8 (a causal lagged
            reference gave apexes 2.0-3.8 against a quiet p99 of 3.0).
        bump_z: entry threshold of the transient detector (second difference / its RMS).
        bump_min: ...and its leading group must have moved at least this far (% IOD).
        transient_cue: what the transient detector measures: "flow" (optical flow inside
            the aligned crop, `realtime.motion.FlowMeter`; used for frames that carry a
            grey crop, as the recognizer's do) or "landmarks" (landmark displacement only).
        flow_noise_floor, flow_noise_init, flow_z, flow_min: `noise_floor`, `noise_init`,
            `bump_z` and `bump_min` of the transient detector on the flow cue, whose quiet
            level is several times lower than the landmarks' (flow is measured over many
            pixels at once: 0.02-0.07 % IOD RMS on the synthetic videos, seeds 0-7). With
            the landmarks' start-up guess of 1.0, a test's 2 % IOD micro-expression 1.5 s
            after the flow started scored z 3.7, below `flow_z`, and was missed.
        return_window_ms, return_frac: on the flow cue a micro event must return: some
            frame within `return_window_ms` (at most `bump_lag_ms`, as far as the buffer
            reaches) after its offset is back within `return_frac` of the apex's
            displacement from the onset (leading group). The event's amplitude is then that
            apex displacement (% IOD, by optical flow: about a third low, see `FlowMeter`).
        exit_frac: the event closes once the score falls below exit_frac * its peak.
        edge_scale: onset/offset = apex -/+ edge_scale * (distance from the apex to the
            half-maximum crossing); 2 is exact for a raised-cosine rise and fall.
        min_duration_ms: shorter movements are tracker glitches, not expressions (MEs last
            at least 1/25 s).
        max_event_ms: a movement still going after this is closed as macro and the spotter
            settles again (a held expression, or a new resting pose).
        micro_max_ms: onset-to-offset duration of a micro-expression (MEs last up to ~0.5 s).
        micro_max_amplitude: peak group displacement (% IOD) above which a movement is
            macro however brief. On the flow cue this is the onset-to-apex displacement by
            optical flow, which reads about a third low for small local motions (see
            `FlowMeter`), so the limit is looser there; macro movements are mostly caught by
            the sustained detector anyway.
        head_rotation: degrees of in-plane head rotation between reference and current frame
            that make a movement head motion...
        head_shift: ...or % IOD of head translation...
        head_scale: ...or relative change of face size (towards or away from the camera)...
        head_residual: ...or RMS residual (% IOD) of the rigid points after the similarity
            fit, which grows when the head turns out of plane (yaw, pitch).
    """

    warmup_frames: int = 3
    settle_ms: float = 250.0
    settle_threshold: float = 1.5
    landmark_frames: int = 4
    ref_lag_ms: float = 230.0
    macro_lag_ms: float = 700.0
    smooth_frames: int = 2
    noise_init: float = 1.0
    noise_floor: float = 0.15
    noise_alpha: float = 0.02
    enter_z: float = 3.0
    enter_min: float = 3.0
    bump_lag_ms: float = 270.0
    bump_z: float = 3.3
    bump_min: float = 0.6
    transient_cue: str = "flow"
    flow_noise_floor: float = 0.03
    flow_noise_init: float = 0.2
    flow_z: float = 4.0
    flow_min: float = 0.15
    return_window_ms: float = 140.0
    return_frac: float = 0.33
    exit_frac: float = 0.5
    edge_scale: float = 2.0
    min_duration_ms: float = 60.0
    max_event_ms: float = 3000.0
    micro_max_ms: float = 550.0
    micro_max_amplitude: float = 4.5
    head_rotation: float = 2.0
    head_shift: float = 15.0
    head_scale: float = 0.08
    head_residual: float = 6.0


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
    group: str


@dataclass
class SpotUpdate:
    """The spotter's view of one frame."""

    state: str
    reference: BufferedFrame | None = None
    motion: float | None = None
    score: float | None = None
    measure: MotionMeasure | None = None
    events: list[SpottedEvent] = field(default_factory=list)
    discarded: str | None = None  # why a movement was dropped at this frame, if one was


_REGION_OF = {g: r for r, gs in REGION_GROUPS.items() for g in gs}


class Spotter:
    def __init__(self, cfg: SpottingConfig | None = None):
        self.cfg = cfg or SpottingConfig()
        if self.cfg.transient_cue not in ("flow", "landmarks"):
            raise ValueError(f"transient_cue={self.cfg.transient_cue!r}: choose flow or landmarks")
        self.flow = FlowMeter() if self.cfg.transient_cue == "flow" else None
        self.noise_sq = np.full(len(GROUP_NAMES), self.cfg.noise_init**2)
        self.bump_noise_sq = np.full(len(GROUP_NAMES), self.cfg.noise_init**2)
        self.flow_noise_sq = np.full(len(GROUP_NAMES), self.cfg.flow_noise_init**2)
        self.noise_count = 0
        self.bump_noise_count = 0
        self.flow_noise_count = 0
        self.discarded: dict[str, int] = {}
        self.reset()

    def reset(self) -> None:
        """Forget the face (lost, or another one): back to waiting. Noise levels are kept."""
        self.state = "waiting"
        self.seen = 0
        self.still_since: float | None = None
        self.prev: BufferedFrame | None = None
        self.eligible_from = 0
        # The transient detector's own start: set when the face has settled, but not moved
        # when the sustained detector returns to quiet after a movement. Moving it there
        # blinded the transient detector for two lags right after any movement that the
        # sustained detector had also entered on, i.e. to the larger micro-expressions
        # themselves (their frames are checked against `macro_spans` instead).
        self.bump_from = 0
        self.recent: deque[float] = deque(maxlen=self.cfg.smooth_frames)
        self.history: deque[np.ndarray] = deque(maxlen=self.cfg.landmark_frames)
        self.bump_recent: deque[float] = deque(maxlen=self.cfg.smooth_frames)
        self.bump_trace: list[tuple[BufferedFrame, np.ndarray]] = []
        self.bump_peak = 0.0
        self.bump_last = -1  # index of the last centre frame scored
        self.bump_head = False
        self.bump_flow = False  # whether the open transient is measured by optical flow
        self.last_micro_off = -1e18
        self.bump_before: deque[tuple[BufferedFrame, np.ndarray]] = deque(maxlen=12)
        # (start, end) ms of macro movements, recent and ongoing: transients inside them are
        # their edges, not micro-expressions.
        self.macro_spans: deque[list[float]] = deque(maxlen=8)
        self._end_event()

    def _end_event(self) -> None:
        self.ref: BufferedFrame | None = None
        self.trace: list[tuple[BufferedFrame, MotionMeasure]] = []
        self.peak = 0.0
        self.head_moved = False

    def _settle(self) -> None:
        self.state = "settling"
        self.still_since = None
        self.recent.clear()
        self.bump_recent.clear()
        self.bump_trace = []
        self.bump_peak = 0.0
        self.bump_before.clear()
        if self.macro_spans and self.macro_spans[-1][1] == float("inf"):
            self.macro_spans[-1][1] = self.prev.t_ms if self.prev is not None else 0.0
        self._end_event()

    def _discard(self, why: str) -> str:
        self.discarded[why] = self.discarded.get(why, 0) + 1
        return why

    @property
    def noise(self) -> np.ndarray:
        """(G,) quiet RMS level of each landmark group, % IOD."""
        return np.maximum(np.sqrt(self.noise_sq), self.cfg.noise_floor)

    def score(self, m: MotionMeasure) -> float:
        """Largest group displacement in units of that group's quiet level."""
        ok = m.groups >= self.cfg.enter_min  # below the floor a group cannot start an event
        z = m.groups / self.noise
        return float(np.where(ok, z, np.minimum(z, self.cfg.enter_z * 0.99)).max())

    def _head_moving(self, m: MotionMeasure) -> bool:
        c = self.cfg
        return (
            m.rigid_residual > c.head_residual
            or abs(m.rotation_deg) > c.head_rotation
            or m.shift > c.head_shift
            or abs(m.scale - 1.0) > c.head_scale
        )

    def update(self, rec: BufferedFrame, buffer: RollingBuffer) -> SpotUpdate:
        """Advance by one tracked frame (already appended to `buffer`)."""
        c = self.cfg
        self._buffer = buffer
        prev, self.prev = self.prev, rec
        self.history.append(rec.landmarks.astype(np.float64))
        rec.points = sum(self.history) / len(self.history)
        if self.state == "waiting":
            self.seen += 1
            if self.seen >= c.warmup_frames:
                self._settle()
            return SpotUpdate(self.state)

        if self.state == "settling":
            self.bump_recent.clear()
            step = measure_motion(rec.points, prev.points) if prev is not None else None
            still = step is not None and step.motion < c.settle_threshold and not self._head_moving(step)
            if not still:
                self.still_since = None
            elif self.still_since is None:
                self.still_since = rec.t_ms
            if self.still_since is not None and rec.t_ms - self.still_since >= c.settle_ms:
                self.state = "quiet"
                self.eligible_from = rec.index
                self.bump_from = rec.index
            return SpotUpdate(self.state)

        if self.state == "quiet":
            bump_events, bump_why = self._bump_step(rec, buffer)
            ref = buffer.latest_at_or_before(rec.t_ms - c.ref_lag_ms, self.eligible_from)
            if ref is None:
                ref = buffer.get(self.eligible_from)
            if ref is None or ref.index == rec.index:
                return SpotUpdate(self.state, events=bump_events, discarded=bump_why)
            m = measure_motion(rec.points, ref.points)
            macro_ref = buffer.latest_at_or_before(rec.t_ms - c.macro_lag_ms, self.eligible_from)
            if macro_ref is None:
                macro_ref = buffer.get(self.eligible_from) or ref
            m_macro = measure_motion(rec.points, macro_ref.points)
            z = self.score(m_macro)
            self.recent.append(z)
            smooth = float(np.mean(self.recent))
            if self._head_moving(m):
                self._settle()
                return SpotUpdate(self.state, ref, m.motion, smooth, m, bump_events, bump_why)
            if smooth > c.enter_z:
                self.state = "active"
                self.ref = ref = macro_ref
                self.trace = [
                    (f, measure_motion(f.points, ref.points)) for f in buffer.since(ref.index)
                ]
                self.peak = smooth
                self.macro_spans.append([ref.t_ms - c.bump_lag_ms, float("inf")])
                return SpotUpdate(self.state, ref, m.motion, smooth, m, bump_events, bump_why)
            # Only quiet frames teach the noise level, so a movement cannot raise its own bar.
            # A running mean at first (the start-up guess weighs like one frame), then an EMA.
            self.noise_count += 1
            a = max(c.noise_alpha, 1.0 / (self.noise_count + 1))
            self.noise_sq += a * (m_macro.groups**2 - self.noise_sq)
            return SpotUpdate(self.state, ref, m.motion, smooth, m, bump_events, bump_why)

        # active
        bump_events, bump_why = self._bump_step(rec, buffer)
        ref = self.ref
        m = measure_motion(rec.points, ref.points)
        self.trace.append((rec, m))
        self.recent.append(self.score(m))
        smooth = float(np.mean(self.recent))
        if self._head_moving(m):
            self.head_moved = True
        self.peak = max(self.peak, smooth)
        if smooth < c.exit_frac * self.peak:
            return self._close(rec, smooth, m, returned=True)
        if rec.t_ms - ref.t_ms > c.max_event_ms:
            return self._close(rec, smooth, m, returned=False)
        return SpotUpdate(self.state, ref, m.motion, smooth, m, bump_events, bump_why)

    def _close(self, rec: BufferedFrame, smooth: float, m: MotionMeasure, returned: bool) -> SpotUpdate:
        c = self.cfg
        ref, trace, head = self.ref, self.trace, self.head_moved
        if self.macro_spans and self.macro_spans[-1][1] == float("inf"):
            self.macro_spans[-1][1] = rec.t_ms
        if returned:
            self.state = "quiet"
            self.eligible_from = rec.index
            self.recent.clear()
            self._end_event()
        else:
            self._settle()
        if head:
            return SpotUpdate(self.state, ref, m.motion, smooth, m, discarded=self._discard("head motion"))
        groups = np.stack([t[1].groups for t in trace])  # (T, G) % IOD
        z = groups / self.noise
        # Centred 3-tap smoothing: the whole trace is known now, so no lag is needed.
        zs = _smooth3(z.max(1))
        apex = int(np.argmax(zs))
        g = int(np.argmax(z[apex]))
        s = _smooth3(groups[:, g])  # the leading group's displacement, % IOD
        apex = int(np.argmax(s))
        peak = float(s[apex])
        base = float(s[: apex + 1].min())
        half = base + 0.5 * (peak - base)
        t = np.array([f.t_ms for f, _ in trace])
        t_on = _crossing(t, s, half, apex, -1)
        t_off = _crossing(t, s, half, apex, +1)
        t_on = max(t[apex] - c.edge_scale * (t[apex] - t_on), t[0])
        t_off = min(t[apex] + c.edge_scale * (t_off - t[apex]), t[-1])
        on = int(np.argmin(np.abs(t - t_on)))
        off = int(np.argmin(np.abs(t - t_off)))
        onset, apex_f, offset = (self._unlag(trace[k][0]) for k in (on, apex, off))
        duration = offset.t_ms - onset.t_ms
        if duration < c.min_duration_ms:
            # Nothing the sustained detector reports, so it must not mask a transient either.
            if self.macro_spans:
                self.macro_spans.pop()
            return SpotUpdate(self.state, ref, m.motion, smooth, m, discarded=self._discard("too short"))
        if returned and duration <= c.micro_max_ms and peak <= c.micro_max_amplitude:
            # Brief and small: the transient detector reports it (with better edges).
            if self.macro_spans:
                self.macro_spans.pop()
            return SpotUpdate(self.state, ref, m.motion, smooth, m)
        self.macro_spans[-1] = [min(self.macro_spans[-1][0], onset.t_ms - c.bump_lag_ms),
                                offset.t_ms + c.bump_lag_ms]
        name = GROUP_NAMES[g]
        ev = SpottedEvent(
            onset=onset, apex=apex_f, offset=offset, reference=ref, amplitude=peak,
            kind="macro", region=_REGION_OF[name], group=name,
        )
        return SpotUpdate(self.state, ref, m.motion, smooth, m, events=[ev])

    def _unlag(self, f: BufferedFrame) -> BufferedFrame:
        """The frame whose time `f.points` stand for: averaging the last k frames' landmarks
        centres them (k - 1) / 2 frames back."""
        back = (self.cfg.landmark_frames - 1) // 2 + (self.cfg.landmark_frames - 1) % 2
        return self._buffer.get(f.index - back) or f

    # -- the transient (micro) detector -------------------------------------------------

    def _bump_step(self, rec: BufferedFrame, buffer: RollingBuffer):
        """Score the frame `bump_lag_ms` back against the mean of its past and future
        neighbours; returns (finished micro events, why one was dropped or None)."""
        c = self.cfg
        centre = buffer.latest_at_or_before(rec.t_ms - c.bump_lag_ms, self.bump_from)
        if centre is None or centre.index <= self.bump_last:
            return [], None
        past = buffer.latest_at_or_before(centre.t_ms - c.bump_lag_ms, self.bump_from)
        if past is None:
            return [], None
        self.bump_last = centre.index
        flow = self._flow_pair(past, centre) and self._flow_pair(centre, rec)
        if flow != self.bump_flow:  # the cue changed: scores of the two do not mix
            self.bump_trace = []
            self.bump_before.clear()
            self.bump_flow = flow
        floor = c.flow_noise_floor if flow else c.noise_floor
        z_in = c.flow_z if flow else c.bump_z
        least = c.flow_min if flow else c.bump_min
        # A transient differs from the mean of its neighbours AND from each of them; the
        # second difference alone also answers, at half height, one lag before and after
        # a bump (there one neighbour is inside it), and the one-sided differences alone
        # follow slow drift. The smallest of the three keeps only the transient. Against
        # the neighbours' mean, each group's vector is the mean of its two one-sided
        # vectors (both fits remove the head's motion), so two fits serve all three.
        if flow:  # the same two vectors, from the crops' texture (future one: centre -> rec)
            # Head motion needs no check of its own here: the quiet state's check (current
            # frame against the reference) sees it a lag before this centre reaches it, and
            # settling clears the transient and restarts this detector after it.
            head = False
            v_past = self._flow(past, centre).vectors
            v_fut = -self._flow(centre, rec).vectors
            noise_sq = self.flow_noise_sq
        else:
            m_past = measure_motion(centre.points, past.points)
            m_fut = measure_motion(centre.points, rec.points)
            head = self._head_moving(m_past) or self._head_moving(m_fut)
            v_past, v_fut = m_past.vectors, m_fut.vectors
            noise_sq = self.bump_noise_sq
        mean = group_magnitudes(0.5 * (v_past + v_fut))
        groups = np.minimum.reduce([mean, group_magnitudes(v_past), group_magnitudes(v_fut)])
        noise = np.maximum(np.sqrt(noise_sq), floor)
        z = groups / noise
        score = float(np.where(groups >= least, z, np.minimum(z, 0.99 * z_in)).max())
        self.bump_recent.append(score)
        sm = float(np.mean(self.bump_recent))
        if self.bump_trace:
            self.bump_trace.append((centre, groups))
            self.bump_head |= head
            self.bump_peak = max(self.bump_peak, sm)
            if sm < c.exit_frac * self.bump_peak:
                return self._close_bump()
            if centre.t_ms - self.bump_trace[0][0].t_ms > 2 * c.max_event_ms:
                self.bump_trace = []
                return [], self._discard("long transient")
        elif sm > z_in and not head:
            self.bump_trace = list(self.bump_before) + [(centre, groups)]
            self.bump_peak = sm
            self.bump_head = False
        elif flow:
            self.flow_noise_count += 1
            a = max(c.noise_alpha, 1.0 / (self.flow_noise_count + 1))
            self.flow_noise_sq += a * (groups**2 - self.flow_noise_sq)
        else:
            self.bump_noise_count += 1
            a = max(c.noise_alpha, 1.0 / (self.bump_noise_count + 1))
            self.bump_noise_sq += a * (groups**2 - self.bump_noise_sq)
        self.bump_before.append((centre, groups))
        return [], None

    def _close_bump(self):
        c = self.cfg
        trace, head = self.bump_trace, self.bump_head
        self.bump_trace = []
        self.bump_before.clear()
        if head:
            return [], self._discard("head motion")
        frames = [f for f, _ in trace]
        groups = np.stack([g for _, g in trace])  # (T, G) % IOD
        if self.bump_flow:
            noise = np.maximum(np.sqrt(self.flow_noise_sq), c.flow_noise_floor)
        else:
            noise = np.maximum(np.sqrt(self.bump_noise_sq), c.noise_floor)
        zs = _smooth3((groups / noise).max(1))
        apex = int(np.argmax(zs))
        g = int(np.argmax(groups[apex] / noise))
        s = _smooth3(groups[:, g])
        apex = int(np.argmax(s))
        peak = float(s[apex])
        half = 0.5 * peak  # the second difference is zero at rest: no baseline to remove
        t = np.array([f.t_ms for f in frames])
        t_on = _crossing(t, s, half, apex, -1)
        t_off = _crossing(t, s, half, apex, +1)
        t_on = max(t[apex] - c.edge_scale * (t[apex] - t_on), t[0])
        t_off = min(t[apex] + c.edge_scale * (t_off - t[apex]), t[-1])
        on = int(np.argmin(np.abs(t - t_on)))
        off = int(np.argmin(np.abs(t - t_off)))
        if self.bump_flow:  # flow compares the frames themselves: no landmark averaging lag
            onset, apex_f, offset = frames[on], frames[apex], frames[off]
        else:
            onset, apex_f, offset = (self._unlag(frames[k]) for k in (on, apex, off))
        duration = offset.t_ms - onset.t_ms
        for start, end in self.macro_spans:
            if onset.t_ms <= end and offset.t_ms >= start:
                return [], self._discard("edge of a macro movement")
        if duration < c.min_duration_ms:
            return [], self._discard("too short")
        if onset.t_ms - self.last_micro_off < c.bump_lag_ms:
            # One lag after a transient its trailing neighbour sits inside it: an echo.
            return [], self._discard("echo of a transient")
        if duration > c.micro_max_ms:
            return [], self._discard("transient too long or large for micro")
        if self.bump_flow:
            # The face must come back: within `return_window_ms` after the offset, the
            # leading group is within `return_frac` of its apex displacement from the onset.
            # A corner of a longer movement's rise or fall also scores as a transient, but
            # the face stays displaced after it (measured on the synthetic videos: micro
            # events came back to 0.01-0.14 of their rise, such corners to 0.23 or more).
            # The buffer reaches `bump_lag_ms` past the offset, so the window is cut there.
            rise = self.flow.measure(onset.grey, onset.grey_points, apex_f.grey).groups[g]
            if rise < c.flow_min:  # onset and apex (nearly) the same frame: nothing moved
                return [], self._discard("too small")
            window = min(c.return_window_ms, c.bump_lag_ms)
            after = [f for f in self._buffer.since(offset.index)
                     if f.t_ms <= offset.t_ms + window and f.grey is not None]
            back = min((self.flow.measure(onset.grey, onset.grey_points, f.grey).groups[g]
                        for f in after), default=rise)
            if back > c.return_frac * rise:
                return [], self._discard("did not return (part of a longer movement)")
            peak = float(rise)
        if peak > c.micro_max_amplitude:
            return [], self._discard("transient too long or large for micro")
        name = GROUP_NAMES[g]
        self.last_micro_off = offset.t_ms
        return [SpottedEvent(
            onset=onset, apex=apex_f, offset=offset, reference=onset, amplitude=peak,
            kind="micro", region=_REGION_OF[name], group=name,
        )], None


    def _flow_pair(self, a: BufferedFrame, b: BufferedFrame) -> bool:
        return self.flow is not None and a.grey is not None and b.grey is not None

    def _flow(self, a: BufferedFrame, b: BufferedFrame) -> MotionMeasure:
        """Optical-flow motion from frame `a` to the later frame `b`, measured once per pair
        (each frame is the future of one centre and later the centre of the next); the
        recognizer's stage 1 measures most pairs ahead of time (`BufferedFrame.flow`)."""
        if b.flow is not None and b.flow[0] == a.t_ms:
            return b.flow[1]
        m = self.flow.measure(a.grey, a.grey_points, b.grey)
        b.flow = (a.t_ms, m)
        return m


def _smooth3(a: np.ndarray) -> np.ndarray:
    return np.convolve(np.pad(a, 1, mode="edge"), np.ones(3) / 3, mode="valid")


def _crossing(t: np.ndarray, s: np.ndarray, level: float, start: int, step: int) -> float:
    """Time where `s` first falls to `level` walking from `start` in direction `step`,
    linearly interpolated between frames; the trace's end if it never does."""
    i = start
    while 0 <= i + step < len(s):
        j = i + step
        if s[j] <= level:
            frac = (s[i] - level) / max(s[i] - s[j], 1e-9)
            return float(t[i] + frac * (t[j] - t[i]))
        i = j
    return float(t[i])


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
