"""The browser demo's server side without a browser: session state, files, limits, CLI.

The handlers of `realtime.web.WebApp` are called as Gradio calls them (a request object
carrying the session id), with the real recognizer on a tiny untrained checkpoint and a
generated clip (synthetic data: plumbing, not accuracy).
"""

from __future__ import annotations

import csv
from pathlib import Path
from types import SimpleNamespace

import cv2
import gradio as gr
import numpy as np
import pytest
from typer.testing import CliRunner

from _browser import expression_frames, write_video
from realtime.recognizer import RecognizerConfig
from realtime.web import EVENT_COLUMNS, WebApp, WebConfig
from realtime.web_draw import Mark, curve_image

FPS = 30.0


class StepClock:
    """Arrival times of webcam frames, advanced by hand (30 fps)."""

    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t


@pytest.fixture(scope="module")
def ckpt(tmp_path_factory) -> Path:
    import torch

    from moext import ModelConfig
    from moext.checkpoint import save_checkpoint
    from moext.modeling.moext import MoExtClassifier

    torch.manual_seed(0)
    cfg = ModelConfig(backbone="mobilenet_v3_small", branch_channels=16, feature_dim=32,
                      projection_dim=8, image_size=64)
    return save_checkpoint(MoExtClassifier(cfg), tmp_path_factory.mktemp("ckpt") / "tiny.safetensors")


@pytest.fixture(scope="module")
def clip() -> tuple[list[np.ndarray], dict]:
    return expression_frames("positive", fps=FPS, seconds=4.0, onset_s=2.0, duration_s=0.4, peak_iod=0.025)


def _app(ckpt: Path, tmp_path: Path, clock=None, **kw) -> WebApp:
    cfg = WebConfig(checkpoint=ckpt, backend="torch", recognizer=RecognizerConfig(threads=1), **kw)
    return WebApp(cfg, files_root=tmp_path / "sessions", **({"clock": clock} if clock else {}))


def _req(session: str) -> SimpleNamespace:
    return SimpleNamespace(session_hash=session)


def _skipped(v) -> bool:
    return isinstance(v, dict) and v.get("__type__") == "update" and len(v) == 1


def _shown(outs: list[tuple], i: int):
    """The last value the page received for output `i` (gr.skip() leaves it as it was)."""
    return next(o[i] for o in reversed(outs) if not _skipped(o[i]))


def _rgb(bgr: np.ndarray) -> np.ndarray:
    # What Gradio hands the handler: RGB, mirrored like the webcam preview.
    return cv2.flip(cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB), 1)


@pytest.mark.slow
def test_live_stream_gives_event_csv_and_thumbnails(ckpt, clip, tmp_path):
    frames, truth = clip
    clock = StepClock()
    app = _app(ckpt, tmp_path, clock)
    state = None
    outs = []
    for rep in range(2):  # the clip twice, as a looping webcam would send it
        for f in frames:
            clock.t += 1 / FPS
            out = app.live_frame(_rgb(f), state, _req("s1"))
            state = out[-1]
            outs.append(out)
    assert state.frames == 2 * len(frames) and state.no_face == 0
    assert state.events, "no event from two expressions at 30 fps"
    # Table, CSV and thumbnails are sent only on frames that finish an event.
    # Each new event rewrites the CSV under a new name; the page holds the newest.
    label, status, curve, thumbs, table, csv_path, _ = [o for o in outs if hasattr(o[4], "columns")][-1]
    assert list(table.columns) == EVENT_COLUMNS and len(table) == len(state.events)
    assert sorted(p.name for p in Path(csv_path).parent.iterdir()) == [Path(csv_path).name]
    ev = state.events[0]
    # Arrival clock = the clip's own time: the event sits on the expression (2.0-2.4 s).
    assert truth["onset_s"] - 0.4 <= ev.apex_ms / 1e3 <= truth["offset_s"] + 0.2
    assert thumbs.count("data:image/png;base64,") == 2 and "moext-onset" in thumbs
    rows = list(csv.DictReader(open(csv_path)))
    assert len(rows) == len(state.events)
    assert rows[0]["label"] == ev.label and rows[0]["kind"] == ev.kind
    assert Path(csv_path).parent == tmp_path / "sessions" / "s1"
    assert isinstance(_shown(outs, 0), dict) and set(_shown(outs, 0)) == set(state.rec.class_names)
    assert "data:image/png;base64," in _shown(outs, 2)
    # Every frame was analysed, but the page was redrawn only every ui_every (0.2 s: every
    # 6th or, with float rounding of 1/30 s steps, 7th frame) or on an event.
    redraws = sum(not _skipped(o[1]) for o in outs)
    assert len(outs) / 7 - 2 <= redraws <= len(outs) / 6 + len(state.events) + 2


