"""The spotter: one state machine over the two detectors.

States: **waiting** (face just found; its first tracked frames jump 0.5-1.7 % IOD, so none
is a reference), **settling** (the landmark cues wait until the face holds still for
`settle_ms`: after (re)acquisition, head motion, or a movement that did not return; the
action-unit cue already watches), **quiet** (references follow `ref_lag_ms` /
`macro_lag_ms` behind, refreshed every frame while still), **active** (a sustained
movement is open).

The landmark cues' references are void once the head moves (a 2-D fit cannot undo a
turn), so head motion in the quiet state sends them back to settling; the action units
keep their own references through it. `finish()` closes whatever is open when the stream
ends or the face leaves, flagged truncated, so a movement in flight is never lost.

Both detectors hand their events here (`_arbitrate`): a transient inside a sustained movement
still open waits for it (reported: the transient was its edge; dropped: the transient is
reported); a brief sustained movement that came back waits for the transient detector to
report it and is reported itself when that did not happen. Every movement a rule drops is
recorded with the rule (`SpotUpdate.dropped`), so what was not reported can be seen.
"""

from __future__ import annotations

from collections import deque

import numpy as np

from realtime.buffer import BufferedFrame, RollingBuffer
from realtime.motion import MotionMeasure, group_magnitudes, measure_motion
from realtime.spotting.common import MacroSpans
from realtime.spotting.config import SpottingConfig
from realtime.spotting.events import DroppedMovement, SpottedEvent, SpotUpdate
from realtime.spotting.sustained import SustainedDetector
from realtime.spotting.transient import SpotContext, TransientDetector


