"""What the spotter hands the recognizer: finished movements and its view of each frame."""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field

from realtime.buffer import BufferedFrame
from realtime.motion import REGION_GROUPS, MotionMeasure

REGION_OF = {g: r for r, gs in REGION_GROUPS.items() for g in gs}


def event_kind(duration_ms: float, micro_max_ms: float) -> str:
    """The one rule for an event's kind, MEGC's: "micro" when onset to offset lasts at most
    `micro_max_ms` (`SpottingConfig.micro_max_ms`, 500 ms), "macro" otherwise. Every
    detector and clip mode ask here; amplitude never decides it."""
    return "micro" if duration_ms <= micro_max_ms else "macro"


class Recent:
    """Values of the last `window_ms` (at least the newest): a causal moving window in time,
    so that a 200 fps stream smooths over the same span as a 30 fps one."""

    def __init__(self, window_ms: float):
        self.window_ms = window_ms
        self._items: deque[tuple[float, float]] = deque()

    def append(self, t_ms: float, value: float) -> None:
        self._items.append((t_ms, value))
        while len(self._items) > 1 and self._items[0][0] <= t_ms - self.window_ms:
            self._items.popleft()

    def mean(self) -> float:
        return sum(v for _, v in self._items) / len(self._items)

    def clear(self) -> None:
        self._items.clear()

    def __bool__(self) -> bool:
        return bool(self._items)

    def __len__(self) -> int:
        return len(self._items)


@dataclass
class SpottedEvent:
    """A finished movement, in buffered frames (the recognizer adds the classifier).

    Attributes:
        onset, apex, offset: its frames; `reference` the neutral frame it was measured from.
        amplitude: peak displacement, % IOD (landmarks, or optical flow for micro events).
        kind: "micro" or "macro".
        region, group: where the face moved most at the apex (a landmark group and its
            region); for a movement led by the action units, the region of that unit.
        cue: what found it: "flow", "landmarks" or "action units".
        truncated: the stream ended, or the face left, before the movement was over; the
            offset is the last frame seen.
        head_motion: the head moved past the `head_*` limits during it (the action units
            showed an expression all the same).
    """

    onset: BufferedFrame
    apex: BufferedFrame
    offset: BufferedFrame
    reference: BufferedFrame
    amplitude: float
    kind: str
    region: str
    group: str
    cue: str = "landmarks"
    truncated: bool = False
    head_motion: bool = False


@dataclass
class DroppedMovement:
    """A movement a rule removed, so that a user can see what was not reported.

    Attributes:
        rule: the rule's name, as counted in `Spotter.discarded` ("blink", "head motion",
            "did not return (part of a longer movement)", ...).
        onset, apex, offset: its frames as far as the detector had measured them (the
            first, the highest and the last frame of its trace when the rule fired before
            the edges were known).
        amplitude: peak displacement of its leading cue (% IOD; 0 where not measured).
        detector: "transient" or "sustained".
    """

    rule: str
    onset: BufferedFrame
    apex: BufferedFrame
    offset: BufferedFrame
    amplitude: float = 0.0
    detector: str = "transient"


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
    dropped: list[DroppedMovement] = field(default_factory=list)  # what was dropped, and by which rule
