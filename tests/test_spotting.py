"""Spotting: motion normalisation, the state machine on landmark sequences, the MEGC metric,
and (slow) the whole recognizer on a generated long video with known intervals.

The landmark sequences here are real face-mesh landmarks of a photo (scikit-image's
astronaut) moved by hand: synthetic data, for tests only.
"""

from __future__ import annotations

import json

import cv2
import numpy as np
import pytest

from realtime.buffer import BufferedFrame, RollingBuffer
from moext.geometry import inter_ocular_distance
from realtime.motion import GROUP_NAMES, GROUPS, measure_motion
from realtime.spotting import Spotter, SpottingConfig, interval_iou, score_intervals

FPS = 30.0


@pytest.fixture(scope="module")
def base_landmarks() -> np.ndarray:
    import skimage.data

    from moext.face import FaceDetection, FaceMesh

    img = cv2.cvtColor(skimage.data.astronaut(), cv2.COLOR_RGB2BGR)
    with FaceMesh(video_mode=False, max_faces=1) as mesh:
        det = mesh.detect(img)
    assert isinstance(det, FaceDetection)
    return det.landmarks.astype(np.float64)


def _rigid(lm: np.ndarray, deg: float, scale: float, shift: tuple[float, float]) -> np.ndarray:
    c = lm.mean(0)
    m = cv2.getRotationMatrix2D((float(c[0]), float(c[1])), deg, scale)
    m[:, 2] += shift
    return lm @ m[:, :2].T + m[:, 2]


def test_rigid_motion_is_not_motion(base_landmarks):
    moved = _rigid(base_landmarks, 7.0, 1.1, (25.0, -12.0))
    m = measure_motion(moved, base_landmarks)
    assert m.motion < 1e-6
    assert abs(m.rotation_deg - 7.0) < 1e-6 or abs(m.rotation_deg + 7.0) < 1e-6
    assert abs(m.scale - 1.1) < 1e-6


def test_the_motion_measure_fits_the_head_as_the_shared_similarity_fit_does(base_landmarks):
    # measure_motion writes moext.geometry.fit_similarity out for speed: the same head fit.
    from moext.geometry import fit_similarity
    from realtime.motion import RIGID_POINTS

    rng = np.random.default_rng(0)
    moved = _rigid(base_landmarks, -4.0, 1.05, (3.0, -2.0)) + rng.normal(0, 0.8, base_landmarks.shape)
    m = measure_motion(moved, base_landmarks)
    fit = fit_similarity(moved[RIGID_POINTS], base_landmarks[RIGID_POINTS])  # current -> reference
    assert abs(m.scale - 1.0 / fit.scale) < 1e-9
    assert abs(m.rotation_deg + fit.angle_deg) < 1e-9


def test_local_motion_is_measured_in_iod(base_landmarks):
    iod = inter_ocular_distance(base_landmarks)
    moved = base_landmarks.copy()
    moved[GROUPS["brow_r"], 1] -= 0.02 * iod  # right brow up by 2 % IOD
    m = measure_motion(moved, base_landmarks)
    assert 1.7 < m.regions["brows"] < 2.1  # the rigid fit absorbs a little, not most
    assert m.regions["mouth"] < 0.3
    assert max(m.regions, key=m.regions.get) == "brows"
    # Same motion, head rotated and shifted: same answer.
    m2 = measure_motion(_rigid(moved, -5.0, 0.9, (10, 4)), base_landmarks)
    assert abs(m2.regions["brows"] - m.regions["brows"]) < 1e-6


def _profile(n: int, on: int, ap: int, off: int) -> np.ndarray:
    t = np.arange(n, dtype=float)
    a = np.zeros(n)
    r = (t >= on) & (t <= ap)
    a[r] = 0.5 - 0.5 * np.cos(np.pi * (t[r] - on) / (ap - on))
    f = (t > ap) & (t <= off)
    a[f] = 0.5 + 0.5 * np.cos(np.pi * (t[f] - ap) / (off - ap))
    return a


def _run(frames: list[np.ndarray], cfg: SpottingConfig | None = None):
    sp = Spotter(cfg)
    buf = RollingBuffer()
    events = []
    for i, lm in enumerate(frames):
        rec = BufferedFrame(i, i * 1000.0 / FPS, lm.astype(np.float32))
        buf.append(rec)
        events += sp.update(rec, buf).events
    return sp, events


def _sequence(base, n, rng, jitter=0.15, aus=(), turns=()):
    """Landmarks per frame: jitter (% IOD, per point), AU bumps, rigid head turns."""
    iod = inter_ocular_distance(base)
    out = []
    for t in range(n):
        lm = base + rng.normal(0, jitter / 100 * iod, base.shape)
        for group, amp, prof in aus:
            lm[GROUPS[group], 1] -= amp / 100 * iod * prof[t]
        for deg, prof in turns:
            lm = _rigid(lm, deg * prof[t], 1.0, (0.2 * iod * prof[t], 0.0))
        out.append(lm)
    return out