class Spotter:
    def __init__(self, cfg: SpottingConfig | None = None):
        self.cfg = cfg or SpottingConfig()
        self.discarded: dict[str, int] = {}
        self._dropped: list[DroppedMovement] = []  # since the last update
        self._reported: deque = deque(maxlen=8)  # (onset, offset) ms of recent events
        self.ctx = SpotContext(RollingBuffer(), self._discard, self._head_moving, self._unlag,
                               self._flow_displacement, self._direct_flow)
        self.sustained = SustainedDetector(self.cfg, self.ctx)
        self.transient = TransientDetector(self.cfg, self.ctx)
        self.reset()

    @property
    def flow_meter(self):
        """The transient detector's optical-flow meter (None on the landmark cue)."""
        return self.transient.flow_meter

    def reset(self) -> None:
        """Forget the face (lost, or another one): back to waiting. Noise levels are kept.
        Whatever was open is dropped: call `finish` first to have it reported."""
        self.state = "waiting"
        self.seen_since: float | None = None  # when the face was (re)found
        self.still_since: float | None = None
        self.prev: BufferedFrame | None = None
        self.lm_from = 0  # the landmark cues' references: from this frame on
        self.au_from: int | None = 0  # the action-unit cue's references: from this frame on
        # (None: it waits for the face to settle too, after an event)
        self.history: list[tuple[float, np.ndarray]] = []
        self.transient_live = False  # whether the transient detector steps while settling
        self.sustained.end()
        self.sustained.recent.clear()
        self.transient.last_micro_off = -1e18
        self.transient.restart(0)
        self.ctx.macro_spans.clear()
        self.ctx.pending.clear()
        self.ctx.deferred.clear()
        self.ctx.dropped_spans.clear()

    # Rules that say a movement is noise, not an expression: a brief sustained movement the
    # transient detector dropped by one of them is dropped with it.
    NOISE_RULES = ("blink", "head motion")

    def _discard(self, why: str, frames: tuple[BufferedFrame, BufferedFrame, BufferedFrame],
                 amplitude: float = 0.0, detector: str = "transient") -> str:
        self.discarded[why] = self.discarded.get(why, 0) + 1
        self._dropped.append(DroppedMovement(why, *frames, amplitude=float(amplitude), detector=detector))
        if detector == "transient" and why in self.NOISE_RULES:
            self.ctx.dropped_spans.append((why, frames[0].t_ms, frames[2].t_ms))
        return why

    def _arbitrate(self, now_ms: float | None, events: list[SpottedEvent]) -> list[SpottedEvent]:
        """What the detectors finished at this frame, plus the waiting events whose fate is
        known now (`now_ms` None: the stream ends, every one is decided)."""
        ctx = self.ctx
        out = list(events)

        def overlaps(e: SpottedEvent, on: float, off: float) -> bool:
            return e.onset.t_ms <= off and e.offset.t_ms >= on

        waiting = []
        for e in ctx.pending:
            spans = ctx.macro_spans.overlapping(e.onset.t_ms, e.offset.t_ms)
            if spans and now_ms is not None and any(end == MacroSpans.OPEN for _, end in spans):
                waiting.append(e)
            elif spans and all(end != MacroSpans.OPEN for _, end in spans):
                # The sustained movement it belongs to was reported (or was head motion).
                self._discard("edge of a macro movement", (e.onset, e.apex, e.offset), e.amplitude)
            else:
                out.append(e)
        ctx.pending[:] = waiting
        for e in out:
            self._reported.append((e.onset.t_ms, e.offset.t_ms))
        waiting = []
        for e, due in ctx.deferred:
            if any(overlaps(e, on, off) for on, off in self._reported):
                continue  # the transient detector reported it
            if any(overlaps(e, on, off) for _, on, off in ctx.dropped_spans):
                continue  # the transient detector dropped it as noise (recorded there, once)
            if now_ms is None or (now_ms >= due and not (
                    self.transient.open and self.transient.trace[0][0].t_ms <= e.offset.t_ms)):
                out.append(e)
                self._reported.append((e.onset.t_ms, e.offset.t_ms))
            else:
                waiting.append((e, due))
        ctx.deferred[:] = waiting
        return out

    def _done(self, upd: SpotUpdate, now_ms: float) -> SpotUpdate:
        upd.events = self._arbitrate(now_ms, upd.events)
        upd.dropped, self._dropped = self._dropped, []
        return upd

    def _head_moving(self, m: MotionMeasure) -> bool:
        c = self.cfg
        return (
            m.rigid_residual > c.head_residual
            or abs(m.rotation_deg) > c.head_rotation
            or m.shift > c.head_shift
            or abs(m.scale - 1.0) > c.head_scale
        )

    def _unlag(self, f: BufferedFrame) -> BufferedFrame:
        """The frame whose time `f.points` stand for: averaging the last frames' landmarks
        centres them halfway back through the window (rounded back, as for 4 frames: 2)."""
        back = (f.points_frames - 1) // 2 + (f.points_frames - 1) % 2
        return self.ctx.buffer.get(f.index - back) or f

    def _link(self, rec: BufferedFrame) -> None:
        """Put `rec` on its flow chain: its stage-1 flow partner (the frame `transient_lag_ms`
        before it) is the previous link, and the chain's running sum of group vectors
        grows by this hop."""
        if rec.flow_hop is None:
            return
        partner = self.ctx.buffer.latest_at_or_before(rec.flow_hop[0])
        if partner is None or partner.t_ms != rec.flow_hop[0] or partner.index >= rec.index:
            return
        base = partner.chain_sum if partner.chain_sum is not None else np.zeros_like(rec.flow_hop[1].vectors)
        rec.chain_prev = partner.index
        rec.chain_sum = base + rec.flow_hop[1].vectors

    def _flow_displacement(self, f: BufferedFrame, ref: BufferedFrame) -> np.ndarray | None:
        """Flow displacement from `ref` to `f` along `f`'s chain: the link at or just before
        `ref` (within one hop) stands for it."""
        if f.chain_sum is None or ref is None:
            return None
        buf, hop = self.ctx.buffer, self.cfg.transient_lag_ms
        node = f
        while node.t_ms > ref.t_ms:
            if node.chain_prev is None:
                return None
            prev = buf.get(node.chain_prev)
            if prev is None or prev.chain_sum is None and prev.chain_prev is not None:
                return None
            node = prev
        if ref.t_ms - node.t_ms > hop:
            return None
        base = node.chain_sum if node.chain_sum is not None else 0.0
        return group_magnitudes(f.chain_sum - base)

    def _direct_flow(self, a: BufferedFrame, b: BufferedFrame) -> np.ndarray | None:
        meter = self.transient.flow_meter
        if meter is None or a.grey is None or b.grey is None:
            return None
        return meter.measure(a.grey, a.grey_points, b.grey).groups

    def _settle(self, rec: BufferedFrame, keep_transient: bool = False) -> None:
        """The landmark cues wait for stillness before their next reference; the action
        units go on. After head motion (or a new face) the transient detector starts over
        too; after a sustained event it keeps going (`keep_transient`): a micro-expression
        large enough to enter the sustained detector is still the transient detector's to
        report (restarting it there hid such movements, seen on the demo video)."""
        self.state = "settling"
        self.still_since = None
        self.transient_live = keep_transient
        if not keep_transient:
            self.transient.clear_trace()
        self.sustained.recent.clear()
        self.ctx.macro_spans.close(rec.t_ms)

    def update(self, rec: BufferedFrame, buffer: RollingBuffer) -> SpotUpdate:
        """Advance by one tracked frame (already appended to `buffer`)."""
        return self._done(self._update(rec, buffer), rec.t_ms)

    def _update(self, rec: BufferedFrame, buffer: RollingBuffer) -> SpotUpdate:
        c = self.cfg
        self.ctx.buffer = buffer
        prev, self.prev = self.prev, rec
        if prev is not None and rec.t_ms > prev.t_ms:
            # The stream's frame period (bounded: a pause is not a frame period).
            self.ctx.frame_ms = min(rec.t_ms - prev.t_ms, 200.0)
        self.history.append((rec.t_ms, rec.landmarks.astype(np.float64)))
        while len(self.history) > 1 and self.history[0][0] <= rec.t_ms - c.landmark_ms:
            del self.history[0]
        rec.points = sum(h for _, h in self.history) / len(self.history)
        rec.points_frames = len(self.history)
        self._link(rec)
        if self.state == "waiting":
            if self.seen_since is None:
                self.seen_since = rec.t_ms
            if rec.t_ms - self.seen_since >= c.warmup_ms:
                self._settle(rec)
                self.au_from = rec.index
            return SpotUpdate(self.state)

        if self.state == "active":
            return self._active(rec)

        au_ref = self._ref(rec, c.macro_lag_ms, self.au_from) if self.au_from is not None else None
        if self.state == "settling":
            events, why = self.transient.step(rec) if self.transient_live else ([], None)
            back = (buffer.latest_at_or_before(rec.t_ms - c.settle_step_ms) or prev) if prev is not None else None
            if back is not None and back.points is None:
                back = prev
            step = measure_motion(rec.points, back.points) if back is not None else None
            still = step is not None and step.motion < c.settle_threshold and not self._head_moving(step)
            if not still:
                self.still_since = None
            elif self.still_since is None:
                self.still_since = rec.t_ms
            if self.still_since is not None and rec.t_ms - self.still_since >= c.settle_ms:
                self.state = "quiet"
                self.lm_from = rec.index
                if self.au_from is None:
                    self.au_from = rec.index
                if not self.transient_live:
                    self.transient.restart(rec.index)
                self.transient_live = True
                return SpotUpdate(self.state, events=events, discarded=why)
            # Only the action units watch while the landmarks settle.
            smooth, _ = self.sustained.quiet_step(rec, None, au_ref)
            if self.sustained.open:
                self.state = "active"
            return SpotUpdate(self.state, self.sustained.ref, score=smooth, events=events, discarded=why)

        # quiet
        events, why = self.transient.step(rec)
        ref = buffer.latest_at_or_before(rec.t_ms - c.ref_lag_ms, self.lm_from) or buffer.get(self.lm_from)
        if ref is None or ref.index == rec.index:
            return SpotUpdate(self.state, events=events, discarded=why)
        m = measure_motion(rec.points, ref.points)
        if self._head_moving(m):
            self._settle(rec)
            return SpotUpdate(self.state, ref, m.motion, None, m, events, why)
        macro_ref = self._ref(rec, c.macro_lag_ms, self.lm_from) or ref
        smooth, _ = self.sustained.quiet_step(rec, macro_ref, au_ref)
        if self.sustained.open:
            self.state = "active"
            ref = self.sustained.ref
        return SpotUpdate(self.state, ref, m.motion, smooth, m, events, why)

    def _ref(self, rec: BufferedFrame, lag_ms: float, from_index: int) -> BufferedFrame | None:
        buf = self.ctx.buffer
        ref = buf.latest_at_or_before(rec.t_ms - lag_ms, from_index) or buf.get(from_index)
        return None if ref is None or ref.index == rec.index else ref

    def _active(self, rec: BufferedFrame) -> SpotUpdate:
        lm_live = self.sustained.lm_valid
        events, why = self.transient.step(rec) if lm_live else ([], None)
        ref = self.sustained.ref
        smooth, m, done = self.sustained.active_step(rec)
        if done is None:
            return SpotUpdate(self.state, ref, m.motion, smooth, m, events, why)
        lm_entered = self.sustained.lm_valid
        closed, why2 = self.sustained.close(returned=done)
        # An event closes when its score has fallen to half its peak, while the face is
        # still on its way back: both cues take their next reference only once the face
        # has settled, or the rest of the return would be measured as a new movement (and
        # a reference from before the event would report the same movement again).
        self._settle(rec, keep_transient=lm_entered)
        self.au_from = None
        return SpotUpdate(self.state, ref, m.motion, smooth, m, events + closed, why2 or why)

    def finish(self) -> list[SpottedEvent]:
        """Close what is open (the stream ended, or the face is about to be reset): the
        events it gives are flagged truncated, and every event still waiting is decided.
        The spotter is then waiting again. What rules dropped here is in `take_dropped()`."""
        out: list[SpottedEvent] = []
        if self.transient.open:
            out += self.transient.close(truncated=True)[0]
        if self.sustained.open:
            s = self.sustained
            # A movement that rose and had come part of the way back by the last frame has
            # come back: it is closed as such (its offset where the fall ended).
            returned = s.still is not None
            out += s.close(returned=returned, truncated=True)[0]
        out = self._arbitrate(None, out)
        self.reset()
        return out

    def take_dropped(self) -> list[DroppedMovement]:
        """Movements dropped since the last update (by `finish`, say), then forgotten."""
        out, self._dropped = self._dropped, []
        return out
