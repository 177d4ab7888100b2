"""Result records of the live recognizer and the files they are written to.

`FrameResult` is what `Recognizer.process` returns for every frame; `Event` is one spotted
facial movement (micro- or macro-expression) with its onset, apex and offset. Writers keep a
file valid at every moment: rows are flushed as they are written, so a killed run loses
nothing already reported.
"""

from __future__ import annotations

import csv
import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import IO, Any

import numpy as np


@dataclass
class Event:
    """One spotted movement, emitted once its offset is known.

    Attributes:
        onset_ms, apex_ms, offset_ms: timestamps (ms, the source's clock) of the last quiet
            frame before the movement, its motion peak, and the first frame back near rest.
        kind: "micro" (onset to offset at most `SpottingConfig.micro_max_ms`, 500 ms: MEGC's
            definition; amplitude does not decide it) or "macro" (longer); in an events file
            also "dropped": a movement a rule removed (`rule` names it), not an event.
        label: the class with the highest probability at the apex; None without a classifier
            result (no onset reference features).
        probabilities: class name -> probability of the classifier on (onset, apex).
        amplitude: peak motion, in per cent of the inter-ocular distance (IOD).
        region: the face region that moved most at the apex (brows, eyes or mouth).
        onset_index, apex_index, offset_index: frame numbers of the stream (0-based, counting
            every frame given to `process`).
        action_units: the FACS action units that moved from onset to apex, largest change
            first: dicts {au: "AU12", name: "lip corner puller", change: +0.14 (blendshape
            score units), side: both|left|right} (from MediaPipe's blendshapes; empty when
            the frames carried none).
        facs_label: what those units read as, EMFACS-style, in the composite classes
            (negative / positive / surprise), beside the classifier's `label`, never
            replacing it; None when no prototype matches. `facs_emotion` names the
            prototype (happiness, sadness, disgust, ...).
        cue: what found the movement: "flow", "landmarks" or "action units".
        truncated: the stream ended or the face left while the movement was still going;
            the offset is the last frame seen.
        head_motion: the head moved during it (the action units showed an expression).
        emitted_ms: the timestamp of the frame whose processing reported it: a micro event
            comes `transient_lag_ms` plus the return window after its offset, a macro one when it
            has fallen back (its delay from the apex is `emitted_ms - apex_ms`).
        rule: for a dropped movement (kind "dropped"), the rule that removed it; None for an
            event.
    """

    onset_ms: float
    apex_ms: float
    offset_ms: float
    kind: str
    label: str | None
    probabilities: dict[str, float]
    amplitude: float
    region: str
    onset_index: int
    apex_index: int
    offset_index: int
    action_units: list[dict[str, Any]] = field(default_factory=list)
    facs_label: str | None = None
    facs_emotion: str | None = None
    cue: str = "landmarks"
    truncated: bool = False
    head_motion: bool = False
    emitted_ms: float | None = None
    rule: str | None = None

    @property
    def duration_ms(self) -> float:
        return self.offset_ms - self.onset_ms

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["duration_ms"] = self.duration_ms
        return d

    def au_text(self) -> str:
        """The moved action units as people read them: "AU12 lip corner puller +0.14, ..."."""
        return ", ".join(
            f"{u['au']} {u['name']}{'' if u['side'] == 'both' else ' (' + u['side'] + ')'} {u['change']:+.2f}"
            for u in self.action_units)


@dataclass
class FrameResult:
    """What the recognizer knows after one frame.

    Attributes:
        index: frame number in the stream (0-based).
        timestamp_ms: the timestamp given with the frame.
        face_found: whether a face was tracked in this frame.
        box: face box (x0, y0, x1, y1) in frame pixels, or None.
        landmarks: (478, 2) float32 frame pixels x, y, or None.
        motion: smoothed motion from the onset reference, % IOD (max over regions); None when
            there is no reference yet (start, face just (re)found, head moving).
        region_motion: region name -> motion (% IOD) for this frame.
        blendshapes: (52,) float32 MediaPipe blendshape scores of this frame
            (`moext.blendshapes.BLENDSHAPE_NAMES`), or None without a face.
        action_units: FACS action unit -> intensity (0..1) from the blendshapes
            ("AU12": 0.41, ...; `moext.blendshapes.AU_TABLE`), empty without a face. These
            carry each person's baseline: compare with the onset, as events do.
        state: spotting state: "waiting" (no reference yet), "quiet", "active" (inside a
            movement), "settling" (after head motion or a long movement).
        probabilities: class name -> probability of the classifier on (onset reference,
            this frame); None without a reference.
        label: arg-max class of `probabilities`, or None.
        onset_ms: timestamp of the current onset reference frame, or None.
        events: events that finished at this frame (usually empty, at most a few).
        not_reported: movements a spotting rule dropped at this frame, as `Event`s of kind
            "dropped" with the rule (for `--events`; never counted as events).
        timings_ms: stage name -> milliseconds spent on this frame (landmarks, align,
            classifier, spotting).
        latency_ms: capture (or decode) of the frame to this result, ms, when a runner
            (`realtime.pipeline.run_frames`) measured it.
        skipped_reason: why no face was used, e.g. "no face" (None when one was).
    """

    index: int
    timestamp_ms: float
    face_found: bool
    box: tuple[float, float, float, float] | None = None
    landmarks: np.ndarray | None = None
    motion: float | None = None
    region_motion: dict[str, float] = field(default_factory=dict)
    blendshapes: np.ndarray | None = None
    action_units: dict[str, float] = field(default_factory=dict)
    state: str = "waiting"
    probabilities: dict[str, float] | None = None
    label: str | None = None
    onset_ms: float | None = None
    events: list[Event] = field(default_factory=list)
    not_reported: list[Event] = field(default_factory=list)
    timings_ms: dict[str, float] = field(default_factory=dict)
    skipped_reason: str | None = None
    latency_ms: float | None = None


