"""One clip: which AUs a class uses, its FACS code, and its frames."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np

from train.synth.aus import CLASS_AUS, SURPRISE_AU5
from train.synth.profiles import _sway
from train.synth.render import Renderer

@dataclass
class ClipTruth:
    """What was rendered into one clip (frame indices are 0-based positions in the clip)."""

    subject: str
    sample: str
    kind: str  # micro | macro
    cls: str
    aus: str
    peak_iod: float
    num_frames: int
    onset: int
    apex: int
    offset: int
    iod_px: float


def class_aus(cls: str, rng: np.random.Generator) -> tuple[tuple[str, float], ...]:
    aus = CLASS_AUS[cls]
    if cls == "surprise" and rng.random() < 0.5:
        aus = aus + (SURPRISE_AU5,)
    return aus


def au_code(aus: Sequence[tuple[str, float]]) -> str:
    """FACS code as the coding sheets write it, e.g. "6+12"."""
    return "+".join(sorted((a[0][2:] for a in aus), key=int))


def render_clip(
    renderer: Renderer,
    aus: Sequence[tuple[str, float]],
    amps: np.ndarray,
    rng: np.random.Generator,
    sway_deg: float = 0.15,
    sway_px: float = 0.3,
) -> list[np.ndarray]:
    """Frames with expression amplitude `amps[t]` (fraction of IOD), sway, light drift, noise."""
    n = len(amps)
    key = "+".join(a for a, _ in aus)
    fld = renderer.ident.field_for(key, aus)
    sway = _sway(n, rng, sway_deg, sway_px, period=max(n, 20))
    g0, g1 = rng.uniform(0.95, 1.05), rng.uniform(-0.03, 0.03)  # exposure and its drift
    grad = rng.uniform(-0.08, 0.08)
    noise = rng.uniform(1.0, 2.5)
    frames = []
    for t in range(n):
        rig = renderer.rigid(*sway[t])
        gain = g0 + g1 * t / max(n - 1, 1)
        frames.append(renderer.frame(fld, float(amps[t]), rig, gain, grad, noise, rng))
    return frames