def test_micro_macro_and_head_turn_on_landmark_sequence(base_landmarks):
    rng = np.random.default_rng(0)
    n = 300
    micro = _profile(n, 90, 94, 100)  # 10 frames = 0.33 s, 2.5 % IOD
    macro = _profile(n, 150, 170, 200)  # 50 frames = 1.7 s, 8 % IOD
    turn = _profile(n, 240, 255, 270)  # 7 degrees and 20 % IOD shift, no expression
    frames = _sequence(base_landmarks, n, rng, aus=[("brow_r", 2.5, micro), ("brow_l", 2.5, micro),
                                                    ("mouth_corner_r", 8, macro),
                                                    ("mouth_corner_l", 8, macro)],
                       turns=[(7.0, turn)])
    sp, events = _run(frames)
    kinds = [(e.kind, e.onset.index, e.apex.index, e.offset.index) for e in events]
    micro_ev = [e for e in events if e.kind == "micro"]
    macro_ev = [e for e in events if e.kind == "macro"]
    assert len(micro_ev) == 1, kinds
    assert interval_iou((micro_ev[0].onset.index, micro_ev[0].offset.index), (90, 100)) >= 0.5, kinds
    assert micro_ev[0].region == "brows"
    assert len(macro_ev) == 1, kinds
    assert macro_ev[0].region == "mouth"
    assert interval_iou((macro_ev[0].onset.index, macro_ev[0].offset.index), (150, 200)) >= 0.5
    assert not any(e.apex.index >= 235 for e in events), kinds  # the head turn gave nothing


def test_micro_that_also_enters_the_sustained_detector_is_still_reported(base_landmarks):
    # 4 % IOD for 1/3 s: above the sustained detector's 3 % entry, below the micro limits.
    # When that detector returned to quiet it used to restart the transient detector too,
    # so the transient detector never scored the movement (seen on the demo video).
    n = 200
    micro = _profile(n, 100, 104, 110)
    frames = _sequence(base_landmarks, n, np.random.default_rng(3),
                       aus=[("brow_r", 4.0, micro), ("brow_l", 4.0, micro)])
    sp, events = _run(frames)
    kinds = [(e.kind, e.onset.index, e.apex.index, e.offset.index) for e in events]
    assert len(events) == 1 and events[0].kind == "micro", kinds
    assert interval_iou((events[0].onset.index, events[0].offset.index), (100, 110)) >= 0.5, kinds


def test_still_face_gives_no_events(base_landmarks):
    frames = _sequence(base_landmarks, 240, np.random.default_rng(1))
    sp, events = _run(frames)
    assert events == []
    assert sp.state == "quiet"


def test_first_frames_are_never_a_reference(base_landmarks):
    frames = _sequence(base_landmarks, 40, np.random.default_rng(2))
    sp = Spotter(SpottingConfig(warmup_ms=60, settle_ms=250))
    buf = RollingBuffer()
    states = []
    for i, lm in enumerate(frames):
        rec = BufferedFrame(i, i * 1000.0 / FPS, lm)
        buf.append(rec)
        u = sp.update(rec, buf)
        states.append(u.state)
        if u.reference is not None:
            assert u.reference.index >= 3
    assert states[:3] == ["waiting", "waiting", "settling"]
    assert states[-1] == "quiet"


# --- the optical-flow cue ------------------------------------------------------------------


@pytest.fixture(scope="module")
def base_crop(base_landmarks):
    """The astronaut's aligned face as the flow cue sees it: grey crop and its landmarks."""
    import skimage.data

    from moext.face import align_face
    from realtime.motion import motion_image

    img = cv2.cvtColor(skimage.data.astronaut(), cv2.COLOR_RGB2BGR)
    face = align_face(img, base_landmarks, 224)
    return motion_image(face.crop, face.landmarks)


def _lift_weight(x: np.ndarray, y: np.ndarray, points: np.ndarray, groups: list[str]) -> np.ndarray:
    """How much of a lift moves the skin at (x, y): a Gaussian around each group's centre."""
    iod = inter_ocular_distance(points)
    weight = np.zeros(np.shape(x), np.float32)
    for g in groups:
        c = points[GROUPS[g]].mean(0)
        weight = np.maximum(weight, np.exp(-((x - c[0]) ** 2 + (y - c[1]) ** 2) / (2 * (0.15 * iod) ** 2)))
    return weight


def _lift(grey: np.ndarray, points: np.ndarray, groups: list[str], amount: float) -> np.ndarray:
    """Move the skin around `groups` up by `amount` % IOD (a smooth local warp, like an AU)."""
    h, w = grey.shape
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    shift = _lift_weight(xx, yy, points, groups) * amount / 100 * inter_ocular_distance(points)
    # float32 maps: OpenCV 5 misreads a float64 second map beside a float32 first one.
    return cv2.remap(grey, xx, (yy + shift).astype(np.float32), cv2.INTER_LINEAR)


def test_flow_meter_sees_a_local_warp_and_not_the_crops_own_shift(base_crop):
    from realtime.motion import FlowMeter

    grey, pts = base_crop
    brows = ["brow_r", "brow_l"]
    meter = FlowMeter()
    got = dict(zip(GROUP_NAMES, meter.measure(grey, pts, _lift(grey, pts, brows, 2.0)).groups))
    # What the warp did to the landmarks themselves.
    moved = pts.astype(np.float64).copy()
    moved[:, 1] -= _lift_weight(pts[:, 0], pts[:, 1], pts, brows) * 0.02 * inter_ocular_distance(pts)
    true = dict(zip(GROUP_NAMES, measure_motion(moved, pts).groups))
    # The 56 px flow field under-measures a motion this local by about a third.
    assert 0.5 * true["brows_both"] < got["brows_both"] < 1.1 * true["brows_both"], (got, true)
    assert 0.5 * true["upper_lids_both"] < got["upper_lids_both"] < 1.1 * true["upper_lids_both"]
    assert got["mouth_corners_both"] < 0.1 and got["lower_lip"] < 0.1, got
    # The whole crop shifted by 0.36 px, ~1 % IOD, several times the alignment's own jitter:
    # the similarity fit on the rigid points takes out most of it (DIS is not exact at
    # sub-pixel shifts; 0.22 % IOD is left in the worst group here).
    shifted = cv2.warpAffine(grey, np.float32([[1, 0, 0.3], [0, 1, -0.2]]), grey.shape[::-1],
                             borderMode=cv2.BORDER_REPLICATE)
    jitter = meter.measure(grey, pts, shifted)
    assert jitter.shift > 0.7 and jitter.motion < 0.35 * jitter.shift, jitter