EVENT_FIELDS = [
    "onset_ms", "apex_ms", "offset_ms", "duration_ms", "kind", "label", "amplitude", "region",
    "onset_index", "apex_index", "offset_index", "facs_label", "facs_emotion", "action_units",
    "cue", "truncated", "head_motion", "rule",
]


class EventWriter:
    """Events as JSON Lines (`.jsonl`/`.json`) or CSV (`.csv`), one row per event, flushed.

    Movements a spotting rule dropped are written too, as rows of kind "dropped" with the
    rule in `rule` (empty for events), so a user sees what was not reported; `count` counts
    events only, `dropped_count` those rows."""

    def __init__(self, path: str | Path, class_names: list[str]):
        self.path = Path(path)
        suffix = self.path.suffix.lower()
        if suffix not in (".jsonl", ".json", ".csv"):
            raise ValueError(
                f"--events {self.path}: unknown extension {suffix!r}; use .jsonl or .csv"
            )
        self.csv = suffix == ".csv"
        self.class_names = list(class_names)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._fh: IO[str] = open(self.path, "w", newline="")
        self.count = 0
        self.dropped_count = 0
        if self.csv:
            self._w = csv.writer(self._fh)
            self._w.writerow(EVENT_FIELDS + [f"p_{c}" for c in self.class_names])
            self._fh.flush()

    def write(self, ev: Event) -> None:
        d = ev.to_dict()
        if self.csv:
            d["action_units"] = "; ".join(f"{u['au']} {u['change']:+.3f}"
                                          + ("" if u["side"] == "both" else f" {u['side']}")
                                          for u in ev.action_units)
            d["truncated"], d["head_motion"] = int(ev.truncated), int(ev.head_motion)
            row = [_fmt(d[k]) for k in EVENT_FIELDS]
            row += [_fmt(ev.probabilities.get(c)) for c in self.class_names]
            self._w.writerow(row)
        else:
            self._fh.write(json.dumps(d) + "\n")
        self._fh.flush()
        if ev.kind == "dropped":
            self.dropped_count += 1
        else:
            self.count += 1

    def close(self) -> None:
        if not self._fh.closed:
            self._fh.flush()
            self._fh.close()


class FrameWriter:
    """One CSV row per frame, like OpenFace's per-frame CSV.

    Columns: frame, timestamp_ms, face_found, state, motion (% IOD), motion_<region>...,
    label, p_<class>..., then the action units' intensities AU01_r ... AU45_r (0..1, from
    MediaPipe's blendshapes, like OpenFace's AUxx_r columns) and, with `blendshapes=True`,
    all 52 raw scores as bs_<name>. Empty cells where a value is unknown (no face, no
    reference).
    """

    def __init__(self, path: str | Path, class_names: list[str], regions: list[str],
                 blendshapes: bool = False):
        from moext.blendshapes import AU_TABLE, BLENDSHAPE_NAMES

        self.path = Path(path)
        self.class_names = list(class_names)
        self.regions = list(regions)
        self.au_codes = [a.code for a in AU_TABLE]
        self.bs_names = list(BLENDSHAPE_NAMES) if blendshapes else []
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._fh: IO[str] = open(self.path, "w", newline="")
        self._w = csv.writer(self._fh)
        self._w.writerow(
            ["frame", "timestamp_ms", "face_found", "state", "motion"]
            + [f"motion_{r}" for r in self.regions]
            + ["label"]
            + [f"p_{c}" for c in self.class_names]
            + [f"AU{a.number:02d}_r" for a in AU_TABLE]
            + [f"bs_{n}" for n in self.bs_names]
        )
        self.count = 0

    def write(self, r: FrameResult) -> None:
        probs = r.probabilities or {}
        row = (
            [r.index, _fmt(r.timestamp_ms), int(r.face_found), r.state, _fmt(r.motion)]
            + [_fmt(r.region_motion.get(g)) for g in self.regions]
            + [r.label or ""]
            + [_fmt(probs.get(c)) for c in self.class_names]
            + [_fmt(r.action_units.get(c)) for c in self.au_codes]
        )
        if self.bs_names:
            bs = r.blendshapes
            row += [_fmt(float(v)) for v in bs] if bs is not None else [""] * len(self.bs_names)
        self._w.writerow(row)
        self.count += 1
        # Flushing every row costs ~µs and means a killed run keeps every frame it reported.
        self._fh.flush()

    def close(self) -> None:
        if not self._fh.closed:
            self._fh.flush()
            self._fh.close()


def _fmt(v: Any) -> str:
    if v is None:
        return ""
    if isinstance(v, float):
        return f"{v:.6g}"
    return str(v)
