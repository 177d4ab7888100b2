"""`moext-live --clip` on dataset-layout samples (a video and a folder of frames), the
action-unit columns of --frames, the new event fields, and a movement in flight at the end
of a stream. Frames are a real photo (scikit-image's astronaut) moved by hand: synthetic,
for tests only."""

from __future__ import annotations

import csv
import json

import cv2
import numpy as np
import pytest
from typer.testing import CliRunner

from realtime.cli import app

runner = CliRunner()


def _smile_frames(n: int = 40, on: int = 8, apex: int = 18, off: int = 30) -> list[np.ndarray]:
    """The astronaut with a mouth-corner lift (a smile-like AU12 warp) rising from `on` to
    `apex` and back by `off`: a sample that starts at its onset, like a dataset clip."""
    import skimage.data

    from moext.face import FaceMesh

    img = cv2.cvtColor(skimage.data.astronaut(), cv2.COLOR_RGB2BGR)
    with FaceMesh(video_mode=False) as m:
        lm = m.detect(img).landmarks
    iod = float(np.linalg.norm(lm[263] - lm[33]))
    h, w = img.shape[:2]
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    weight = np.zeros((h, w), np.float32)
    for k, sign in ((61, -1.0), (291, 1.0)):  # mouth corners: up and outwards
        c = lm[k]
        weight += np.exp(-((xx - c[0]) ** 2 + (yy - c[1]) ** 2) / (2 * (0.18 * iod) ** 2)) * sign
    frames = []
    t = np.arange(n, dtype=float)
    prof = np.interp(t, [0, on, apex, off, n], [0, 0, 1, 0, 0])
    for a in prof:
        amp = 0.12 * iod * a
        mx = (xx - np.abs(weight) * np.sign(weight) * 0.5 * amp).astype(np.float32)
        my = (yy + np.abs(weight) * amp).astype(np.float32)
        frames.append(cv2.remap(img, mx, my, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE))
    return frames


@pytest.fixture(scope="module")
def smile_frames():
    return _smile_frames()


def test_clip_gives_one_event_on_a_video_and_on_a_frame_folder(env, tiny_ck, smile_frames):
    video = env / "EP01_01.mp4"
    vw = cv2.VideoWriter(str(video), cv2.VideoWriter_fourcc(*"mp4v"), 30.0, smile_frames[0].shape[1::-1])
    for f in smile_frames:
        vw.write(f)
    vw.release()
    folder = env / "sub01" / "EP01_01f"
    folder.mkdir(parents=True)
    for i, f in enumerate(smile_frames):  # CASME II names: img1.jpg ... img40.jpg
        cv2.imwrite(str(folder / f"img{i + 1}.jpg"), f)
    for src, extra in ((video, []), (folder, ["--fps", "200"])):
        out = env / f"{src.name}.jsonl"
        r = runner.invoke(app, ["--video", str(src), "--clip", "--checkpoint", str(tiny_ck),
                                "--events", str(out), *extra])
        assert r.exit_code == 0, r.output
        rows = [json.loads(x) for x in out.read_text().splitlines()]
        assert len(rows) == 1, rows
        ev = rows[0]
        assert ev["onset_index"] == 0 and ev["cue"] == "clip"
        # The apex is where the warp peaks (frame 18), give or take the flow's smoothing.
        assert 14 <= ev["apex_index"] <= 22, ev
        assert ev["label"] in ("negative", "positive", "surprise")
        assert set(ev["probabilities"]) == {"negative", "positive", "surprise"}
        assert "apex frame" in r.output
    # 200 fps: the folder's timestamps follow the frame rate given.
    assert rows[0]["apex_ms"] == pytest.approx(rows[0]["apex_index"] * 5.0)


def test_clip_errors_name_the_input_and_exit_non_zero(env, tiny_ck):
    empty = env / "EP09_09f"
    empty.mkdir()
    r = runner.invoke(app, ["--video", str(empty), "--clip", "--checkpoint", str(tiny_ck)])
    assert r.exit_code == 2
    assert f"frame folder {empty} holds no images" in r.output
    grey = env / "noface"
    grey.mkdir()
    for i in range(5):
        cv2.imwrite(str(grey / f"img{i}.png"), np.full((120, 160, 3), 120, np.uint8))
    r = runner.invoke(app, ["--video", str(grey), "--clip", "--checkpoint", str(tiny_ck)])
    assert r.exit_code == 2
    assert f"no face found in any of the 5 frames of clip {grey}" in r.output
    r = runner.invoke(app, ["--camera", "0", "--clip"])
    assert r.exit_code == 2 and "--clip takes a recorded sample" in r.output


def test_frames_csv_has_action_units_and_opt_in_blendshapes(env, tiny_ck, smile_frames):
    from moext.blendshapes import AU_TABLE, BLENDSHAPE_NAMES

    video = env / "v.mp4"
    vw = cv2.VideoWriter(str(video), cv2.VideoWriter_fourcc(*"mp4v"), 30.0, smile_frames[0].shape[1::-1])
    for f in smile_frames[:12]:
        vw.write(f)
    vw.release()
    for flag, raw in (([], False), (["--blendshapes"], True)):
        path = env / f"f{raw}.csv"
        r = runner.invoke(app, ["--video", str(video), "--headless", "--checkpoint", str(tiny_ck),
                                "--frames", str(path), *flag])
        assert r.exit_code == 0, r.output
        rows = list(csv.DictReader(path.open()))
        assert len(rows) == 12
        au_cols = [f"AU{a.number:02d}_r" for a in AU_TABLE]
        assert all(c in rows[0] for c in au_cols)
        assert ("bs_mouthSmileLeft" in rows[0]) == raw
        if raw:
            assert all(f"bs_{n}" in rows[0] for n in BLENDSHAPE_NAMES)
        vals = [float(rows[-1][c]) for c in au_cols]
        assert all(0.0 <= v <= 1.0 for v in vals)


def test_a_movement_still_going_at_the_end_is_reported_truncated(env, tiny_ck, smile_frames):
    # The smile rises and is held to the last frame: the stream ends with it in flight.
    from realtime.pipeline import run_frames
    from realtime.recognizer import Recognizer
    from realtime.sources import VideoSource

    held = _smile_frames(n=60, on=25, apex=40, off=200)[:60]
    still = [held[0]] * 15 + held
    video = env / "held.mp4"
    vw = cv2.VideoWriter(str(video), cv2.VideoWriter_fourcc(*"mp4v"), 30.0, still[0].shape[1::-1])
    for f in still:
        vw.write(f)
    vw.release()
    rec = Recognizer.from_checkpoint(tiny_ck, backend="onnx")
    live = []
    with VideoSource(video) as src:
        for _, r in run_frames(rec, src):
            live += r.events
    tail = rec.finish()
    rec.close()
    assert not any(e.kind == "macro" for e in live), [e.to_dict() for e in live]
    assert len(tail) == 1 and tail[0].truncated and tail[0].kind == "macro", [e.to_dict() for e in tail]
    assert tail[0].offset_index == len(still) - 1
    # And the CLI writes it too, when the file ends.
    out = env / "ev.jsonl"
    r = runner.invoke(app, ["--video", str(video), "--headless", "--checkpoint", str(tiny_ck),
                            "--events", str(out)])
    assert r.exit_code == 0, r.output
    rows = [json.loads(x) for x in out.read_text().splitlines()]
    assert any(x["truncated"] for x in rows), rows
    assert "[truncated]" in r.output