def _run_images(base_landmarks, base_crop, lift: np.ndarray, cfg: SpottingConfig | None = None,
                grey_from: int = 0):
    """Frames whose landmarks only jitter while the crop's brows move by `lift` (% IOD);
    frames before `grey_from` carry no grey crop (landmark cue only)."""
    grey, pts = base_crop
    rng = np.random.default_rng(0)
    sp = Spotter(cfg)
    buf = RollingBuffer()
    events = []
    iod = inter_ocular_distance(base_landmarks)
    for i, a in enumerate(lift):
        lm = base_landmarks + rng.normal(0, 0.15 / 100 * iod, base_landmarks.shape)
        img = _lift(grey, pts, ["brow_r", "brow_l"], a)
        noisy = np.clip(img + rng.normal(0, 1.0, img.shape), 0, 255).astype(np.uint8)
        rec = BufferedFrame(i, i * 1000.0 / FPS, lm.astype(np.float32),
                            grey=noisy if i >= grey_from else None, grey_points=pts)
        buf.append(rec)
        events += sp.update(rec, buf).events
    return sp, events


def test_flow_cue_finds_a_micro_expression_the_landmarks_do_not_show(base_landmarks, base_crop):
    n = 200
    lift = 2.0 * _profile(n, 100, 105, 111)  # 11 frames, 2 % IOD, landmarks see nothing
    sp, events = _run_images(base_landmarks, base_crop, lift)
    kinds = [(e.kind, e.onset.index, e.apex.index, e.offset.index) for e in events]
    assert len(events) == 1 and events[0].kind == "micro", (kinds, sp.discarded)
    assert interval_iou((events[0].onset.index, events[0].offset.index), (100, 111)) >= 0.5, kinds
    assert events[0].region == "brows"
    assert 0.5 < events[0].amplitude < 3.0  # the apex's displacement from the onset, % IOD
    _, by_landmarks = _run_images(base_landmarks, base_crop, lift,
                                  SpottingConfig(transient_cue="landmarks"))
    assert by_landmarks == []


def test_frames_without_grey_crops_then_with_them(base_landmarks, base_crop):
    # The first 60 frames come without a grey crop (landmark cue); the cues' scores must not
    # mix, and the flow cue takes over once the crops come.
    n = 200
    lift = 2.0 * _profile(n, 120, 125, 131)
    sp, events = _run_images(base_landmarks, base_crop, lift, grey_from=60)
    kinds = [(e.kind, e.onset.index, e.apex.index, e.offset.index) for e in events]
    assert len(events) == 1 and events[0].kind == "micro", (kinds, sp.discarded)
    assert interval_iou((events[0].onset.index, events[0].offset.index), (120, 131)) >= 0.5, kinds


def test_flow_cue_drops_a_movement_that_does_not_come_back(base_landmarks, base_crop):
    # Brows jump like a micro-expression but settle 2.5 % IOD up instead of coming back
    # (0.7 of the apex's displacement): the start of a longer movement, not a micro.
    n = 200
    lift = 1.0 * _profile(n, 100, 105, 111) + 2.5 * np.clip((np.arange(n) - 100) / 5.0, 0, 1)
    sp, events = _run_images(base_landmarks, base_crop, lift)
    assert events == [], [(e.kind, e.onset.index, e.offset.index) for e in events]
    assert sp.discarded == {"did not return (part of a longer movement)": 1}, sp.discarded
    # Without the return test the same movement passes as a micro-expression.
    _, events = _run_images(base_landmarks, base_crop, lift, SpottingConfig(return_frac=10.0))
    assert [e.kind for e in events] == ["micro"]


def test_flow_cue_keeps_a_micro_that_comes_most_of_the_way_back(base_landmarks, base_crop):
    # A micro-expression on a drifting face comes back only part of the way within the
    # window (about 0.45 of its rise; the development videos' weak ones: up to 0.49): still
    # a micro-expression; the old bar (0.33) dropped it.
    n = 200
    lift = 2.0 * _profile(n, 100, 105, 111) + 1.6 * np.clip((np.arange(n) - 100) / 5.0, 0, 1)
    sp, events = _run_images(base_landmarks, base_crop, lift)
    assert [e.kind for e in events] == ["micro"], sp.discarded
    _, events = _run_images(base_landmarks, base_crop, lift, SpottingConfig(return_frac=0.33))
    assert events == []