@pytest.mark.slow
def test_sessions_are_separate_and_end_cleanly(ckpt, clip, tmp_path):
    frames, _ = clip
    clock = StepClock()
    app = _app(ckpt, tmp_path, clock)
    blank = np.full_like(frames[0], 90)
    a = b = None
    outs_a, outs_b = [], []
    for k in range(6):
        clock.t += 1 / FPS
        outs_a.append(app.live_frame(_rgb(frames[k]), a, _req("a")))
        a = outs_a[-1][-1]
        outs_b.append(app.live_frame(_rgb(blank), b, _req("b")))
        b = outs_b[-1][-1]
    assert a is not b and a.rec is not b.rec
    assert _shown(outs_b, 0) == "no face" and "no face" in _shown(outs_b, 1) and b.no_face == 6
    assert _shown(outs_a, 0) != "no face" and a.no_face == 0
    # Frames of one tab never enter the other's buffer.
    assert len(b.rec.buffer) == 0 and len(a.rec.buffer) > 0
    assert {p.name for p in (tmp_path / "sessions").iterdir()} == {"a", "b"}
    app.end_session(_req("b"))
    assert b.closed and not a.closed
    assert {p.name for p in (tmp_path / "sessions").iterdir()} == {"a"}
    # A frame of B's still in the queue when its tab closed makes nothing: no recognizer,
    # no folder that nothing would delete again.
    clock.t += 1 / FPS
    out = app.live_frame(_rgb(frames[0]), b, _req("b"))
    assert out[-1] is None and "b" not in app.files.live
    # A tab that closes while its first recognizer is being built keeps nothing either.
    from realtime.web import LiveSession

    late = LiveSession(app.make_recognizer(), app.files.folder("c"), app.cfg)
    app.files.end("c")
    assert not app.files.add_live("c", late) and late.closed and "c" not in app.files.live
    assert not (tmp_path / "sessions" / "c").exists()
    assert {p.name for p in (tmp_path / "sessions").iterdir()} == {"a"}
    # A reset (same tab, still open) does start a fresh recognizer.
    app.reset_live(a, _req("a"))
    clock.t += 1 / FPS
    out = app.live_frame(_rgb(frames[0]), a, _req("a"))
    assert out[-1] is not a and not out[-1].closed


def _stream(app, clock, frames, session: str, state=None):
    """Send frames one webcam tick apart; returns the session state after the last."""
    for f in frames:
        clock.t += 1 / FPS
        state = app.live_frame(_rgb(f), state, _req(session))[-1]
    return state


@pytest.mark.slow
def test_stream_pause_resets_the_recognizer(ckpt, clip, tmp_path):
    frames, _ = clip
    clock = StepClock()
    app = _app(ckpt, tmp_path, clock)
    s = _stream(app, clock, frames[:10], "p")
    assert s.rec.frames == 10
    clock.t += 5.0  # record pressed again after a pause: old references are stale
    s = app.live_frame(_rgb(frames[10]), s, _req("p"))[-1]
    assert s.rec.frames == 1 and s.frames == 11


@pytest.mark.slow
def test_reset_drops_events_and_faces(ckpt, clip, tmp_path):
    frames, _ = clip
    clock = StepClock()
    app = _app(ckpt, tmp_path, clock)
    s = _stream(app, clock, frames[:5], "r")
    assert len(s.rec.buffer) > 0
    out = app.reset_live(s, _req("r"))
    assert len(out) == 7 and out[-1] is None and len(out[4]) == 0
    assert s.closed and len(s.rec.buffer) == 0
    clock.t += 1 / FPS
    fresh = app.live_frame(_rgb(frames[5]), out[-1], _req("r"))[-1]
    assert fresh is not s and fresh.frames == 1


