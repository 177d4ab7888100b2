"""Temporal profiles: the amplitude of an event over frames, and small rigid head sway."""

from __future__ import annotations

import numpy as np

def event_profile(n: int, onset: int, apex: int, offset: int, hold: int = 0, release: float = 0.0) -> np.ndarray:
    """(n,) amplitude in [0, 1]: raised-cosine rise onset->apex, optional hold, fall to offset.

    `release` is the fraction still present at the offset (macro expressions often fade
    slowly); 0 means back to neutral.
    """
    t = np.arange(n, dtype=np.float64)
    a = np.zeros(n)
    rise = (t >= onset) & (t <= apex)
    a[rise] = 0.5 - 0.5 * np.cos(np.pi * (t[rise] - onset) / max(apex - onset, 1))
    top = apex + hold
    a[(t > apex) & (t <= top)] = 1.0
    fall = (t > top) & (t <= offset)
    a[fall] = release + (1 - release) * (0.5 + 0.5 * np.cos(np.pi * (t[fall] - top) / max(offset - top, 1)))
    return a


def _sway(n: int, rng: np.random.Generator, rot_deg: float, shift_px: float, period: float) -> np.ndarray:
    """(n, 3) small smooth rigid motion per frame: rotation (deg), dx, dy (px)."""
    t = np.arange(n, dtype=np.float64)
    out = np.zeros((n, 3))
    for k, amp in enumerate((rot_deg, shift_px, shift_px)):
        ph, f = rng.uniform(0, 2 * np.pi), rng.uniform(0.6, 1.4) / period
        out[:, k] = rng.uniform(0.3, 1.0) * amp * np.sin(2 * np.pi * f * t + ph)
    return out