def test_megc_metric_by_hand():
    assert interval_iou((0, 9), (5, 14)) == pytest.approx(5 / 15)
    assert interval_iou((0, 9), (10, 19)) == 0.0
    s = score_intervals([(0, 9), (20, 29), (100, 110)], [(1, 10), (22, 40), (200, 210)])
    # (0,9)-(1,10): IoU 9/11 -> TP; (20,29)-(22,40): 8/21 < 0.5 -> no; (100,110): FP.
    assert (s.tp, s.fp, s.fn) == (1, 2, 2)
    assert s.precision == pytest.approx(1 / 3)
    assert s.recall == pytest.approx(1 / 3)
    # One ground truth cannot be matched twice.
    s = score_intervals([(0, 9), (0, 9)], [(0, 9)])
    assert (s.tp, s.fp, s.fn) == (1, 1, 0)


# --- the whole recognizer on a generated long video ----------------------------------

# The floors (MEGC rule, IoU >= 0.5) on this fixed-seed synthetic video. Measured
# there with the flow cue: micro precision 1.0, recall 1.0 (6 of 6; landmarks alone: 5 of 6).
# Held-out seeds: benchmarks/results/spotting.md.
MICRO_RECALL_FLOOR = 0.8
MICRO_PRECISION_FLOOR = 0.8
MACRO_AS_MACRO_FLOOR = 0.8


@pytest.mark.slow
def test_spotting_on_generated_long_video(tmp_path, tiny_cfg, monkeypatch):
    from moext import MoExtClassifier, save_checkpoint
    from realtime.recognizer import Recognizer
    from realtime.sources import VideoSource
    from train.synth import make_long_video

    monkeypatch.setenv("MOEXT_CACHE_DIR", str(tmp_path / "cache"))
    truth = make_long_video(tmp_path / "long.mp4", seconds=30.0, seed=1)
    ck = save_checkpoint(MoExtClassifier(tiny_cfg), tmp_path / "tiny.safetensors")
    rec = Recognizer.from_checkpoint(ck, backend="onnx")
    events = []
    with VideoSource(tmp_path / "long.mp4") as src:
        for fr in src:
            events += rec.process(fr.image, fr.timestamp_ms).events
    gt = truth["events"]
    pred_micro = [(e.onset_index, e.offset_index) for e in events if e.kind == "micro"]
    gt_micro = [(g["onset_frame"], g["offset_frame"]) for g in gt if g["kind"] == "micro"]
    s = score_intervals(pred_micro, gt_micro)
    print(json.dumps({"micro": s.to_dict(), "events": [e.to_dict() for e in events]}, indent=1))
    assert len(gt_micro) >= 5
    assert s.recall >= MICRO_RECALL_FLOOR, s
    assert s.precision >= MICRO_PRECISION_FLOOR, s
    # Head turns: nothing reported inside them.
    for g in gt:
        if g["kind"] == "head_turn":
            inside = [e for e in events if g["onset_frame"] <= e.apex_index <= g["offset_frame"]]
            assert inside == [], (g, inside)
    # Macro expressions that were found are reported as macro.
    gt_macro = [(g["onset_frame"], g["offset_frame"]) for g in gt if g["kind"] == "macro"]
    found = [e for e in events if any(interval_iou((e.onset_index, e.offset_index), m) >= 0.5
                                      for m in gt_macro)]
    assert found, "no macro expression was found at all"
    assert sum(e.kind == "macro" for e in found) / len(found) >= MACRO_AS_MACRO_FLOOR
    assert all(e.label in tiny_cfg.class_names for e in events)


@pytest.mark.slow
def test_a_stream_that_drops_40_percent_of_its_frames_gives_the_same_events(tmp_path, tiny_cfg, monkeypatch):
    """What a browser on a slow CPU does: 40 % of the frames never arrive (at random), the
    rest keep their capture times. The spotter's windows are in ms, so it reports >= 90 % of
    the full run's events (MEGC IoU >= 0.5 in time), each with the same kind."""
    from moext import MoExtClassifier, save_checkpoint
    from realtime.recognizer import Recognizer
    from realtime.sources import VideoSource
    from train.synth import make_long_video

    monkeypatch.setenv("MOEXT_CACHE_DIR", str(tmp_path / "cache"))
    make_long_video(tmp_path / "long.mp4", seconds=30.0, seed=3)
    ck = save_checkpoint(MoExtClassifier(tiny_cfg), tmp_path / "tiny.safetensors")
    with VideoSource(tmp_path / "long.mp4") as src:
        frames = [(fr.image, fr.timestamp_ms) for fr in src]
    keep = np.random.default_rng(0).random(len(frames)) >= 0.4

    def run(chosen):
        rec = Recognizer.from_checkpoint(ck, backend="onnx")
        events = []
        for image, t in chosen:
            events += rec.process(image, t).events
        events += rec.finish()
        rec.close()
        return [e for e in events if e.kind in ("micro", "macro")]

    full = run(frames)
    thinned = run([f for f, k in zip(frames, keep) if k])
    assert len(full) >= 5, [(e.kind, e.onset_ms) for e in full]
    same = [e for e in full if any(interval_iou((e.onset_ms, e.offset_ms), (d.onset_ms, d.offset_ms)) >= 0.5
                                   and d.kind == e.kind for d in thinned)]
    got = ([(e.kind, round(e.onset_ms), round(e.offset_ms)) for e in full],
           [(d.kind, round(d.onset_ms), round(d.offset_ms)) for d in thinned])
    assert len(same) >= 0.9 * len(full), got
    assert len(thinned) <= len(full) + 1, got  # and hardly anything the full run did not see


# --- the action-unit cue, head motion, blinks, truncation ----------------------------------