@pytest.mark.slow
def test_video_analysis_outputs_and_limits(ckpt, clip, tmp_path):
    frames, truth = clip
    video = write_video(tmp_path / "clip.mp4", frames, FPS)
    app = _app(ckpt, tmp_path)
    text, table, fig, events_csv, frames_csv = app.analyse_video(str(video), _req("v"))
    rows = list(csv.DictReader(open(frames_csv)))
    assert len(rows) == len(frames)
    assert sum(int(r["face_found"]) for r in rows) == len(frames)
    events = list(csv.DictReader(open(events_csv)))
    assert len(events) == len(table) and text.startswith(f"**{len(events)} event")
    assert list(table.columns) == EVENT_COLUMNS
    assert fig.axes and fig.axes[0].get_xlabel() == "time (s)"
    # Every file of the session goes when it ends, the uploaded video included.
    app.end_session(_req("v"))
    assert not Path(frames_csv).exists() and not Path(events_csv).exists() and not video.exists()

    short = _app(ckpt, tmp_path, max_video_seconds=1.0)
    video = write_video(tmp_path / "clip2.mp4", frames, FPS)
    refused = []
    with pytest.raises(gr.Error, match=r"4 s long.*up to 1 s") as e:
        short.analyse_video(str(video), _req("w"))
    refused.append(e.value)
    junk = tmp_path / "notes.mp4"
    junk.write_text("not a video")
    with pytest.raises(gr.Error, match="notes.mp4") as e:
        app.analyse_video(str(junk), _req("w"))
    refused.append(e.value)
    with pytest.raises(gr.Error, match="Upload a video") as e:
        app.analyse_video(None, _req("w"))
    refused.append(e.value)
    photo = tmp_path / "photo.jpg"
    cv2.imwrite(str(photo), frames[0])
    with pytest.raises(gr.Error, match="photo.jpg is a still image, not a video") as e:  # not "no face found"
        app.analyse_video(str(photo), _req("w"))
    refused.append(e.value)
    # A refused upload is the user's to fix: shown in the page, no traceback in the server's log.
    assert [x.print_exception for x in refused] == [False] * 4


def test_curve_marks_and_gaps():
    t = np.arange(0, 10, 0.1)
    m = np.where((t > 4) & (t < 5), np.nan, 0.5 + (np.abs(t - 7) < 0.3) * 2.0)
    img = curve_image(t, m, [Mark(6.8, 7.0, 7.2, "micro positive 0.90")], window_s=10.0, now_s=10.0)
    assert img.shape == (180, 720, 3) and img.dtype == np.uint8
    left, pw = 44, 720 - 44 - 10
    x_on, x_ap = left + round(6.8 / 10 * pw), left + round(7.0 / 10 * pw)
    col_on, col_ap = img[40:150, x_on], img[40:150, x_ap]
    assert (np.abs(col_on.astype(int) - (60, 160, 40)).sum(1) < 60).sum() > 50  # green onset line
    assert (np.abs(col_ap.astype(int) - (40, 40, 220)).sum(1) < 60).sum() > 50  # red apex line
    # The no-face gap (4-5 s) draws nothing.
    gap = img[18:158, left + round(4.3 / 10 * pw):left + round(4.7 / 10 * pw)]
    assert (gap == 255).all() or (gap >= 200).all()


def test_cli_errors_are_one_line_and_nonzero(tmp_path):
    from realtime.web_cli import web_command

    import typer

    cli = typer.Typer()
    cli.command()(web_command)
    r = CliRunner().invoke(cli, ["--checkpoint", str(tmp_path / "nope.safetensors")])
    assert r.exit_code == 2 and "nope.safetensors" in r.output and "Traceback" not in r.output
    r = CliRunner().invoke(cli, ["--max-file-size", "lots"])
    assert r.exit_code == 2 and "--max-file-size" in r.output
    r = CliRunner().invoke(cli, ["--set", "spotting.return_frac=abc"])
    assert r.exit_code == 2 and "spotting.return_frac=abc: takes a number" in r.output


