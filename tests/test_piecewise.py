"""The third motion source (`train.synth.piecewise`): unit patterns from the blendshape
model's response, warped piecewise-affinely."""

import numpy as np
import pytest

from moext.blendshapes import AU_CODES, BlendshapeModel, action_unit_sides, action_units
from moext.face import FaceMesh
from train import synth
from train.synth.piecewise import piecewise_field, unit_gradients, unit_pattern


@pytest.fixture(scope="module")
def ident():
    with FaceMesh(video_mode=False, max_faces=1) as mesh:
        photo = synth.detect_photos(synth.default_faces(), mesh)[0]
        return synth.make_identity(photo, np.random.default_rng(0), mesh, 320, 240, 0.22, "t", vary=False)


@pytest.fixture(scope="module")
def grad(ident):
    return unit_gradients(ident.landmarks)


def test_a_pattern_raises_its_unit_as_the_model_reads_it_and_is_no_head_motion(ident, grad):
    model = BlendshapeModel()
    lm = ident.landmarks.astype(np.float64)
    base = action_units(model.predict(lm.astype(np.float32)))
    for code in ("AU12", "AU4", "AU1"):
        d = unit_pattern(grad, lm, code)
        assert np.linalg.norm(d, axis=1).max() == pytest.approx(1.0)
        moved = lm + 0.01 * ident.iod * d  # 1 % IOD at the largest point
        change = action_units(model.predict(moved.astype(np.float32))) - base
        assert change[AU_CODES.index(code)] > 0.01, (code, change)
        # No translation, rotation or scale left in it.
        c = lm - lm.mean(0)
        assert abs(d.mean(0)).max() < 1e-6
        assert abs((c[:, 0] * d[:, 1] - c[:, 1] * d[:, 0]).sum()) < 1e-6 * np.abs(c).sum()
    # One side: the subject's left score rises more than the right.
    left = action_unit_sides(model.predict((lm + 0.01 * ident.iod * unit_pattern(grad, lm, "L12")).astype(np.float32)))
    sides0 = action_unit_sides(model.predict(lm.astype(np.float32)))
    rise = left[AU_CODES.index("AU12")] - sides0[AU_CODES.index("AU12")]
    assert rise[0] > rise[1]
    with pytest.raises(ValueError, match="no blendshape stands for AU99"):
        unit_pattern(grad, lm, "AU99")


def test_the_field_is_piecewise_linear_on_the_mesh_and_zero_off_the_face(ident, grad):
    d = unit_pattern(grad, ident.landmarks, "AU12")
    h, w = ident.face.shape[:2]
    f = piecewise_field(ident.landmarks, d, (h, w))
    assert f.shape == (h, w, 2) and f.dtype == np.float32
    # At a landmark (away from the rounding of pixel centres) the field is its move.
    lm = ident.landmarks
    i = int(np.argmax(np.linalg.norm(d, axis=1)))
    x, y = np.round(lm[i]).astype(int)
    assert np.linalg.norm(f[y, x] - d[i]) < 0.35
    assert np.abs(f[0]).max() == 0 and np.abs(f[:, 0]).max() == 0  # the frame's edges stay
    assert np.linalg.norm(f, axis=-1).max() <= 1.0 + 1e-5  # linear: never beyond its vertices


def test_a_long_video_in_the_piecewise_style(tmp_path):
    truth = synth.make_long_video(tmp_path / "v.mp4", seconds=6, seed=1, style="piecewise")
    assert truth["style"] == "piecewise" and truth["events"]
    assert all("aus" in e for e in truth["events"] if e["kind"] != "head_turn")