def _run_au(frames, aus, cfg=None):
    """Like `_run`, with each frame's action-unit vector (`moext.blendshapes.AU_TABLE` order)."""
    sp = Spotter(cfg)
    buf = RollingBuffer()
    events = []
    for i, (lm, au) in enumerate(zip(frames, aus)):
        rec = BufferedFrame(i, i * 1000.0 / FPS, lm.astype(np.float32), au=np.asarray(au, np.float32))
        buf.append(rec)
        events += sp.update(rec, buf).events
    return sp, events, buf


def _au_series(n, rng, bumps=()):
    from moext.blendshapes import AU_CODES

    a = np.full((n, len(AU_CODES)), 0.1) + rng.normal(0, 0.005, (n, len(AU_CODES)))
    for code, amp, prof in bumps:
        a[:, AU_CODES.index(code)] += amp * prof
    return np.clip(a, 0, 1)


def test_an_expression_made_while_the_head_turns_is_an_expression(base_landmarks):
    rng = np.random.default_rng(4)
    n = 260
    turn = _profile(n, 120, 150, 200)  # 7 degrees and a shift: the head moves...
    smile = _profile(n, 125, 150, 195)  # ...while the person smiles (AU12 +0.5)
    frames = _sequence(base_landmarks, n, rng, aus=[("mouth_corner_r", 6, smile), ("mouth_corner_l", 6, smile)],
                       turns=[(7.0, turn)])
    sp, events, _ = _run_au(frames, _au_series(n, rng, [("AU12", 0.5, smile)]))
    macro = [e for e in events if e.kind == "macro"]
    assert len(macro) == 1, ([(e.kind, e.onset.index, e.offset.index) for e in events], sp.discarded)
    assert macro[0].cue == "action units" and macro[0].group == "AU12"
    assert interval_iou((macro[0].onset.index, macro[0].offset.index), (125, 195)) >= 0.5
    # The same head turn with no expression: rigid motion explains it all, nothing is reported.
    frames = _sequence(base_landmarks, n, np.random.default_rng(4), turns=[(7.0, turn)])
    sp, events, _ = _run_au(frames, _au_series(n, rng, [("AU2", 0.08, turn)]))
    assert events == [], [(e.kind, e.onset.index, e.offset.index, e.cue) for e in events]


def test_a_blink_is_not_a_micro_expression(base_landmarks):
    rng = np.random.default_rng(5)
    n = 200
    blink = _profile(n, 100, 103, 107)
    lids = [("upper_lid_r", -4.0, blink), ("upper_lid_l", -4.0, blink)]  # lids down 4 % IOD
    frames = _sequence(base_landmarks, n, rng, aus=lids)
    cfg = SpottingConfig(transient_cue="landmarks")
    sp, events, _ = _run_au(frames, _au_series(n, rng, [("AU45", 0.8, blink)]), cfg)
    assert events == [] and sp.discarded.get("blink") == 1, (events, sp.discarded)
    # The same lid movement without AU45 (a lid tightener, say) is a micro-expression.
    frames = _sequence(base_landmarks, n, np.random.default_rng(5), aus=lids)
    sp, events, _ = _run_au(frames, _au_series(n, rng), cfg)
    assert [e.kind for e in events] == ["micro"], sp.discarded


def test_finish_closes_a_movement_in_flight_as_truncated(base_landmarks):
    rng = np.random.default_rng(6)
    n = 150
    rise = np.clip((np.arange(n) - 90) / 20.0, 0, 1)  # rises from frame 90 and is held
    frames = _sequence(base_landmarks, n, rng, aus=[("mouth_corner_r", 8, rise), ("mouth_corner_l", 8, rise)])
    sp, events, buf = _run_au(frames, _au_series(n, rng, [("AU12", 0.6, rise)]))
    assert events == [] and sp.state == "active"
    tail = sp.finish()
    assert len(tail) == 1 and tail[0].truncated and tail[0].kind == "macro"
    assert tail[0].offset.index == n - 1 and 85 <= tail[0].onset.index <= 100, tail[0].onset.index
    assert sp.state == "waiting" and sp.finish() == []  # nothing left open


def test_a_200_fps_stream_gives_the_same_events_in_time(base_landmarks):
    """Every window of the spotter is in ms: the same movements sampled at 30 and at 200
    fps give the same kinds at the same times (a high-speed research camera)."""
    def run(fps: float):
        n = int(10.0 * fps)
        t = np.arange(n) / fps * 1000.0  # ms
        def prof(on, ap, off):  # raised-cosine bump between times (ms)
            a = np.zeros(n)
            r = (t >= on) & (t <= ap)
            a[r] = 0.5 - 0.5 * np.cos(np.pi * (t[r] - on) / (ap - on))
            f = (t > ap) & (t <= off)
            a[f] = 0.5 + 0.5 * np.cos(np.pi * (t[f] - ap) / (off - ap))
            return a
        micro, macro = prof(3000, 3150, 3330), prof(6000, 6600, 7700)
        rng = np.random.default_rng(7)
        frames = _sequence(base_landmarks, n, rng, aus=[("brow_r", 2.5, micro), ("brow_l", 2.5, micro),
                                                        ("mouth_corner_r", 8, macro), ("mouth_corner_l", 8, macro)])
        sp, buf, events = Spotter(SpottingConfig(transient_cue="landmarks")), RollingBuffer(), []
        for i, lm in enumerate(frames):
            rec = BufferedFrame(i, float(t[i]), lm.astype(np.float32))
            buf.append(rec)
            events += sp.update(rec, buf).events
        return [(e.kind, e.onset.t_ms, e.apex.t_ms, e.offset.t_ms) for e in events]

    slow, fast = run(30.0), run(200.0)
    assert [k for k, *_ in slow] == ["micro", "macro"], slow
    assert [k for k, *_ in fast] == [k for k, *_ in slow], (slow, fast)
    for a, b in zip(slow, fast):
        assert abs(a[2] - b[2]) < 70, (a, b)  # apex within two 30-fps frames
        assert interval_iou((a[1], a[3]), (b[1], b[3])) > 0.5, (a, b)