@pytest.mark.slow
def test_live_tab_finds_the_same_events_as_the_cli_on_the_same_frames(ckpt, tmp_path):
    """The same frames through the webcam path (arrival clock with jitter, as a browser
    sends them) and through moext-live --video: the same events, within the spotting
    tolerance (same kind and order, MEGC IoU >= 0.5, apex within 2 frames)."""
    from realtime.pipeline import run_frames
    from realtime.recognizer import Recognizer
    from realtime.sources import VideoSource
    from realtime.spotting import interval_iou

    frames = []
    for cls, seed in (("positive", 0), ("surprise", 1), ("negative", 2)):
        f, _ = expression_frames(cls, fps=FPS, seconds=3.0, onset_s=1.5, duration_s=0.4,
                                 peak_iod=0.03, seed=seed)
        frames += f
    video = write_video(tmp_path / "three.mp4", frames, FPS)
    rec = Recognizer.from_checkpoint(ckpt, backend="torch", config=RecognizerConfig(threads=1))
    cli = []
    with VideoSource(video) as src:
        decoded = []
        for fr, r in run_frames(rec, src):
            decoded.append(fr.image)
            cli += r.events
    cli += rec.finish()
    rec.close()
    assert cli, "the CLI path found nothing: the comparison would be empty"

    clock = StepClock()
    app = _app(ckpt, tmp_path, clock, stream_every=1 / FPS)
    rng = np.random.default_rng(0)
    state = None
    t_send = clock.t
    for img in decoded:  # the very frames the CLI saw (the video's decode)
        t_send += 1 / FPS
        clock.t = t_send + rng.uniform(0.0, 0.4 / FPS)  # upload + queue delay, varying
        state = app.live_frame(_rgb(img), state, _req("eq"))[-1]
    web = list(state.events)
    assert state.dropped == 0
    assert [e.kind for e in web] == [e.kind for e in cli], ([e.to_dict() for e in web], [e.to_dict() for e in cli])
    for a, b in zip(web, cli):
        assert interval_iou((a.onset_index, a.offset_index), (b.onset_index, b.offset_index)) >= 0.5
        assert abs(a.apex_index - b.apex_index) <= 2


def test_steady_clock_counts_dropped_frames():
    from realtime.web import LiveSession

    s = LiveSession.__new__(LiveSession)  # only the clock logic, no recognizer needed
    s.cfg = WebConfig(stream_every=0.05)
    s.t0, s.slot, s.last_ms, s.dropped = 0.0, -1, -float("inf"), 0
    got = [s._timestamp(t) for t in (0.0, 0.052, 0.098, 0.26, 0.31)]
    # Jitter within a slot does not move a timestamp; the two slots that brought no frame
    # (0.15 s and 0.2 s) are counted as dropped.
    assert got == pytest.approx([0.0, 50.0, 100.0, 250.0, 300.0])
    assert s.dropped == 2


def test_no_telemetry_and_a_warning_before_serving_faces_to_the_network(ckpt, tmp_path):
    import typer

    from realtime.web_cli import _loopback, web_command

    demo = _app(ckpt, tmp_path).build()
    assert demo.analytics_enabled is False
    assert _loopback("127.0.0.1") and _loopback("localhost") and _loopback("::1")
    assert not _loopback("0.0.0.0") and not _loopback("192.168.1.5") and not _loopback("myhost")
    cli = typer.Typer()
    cli.command()(web_command)
    missing = str(tmp_path / "nope.safetensors")  # fails right after the warning: nothing is served
    r = CliRunner().invoke(cli, ["--checkpoint", missing, "--host", "0.0.0.0"])
    assert "warning: --host 0.0.0.0 serves the demo to the network" in r.output and "biometric" in r.output
    r = CliRunner().invoke(cli, ["--checkpoint", missing])
    assert "warning" not in r.output


def test_web_takes_the_landmark_source_of_the_live_command(monkeypatch):
    """`moext-live web --landmarks fast` serves recognizers on the fast landmark model, as
    `moext-live --landmarks fast` runs one; a bad value is refused before anything serves."""
    import typer

    import realtime.web as web
    from realtime.web_cli import web_command

    seen = []
    monkeypatch.setattr(web, "serve", lambda cfg, host, port, share: seen.append(cfg))
    cli = typer.Typer()
    cli.command()(web_command)
    r = CliRunner().invoke(cli, ["--landmarks", "fast"])
    assert r.exit_code == 0, r.output
    assert seen and seen[0].recognizer.landmarks == "fast"
    r = CliRunner().invoke(cli, [])
    assert seen[1].recognizer.landmarks == "mesh"
    r = CliRunner().invoke(cli, ["--landmarks", "sloppy"])
    assert r.exit_code == 2 and len(seen) == 2
