"""Onset, apex and offset of a finished movement from its trace: one function for every
detector.

A detector hands over the times of the frames it kept and the leading cue's curve (how far
the face was from rest at each frame). The apex is the curve's maximum after a centred
3-tap smoothing; onset and offset come from the half-maximum crossings on either side,
doubled back from the apex (a raised-cosine rise reaches half height halfway), so they
depend on the steep part of the curve, not on where it meets the noise.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


def smooth3(a: np.ndarray) -> np.ndarray:
    """Centred 3-tap moving average (edges repeated): the whole trace is known at close."""
    return np.convolve(np.pad(a, 1, mode="edge"), np.ones(3) / 3, mode="valid")


def crossing(t: np.ndarray, s: np.ndarray, level: float, start: int, step: int) -> float:
    """Time where `s` first falls to `level` walking from `start` in direction `step`,
    linearly interpolated between frames; the trace's end if it never does."""
    i = start
    while 0 <= i + step < len(s):
        j = i + step
        if s[j] <= level:
            frac = (s[i] - level) / max(s[i] - s[j], 1e-9)
            return float(t[i] + frac * (t[j] - t[i]))
        i = j
    return float(t[i])


@dataclass(frozen=True)
class Edges:
    """Positions (indices into the trace) of onset, apex and offset, and the peak value."""

    onset: int
    apex: int
    offset: int
    peak: float


def event_edges(t: np.ndarray, curve: np.ndarray, edge_scale: float, baseline: bool = True,
                plateau: bool = False) -> Edges:
    """Onset / apex / offset of one movement.

    Args:
        t: (T,) frame times, ms, increasing.
        curve: (T,) the leading cue's distance from rest at each frame (any unit).
        edge_scale: how far past the half-maximum crossing the edges lie, in units of the
            apex-to-crossing distance (2: a raised-cosine profile).
        baseline: subtract the curve's minimum before the apex (a displacement from a
            lagged reference); False for a second difference, which is zero at rest.
        plateau: for expressions that are held (a real smile rises in ~0.3 s and stays):
            the apex is the first frame at 90 % of the peak, and onset / offset are where
            the curve is back within 10 % of its rise (doubling the half-maximum distance
            from an apex in the middle of a plateau would put the onset seconds early).
    """
    s = smooth3(np.asarray(curve, np.float64))
    apex = int(np.argmax(s))
    peak = float(s[apex])
    base = float(s[: apex + 1].min()) if baseline else 0.0
    if plateau:
        apex = int(np.flatnonzero(s >= base + 0.9 * (peak - base))[0])
        low = base + 0.1 * (peak - base)
        on = crossing(t, s, low, apex, -1)
        off = crossing(t, s, low, int(np.argmax(s)), +1)
        return Edges(int(np.argmin(np.abs(t - on))), apex, int(np.argmin(np.abs(t - off))), peak)
    half = base + 0.5 * (peak - base)
    t_on = crossing(t, s, half, apex, -1)
    t_off = crossing(t, s, half, apex, +1)
    t_on = max(t[apex] - edge_scale * (t[apex] - t_on), t[0])
    t_off = min(t[apex] + edge_scale * (t_off - t[apex]), t[-1])
    return Edges(int(np.argmin(np.abs(t - t_on))), apex, int(np.argmin(np.abs(t - t_off))), peak)
