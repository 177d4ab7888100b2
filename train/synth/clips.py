"""One clip: which AUs a class uses, its FACS code, and its frames."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np

from train.synth.aus import CLASS_AUS, CLASSIC_AU_MOVES, SURPRISE_AU5, field_key
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
    pattern: str = ""  # the EMFACS emotion drawn (sadness, contempt, ...; "" for classic)
    identity: str = ""  # the photo the subject was made from


def class_aus(cls: str, rng: np.random.Generator) -> tuple[tuple[str, float], ...]:
    aus = CLASS_AUS[cls]
    if cls == "surprise" and rng.random() < 0.5:
        aus = aus + (SURPRISE_AU5,)
    return aus


def _au_number(name: str) -> int:
    return int(name[2:] if name.startswith("AU") else name[1:])


def au_code(aus: Sequence[tuple[str, float]]) -> str:
    """FACS code as the coding sheets write it, e.g. "6+12", "R14" (one side), "1+4+15"."""
    names = sorted((a[0] for a in aus), key=_au_number)
    return "+".join(n[2:] if n.startswith("AU") else n for n in names)


def head_motion(n: int, rng: np.random.Generator, iod: float, rot_deg: float = 1.0, shift_iod: float = 0.015,
                scale: float = 0.01, yaw_deg: float = 3.0) -> np.ndarray:
    """(n, 5) head motion during a clip: roll (deg), dx, dy (px), scale factor, yaw (deg).

    Each channel drifts smoothly from 0 to a random end in [-max, max] with a small wobble,
    so the apex differs from the onset by a rigid movement as well as the expression (real
    participants sway; alignment removes roll, shift and scale, not yaw)."""
    t = np.linspace(0.0, 1.0, n)
    out = np.zeros((n, 5))
    for k, a in enumerate((rot_deg, shift_iod * iod, shift_iod * iod, scale, yaw_deg)):
        end = rng.uniform(-a, a)
        wobble = rng.uniform(-0.3, 0.3) * a * np.sin(2 * np.pi * rng.uniform(0.5, 1.5) * t + rng.uniform(0, 2 * np.pi))
        out[:, k] = end * (0.5 - 0.5 * np.cos(np.pi * t)) + wobble
    out[:, 3] += 1.0
    return out


def expression_field(ident, aus: Sequence[tuple[str, float]], classic: bool = False) -> np.ndarray:
    """The identity's unit field for `aus`, from the classic or the current AU table."""
    if classic:
        return ident.field_for("classic:" + field_key(aus), aus, CLASSIC_AU_MOVES)
    return ident.field_for(field_key(aus), aus)


def render_clip(
    renderer: Renderer,
    aus: Sequence[tuple[str, float]],
    amps: np.ndarray,
    rng: np.random.Generator,
    sway_deg: float = 0.15,
    sway_px: float = 0.3,
    motion: np.ndarray | None = None,
    classic: bool = False,
) -> list[np.ndarray]:
    """Frames with expression amplitude `amps[t]` (fraction of IOD), sway, light drift, noise.

    `motion` ((n, 5) from `head_motion`) replaces the default small sway by a head movement
    during the expression; `classic` renders with the first generator's AU definitions."""
    n = len(amps)
    fld = expression_field(renderer.ident, aus, classic=motion is None and classic)
    sway = _sway(n, rng, sway_deg, sway_px, period=max(n, 20)) if motion is None else None
    g0, g1 = rng.uniform(0.95, 1.05), rng.uniform(-0.03, 0.03)  # exposure and its drift
    grad = rng.uniform(-0.08, 0.08)
    noise = rng.uniform(1.0, 2.5)
    frames = []
    for t in range(n):
        rig = renderer.rigid(*sway[t]) if motion is None else renderer.rigid(*motion[t])
        gain = g0 + g1 * t / max(n - 1, 1)
        frames.append(renderer.frame(fld, float(amps[t]), rig, gain, grad, noise, rng))
    return frames
