"""What the spotting detectors share: a cue's running quiet level, the score of a movement
against it, and the names of the sustained detector's cues."""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from enum import IntEnum

import numpy as np

from realtime.motion import GROUP_NAMES


class Cue(IntEnum):
    """The sustained detector's cues, in the order of its score terms."""

    LANDMARKS = 0
    FLOW = 1
    ACTION_UNITS = 2

    @property
    def label(self) -> str:
        """What an event's `cue` field calls it."""
        return ("landmarks", "flow", "action units")[self.value]


@dataclass
class NoiseLevel:
    """Running quiet level (mean square per group, or per action unit) of one cue: a running
    mean at first (the start-up guess weighs like one frame), then an EMA."""

    sq: np.ndarray
    floor: float
    tau_ms: float
    count: int = 0

    @classmethod
    def start(cls, init: float, floor: float, tau_ms: float, size: int = len(GROUP_NAMES)) -> "NoiseLevel":
        return cls(np.full(size, init**2), floor, tau_ms)

    @property
    def rms(self) -> np.ndarray:
        return np.maximum(np.sqrt(self.sq), self.floor)

    def learn(self, values: np.ndarray, frame_ms: float) -> None:
        """One quiet frame, `frame_ms` after the frame before it: its weight is the share of
        the time constant it covers (0.02 at 30 fps), so the level adapts at the same speed
        in time whatever the frame rate."""
        self.count += 1
        a = max(1.0 - float(np.exp(-frame_ms / self.tau_ms)), 1.0 / (self.count + 1))
        self.sq += a * (values**2 - self.sq)


def floored_z(values: np.ndarray, noise: NoiseLevel, enter_z: float, least: float) -> float:
    """The largest of `values` in units of their quiet level (a z-score), where a value below
    the floor `least` (in the values' own unit) stays just under `enter_z`: a group that hardly
    moves on a very quiet face cannot enter however small its noise."""
    z = values / noise.rms
    return float(np.where(values >= least, z, np.minimum(z, enter_z * 0.99)).max())


class MacroSpans:
    """Times (ms) of the recent and ongoing sustained movements, as (start, end) with end
    infinite while the movement is open: a transient inside one is its edge, not a
    micro-expression. The sustained detector opens and closes them; the spotter and the
    transient detector ask which overlap an interval."""

    OPEN = float("inf")

    def __init__(self, keep: int = 8):
        self._spans: deque[list[float]] = deque(maxlen=keep)

    def open(self, start_ms: float) -> None:
        self._spans.append([start_ms, self.OPEN])

    def close(self, end_ms: float) -> None:
        """End the open span, if the last one is open."""
        if self._spans and self._spans[-1][1] == self.OPEN:
            self._spans[-1][1] = end_ms

    def drop_last(self) -> None:
        """Forget the newest span (its movement was dropped or left to the transient detector:
        it must not mask a transient)."""
        if self._spans:
            self._spans.pop()

    def settle_last(self, start_ms: float, end_ms: float) -> None:
        """The newest span, reported, from at most `start_ms` to `end_ms`."""
        if self._spans:
            self._spans[-1] = [min(self._spans[-1][0], start_ms), end_ms]

    def overlapping(self, on_ms: float, off_ms: float) -> list[tuple[float, float]]:
        """The spans that overlap [on_ms, off_ms]."""
        return [(s, e) for s, e in self._spans if on_ms <= e and off_ms >= s]

    def clear(self) -> None:
        self._spans.clear()

    def __len__(self) -> int:
        return len(self._spans)