# --- the kind rule, and movements that rise and come back -------------------------------


def test_kind_is_decided_by_duration_alone():
    from realtime.spotting.events import event_kind

    assert event_kind(500.0, 500.0) == "micro" and event_kind(500.1, 500.0) == "macro"
    assert event_kind(40.0, 500.0) == "micro"
    assert SpottingConfig().micro_max_ms == 500.0  # MEGC: 1/25 to 1/2 s
    assert not hasattr(SpottingConfig(), "micro_max_amplitude")  # amplitude never decides it


def test_a_brief_large_movement_is_micro_with_its_amplitude(base_landmarks):
    # 8 % IOD for 400 ms: larger than any micro-expression the spotter was tuned on, but
    # brief: micro by the definition users know. (The old rule called it macro, or dropped
    # it as "too large for micro".)
    n = 220
    bump = _profile(n, 100, 105, 112)
    frames = _sequence(base_landmarks, n, np.random.default_rng(8),
                       aus=[("mouth_corner_r", 8.0, bump), ("mouth_corner_l", 8.0, bump)])
    sp, events = _run(frames)
    got = [(e.kind, e.onset.index, e.offset.index, round(e.amplitude, 1)) for e in events]
    assert len(events) == 1 and events[0].kind == "micro", (got, sp.discarded)
    assert events[0].amplitude > 4.5, got  # reported beside the kind
    assert interval_iou((events[0].onset.index, events[0].offset.index), (100, 112)) >= 0.5, got


def _real_like(fps: float, lift: float, resid: float, rise_ms=165.0, dur_ms=342.0,
               hold_on_ms=1500.0, hold_off_ms=500.0):
    """A CASME II sample played as a stream: its onset frame held, the movement (rise over
    `rise_ms`, back by `dur_ms`, but only to `resid` of its height: a sample's offset frame
    is not its onset frame), its offset frame held. Returns (times ms, brow lift % IOD)."""
    n = int((hold_on_ms + dur_ms + hold_off_ms) * fps / 1000)
    t = np.arange(n) * 1000.0 / fps
    on, ap, off = hold_on_ms, hold_on_ms + rise_ms, hold_on_ms + dur_ms
    a = np.zeros(n)
    r = (t >= on) & (t <= ap)
    a[r] = 0.5 - 0.5 * np.cos(np.pi * (t[r] - on) / (ap - on))
    f = t > ap
    a[f] = resid + (1 - resid) * (0.5 + 0.5 * np.cos(np.pi * np.clip((t[f] - ap) / (off - ap), 0, 1)))
    return t, lift * a


def _run_timed(base_landmarks, base_crop, t, lift, lm_lift=None, seed=0, cfg=None):
    """`_run_images` on given frame times; `lm_lift` also moves the brow landmarks (% IOD).
    Returns (spotter, events, dropped), the stream closed with `finish`."""
    grey, pts = base_crop
    rng = np.random.default_rng(seed)
    sp, buf, events, dropped = Spotter(cfg), RollingBuffer(), [], []
    iod = inter_ocular_distance(base_landmarks)
    brows = np.concatenate([GROUPS["brow_r"], GROUPS["brow_l"]])
    for i, (ti, a) in enumerate(zip(t, lift)):
        lm = base_landmarks + rng.normal(0, 0.05 / 100 * iod, base_landmarks.shape)
        if lm_lift is not None:
            lm[brows, 1] -= lm_lift[i] / 100 * iod
        img = _lift(grey, pts, ["brow_r", "brow_l"], a)
        noisy = np.clip(img + rng.normal(0, 1.0, img.shape), 0, 255).astype(np.uint8)
        rec = BufferedFrame(i, float(ti), lm.astype(np.float32), grey=noisy, grey_points=pts)
        buf.append(rec)
        u = sp.update(rec, buf)
        events += u.events
        dropped += u.dropped
    events += sp.finish()
    dropped += sp.take_dropped()
    return sp, events, dropped


@pytest.mark.parametrize("fps", [28.6, 200.0])
def test_a_movement_that_comes_part_of_the_way_back_is_one_micro_event(base_landmarks, base_crop, fps):
    # The real samples' failure: the face came back only part of the way (0.65 of its rise)
    # and stopped; the transient detector's return test drops that, and the sustained
    # detector waited for half its peak, so it stayed open to the end of the stream and was
    # closed as a long truncated macro event (or nothing at all).
    t, lift = _real_like(fps, 6.0, 0.65)
    sp, events, dropped = _run_timed(base_landmarks, base_crop, t, lift, lm_lift=lift)
    got = [(e.kind, round(e.onset.t_ms), round(e.apex.t_ms), round(e.offset.t_ms), e.cue, e.truncated)
           for e in events]
    assert len(events) == 1, (got, sp.discarded)
    e = events[0]
    assert e.kind == "micro" and not e.truncated, (got, sp.discarded)
    assert interval_iou((e.onset.t_ms, e.offset.t_ms), (1500.0, 1842.0)) >= 0.5, got


