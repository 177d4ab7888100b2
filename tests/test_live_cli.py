"""`moext-live` from the command line: errors a person can act on, the files it writes,
the summary, export and --demo. Videos are built from a real photo (scikit-image's
astronaut) on a grey canvas: synthetic, for tests only."""

from __future__ import annotations

import csv
import json
import subprocess
import sys

import cv2
import numpy as np
import pytest
from typer.testing import CliRunner

from realtime.cli import DEMO_VIDEO, app
from realtime.sources import VideoSource

runner = CliRunner()


def write_video(path, frames, fps=30.0):
    h, w = frames[0].shape[:2]
    vw = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), fps, (w, h))
    for f in frames:
        vw.write(f)
    vw.release()
    return path


@pytest.fixture(scope="module")
def face_frames():
    import skimage.data

    img = cv2.cvtColor(skimage.data.astronaut(), cv2.COLOR_RGB2BGR)
    face = cv2.resize(img[0:300, 90:390], (240, 240))
    base = np.full((360, 640, 3), 90, np.uint8)
    base[60:300, 200:440] = face
    rng = np.random.default_rng(0)
    return [np.clip(base + rng.normal(0, 1.5, base.shape), 0, 255).astype(np.uint8) for _ in range(30)]


def _err(result) -> str:
    return result.stderr if hasattr(result, "stderr") else result.output


def test_missing_and_unreadable_video(env):
    r = runner.invoke(app, ["--video", str(env / "nope.mp4"), "--headless"])
    assert r.exit_code == 2
    assert "nope.mp4 does not exist" in _err(r)
    bad = env / "bad.mp4"
    bad.write_text("this is not a video")
    r = runner.invoke(app, ["--video", str(bad), "--headless"])
    assert r.exit_code == 2
    assert "bad.mp4" in _err(r) and ("cannot be opened" in _err(r) or "no frame" in _err(r))


def test_camera_that_cannot_open(env):
    r = runner.invoke(app, ["--camera", "97", "--headless"])
    assert r.exit_code == 2
    assert "camera 97 cannot be opened" in _err(r)


def test_source_is_required_and_unique(env):
    r = runner.invoke(app, ["--headless"])
    assert r.exit_code == 2 and "give a source" in _err(r)
    r = runner.invoke(app, ["--camera", "0", "--video", "x.mp4"])
    assert r.exit_code == 2 and "not both" in _err(r)


def test_real_entry_point_prints_one_line_no_traceback(env):
    junk = env / "junk.mp4"
    junk.write_text("not a video")
    cases = [
        (["--video", str(env / "missing.avi")],
         f"moext-live: error: video {env / 'missing.avi'} does not exist; pass a readable video file"),
        (["--video", str(junk)], f"moext-live: error: video {junk} cannot be opened by OpenCV"),
        (["--camera", "97"], "moext-live: error: camera 97 cannot be opened"),
    ]
    for args, first in cases:
        p = subprocess.run([sys.executable, "-m", "realtime.cli", *args, "--headless"],
                           capture_output=True, text=True, timeout=120)
        assert p.returncode == 2, p.stderr
        lines = [ln for ln in p.stderr.splitlines() if ln.strip()]
        assert len(lines) == 1 and lines[0].startswith(first), lines  # OpenCV/FFmpeg kept quiet


def test_a_photo_is_not_a_video(env):
    photo = env / "photo.jpg"
    cv2.imwrite(str(photo), np.full((64, 64, 3), 128, np.uint8))
    r = runner.invoke(app, ["--video", str(photo), "--headless"])
    assert r.exit_code == 2 and "is a still image, not a video" in _err(r)


def test_events_and_frames_in_one_file_are_refused(env, tiny_ck, face_frames):
    v = write_video(env / "v.mp4", face_frames[:5])
    same = env / "s.csv"
    r = runner.invoke(app, ["--video", str(v), "--checkpoint", str(tiny_ck), "--headless", "--backend", "onnx",
                            "--events", str(same), "--frames", str(env / "." / "s.csv")])
    assert r.exit_code == 2 and "both name" in _err(r)
    assert not same.exists()


