"""The two-stage pipeline gives exactly the sequential results and cleans up after itself."""

from __future__ import annotations

import threading

import numpy as np
import pytest

from realtime.pipeline import run_frames
from realtime.recognizer import Recognizer
from realtime.sources import Frame, SourceError, VideoSource

DEMO_VIDEO = __import__("realtime.cli", fromlist=["DEMO_VIDEO"]).DEMO_VIDEO
N = 150  # 5 s of the demo video: long enough for the onset reference to settle


@pytest.fixture
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("MOEXT_CACHE_DIR", str(tmp_path / "cache"))


def _run(pipelined: bool, n: int = N):
    rec = Recognizer.from_checkpoint(backend="onnx")
    src = VideoSource(DEMO_VIDEO)
    out = []
    it = run_frames(rec, src, pipelined=pipelined)
    for fr, r in it:
        out.append(r)
        if len(out) >= n:
            break
    it.close()
    src.close()
    summary = rec.summary()
    rec.close()
    return out, summary


def test_pipelined_results_equal_sequential(cache, monkeypatch):
    import itertools

    from realtime import pipeline

    seq, s_seq = _run(False)
    # Alternate where the alignment runs, so both placements are compared with sequential.
    flip = itertools.cycle([True, False, False])
    monkeypatch.setattr(pipeline._Balance, "align_in_stage1", lambda self: next(flip))
    pip, s_pip = _run(True)
    assert len(seq) == len(pip) == N
    assert sum(r.probabilities is not None for r in seq) > N // 2  # the classifier ran
    for a, b in zip(seq, pip):
        assert (a.index, a.timestamp_ms, a.face_found, a.state) == (b.index, b.timestamp_ms,
                                                                    b.face_found, b.state)
        np.testing.assert_array_equal(a.landmarks, b.landmarks)
        assert a.motion == b.motion and a.onset_ms == b.onset_ms
        assert a.probabilities == b.probabilities
        assert [e.to_dict() for e in a.events] == [e.to_dict() for e in b.events]
    assert s_seq.frames == s_pip.frames == N
    assert set(s_pip.stage_ms) >= {"decode", "landmarks", "align", "flow", "classifier", "spotting"}


def test_stage1_measures_the_flow_the_spotter_asks_for(cache):
    """Each frame's flow from the frame one lag back is measured once, in stage 1; the
    spotter only measures what stage 1 could not (its return test, the first lag)."""
    from realtime import pipeline

    calls = {"stage1": 0, "spotter": 0}

    def counting(meter, key):
        inner = meter.measure

        def measure(*a):
            calls[key] += 1
            return inner(*a)
        meter.measure = measure

    rec = Recognizer.from_checkpoint(backend="onnx")
    counting(rec.face.flow_meter, "stage1")
    counting(rec.spotter.flow_meter, "spotter")
    with VideoSource(DEMO_VIDEO) as src:
        results = [r for _, r in zip(range(N), (r for _, r in run_frames(rec, src)))]
    rec.close()
    faces = sum(r.face_found for r in results)
    lag = rec.config.spotting.transient_lag_ms
    first = min(r.timestamp_ms for r in results if r.face_found)
    with_partner = sum(r.face_found and r.timestamp_ms - lag >= first for r in results)
    assert faces == N and with_partner > N - 12
    # Stage 1 may have prepared a few frames past the last one consumed.
    assert with_partner <= calls["stage1"] <= with_partner + pipeline.QUEUE_DEPTH + 1
    assert calls["spotter"] < 0.1 * faces, calls


def test_stopping_early_joins_the_worker(cache):
    before = {t for t in threading.enumerate() if t.name == "moext-stage1"}
    out, _ = _run(True, n=3)
    assert len(out) == 3
    assert not [t for t in threading.enumerate() if t.name == "moext-stage1" and t not in before]


