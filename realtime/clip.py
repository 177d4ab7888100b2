"""Clip mode: one event for a clip that starts at its onset, as ME datasets ship samples.

CASME II, SAMM and SMIC cut each sample from onset to offset, so there is no quiet stretch
for the live spotter to take a reference from. Here the first frame with a face is the
onset; the apex is the frame that moved most from it (optical flow inside the aligned crop,
the live micro cue, plus the action units' change; landmarks when there is no crop); the
offset is where the movement has fallen back below half its peak after the apex (the last
frame if it never does: the event says truncated). The apex is the first frame at 90 % of
the peak (a held expression drifts on its plateau). The classifier runs once on (onset, apex).

    from realtime.clip import recognize_clip
    event = recognize_clip(rec, source)      # rec: Recognizer, source: any frame source
"""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np

from moext.blendshapes import EXPRESSIVE, action_units
from realtime.event_build import build_event, class_probabilities
from realtime.events import Event
from realtime.motion import GROUP_NAMES, FlowMeter, measure_motion, motion_image
from realtime.spotting.edges import smooth_ms
from realtime.spotting.events import REGION_OF, event_kind

class ClipError(ValueError):
    """A clip that cannot give an event (no frames, no face); the message names it."""


def recognize_clip(rec, source, name: str | None = None) -> tuple[Event, int]:
    """The one event of a clip; returns (event, frames read).

    Args:
        rec: a `realtime.recognizer.Recognizer` (its face tracker, backend and spotting
            limits are used; its stream state is not touched).
        source: frames in order (`realtime.sources` `VideoSource`, `FolderSource`, ...).
        name: what to call the clip in errors (default: the source's name).
    """
    from moext.face import NoFace

    name = name or getattr(source, "name", "clip")
    cfg = rec.config.spotting
    flow = FlowMeter()
    frames = []  # (index, t_ms, landmarks, grey, grey_points, features, blendshapes, crop)
    n = 0
    rec.reset()
    for fr in source:
        n += 1
        p = rec.prepare(fr.image, timestamp_ms=fr.timestamp_ms)
        if isinstance(p.detection, NoFace):
            continue
        if p.x is None:
            rec.face.align(fr.image, p)
        grey, pts = (p.grey, p.grey_points) if p.grey is not None else \
            motion_image(p.aligned.crop, p.aligned.landmarks)
        feats = rec.classifier.features(p.x)[0]
        frames.append((fr.index, fr.timestamp_ms, p.detection.landmarks, grey, pts, feats,
                       p.detection.blendshapes, p.aligned.crop))
    if n == 0:
        raise ClipError(f"clip {name} has no readable frames")
    if not frames:
        raise ClipError(f"no face found in any of the {n} frames of clip {name}")
    on = frames[0]
    # Motion of every frame from the onset: flow groups (% IOD) and action-unit change.
    groups = np.stack([flow.measure(on[3], on[4], f[3]).groups if k else np.zeros(len(GROUP_NAMES))
                       for k, f in enumerate(frames)])
    lm = np.stack([measure_motion(f[2], on[2]).groups for f in frames])
    au = None
    if all(f[6] is not None for f in frames):
        a = action_units(np.stack([f[6] for f in frames]))
        au = np.abs(a - a[0])[:, EXPRESSIVE].max(1)
    score = groups.max(1) / max(groups.max(), 1e-9)
    if au is not None and au.max() > 0:
        score = score + au / au.max()
    s = smooth_ms(np.array([f[1] for f in frames], np.float64), score)
    top = int(np.argmax(s))
    # The first frame at 90 % of the peak: a held expression's plateau drifts up slowly, and
    # its argmax would sit anywhere on it.
    apex = int(np.flatnonzero(s >= 0.9 * s[top])[0])
    after = np.flatnonzero(s[top:] < 0.5 * s[top])
    off = top + int(after[0]) if after.size else len(frames) - 1
    ap = frames[apex]
    g = int(np.argmax(groups[apex])) if groups[apex].max() > 0 else int(np.argmax(lm[apex]))
    amplitude = float(groups[apex, g])
    duration = frames[off][1] - on[1]
    kind = event_kind(duration, cfg.micro_max_ms)
    pair = [SimpleNamespace(features=f[5], crop=f[7]) for f in (on, ap)]
    probs = class_probabilities(rec.classifier.logits(*pair), rec.class_names)

    def frame(f):
        return SimpleNamespace(index=f[0], t_ms=f[1], blendshapes=f[6])

    event = build_event(frame(on), frame(ap), frame(frames[off]), kind=kind, probabilities=probs,
                        amplitude=amplitude, region=REGION_OF[GROUP_NAMES[g]], cue="clip",
                        reference_blendshapes=on[6] if au is not None else None, truncated=not after.size)
    rec.reset()
    return event, n
