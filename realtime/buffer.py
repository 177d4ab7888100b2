"""A bounded rolling buffer of the last few seconds of tracked frames.

Each entry keeps what later decisions need without recomputing: the landmarks (for motion
against any past reference), the aligned crop (for display and re-classification) and the
backbone features (so that any buffered frame can become the onset reference with no extra
network pass). Entries older than `max_ms` behind the newest are dropped, and the length is
capped, so memory does not grow with the stream.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from typing import Iterator

import numpy as np


@dataclass
class BufferedFrame:
    """One tracked frame.

    Attributes:
        index: frame number in the stream.
        t_ms: its timestamp.
        landmarks: (478, 2) float32 frame pixels.
        crop: aligned face crop, HWC uint8 BGR (None when not kept).
        features: backbone features `forward_features(crop)` as float32 (D...), or None when
            no classifier ran.
        points: the landmarks averaged over the last few tracked frames (set by the
            spotter); motion is measured on these. `points_frames`: how many.
        grey: the aligned crop in grey at `realtime.motion.FLOW_SIZE` (the optical-flow
            cue; ~12 kB), or None.
        grey_points: the landmarks in `grey`'s pixels.
        flow_hop: (timestamp of an earlier frame, motion from it to this one by optical flow),
            kept so that each pair of frames is measured once.
        blendshapes: (52,) float32 MediaPipe blendshape scores, or None.
        au: (A,) float32 action-unit intensities from them (`moext.blendshapes.AU_TABLE`
            order), or None.
        chain_prev, chain_sum: this frame's link in a chain of optical-flow hops (each frame
            is measured against the frame `transient_lag_ms` before it, `flow`): the index of
            that earlier frame, and the sum of the hops' group displacement vectors
            ((12, 2), % IOD, face axes) since the chain began. The difference of two frames'
            sums on one chain is the flow displacement between them (set by the spotter).
    """

    index: int
    t_ms: float
    landmarks: np.ndarray
    crop: np.ndarray | None = None
    features: np.ndarray | None = None
    points: np.ndarray | None = None
    grey: np.ndarray | None = None
    grey_points: np.ndarray | None = None
    flow_hop: tuple | None = None
    blendshapes: np.ndarray | None = None
    au: np.ndarray | None = None
    chain_prev: int | None = None
    chain_sum: np.ndarray | None = None
    points_frames: int = 1


class RollingBuffer:
    # 1024 entries hold 4 s of a 256 fps camera; the time limit is what binds at webcam rates.
    def __init__(self, max_ms: float = 4000.0, max_len: int = 1024):
        self.max_ms = max_ms
        self._items: deque[BufferedFrame] = deque(maxlen=max_len)

    def append(self, item: BufferedFrame) -> None:
        self._items.append(item)
        while self._items and item.t_ms - self._items[0].t_ms > self.max_ms:
            self._items.popleft()

    def clear(self) -> None:
        self._items.clear()

    def __len__(self) -> int:
        return len(self._items)

    def __iter__(self) -> Iterator[BufferedFrame]:
        return iter(self._items)

    @property
    def last(self) -> BufferedFrame | None:
        return self._items[-1] if self._items else None

    def latest_at_or_before(self, t_ms: float, min_index: int = 0) -> BufferedFrame | None:
        """The newest entry with timestamp <= t_ms and index >= min_index, else None."""
        for item in reversed(self._items):
            if item.index < min_index:
                return None
            if item.t_ms <= t_ms:
                return item
        return None

    def get(self, index: int) -> BufferedFrame | None:
        for item in reversed(self._items):
            if item.index == index:
                return item
            if item.index < index:
                break
        return None

    def since(self, index: int) -> list[BufferedFrame]:
        """Entries with index >= `index`, oldest first."""
        out = []
        for item in reversed(self._items):
            if item.index < index:
                break
            out.append(item)
        return out[::-1]