def test_source_error_reaches_the_caller_after_earlier_frames(cache):
    good = next(iter(VideoSource(DEMO_VIDEO)))

    def source():
        for i in range(3):
            yield Frame(good.image, 40.0 * (i + 1), i, 1.0)
        raise SourceError("camera 7 stopped delivering frames")

    rec = Recognizer.from_checkpoint(backend="onnx")
    seen = []
    with pytest.raises(SourceError, match="camera 7"):
        for fr, r in run_frames(rec, source(), pipelined=True):
            seen.append(r.index)
    assert seen == [0, 1, 2]
    rec.close()


def test_balance_puts_alignment_where_the_slower_stage_is_faster():
    from realtime.pipeline import _Balance

    b = _Balance()
    assert b.align_in_stage1()  # nothing measured yet
    for _ in range(50):  # face mesh 8 ms, a fast classifier 4 ms: align in stage 2
        b.update(1.0, {"landmarks": 7.0, "align": 1.5, "classifier": 3.0, "spotting": 1.0})
    assert not b.align_in_stage1()
    b = _Balance()
    for _ in range(50):  # ResNet-18: stage 2 is the slow one, align in stage 1
        b.update(1.0, {"landmarks": 7.0, "align": 1.5, "classifier": 15.0, "spotting": 1.0})
    assert b.align_in_stage1()
    b.update(1.0, {"landmarks": 7.0})  # a frame without a face changes nothing
    assert b.frames == 50


def test_fast_landmarks_run_the_whole_recognizer(cache):
    from realtime.recognizer import RecognizerConfig

    rec = Recognizer.from_checkpoint(backend="onnx", config=RecognizerConfig(landmarks="fast"))
    out = []
    with VideoSource(DEMO_VIDEO) as src:
        for _, r in run_frames(rec, src):
            out.append(r)
            if len(out) >= 60:
                break
    assert all(r.face_found for r in out) and out[-1].landmarks.shape == (478, 2)
    assert any(r.probabilities for r in out)  # a reference was taken, the classifier ran
    rec.close()
    with pytest.raises(ValueError, match="choose mesh or fast"):
        RecognizerConfig(landmarks="dlib")


class _FakeCamera:
    """cv2.VideoCapture stand-in: a camera delivering `fps` frames a second (grab blocks
    until the next frame is due, like a driver), each frame stamped with its number."""

    def __init__(self, fps: float = 100.0):
        import time

        self.period = 1.0 / fps
        self.next = time.perf_counter()
        self.n = 0

    def isOpened(self):
        return True

    def set(self, *a):
        return True

    def grab(self):
        import time

        self.next += self.period
        delay = self.next - time.perf_counter()
        if delay > 0:
            time.sleep(delay)
        self.n += 1
        return True

    def retrieve(self):
        img = np.zeros((48, 64, 3), np.uint8)
        img[0, 0, 0] = self.n % 256
        return True, img

    def release(self):
        pass


def test_a_slow_consumer_gets_the_newest_frame_and_the_rest_are_counted_dropped(monkeypatch):
    import time

    import realtime.sources as S

    monkeypatch.setattr(S.cv2, "VideoCapture", lambda index: _FakeCamera(100.0))
    cam = S.CameraSource(0)
    work = 0.025  # 25 ms a frame against a camera period of 10 ms
    behind, seen = [], []
    for fr in cam:
        # How many frames the camera has delivered since this one: 0 or 1 (one arriving
        # while it is taken), however slow the processing; never a growing queue.
        behind.append(cam.frames_read - 1 - fr.index)
        seen.append(fr.index)
        time.sleep(work)
        if len(seen) >= 30:
            break
    cam.close()
    assert cam.dropped > 20, cam.dropped  # ~2 of every 3 frames are replaced before taken
    assert max(behind) <= 1, behind
    assert seen == sorted(seen)
    # Without dropping, frames queue: each is older than the last.
    monkeypatch.setattr(S.cv2, "VideoCapture", lambda index: _FakeCamera(100.0))
    slow = S.CameraSource(0, drop_late=False)
    it = iter(slow)
    first = next(it)
    time.sleep(0.1)
    assert next(it).index == first.index + 1 and slow.dropped == 0
    slow.close()
