"""Helpers for the browser tests: generated videos, y4m for Chromium's fake webcam, the
demo server in a subprocess, and Chromium driven by Playwright.

Videos come from the synthetic generator (`train.synth`: FACS-like warps of a real,
public-domain face photo) -- test data only, never evidence about real micro-expressions.
"""

from __future__ import annotations

import functools
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

import cv2
import numpy as np
import pytest

CHROMIUM = Path(os.environ.get("MOEXT_CHROMIUM", "/usr/bin/chromium"))
REPO = Path(__file__).resolve().parents[1]
ARTIFACTS = REPO / "test-artifacts"


def require_browser() -> None:
    """Skip (with the fix in the reason) when Chromium or Playwright is missing."""
    if not CHROMIUM.is_file():
        pytest.skip(f"{CHROMIUM} not found: run .ci/install-browser (apt-get install -y chromium)")
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        pytest.skip("playwright is not installed: run .ci/install-browser (pip install playwright)")


@functools.lru_cache(maxsize=4)
def _identity(size: tuple[int, int], seed: int):
    """The astronaut photo, unvaried, with its eyes placed in a `size` frame (cached)."""
    from moext.face import FaceMesh
    from train import synth

    w, h = size
    with FaceMesh(video_mode=False, max_faces=1) as mesh:
        photo = synth.detect_photos(synth.default_faces()[:1], mesh)[0]
        return synth.make_identity(photo, np.random.default_rng(seed), mesh, w, h, 0.2, "test",
                                   composite=False, vary=False)


def _field(ident, cls: str) -> np.ndarray:
    from train import synth

    aus = synth.CLASS_AUS[cls]
    return ident.field_for("+".join(a for a, _ in aus), aus)


def expression_frames(
    cls: str = "positive",
    *,
    fps: float = 30.0,
    seconds: float = 4.0,
    onset_s: float = 2.0,
    duration_s: float = 0.4,
    peak_iod: float = 0.025,
    size: tuple[int, int] = (480, 360),
    seed: int = 0,
) -> tuple[list[np.ndarray], dict]:
    """Frames (HWC uint8 BGR) of the astronaut photo with one micro-expression of `cls`.

    The face is still apart from the expression (no sway, constant light), so that the
    clip loops seamlessly when Chromium replays it as a fake webcam. Returns the frames
    and the ground truth (onset/apex/offset in seconds, class).
    """
    from train import synth

    rng = np.random.default_rng(seed)
    ident = _identity(size, seed)
    renderer = synth.Renderer(ident)
    n = int(round(seconds * fps))
    on = int(round(onset_s * fps))
    off = on + max(4, int(round(duration_s * fps)))
    apex = (on + off) // 2
    amps = synth.event_profile(n, on, apex, off) * peak_iod
    fld = _field(ident, cls)
    frames = [renderer.frame(fld, float(amps[t]), None, 1.0, 0.0, 1.0, rng) for t in range(n)]
    truth = {"class": cls, "fps": fps, "onset_s": on / fps, "apex_s": apex / fps, "offset_s": off / fps,
             "peak_iod": peak_iod, "note": "synthetic data for tests only"}
    return frames, truth


def fit_known_answer_classifier(
    path: Path,
    *,
    peak_iod: float = 0.025,
    size: tuple[int, int] = (480, 360),
    seed: int = 0,
    steps: int = 80,
    image_size: int = 64,
) -> Path:
    """A tiny MoExt classifier fitted to the three synthetic classes ON THIS SAME FACE.

    Not an accuracy claim of any kind: it is a classifier whose answer for the generated
    clips is known, so that a browser test can demand the right class end to end (webcam
    -> server -> recognizer -> table) whatever the shipped demo weights can do. Pairs are
    (neutral, expression at 0.4-1.3 x peak), with JPEG round trips like the webcam's.
    """
    import torch

    from moext import ModelConfig
    from moext.checkpoint import save_checkpoint
    from moext.face import FaceDetection, FaceMesh
    from moext.modeling.moext import MoExtClassifier
    from moext.preprocess import face_to_input
    from train import synth

    classes = list(synth.CLASSES)
    cfg = ModelConfig(backbone="mobilenet_v3_small", branch_channels=16, feature_dim=32, projection_dim=8,
                      image_size=image_size, num_classes=len(classes), class_names=classes, dropout=0.0)
    rng = np.random.default_rng(seed + 1)
    ident = _identity(size, seed)
    renderer = synth.Renderer(ident)

    def jpeg(img: np.ndarray) -> np.ndarray:
        q = int(rng.integers(70, 96))
        return cv2.imdecode(cv2.imencode(".jpg", img, [cv2.IMWRITE_JPEG_QUALITY, q])[1], cv2.IMREAD_COLOR)

    xs_o, xs_a, ys = [], [], []
    with FaceMesh(video_mode=False, max_faces=1) as mesh:
        def net_input(img: np.ndarray) -> np.ndarray:
            det = mesh.detect(img)
            assert isinstance(det, FaceDetection), "the generated face was not found"
            return face_to_input(img, det.landmarks, cfg.image_size)[0][0]

        for k, cls in enumerate(classes):
            fld = _field(ident, cls)
            for a in np.linspace(0.4, 1.3, 8):
                onset = renderer.frame(None, 0.0, None, 1.0, 0.0, 1.0, rng)
                apex = renderer.frame(fld, float(a * peak_iod), None, 1.0, 0.0, 1.0, rng)
                xs_o.append(net_input(jpeg(onset)))
                xs_a.append(net_input(jpeg(apex)))
                ys.append(k)
    x_o, x_a = torch.from_numpy(np.stack(xs_o)), torch.from_numpy(np.stack(xs_a))
    y = torch.tensor(ys)
    torch.manual_seed(seed)
    model = MoExtClassifier(cfg)
    opt = torch.optim.Adam(model.parameters(), lr=2e-3)
    both = torch.cat([x_o, x_a])  # one batch: BatchNorm sees onsets and apexes together

    def logits_of() -> torch.Tensor:
        f_o, f_a = model.forward_features(both).split(len(x_o))
        return model.forward_head(f_o, f_a)

    model.train()
    for step in range(steps):
        opt.zero_grad()
        logits = logits_of()
        loss = torch.nn.functional.cross_entropy(logits, y)
        loss.backward()
        opt.step()
        if os.environ.get("MOEXT_DEBUG") and step % 10 == 0:
            print(step, round(loss.item(), 4), (logits.argmax(1) == y).float().mean().item())
    # Running statistics = this data's exact statistics, so eval mode computes what was fitted.
    for m in model.modules():
        if isinstance(m, torch.nn.modules.batchnorm._BatchNorm):
            m.reset_running_stats()
            m.momentum = None
    with torch.no_grad():
        model.forward_features(both)
    model.eval()
    with torch.no_grad():
        acc = (model(x_o, x_a).argmax(1) == y).float().mean().item()
    assert acc == 1.0, f"the known-answer classifier did not fit its own pairs (accuracy {acc:.2f})"
    return save_checkpoint(model, path, {"note": "test fixture: fitted to one synthetic face; not a model"})