def test_set_reaches_the_recognizer_and_a_bad_one_is_refused_before_anything_runs(env, tiny_ck, face_frames,
                                                                                 monkeypatch):
    from realtime.recognizer import Recognizer, RecognizerError

    v = write_video(env / "v.mp4", face_frames[:5])
    ev = env / "set-events.csv"
    base = ["--video", str(v), "--checkpoint", str(tiny_ck), "--headless", "--backend", "onnx", "--events", str(ev)]
    for bad, says in ((["--set", "spotting.return_frac=abc"], "spotting.return_frac=abc: takes a number"),
                      (["--set", "return_frac=0.5"], "did you mean spotting.return_frac"),
                      (["--set", "spotting.transient_cue=wind"], "choose flow or landmarks"),
                      (["--set", "landmarks"], "write KEY=VALUE")):
        r = runner.invoke(app, base + bad)
        assert r.exit_code == 2 and says in _err(r), (bad, _err(r))
        assert not ev.exists()
    seen = {}

    def capture(checkpoint=None, backend="auto", config=None):
        seen["config"] = config
        raise RecognizerError("stop here")

    monkeypatch.setattr(Recognizer, "from_checkpoint", staticmethod(capture))
    r = runner.invoke(app, base + ["--set", "spotting.return_frac=0.5", "--set", "buffer_ms=6000",
                                   "--micro-cue", "landmarks"])
    assert r.exit_code == 2 and "stop here" in _err(r)
    cfg = seen["config"]
    assert cfg.spotting.return_frac == 0.5 and cfg.buffer_ms == 6000.0
    assert cfg.spotting.transient_cue == "landmarks"  # the flags still apply beside --set
    r = runner.invoke(app, ["settings"])
    assert r.exit_code == 0 and "spotting.return_frac = " in r.output and "buffer_ms = 4000.0" in r.output


def test_bad_events_extension(env, tiny_ck, face_frames):
    v = write_video(env / "v.mp4", face_frames[:5])
    r = runner.invoke(app, ["--video", str(v), "--checkpoint", str(tiny_ck), "--headless",
                            "--backend", "onnx", "--events", str(env / "ev.txt")])
    assert r.exit_code == 2 and "use .jsonl or .csv" in _err(r)


def test_video_headless_writes_events_frames_and_summary(env, tiny_ck, face_frames):
    v = write_video(env / "face.mp4", face_frames)
    ev_path, fr_path = env / "out" / "events.csv", env / "out" / "frames.csv"
    r = runner.invoke(app, ["--video", str(v), "--checkpoint", str(tiny_ck), "--headless",
                            "--backend", "onnx", "--events", str(ev_path), "--frames", str(fr_path),
                            "--max-frames", "25"])
    assert r.exit_code == 0, r.output
    assert "backend: onnx" in _err(r)
    assert "frames: 25  faces found: 25" in r.output
    assert "stopped: --max-frames 25" in r.output
    stages = next(line for line in r.output.splitlines() if line.startswith("per-stage ms"))
    for stage in ("decode", "landmarks", "align", "flow", "classifier", "spotting"):
        assert stage in stages
    rows = list(csv.DictReader(open(fr_path)))
    assert len(rows) == 25
    assert rows[0]["face_found"] == "1"
    ts = [float(x["timestamp_ms"]) for x in rows]
    assert all(b > a for a, b in zip(ts, ts[1:]))  # the file's own timestamps, increasing
    assert abs(ts[1] - ts[0] - 1000 / 30) < 1.0
    probs = [x for x in rows if x["p_negative"]]
    assert probs, "the classifier never ran against an onset reference"
    p = probs[-1]
    assert abs(sum(float(p[f"p_{c}"]) for c in ("negative", "positive", "surprise")) - 1) < 1e-4
    header = next(csv.reader(open(ev_path)))
    assert header[:3] == ["onset_ms", "apex_ms", "offset_ms"]


def test_micro_cue_landmarks_skips_the_optical_flow(env, tiny_ck, face_frames):
    v = write_video(env / "face.mp4", face_frames[:15])
    args = ["--video", str(v), "--checkpoint", str(tiny_ck), "--headless", "--backend", "onnx"]
    r = runner.invoke(app, args + ["--micro-cue", "landmarks"])
    assert r.exit_code == 0, r.output
    stages = next(line for line in r.output.splitlines() if line.startswith("per-stage ms"))
    assert "flow" not in stages and "spotting" in stages
    r = runner.invoke(app, args + ["--micro-cue", "pixels"])
    assert r.exit_code == 2 and "pixels" in _err(r)


def test_no_face_video(env, tiny_ck):
    v = write_video(env / "empty.mp4", [np.full((240, 320, 3), 60, np.uint8)] * 15)
    ev = env / "events.jsonl"
    r = runner.invoke(app, ["--video", str(v), "--checkpoint", str(tiny_ck), "--headless",
                            "--backend", "onnx", "--events", str(ev)])
    assert r.exit_code == 0, r.output
    assert "frames: 15  faces found: 0  events: 0" in r.output
    assert "no face was found" in r.output
    assert ev.read_text() == ""


def test_export_onnx(env, tiny_ck):
    out = env / "exported"
    r = runner.invoke(app, ["export", "--format", "onnx", "--checkpoint", str(tiny_ck),
                            "--out", str(out)])
    assert r.exit_code == 0, r.output
    assert (out / "features.onnx").is_file() and (out / "head.onnx").is_file()
    meta = json.loads((out / "export.json").read_text())
    assert meta["class_names"] == ["negative", "positive", "surprise"]
    r = runner.invoke(app, ["export", "--format", "tensorrt", "--checkpoint", str(tiny_ck),
                            "--out", str(out)])
    import torch

    if not torch.cuda.is_available():
        assert r.exit_code == 2 and "pip install 'moext[tensorrt]'" in _err(r)