def test_a_unit_that_dips_and_comes_back_is_not_a_relaxation(base_landmarks):
    # A lip corner that drops for 0.8 s and comes back (AU12 0.4 -> 0.1 -> 0.4): led by a
    # unit going down, which the relaxation rule read as the end of a held smile. It rose
    # and came back, so it is an event.
    rng = np.random.default_rng(9)
    n = 240
    dip = _profile(n, 100, 112, 124)
    frames = _sequence(base_landmarks, n, rng)
    aus = _au_series(n, rng, [("AU12", 0.3, 1 - dip)])
    sp, events, _ = _run_au(frames, aus)
    events += sp.finish()
    got = [(e.kind, e.onset.index, e.offset.index, e.cue) for e in events]
    assert len(events) == 1 and events[0].cue == "action units", (got, sp.discarded)
    assert "relaxation (the end of a held expression)" not in sp.discarded
    assert interval_iou((events[0].onset.index, events[0].offset.index), (100, 124)) >= 0.5, got


def test_every_dropped_movement_is_recorded_with_its_rule(base_landmarks):
    rng = np.random.default_rng(5)
    n = 200
    blink = _profile(n, 100, 103, 107)
    frames = _sequence(base_landmarks, n, rng, aus=[("upper_lid_r", -4.0, blink), ("upper_lid_l", -4.0, blink)])
    aus = _au_series(n, rng, [("AU45", 0.8, blink)])
    sp, buf, dropped = Spotter(SpottingConfig(transient_cue="landmarks")), RollingBuffer(), []
    for i, (lm, au) in enumerate(zip(frames, aus)):
        rec = BufferedFrame(i, i * 1000.0 / FPS, lm.astype(np.float32), au=np.asarray(au, np.float32))
        buf.append(rec)
        u = sp.update(rec, buf)
        assert u.events == []
        dropped += u.dropped
    assert [d.rule for d in dropped] == ["blink"], [(d.rule, d.onset.index) for d in dropped]
    d = dropped[0]
    assert 95 <= d.onset.index <= d.apex.index <= d.offset.index <= 112, (d.onset.index, d.offset.index)
    assert sum(sp.discarded.values()) == len(dropped)


def test_events_file_carries_dropped_movements_in_the_same_columns(tmp_path):
    from realtime.events import EVENT_FIELDS, Event, EventWriter

    ev = Event(100.0, 150.0, 300.0, "micro", "positive", {"negative": 0.2, "positive": 0.8},
               1.2, "mouth", 3, 4, 9)
    gone = Event(400.0, 420.0, 470.0, "dropped", None, {}, 0.9, "", 12, 13, 14, cue="transient",
                 rule="blink")
    for name in ("e.csv", "e.jsonl"):
        w = EventWriter(tmp_path / name, ["negative", "positive"])
        w.write(ev)
        w.write(gone)
        w.close()
        assert (w.count, w.dropped_count) == (1, 1)
    import csv

    rows = list(csv.reader(open(tmp_path / "e.csv")))
    assert rows[0] == EVENT_FIELDS + ["p_negative", "p_positive"] and "rule" in rows[0]
    assert all(len(r) == len(rows[0]) for r in rows)
    by = [dict(zip(rows[0], r)) for r in rows[1:]]
    assert (by[0]["kind"], by[0]["rule"]) == ("micro", "")
    assert (by[1]["kind"], by[1]["rule"], by[1]["onset_ms"]) == ("dropped", "blink", "400")
    lines = [json.loads(x) for x in open(tmp_path / "e.jsonl")]
    assert lines[1]["kind"] == "dropped" and lines[1]["rule"] == "blink" and lines[0]["rule"] is None


@pytest.mark.parametrize("movement", ["micro", "part_way_back", "macro"])
def test_the_same_movement_at_30_100_and_200_fps_gives_the_same_event(base_landmarks, base_crop, movement):
    """Every time constant of the spotter is in ms: a movement played at 30, 100 and 200 fps
    (a webcam, SMIC-HS, CASME II's camera) gives one event of the same kind, its onset, apex
    and offset within one 30 fps frame."""
    lift, resid, rise, dur, lm = {"micro": (2.0, 0.0, 150, 300, False),
                                  "part_way_back": (6.0, 0.65, 165, 342, True),
                                  "macro": (8.0, 0.0, 400, 1200, True)}[movement]
    got = {}
    for fps in (30.0, 100.0, 200.0):
        t, a = _real_like(fps, lift, resid, rise, dur)
        sp, events, _ = _run_timed(base_landmarks, base_crop, t, a, lm_lift=a if lm else None)
        assert len(events) == 1, (fps, [(e.kind, e.onset.t_ms, e.offset.t_ms) for e in events], sp.discarded)
        got[fps] = events[0]
    slow = got[30.0]
    assert slow.kind == ("macro" if movement == "macro" else "micro")
    for fps in (100.0, 200.0):
        e = got[fps]
        assert e.kind == slow.kind, (fps, e.kind)
        for edge in ("onset", "apex", "offset"):
            a, b = getattr(slow, edge).t_ms, getattr(e, edge).t_ms
            assert abs(a - b) <= 1000.0 / 30 + 1e-6, (fps, edge, a, b)


# --- expressions that stretch the face, one-sided movements ------------------------------

FOREHEAD = [9, 8, 151, 10, 109, 338, 67, 297, 103, 332, 54, 284, 21, 251]
CHIN = [152, 148, 377, 176, 400, 149, 378]