def write_y4m(path: Path, frames: list[np.ndarray], fps: float) -> Path:
    """YUV4MPEG2 (the format Chromium's --use-file-for-fake-video-capture reads): a text
    header, then per frame "FRAME\\n" and the raw I420 planes (4:2:0, even sizes)."""
    h, w = frames[0].shape[:2]
    if w % 2 or h % 2:
        raise ValueError(f"y4m 4:2:0 needs even width and height, got {w}x{h}")
    num, den = (int(round(fps * 1000)), 1000)
    with open(path, "wb") as fh:
        fh.write(f"YUV4MPEG2 W{w} H{h} F{num}:{den} Ip A1:1 C420jpeg\n".encode())
        for f in frames:
            fh.write(b"FRAME\n")
            fh.write(cv2.cvtColor(f, cv2.COLOR_BGR2YUV_I420).tobytes())
    return path


def write_video(path: Path, frames: list[np.ndarray], fps: float) -> Path:
    """`.webm` as VP8 (browsers play it, so the upload preview works), else mp4v."""
    h, w = frames[0].shape[:2]
    fourcc = "VP80" if path.suffix == ".webm" else "mp4v"
    vw = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*fourcc), fps, (w, h))
    assert vw.isOpened(), f"OpenCV cannot write {path}"
    for f in frames:
        vw.write(f)
    vw.release()
    return path


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    """`python -m realtime.web_cli` (= `moext-live web`) on 127.0.0.1 with a free port, in its own process group."""

    def __init__(self, proc: subprocess.Popen, url: str, cache: Path, log: Path):
        self.proc, self.url, self.cache, self.log = proc, url, cache, log

    def output(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""


@contextmanager
def web_server(tmp: Path, checkpoint: Path, *args: str, timeout: float = 180.0) -> Iterator[Server]:
    port = free_port()
    cache = tmp / "gradio-cache"
    log = tmp / "server.log"
    env = dict(os.environ, GRADIO_TEMP_DIR=str(cache), GRADIO_ANALYTICS_ENABLED="False",
               MOEXT_THREADS="1", PYTHONUNBUFFERED="1")
    cmd = [sys.executable, "-m", "realtime.web_cli", "--checkpoint", str(checkpoint), "--backend", "torch",
           "--host", "127.0.0.1", "--port", str(port), *args]
    with open(log, "wb") as fh:
        proc = subprocess.Popen(cmd, cwd=REPO, env=env, stdout=fh, stderr=subprocess.STDOUT,
                                start_new_session=True)
    srv = Server(proc, f"http://127.0.0.1:{port}/", cache, log)
    try:
        deadline = time.monotonic() + timeout
        while True:
            if proc.poll() is not None:
                raise AssertionError(f"server exited with {proc.returncode}:\n{srv.output()[-3000:]}")
            try:
                with urllib.request.urlopen(srv.url, timeout=2) as r:
                    if r.status == 200:
                        break
            except OSError:
                pass
            if time.monotonic() > deadline:
                raise AssertionError(f"server not up after {timeout:.0f} s:\n{srv.output()[-3000:]}")
            time.sleep(0.5)
        yield srv
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGINT)  # graceful: Gradio's shutdown deletes its cache files
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()


@contextmanager
def chromiums(*fake_videos: Path | None) -> Iterator[list]:
    """Headless Debian Chromiums under one Playwright, one per entry of `fake_videos`; each
    plays its y4m file (or Chromium's test pattern for None) as its webcam. One Playwright
    for all: its sync API cannot be nested."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browsers = []
        try:
            for video in fake_videos:
                args = ["--use-fake-ui-for-media-stream", "--use-fake-device-for-media-stream"]
                if video is not None:
                    args.append(f"--use-file-for-fake-video-capture={video}")
                browsers.append(p.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=args))
            yield browsers
        finally:
            for b in browsers:
                b.close()


@contextmanager
def chromium(fake_video: Path | None = None) -> Iterator:
    with chromiums(fake_video) as (browser,):
        yield browser


def save_artifact(src: Path, name: str) -> Path:
    ARTIFACTS.mkdir(exist_ok=True)
    dst = ARTIFACTS / name
    shutil.copyfile(src, dst)
    return dst
