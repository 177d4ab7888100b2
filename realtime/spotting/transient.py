"""The transient detector: movements that rise and fall within about 0.5 s.

Each frame (the *centre*) is compared with the frames `transient_lag_ms` before and after it;
its score is the smallest of its displacement from the past one, from the future one, and
from their mean (a second difference). Slow drift (0.5-1 % IOD over seconds on real faces,
docs/DESIGN.md) and the one-sided edges of longer movements score low; a movement that
rises and falls within ~2 lags scores high. Results come `transient_lag_ms` after the frame.

Displacements are measured by optical flow inside the aligned face crop (`FlowMeter`) when
frames carry a grey crop, as the recognizer's do, else by the landmarks: on the synthetic
videos landmark jitter hid a third of the weak micro-expressions, flow none. A micro event
is reported when a transient closes, came back to near its onset (flow cue: `return_frac`),
was not a blink (AU45, when frames carry action units), and is not the edge of a reported
sustained movement; its kind is `events.event_kind` of its duration, like every event's.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from typing import Callable

import numpy as np

from realtime.buffer import BufferedFrame, RollingBuffer
from realtime.motion import GROUP_NAMES, FlowMeter, MotionMeasure, group_magnitudes, measure_motion
from realtime.spotting.common import MacroSpans, NoiseLevel, floored_z
from realtime.spotting.config import SpottingConfig
from realtime.spotting.edges import event_edges
from realtime.spotting.events import REGION_OF, Recent, SpottedEvent, event_kind

BEFORE_MS = 400.0  # how far back a transient's trace reaches before it entered

# Groups on the eyelids: a transient led by one of them may be a blink.
_LID_GROUPS = {g for g in GROUP_NAMES if "lid" in g}


@dataclass
class SpotContext:
    """What the detectors share, owned by the `Spotter`.

    Attributes:
        buffer: the recognizer's rolling buffer (the frames a trace refers to).
        discard: (rule, (onset, apex, offset) frames, amplitude, detector) -> count and record
            a dropped movement (`DroppedMovement`); returns the rule.
        head_moving: whether a landmark motion measure shows head motion past the limits.
        unlag: the frame whose time averaged landmarks stand for.
        flow_displacement: (frame, earlier reference) -> (G,) group displacement between
            them by optical flow (% IOD), or None where the flow chain does not reach.
        direct_flow: (earlier frame, later frame) -> (G,) the same measured directly
            between the two crops (one flow computation), or None without crops.
        macro_spans: (start, end) ms of recent and ongoing sustained movements (end inf
            while open): transients inside them are their edges, not micro-expressions.
        frame_ms: the time between the last two frames (the stream's frame period).
        pending: transient events that overlap a sustained movement still open; the
            spotter reports or drops them once that movement is closed.
        deferred: (event, due ms) brief sustained movements that came back, left to the
            transient detector (better edges); reported as they are if it has not reported
            them by the due time.
        dropped_spans: (rule, onset ms, offset ms) of the transient detector's recent drops
            by noise rules (blink, head motion), which a deferred movement then shares.
    """

    buffer: RollingBuffer
    discard: Callable[..., str]
    head_moving: Callable[[MotionMeasure], bool]
    unlag: Callable[[BufferedFrame], BufferedFrame]
    flow_displacement: Callable[[BufferedFrame, BufferedFrame], np.ndarray | None]
    direct_flow: Callable[[BufferedFrame, BufferedFrame], np.ndarray | None]
    macro_spans: MacroSpans = field(default_factory=MacroSpans)
    frame_ms: float = 1000.0 / 30
    pending: list = field(default_factory=list)
    deferred: list = field(default_factory=list)
    dropped_spans: deque = field(default_factory=lambda: deque(maxlen=8))


class TransientDetector:
    """Owns its trace, its two quiet levels (landmark and flow cue) and its close step."""

    def __init__(self, cfg: SpottingConfig, ctx: SpotContext):
        self.cfg = cfg
        self.ctx = ctx
        self.flow_meter = FlowMeter() if cfg.transient_cue == "flow" else None
        self.noise_landmarks = NoiseLevel.start(cfg.noise_init, cfg.noise_floor, cfg.noise_tau_ms)
        self.noise_flow = NoiseLevel.start(cfg.flow_noise_init, cfg.flow_noise_floor, cfg.noise_tau_ms)
        self.last_micro_off = -1e18  # offset (ms) of the last micro event: echoes follow it
        self.restart(0)

    def restart(self, from_index: int) -> None:
        """Forget the open transient; score only centres from `from_index` on."""
        self.from_index = from_index
        self.recent = Recent(self.cfg.smooth_ms)
        self.trace: list[tuple[BufferedFrame, np.ndarray]] = []
        # The scored centres of the last 400 ms: a transient's trace starts with them.
        self.before: deque[tuple[BufferedFrame, np.ndarray]] = deque()
        self.peak = 0.0
        self.last = -1  # index of the last centre scored
        self.head = False
        self.by_flow = False  # whether the open transient is measured by optical flow

    def clear_trace(self) -> None:
        """Drop what is open but keep scoring (the face is still tracked)."""
        self.recent.clear()
        self.trace = []
        self.peak = 0.0
        self.before.clear()

    @property
    def open(self) -> bool:
        return bool(self.trace)

    def step(self, rec: BufferedFrame) -> tuple[list[SpottedEvent], str | None]:
        """Score the frame `transient_lag_ms` back against its past and future neighbours;
        returns (finished micro events, why one was dropped or None)."""
        c, buf = self.cfg, self.ctx.buffer
        centre = buf.latest_at_or_before(rec.t_ms - c.transient_lag_ms, self.from_index)
        if centre is None or centre.index <= self.last:
            return [], None
        past = buf.latest_at_or_before(centre.t_ms - c.transient_lag_ms, self.from_index)
        if past is None:
            return [], None
        self.last = centre.index
        use_flow = self._flow_pair(past, centre) and self._flow_pair(centre, rec)
        if use_flow != self.by_flow:  # the cue changed: scores of the two do not mix
            self.trace = []
            self.before.clear()
            self.by_flow = use_flow
        z_in = c.flow_z if use_flow else c.transient_z
        least = c.flow_min if use_flow else c.transient_min
        # A transient differs from the mean of its neighbours AND from each of them; the
        # second difference alone also answers, at half height, one lag before and after
        # a bump (there one neighbour is inside it), and the one-sided differences alone
        # follow slow drift. The smallest of the three keeps only the transient. Against
        # the neighbours' mean, each group's vector is the mean of its two one-sided
        # vectors (both fits remove the head's motion), so two fits serve all three.
        if use_flow:  # the same two vectors, from the crops' texture (future one: centre -> rec)
            # Head motion needs no check of its own here: the spotter's quiet-state check
            # (current frame against the reference) sees it a lag before this centre reaches
            # it, and restarts this detector.
            head = False
            v_past = self._hop(past, centre).vectors
            v_fut = -self._hop(centre, rec).vectors
            noise = self.noise_flow
        else:
            m_past = measure_motion(centre.points, past.points)
            m_fut = measure_motion(centre.points, rec.points)
            head = self.ctx.head_moving(m_past) or self.ctx.head_moving(m_fut)
            v_past, v_fut = m_past.vectors, m_fut.vectors
            noise = self.noise_landmarks
        mean = group_magnitudes(0.5 * (v_past + v_fut))
        groups = np.minimum.reduce([mean, group_magnitudes(v_past), group_magnitudes(v_fut)])
        score = floored_z(groups, noise, z_in, least)
        self.recent.append(centre.t_ms, score)
        sm = self.recent.mean()
        if self.trace:
            self.trace.append((centre, groups))
            self.head |= head
            self.peak = max(self.peak, sm)
            if sm < c.exit_frac * self.peak:
                return self.close()
            if centre.t_ms - self.trace[0][0].t_ms > 2 * c.max_event_ms:
                first, top = self.trace[0][0], max(self.trace, key=lambda x: float(x[1].max()))
                self.trace = []
                return [], self.ctx.discard("long transient", (first, top[0], centre),
                                            float(top[1].max()), "transient")
        elif sm > z_in and not head:
            self.trace = list(self.before) + [(centre, groups)]
            self.peak = sm
            self.head = False
        else:
            noise.learn(groups, self.ctx.frame_ms)  # only quiet frames teach the noise: a movement cannot raise its own bar
        self.before.append((centre, groups))
        while self.before and self.before[0][0].t_ms < centre.t_ms - BEFORE_MS:
            self.before.popleft()
        return [], None

    def close(self, truncated: bool = False) -> tuple[list[SpottedEvent], str | None]:
        """Close the open transient: an event, or the reason it was dropped (recorded with
        its frames through `SpotContext.discard`).

        `truncated`: the stream ended (or the face left) with the transient open; the return
        test cannot look past the last frame and is skipped, the event says so. A transient
        overlapping a sustained movement still open waits in `SpotContext.pending` for that
        movement's fate: reported, it already covers this one; dropped, this one is reported.
        """
        c, ctx = self.cfg, self.ctx
        trace, head = self.trace, self.head
        self.trace = []
        self.before.clear()
        if not trace:
            return [], None
        frames = [f for f, _ in trace]
        groups = np.stack([g for _, g in trace])  # (T, G) % IOD
        noise = (self.noise_flow if self.by_flow else self.noise_landmarks).rms
        g = int(np.argmax(groups[int(np.argmax(_max_smoothed([f.t_ms for f in frames], groups / noise)))] / noise))
        t = np.array([f.t_ms for f in frames])
        # The second difference is zero at rest: no baseline to remove.
        e = event_edges(t, groups[:, g], c.edge_scale, baseline=False)
        peak = e.peak
        if self.by_flow:  # flow compares the frames themselves: no landmark averaging lag
            onset, apex_f, offset = frames[e.onset], frames[e.apex], frames[e.offset]
        else:
            onset, apex_f, offset = (ctx.unlag(frames[k]) for k in (e.onset, e.apex, e.offset))
        edges = (onset, apex_f, offset)

        def drop(why: str) -> tuple[list[SpottedEvent], str]:
            return [], ctx.discard(why, edges, peak, "transient")

        if head:
            return drop("head motion")
        duration = offset.t_ms - onset.t_ms
        if duration < c.min_duration_ms:
            return drop("too short")
        if onset.t_ms - self.last_micro_off < c.transient_lag_ms:
            # One lag after a transient its trailing neighbour sits inside it: an echo.
            return drop("echo of a transient")
        name = GROUP_NAMES[g]
        if name in _LID_GROUPS and _blinked(frames, onset, c.blink_au):
            return drop("blink")
        if self.by_flow:
            # The face must come back: within `return_window_ms` after the offset, the
            # leading group is within `return_frac` of its apex displacement from the onset.
            # A corner of a longer movement's rise or fall also scores as a transient, but
            # the face stays displaced after it (on the development videos micro events came
            # back to 0.01-0.49 of their rise, such corners stayed at 1.39 or more; see
            # `SpottingConfig.return_frac`). A real movement that came only part of the way
            # back is the sustained detector's: it ends where the face stopped.
            # The buffer reaches `transient_lag_ms` past the offset, so the window is cut there.
            rise = self.flow_meter.measure(onset.grey, onset.grey_points, apex_f.grey).groups[g]
            if rise < c.flow_min:  # onset and apex (nearly) the same frame: nothing moved
                return drop("too small")
            if not truncated:
                window = min(c.return_window_ms, c.transient_lag_ms)
                after = [f for f in ctx.buffer.since(offset.index)
                         if f.t_ms <= offset.t_ms + window and f.grey is not None]
                back = min((self.flow_meter.measure(onset.grey, onset.grey_points, f.grey).groups[g]
                            for f in after), default=rise)
                if back > c.return_frac * rise:
                    return drop("did not return (part of a longer movement)")
            peak = float(rise)
        self.last_micro_off = offset.t_ms
        event = SpottedEvent(
            onset=onset, apex=apex_f, offset=offset, reference=onset, amplitude=peak,
            kind=event_kind(duration, c.micro_max_ms), region=REGION_OF[name], group=name,
            cue="flow" if self.by_flow else "landmarks", truncated=truncated,
        )
        for _, end in ctx.macro_spans.overlapping(onset.t_ms, offset.t_ms):
            if end == MacroSpans.OPEN:
                ctx.pending.append(event)
                return [], None
            return drop("edge of a macro movement")
        return [event], None

    def _flow_pair(self, a: BufferedFrame, b: BufferedFrame) -> bool:
        return self.flow_meter is not None and a.grey is not None and b.grey is not None

    def _hop(self, a: BufferedFrame, b: BufferedFrame) -> MotionMeasure:
        """Optical-flow motion from frame `a` to the later frame `b`, measured once per pair
        (each frame is the future of one centre and later the centre of the next); the
        recognizer's stage 1 measures most pairs ahead of time (`BufferedFrame.flow_hop`)."""
        if b.flow_hop is not None and b.flow_hop[0] == a.t_ms:
            return b.flow_hop[1]
        m = self.flow_meter.measure(a.grey, a.grey_points, b.grey)
        b.flow_hop = (a.t_ms, m)
        return m


def _max_smoothed(t, z: np.ndarray) -> np.ndarray:
    from realtime.spotting.edges import smooth_ms

    return smooth_ms(np.asarray(t, np.float64), z.max(1))


def _blinked(frames: list[BufferedFrame], onset: BufferedFrame, threshold: float) -> bool:
    """Whether AU45 (blink) moved by `threshold` from the onset within the trace; False
    when the frames carry no action units."""
    from moext.blendshapes import AU_CODES

    k = AU_CODES.index("AU45")
    if onset.au is None:
        return False
    vals = [f.au[k] for f in frames if f.au is not None]
    return bool(vals) and max(abs(v - onset.au[k]) for v in vals) >= threshold