def _surprise(base, amount: float) -> np.ndarray:
    """AU1+2+5+26 as the face mesh shows it, `amount` % IOD: brows up, the forehead's points
    with them by half, upper lids up, lower lip and chin down; no head motion."""
    iod = inter_ocular_distance(base)
    lm = base.copy()
    d = amount / 100 * iod
    for g in ("brow_r", "brow_l"):
        lm[GROUPS[g], 1] -= d
    lm[FOREHEAD, 1] -= 0.5 * d
    for g in ("upper_lid_r", "upper_lid_l"):
        lm[GROUPS[g], 1] -= 0.5 * d
    lm[GROUPS["lower_lip"], 1] += d
    lm[CHIN, 1] += d
    return lm


def test_a_surprise_is_measured_whole_not_taken_for_head_motion(base_landmarks):
    m = measure_motion(_surprise(base_landmarks, 2.0), base_landmarks)
    # The head's fit holds points expressions hardly move: the brows' lift is all there.
    assert m.regions["brows"] > 1.9 and m.regions["mouth"] > 1.9, m.regions
    assert abs(m.scale - 1) < 0.002 and m.shift < 0.1 and m.rigid_residual < 0.1, m


@pytest.mark.parametrize("amount", [1.5, 3.0])
def test_a_generated_surprise_is_found_as_micro(base_landmarks, amount):
    n = 220
    prof = _profile(n, 100, 104, 110)  # 10 frames, 333 ms
    rng = np.random.default_rng(10)
    iod = inter_ocular_distance(base_landmarks)
    frames = [lm + rng.normal(0, 0.15 / 100 * iod, lm.shape)
              for lm in (base_landmarks + prof[t] * (_surprise(base_landmarks, amount) - base_landmarks)
                         for t in range(n))]
    sp, events = _run(frames)
    events += sp.finish()
    got = [(e.kind, e.onset.index, e.offset.index, e.region) for e in events]
    assert len(events) == 1 and events[0].kind == "micro", (got, sp.discarded)
    assert interval_iou((events[0].onset.index, events[0].offset.index), (100, 110)) >= 0.5, got


def test_a_pure_zoom_is_not_an_event(base_landmarks):
    # The face comes 10 % closer over 330 ms and goes back: the fit takes it all.
    n = 220
    prof = _profile(n, 100, 105, 110)
    rng = np.random.default_rng(11)
    iod = inter_ocular_distance(base_landmarks)
    frames = [_rigid(base_landmarks, 0.0, 1.0 + 0.1 * prof[t], (0.0, 0.0))
              + rng.normal(0, 0.15 / 100 * iod, base_landmarks.shape) for t in range(n)]
    sp, events = _run(frames)
    events += sp.finish()
    assert events == [], [(e.kind, e.onset.index, e.offset.index) for e in events]


def test_a_one_sided_lip_corner_pull_is_found_on_its_side(base_landmarks):
    # AU12 on the subject's left only, 2.5 % IOD for 333 ms: the single-side groups see it
    # whole (the mirror pair, half of it).
    n = 220
    prof = _profile(n, 100, 104, 110)
    iod = inter_ocular_distance(base_landmarks)
    rng = np.random.default_rng(12)
    frames = []
    for t in range(n):
        lm = base_landmarks + rng.normal(0, 0.15 / 100 * iod, base_landmarks.shape)
        lm[GROUPS["mouth_corner_l"]] += prof[t] * 2.5 / 100 * iod * np.array([0.6, -0.8])
        frames.append(lm)
    sp, events = _run(frames)
    events += sp.finish()
    got = [(e.kind, e.onset.index, e.offset.index, e.group) for e in events]
    assert len(events) == 1 and events[0].kind == "micro" and events[0].group == "mouth_corner_l", (got, sp.discarded)


def test_a_one_sided_dimpler_on_the_weaker_side_moves_the_action_unit_cue(base_landmarks):
    # AU14 (contempt) on the right while the left's score sits higher (a per-person
    # baseline): the unit's larger side does not move, the right side does, by +0.25.
    from moext.blendshapes import BLENDSHAPE_NAMES, action_units

    n = 240
    hold = _profile(n, 100, 110, 140)  # 1.3 s, held at the top
    rng = np.random.default_rng(13)
    iod = inter_ocular_distance(base_landmarks)
    left, right = BLENDSHAPE_NAMES.index("mouthDimpleLeft"), BLENDSHAPE_NAMES.index("mouthDimpleRight")
    sp, buf, events = Spotter(), RollingBuffer(), []
    for i in range(n):
        bs = np.full(len(BLENDSHAPE_NAMES), 0.05, np.float32) + rng.normal(0, 0.003, len(BLENDSHAPE_NAMES)).astype(np.float32)
        bs[left] += 0.35
        bs[right] += 0.25 * hold[i]
        lm = base_landmarks + rng.normal(0, 0.15 / 100 * iod, base_landmarks.shape)
        rec = BufferedFrame(i, i * 1000.0 / FPS, lm.astype(np.float32), blendshapes=bs, au=action_units(bs))
        buf.append(rec)
        events += sp.update(rec, buf).events
    events += sp.finish()
    got = [(e.kind, e.onset.index, e.offset.index, e.group, e.cue) for e in events]
    assert len(events) == 1 and events[0].group == "AU14" and events[0].cue == "action units", (got, sp.discarded)
    assert interval_iou((events[0].onset.index, events[0].offset.index), (100, 140)) >= 0.5, got
