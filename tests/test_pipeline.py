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
    rec = Recognizer(backend="onnx")
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


def test_pipelined_results_equal_sequential(cache):
    seq, s_seq = _run(False)
    pip, s_pip = _run(True)
    assert len(seq) == len(pip) == N
    assert sum(r.probabilities is not None for r in seq) > N // 2  # the classifier ran
    for a, b in zip(seq, pip):
        assert (a.index, a.timestamp_ms, a.face_found, a.state) == (b.index, b.timestamp_ms,
                                                                    b.face_found, b.state)
        np.testing.assert_array_equal(a.landmarks, b.landmarks)
        assert a.motion == b.motion and a.onset_ms == b.onset_ms
        assert a.probabilities == b.probabilities
    assert s_seq.frames == s_pip.frames == N
    assert set(s_pip.stage_ms) >= {"decode", "landmarks", "align", "classifier", "spotting"}


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

    rec = Recognizer(backend="onnx")
    seen = []
    with pytest.raises(SourceError, match="camera 7"):
        for fr, r in run_frames(rec, source(), pipelined=True):
            seen.append(r.index)
    assert seen == [0, 1, 2]
    rec.close()
