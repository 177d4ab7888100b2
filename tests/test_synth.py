"""Synthetic expressions: localized FACS-like motion on a real face, deterministic output,
the CASME II layout, and long videos with ground truth. (Synthetic data: tests/demos only.)"""

from __future__ import annotations

import filecmp
import json

import cv2
import numpy as np
import pytest

from _data_helpers import synth_set
from moext.face import FaceDetection, FaceMesh, _similarity, inter_ocular_distance
from train.synth import (
    CLASS_AUS,
    LONG_KINDS,
    Renderer,
    default_faces,
    detect_photos,
    event_profile,
    landmark_field,
    make_identity,
    make_long_video,
)

BROWS = [107, 66, 55, 65, 105, 52, 70, 63, 46, 53, 336, 296, 285, 295, 334, 282, 300, 293, 276, 283]
MOUTH_CORNERS = [61, 291]


@pytest.fixture(scope="module")
def mesh():
    with FaceMesh(video_mode=False, max_faces=1) as m:
        yield m


@pytest.fixture(scope="module")
def ident(mesh):
    photo = detect_photos(default_faces(), mesh)[0]
    return make_identity(photo, np.random.default_rng(0), mesh, 320, 240, 0.22, "sub01", vary=False)


def test_landmark_field_is_local_and_normalised():
    lm = np.array([[50, 50], [60, 50], [150, 150], [50, 70]], np.float32)
    f = landmark_field(lm, {0: np.array([0.0, -2.0]), 1: np.array([0.0, -1.0])}, (200, 200), sigma=8.0, anchors=[3], step=1)
    assert f.shape == (200, 200, 2) and f.dtype == np.float32
    mag = np.linalg.norm(f, axis=-1)
    assert mag[50, 50] == pytest.approx(1.0, abs=0.02)  # the largest landmark move is 1
    assert mag[50, 60] < mag[50, 50]
    assert mag[150, 150] < 1e-3  # far from every moving landmark: no motion
    assert mag[70, 50] < 0.2  # an anchor pins the field
    assert f[50, 50, 1] < 0  # direction kept (up)


def test_event_profile_rises_to_apex_and_falls():
    p = event_profile(30, onset=5, apex=12, offset=25)
    assert p[:6].max() == 0 and p[12] == 1 and p[25:].max() == pytest.approx(0)
    assert np.all(np.diff(p[5:13]) > 0) and np.all(np.diff(p[12:26]) < 0)
    q = event_profile(30, 0, 5, 29, hold=4, release=0.3)
    assert q[5:10].min() == 1 and q[29] == pytest.approx(0.3)


def _apex_motion(mesh, ident, cls, amp):
    """Face-mesh landmark motion rest -> apex, rigid part removed, in IOD units."""
    rend = Renderer(ident)
    field = ident.field_for(cls, CLASS_AUS[cls])
    rest = rend.frame(None, 0.0, None, 1.0, 0.0, 0.0, np.random.default_rng(0))
    apex = rend.frame(field, amp, None, 1.0, 0.0, 0.0, np.random.default_rng(0))
    a, b = mesh.detect(rest), mesh.detect(apex)
    assert isinstance(a, FaceDetection) and isinstance(b, FaceDetection)
    anchors = [33, 133, 362, 263, 1, 4, 6, 168, 152, 234, 454]
    m = _similarity(b.landmarks[anchors].astype(float), a.landmarks[anchors].astype(float))
    moved = b.landmarks @ m[:, :2].T + m[:, 2]
    return (moved - a.landmarks) / inter_ocular_distance(a.landmarks)


@pytest.mark.parametrize("cls", ["positive", "negative", "surprise"])
def test_expressions_move_the_right_face_regions(mesh, ident, cls):
    d = _apex_motion(mesh, ident, cls, 0.08)
    brow, mouth = np.linalg.norm(d[BROWS], axis=1).mean(), np.linalg.norm(d[MOUTH_CORNERS], axis=1).mean()
    if cls == "positive":  # AU6+AU12: lip corners up and out, brows still
        assert mouth > 2 * brow and mouth > 0.01
        assert d[MOUTH_CORNERS, 1].mean() < 0  # up
        assert d[61, 0] < 0 < d[291, 0]  # out
    elif cls == "negative":  # AU4+AU7: brows down and together
        assert brow > 2 * mouth and brow > 0.01
        assert d[BROWS, 1].mean() > 0
    else:  # AU1+AU2: brows up
        assert brow > 2 * mouth and brow > 0.01
        assert d[BROWS, 1].mean() < 0


