"""The one place an `Event` is built: from a movement the spotter reported, one it dropped,
or a dataset clip (`realtime.clip`).

An event carries its frames (onset, apex, offset: times and stream indices), its kind and
amplitude, the classifier's probabilities on (onset, apex), and the action units that moved
from the neutral reference to the apex with their FACS reading.
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np

from moext.blendshapes import facs_reading, moved_units
from realtime.events import Event


def softmax(logits: np.ndarray) -> np.ndarray:
    z = logits - logits.max(-1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(-1, keepdims=True)


def class_probabilities(logits: np.ndarray | None, class_names: Sequence[str]) -> dict[str, float]:
    """{class: probability} of one pair's (1, K) logits; {} without logits."""
    if logits is None:
        return {}
    return dict(zip(class_names, map(float, softmax(logits)[0])))


def build_event(onset: Any, apex: Any, offset: Any, *, kind: str, probabilities: dict[str, float],
                amplitude: float, region: str, cue: str, reference_blendshapes: np.ndarray | None = None,
                truncated: bool = False, head_motion: bool = False, emitted_ms: float | None = None,
                rule: str | None = None) -> Event:
    """An `Event`. `onset`, `apex`, `offset` are frames with `t_ms` and `index` (buffered
    frames, or a clip's); the action units that moved are read from `reference_blendshapes`
    (the neutral reference's) to the apex frame's `blendshapes` when both are there."""
    moved: list = []
    reading = facs_reading([])
    apex_bs = getattr(apex, "blendshapes", None)
    if reference_blendshapes is not None and apex_bs is not None:
        moved = moved_units(reference_blendshapes, apex_bs)
        reading = facs_reading(moved)
    return Event(
        onset_ms=onset.t_ms, apex_ms=apex.t_ms, offset_ms=offset.t_ms, kind=kind,
        label=max(probabilities, key=probabilities.get) if probabilities else None,
        probabilities=probabilities, amplitude=round(amplitude, 4), region=region,
        onset_index=onset.index, apex_index=apex.index, offset_index=offset.index,
        action_units=[u.to_dict() for u in moved], facs_label=reading.label, facs_emotion=reading.emotion,
        cue=cue, truncated=truncated, head_motion=head_motion, emitted_ms=emitted_ms, rule=rule,
    )


def dropped_event(d) -> Event:
    """A `DroppedMovement` as an events-file row: no classifier, no action units."""
    return build_event(d.onset, d.apex, d.offset, kind="dropped", probabilities={}, amplitude=d.amplitude,
                       region="", cue=d.detector, rule=d.rule)