@pytest.mark.skipif(not DEMO_VIDEO.is_file(), reason="the demo video is not shipped in this tree")
def test_demo_runs_headless_without_display(env, tiny_ck):
    r = runner.invoke(app, ["--demo", "--checkpoint", str(tiny_ck), "--max-frames", "20",
                            "--backend", "onnx"])
    assert r.exit_code == 0, r.output
    assert "no display found: running headless" in _err(r)
    assert "frames: 20" in r.output


class _FlakyCapture:
    """A capture whose frames 3 and 4 fail to decode, of 8."""

    def __init__(self):
        self.pos = 0

    def grab(self):
        self.pos += 1
        return self.pos <= 8 and self.pos not in (4, 5)

    def retrieve(self):
        return True, np.zeros((4, 4, 3), np.uint8)

    def get(self, prop):
        return {cv2.CAP_PROP_POS_MSEC: (self.pos - 1) * 40.0, cv2.CAP_PROP_FPS: 25.0,
                cv2.CAP_PROP_FRAME_COUNT: 8}.get(prop, 0.0)

    def release(self):
        pass


def test_mid_stream_decode_failures_are_skipped_and_counted(env, face_frames):
    src = VideoSource(write_video(env / "v.mp4", face_frames[:2]))
    src.cap.release()
    src.cap, src.frame_count = _FlakyCapture(), 8
    frames = list(src)
    assert [f.timestamp_ms for f in frames] == [0.0, 40.0, 80.0, 200.0, 240.0, 280.0]
    assert src.decode_failures == 2


def test_heatmap_needs_a_miacnet_checkpoint(env, tiny_ck, face_frames):
    v = write_video(env / "hm.mp4", face_frames[:5])
    r = runner.invoke(app, ["--video", str(v), "--checkpoint", str(tiny_ck), "--headless",
                            "--backend", "onnx", "--heatmap"])
    assert r.exit_code == 2, r.output
    assert "heat maps need a MIACNet checkpoint" in _err(r) and str(tiny_ck) in _err(r)
    assert r.exception is None or isinstance(r.exception, SystemExit)


def test_int8_with_the_torch_backend_is_refused(env, tiny_ck, face_frames):
    v = write_video(env / "q.mp4", face_frames[:5])
    r = runner.invoke(app, ["--video", str(v), "--checkpoint", str(tiny_ck), "--headless",
                            "--backend", "torch", "--precision", "int8"])
    assert r.exit_code == 2 and "int8 runs on ONNX Runtime only" in _err(r)


@pytest.mark.slow
def test_sigterm_stops_after_the_frame_in_hand_and_flushes(env):
    import os
    import signal
    import time

    frames = env / "frames.csv"
    p = subprocess.Popen([sys.executable, "-m", "realtime.cli", "--demo", "--headless",
                          "--frames", str(frames)], env=os.environ.copy(),
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.time() + 120
        # The per-frame CSV grows once frames flow (it is written through a buffer).
        while time.time() < deadline and p.poll() is None and (
                not frames.exists() or frames.stat().st_size < 20000):
            time.sleep(0.2)
        assert p.poll() is None, "the demo ended before it could be interrupted"
        p.send_signal(signal.SIGTERM)
        out, err = p.communicate(timeout=60)
    finally:
        if p.poll() is None:
            p.kill()
    assert p.returncode == 143, err[-2000:]  # 128 + SIGTERM: a script can tell it from a finished run
    assert "stopped: interrupted (SIGTERM)" in out
    n = int(out.split("frames: ")[1].split()[0])
    assert 0 < n < 600
    assert len(frames.read_text().splitlines()) == n + 1  # every counted frame is in the file


def test_truncated_file_and_unwritable_outputs_are_named(env, tiny_ck, face_frames):
    # A half-written AVI: OpenCV reads what is there, and the summary says frames are missing.
    avi = env / "cut.avi"
    vw = cv2.VideoWriter(str(avi), cv2.VideoWriter_fourcc(*"MJPG"), 30.0, (640, 360))
    for f in face_frames * 2:
        vw.write(f)
    vw.release()
    data = avi.read_bytes()
    avi.write_bytes(data[: len(data) // 2])
    r = runner.invoke(app, ["--video", str(avi), "--headless", "--checkpoint", str(tiny_ck)])
    assert r.exit_code == 0, r.output
    assert "frames the file announces could not be read (a truncated or damaged file)" in r.output
    # An output path that cannot be written (under a file, so even root cannot): the flag
    # and the path are named, exit 2.
    for flag, name in (("--events", "x.jsonl"), ("--frames", "x.csv")):
        target = avi / name
        r = runner.invoke(app, ["--video", str(avi), "--headless", "--checkpoint", str(tiny_ck), flag, str(target)])
        assert r.exit_code == 2, r.output
        assert f"moext-live: error: {flag} {target}: cannot write there" in _err(r)