def test_peak_displacement_is_the_requested_fraction_of_iod(ident):
    for cls, aus in CLASS_AUS.items():
        f = ident.field_for(cls, aus)
        lm = np.round(ident.landmarks).astype(int)
        at_lm = np.linalg.norm(f[lm[:, 1], lm[:, 0]], axis=1)
        assert at_lm.max() == pytest.approx(ident.iod, rel=0.1)  # unit field: 1 IOD at the peak landmark
        # localized: most of the face (e.g. the nose tip and chin) does not move
        assert at_lm[[1, 4, 152]].max() < 0.1 * ident.iod


def test_subjects_differ_and_output_is_deterministic(tmp_path):
    from train.synth import SynthConfig, write_dataset

    a = synth_set()
    cfg = dict(subjects=2, per_class=1, frames=8, width=224, height=168, macro_per_class=0, long_videos=0)
    write_dataset(SynthConfig(out=tmp_path / "same", seed=0, **cfg), progress=False)
    write_dataset(SynthConfig(out=tmp_path / "other", seed=1, **cfg), progress=False)
    files = sorted(p.relative_to(a) for p in (a / "CASME2_RAW_selected").rglob("*.jpg"))
    assert len(files) == 2 * 3 * 8
    _, mismatch, errors = filecmp.cmpfiles(a, tmp_path / "same", [str(f) for f in files], shallow=False)
    assert mismatch == [] and errors == []
    assert (a / "CASME2-coding-synthetic.xlsx").is_file()
    other = sorted((tmp_path / "other" / "CASME2_RAW_selected").rglob("*.jpg"))
    assert cv2.imread(str(other[0])).tobytes() != cv2.imread(str(a / files[0])).tobytes()
    # two subjects of one photo are different people-ish: pixels and face shape differ
    s1 = cv2.imread(str(next((a / "CASME2_RAW_selected/sub01").rglob("*.jpg")))).astype(float)
    s2 = cv2.imread(str(next((a / "CASME2_RAW_selected/sub02").rglob("*.jpg")))).astype(float)
    assert np.abs(s1 - s2).mean() > 10
    truth = json.loads((a / "synth_truth.json").read_text())
    assert {m["cls"] for m in truth["micro"]} == {"negative", "positive", "surprise"}
    assert all(0.02 <= m["peak_iod"] <= 0.04 for m in truth["micro"])


@pytest.mark.slow
def test_long_video_ground_truth_and_visible_events(tmp_path):
    path = tmp_path / "long.mp4"
    gt = make_long_video(path, seconds=12, size=(320, 180), seed=3, iod_frac=0.16)
    assert json.loads(path.with_suffix(".json").read_text()) == gt
    cap = cv2.VideoCapture(str(path))
    frames = []
    while True:
        ok, f = cap.read()
        if not ok:
            break
        frames.append(f.astype(np.float32))
    assert len(frames) == gt["num_frames"] == 360 and frames[0].shape == (180, 320, 3)
    evs = gt["events"]
    assert {e["kind"] for e in evs} <= set(LONG_KINDS) and len(evs) >= 3
    for e in evs:
        assert e["onset_frame"] < e["apex_frame"] < e["offset_frame"] < gt["num_frames"]
        assert e["onset_ms"] == pytest.approx(e["onset_frame"] * 1000 / 30, abs=1e-3)
        n = e["offset_frame"] - e["onset_frame"]
        if e["kind"] == "micro":
            assert 6 <= n <= 15 and e["class"] in CLASS_AUS
        elif e["kind"] == "macro":
            assert n >= 30 and e["peak_iod"] >= 0.04
        else:
            assert e["class"] is None and n >= 20
    for a, b in zip(evs, evs[1:]):
        assert b["onset_frame"] - a["offset_frame"] >= 30  # quiet gaps between events

    def change(e):  # apex vs onset, beyond the noise floor of a quiet pair of frames
        d = np.abs(frames[e["apex_frame"]] - frames[e["onset_frame"]]).mean(-1)
        return float(np.percentile(d, 99.5))

    quiet = np.percentile(np.abs(frames[10] - frames[12]).mean(-1), 99.5)
    for e in evs:
        assert change(e) > 1.5 * quiet, e


def test_faces_folder(tmp_path, mesh):
    from train.synth import SynthError, load_faces

    faces = tmp_path / "faces"
    faces.mkdir()
    cv2.imwrite(str(faces / "a_person.png"), default_faces()[0][1])
    cv2.imwrite(str(faces / "b_wall.png"), np.full((200, 200, 3), 150, np.uint8))
    (faces / "notes.txt").write_text("not an image")
    loaded = load_faces(faces)
    assert [n for n, _ in loaded] == ["a_person", "b_wall"]
    assert [p.name for p in detect_photos(loaded, mesh)] == ["a_person"]
    with pytest.raises(SynthError, match="no face found in any photo"):
        detect_photos(loaded[1:], mesh)
    with pytest.raises(SynthError, match="no readable images"):
        load_faces(tmp_path / "faces" / "..")  # a folder of folders only
