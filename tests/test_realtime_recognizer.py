"""The recognizer loop: faces that vanish, return or get company; no-face streams; bounded
memory; timestamps; the per-frame result. Frames are built from a real photo (scikit-image's
astronaut) pasted on a grey canvas: synthetic, for tests only."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from moext import MoExtClassifier, save_checkpoint
from realtime.recognizer import FrameResult, Recognizer, RecognizerConfig, RecognizerError


@pytest.fixture(scope="module")
def face() -> np.ndarray:
    import skimage.data

    img = cv2.cvtColor(skimage.data.astronaut(), cv2.COLOR_RGB2BGR)
    return cv2.resize(img[0:300, 90:390], (240, 240))


def canvas(*faces: tuple[np.ndarray, int, int]) -> np.ndarray:
    out = np.full((360, 640, 3), 90, np.uint8)
    for img, x, y in faces:
        out[y : y + img.shape[0], x : x + img.shape[1]] = img
    return out


@pytest.fixture
def recognizer(tmp_path, tiny_cfg, monkeypatch):
    monkeypatch.setenv("MOEXT_CACHE_DIR", str(tmp_path / "cache"))
    ck = save_checkpoint(MoExtClassifier(tiny_cfg), tmp_path / "tiny.safetensors")
    rec = Recognizer.from_checkpoint(ck, backend="onnx")
    yield rec
    rec.close()


def test_face_vanishes_returns_and_gets_company(recognizer, face):
    small = cv2.resize(face, (120, 120))
    frames = (
        [canvas((face, 200, 60))] * 25
        + [canvas()] * 10  # the face leaves
        + [canvas((face, 200, 60))] * 25  # and comes back
        + [canvas((face, 60, 60), (small, 450, 150))] * 20  # a second, smaller face joins
        + [canvas((small, 450, 150))] * 10  # only the other face is left
    )
    results: list[FrameResult] = []
    for i, f in enumerate(frames):
        results.append(recognizer.process(f, 1000.0 * i / 30))
    found = [r.face_found for r in results]
    assert not any(found[25:35])
    assert all(found[40:60])
    assert sum(found[60:80]) >= 18
    assert all(r.skipped_reason for r in results[25:35])
    # After a face (re)appears nothing uses a reference from before (the spotter restarts).
    assert results[36].state in ("waiting", "settling")
    assert results[59].state == "quiet" and results[59].probabilities is not None
    assert abs(sum(results[59].probabilities.values()) - 1.0) < 1e-5
    s = recognizer.summary()
    assert s.frames == len(frames) and s.faces_found == sum(found)
    assert set(s.stage_ms) >= {"landmarks", "align", "classifier", "spotting"}


def test_no_face_stream_reports_it(recognizer):
    for i in range(20):
        r = recognizer.process(canvas(), 33.0 * i)
        assert not r.face_found and r.events == [] and r.probabilities is None
    s = recognizer.summary()
    assert (s.frames, s.faces_found, s.events) == (20, 0, 0)
    assert "no face was found" in s.format()


def test_timestamps_must_increase(recognizer, face):
    recognizer.process(canvas((face, 200, 60)), 100.0)
    with pytest.raises(ValueError, match="must increase"):
        recognizer.process(canvas((face, 200, 60)), 100.0)
    recognizer.reset()  # a new stream may start again at 0
    assert recognizer.process(canvas((face, 200, 60)), 0.0).index == 0


def test_buffer_is_bounded(tmp_path, tiny_cfg, monkeypatch, face):
    monkeypatch.setenv("MOEXT_CACHE_DIR", str(tmp_path / "cache"))
    ck = save_checkpoint(MoExtClassifier(tiny_cfg), tmp_path / "tiny.safetensors")
    cfg = RecognizerConfig(buffer_ms=500.0)
    with Recognizer.from_checkpoint(ck, backend="onnx", config=cfg) as rec:
        f = canvas((face, 200, 60))
        for i in range(60):  # 2 s at 30 fps
            rec.process(f, 1000.0 * i / 30)
            assert len(rec.buffer) <= 16  # 500 ms at 30 fps, plus the newest
        assert rec.buffer.last.index == 59


def test_not_a_classifier_is_refused(tmp_path, tiny_cfg):
    from moext import MoExtPretrain

    ck = save_checkpoint(MoExtPretrain(tiny_cfg), tmp_path / "pre.safetensors")
    with pytest.raises(RecognizerError, match="not a classifier"):
        Recognizer.from_checkpoint(ck, backend="torch")
    with pytest.raises(RecognizerError, match="does not exist"):
        Recognizer.from_checkpoint(tmp_path / "missing.safetensors", backend="torch")


def test_a_built_backend_needs_no_file_and_agrees_with_the_loaded_one(tmp_path, tiny_cfg, face, monkeypatch):
    """Build vs run: Recognizer(TorchBackend(model), ...) writes and exports nothing."""
    from realtime.backends import TorchBackend

    monkeypatch.setenv("MOEXT_CACHE_DIR", str(tmp_path / "cache"))
    model = MoExtClassifier(tiny_cfg).eval()
    rec = Recognizer(TorchBackend(model), tiny_cfg.class_names, tiny_cfg.image_size)
    frames = [canvas((face, 200, 60))] * 20
    built = [rec.process(f, 1000.0 * i / 30) for i, f in enumerate(frames)]
    rec.close()
    assert not (tmp_path / "cache").exists() and rec.checkpoint is None
    assert rec.backend_choice.name == "torch"
    ck = save_checkpoint(model, tmp_path / "m.safetensors")
    loaded = Recognizer.from_checkpoint(ck, backend="torch")
    again = [loaded.process(f, 1000.0 * i / 30) for i, f in enumerate(frames)]
    loaded.close()
    probs = [(a.probabilities, b.probabilities) for a, b in zip(built, again) if a.probabilities]
    assert probs and all(np.allclose(list(a.values()), list(b.values()), atol=1e-5) for a, b in probs)
    assert set(rec.summary().stage_ms) >= {"landmarks", "blendshapes", "align", "classifier", "spotting"}


@pytest.mark.parametrize("frame,words", [
    (np.zeros((120, 160, 3), np.float32), "dtype is float32, the recognizer takes uint8 BGR; convert with np.clip(frame * 255"),
    (np.zeros((120, 160, 3), np.float64), "dtype is float64"),
    (np.zeros((120, 160, 3), np.uint16), "dtype is uint16, the recognizer takes uint8 BGR; convert with (frame >> 8)"),
    (np.zeros((120, 160), np.uint8), "frame is grey (shape (120, 160)); convert with cv2.cvtColor(frame, cv2.COLOR_GRAY2BGR)"),
    (np.zeros((120, 160, 4), np.uint8), "4 channels"),
    ([[0, 0, 0]], "frame must be a numpy array (HxWx3 uint8 BGR), got list"),
])
def test_frames_that_are_not_uint8_bgr_are_refused_at_the_door(recognizer, frame, words):
    with pytest.raises(ValueError) as e:
        recognizer.process(frame, 0.0)
    assert words in str(e.value)
    assert recognizer.frames == 0  # nothing moved: the next good frame is frame 0


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), -float("inf"), None, 10**400, 4.7e18, -5.0, "soon"])
def test_bad_timestamps_are_refused_and_leave_no_trace(recognizer, face, bad):
    """Non-finite, non-numeric, overflowing and out-of-range times (MediaPipe refuses 4.7e18
    ms) are a ValueError before any state moves."""
    with pytest.raises(ValueError, match="is not a number of milliseconds"):
        recognizer.process(canvas((face, 200, 60)), bad)
    assert recognizer.frames == 0
    # ...and the stream goes on: a later frame is still accepted.
    assert recognizer.process(canvas((face, 200, 60)), 10.0).face_found
    assert recognizer.process(canvas((face, 200, 60)), 43.0).face_found


def test_a_frame_the_tracker_refuses_does_not_move_the_clock(recognizer, face, monkeypatch):
    def refuse(*_a, **_k):
        raise RuntimeError("tracker refused the frame")

    assert recognizer.process(canvas((face, 200, 60)), 10.0).face_found
    good = recognizer.face.tracker.detect
    monkeypatch.setattr(recognizer.face.tracker, "detect", refuse)
    with pytest.raises(RuntimeError):
        recognizer.process(canvas((face, 200, 60)), 1000.0)
    monkeypatch.setattr(recognizer.face.tracker, "detect", good)
    assert recognizer.frames == 1
    assert recognizer.process(canvas((face, 200, 60)), 43.0).face_found  # judged against 10 ms, not 1000


def test_a_closed_recognizer_refuses_frames(recognizer, face):
    assert recognizer.process(canvas((face, 200, 60)), 10.0).face_found
    recognizer.close()
    with pytest.raises(RecognizerError, match="closed"):
        recognizer.process(canvas((face, 200, 60)), 43.0)
    with pytest.raises(RecognizerError, match="closed"):
        recognizer.prepare(canvas((face, 200, 60)))


def test_a_few_noisy_pixels_after_a_face_are_no_face(recognizer, face):
    for i in range(10):
        assert recognizer.process(canvas((face, 200, 60)), 33.0 * i).face_found
    rng = np.random.default_rng(0)
    noise = rng.integers(0, 255, (10, 10, 3), dtype=np.uint8)
    r = recognizer.process(noise, 400.0)
    assert not r.face_found, r.skipped_reason


def test_checkpoint_paths_that_are_not_weights_are_named(tmp_path, tiny_cfg):
    ck = save_checkpoint(MoExtClassifier(tiny_cfg), tmp_path / "tiny.safetensors")
    with pytest.raises(RecognizerError, match=r"is the settings half of a checkpoint; pass the weights beside it: .*tiny\.safetensors"):
        Recognizer.from_checkpoint(ck.with_suffix(".json"), backend="torch")
    with pytest.raises(RecognizerError, match="is a folder; pass the .safetensors file"):
        Recognizer.from_checkpoint(tmp_path, backend="torch")


def test_classify_every_n_frames_keeps_spotting_every_frame(tmp_path, tiny_cfg, face):
    """A fast camera: the backbone on every 3rd frame, spotting on all; a frame that an
    event needs gets its features from its buffered crop, once."""
    from realtime.backends import TorchBackend

    model = MoExtClassifier(tiny_cfg).eval()
    runs = {}
    for n in (1, 3):
        rec = Recognizer(TorchBackend(model), tiny_cfg.class_names, tiny_cfg.image_size,
                         RecognizerConfig(classify_every=n))
        calls = []
        real = rec.backend.features
        rec.backend.features = lambda x, _r=real: calls.append(len(x)) or _r(x)
        out = [rec.process(canvas((face, 200, 60)), 1000.0 * i / 30) for i in range(60)]
        ev = rec.finish()
        runs[n] = (out, calls, ev)
        rec.close()
    out1, calls1, _ = runs[1]
    out3, calls3, _ = runs[3]
    assert [r.state for r in out1] == [r.state for r in out3]  # spotting saw the same frames
    assert len(calls1) == 60 and len(calls3) < 60 / 2
    classified = [r.index for r in out3 if r.probabilities is not None]
    assert classified and all(i % 3 == 0 for i in classified)
    rec = Recognizer(TorchBackend(model), tiny_cfg.class_names, tiny_cfg.image_size,
                     RecognizerConfig(classify_every=3))
    for i in range(5):
        rec.process(canvas((face, 200, 60)), 1000.0 * i / 30)
    skipped = rec.buffer.get(4)
    assert skipped.features is None and skipped.crop is not None
    f = rec._features(skipped)
    assert f is not None and rec._features(skipped) is f  # computed once, then kept
    near = rec.buffer.get(3).features  # the classified frame before: the same still face
    assert np.linalg.norm(f - near) < 0.1 * np.linalg.norm(near)
    rec.close()
    with pytest.raises(ValueError, match="classify_every"):
        RecognizerConfig(classify_every=0)
