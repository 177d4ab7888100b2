"""Onset, apex and offset of a finished movement from its trace: one function for every
detector.

A detector hands over the times of the frames it kept and the leading cue's curve (how far
the face was from rest at each frame). The apex is the curve's maximum after a centred
smoothing over `SMOOTH_HALF_MS` either side (in time, so 200 fps and 30 fps streams get the
same edges); onset and offset come from the half-maximum crossings on either side,
doubled back from the apex (a raised-cosine rise reaches half height halfway), so they
depend on the steep part of the curve, not on where it meets the noise.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


# Half-width of the centred smoothing of a finished trace: at 30 fps the frame on either
# side (the 3-tap average the edges were tuned with), at 200 fps the 13 frames of the same span.
SMOOTH_HALF_MS = 34.0


def smooth_ms(t: np.ndarray, a: np.ndarray, half_ms: float = SMOOTH_HALF_MS) -> np.ndarray:
    """Centred moving average of `a` (T,) or (T, K) over the frames within `half_ms` of each
    frame's time `t` (T,) ms: the whole trace is known at close. Windows are cut at the ends."""
    t = np.asarray(t, np.float64)
    a = np.asarray(a, np.float64)
    lo = np.searchsorted(t, t - half_ms, side="left")
    hi = np.searchsorted(t, t + half_ms, side="right")
    c = np.concatenate([np.zeros((1,) + a.shape[1:]), np.cumsum(a, axis=0)])
    n = (hi - lo).reshape((-1,) + (1,) * (a.ndim - 1))
    return (c[hi] - c[lo]) / n


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
                plateau: bool = False, settled_frac: float = 0.0) -> Edges:
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
        settled_frac: with `plateau`, a curve that came back below this fraction of its rise
            but not to rest (a real sample's offset frame is not its onset frame) has its
            offset where the fall ends: within 10 % of the fall above the lowest level after
            the peak. 0: only a return to rest counts.
    """
    t = np.asarray(t, np.float64)
    s = smooth_ms(t, np.asarray(curve, np.float64))
    apex = int(np.argmax(s))
    peak = float(s[apex])
    base = float(s[: apex + 1].min()) if baseline else 0.0
    if plateau:
        apex = int(np.flatnonzero(s >= base + 0.9 * (peak - base))[0])
        low = base + 0.1 * (peak - base)
        on = crossing(t, s, low, apex, -1)
        top = int(np.argmax(s))
        final = float(s[top:].min())
        level = low
        if final <= base + settled_frac * (peak - base):
            level = max(low, final + 0.1 * (peak - final))
        off = crossing(t, s, level, top, +1)
        return Edges(int(np.argmin(np.abs(t - on))), apex, int(np.argmin(np.abs(t - off))), peak)
    half = base + 0.5 * (peak - base)
    t_on = crossing(t, s, half, apex, -1)
    t_off = crossing(t, s, half, apex, +1)
    t_on = max(t[apex] - edge_scale * (t[apex] - t_on), t[0])
    t_off = min(t[apex] + edge_scale * (t_off - t[apex]), t[-1])
    return Edges(int(np.argmin(np.abs(t - t_on))), apex, int(np.argmin(np.abs(t - t_off))), peak)
