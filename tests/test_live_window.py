"""The OpenCV window of `moext-live` on a real X server (Xvfb): it opens, shows the overlay,
and Ctrl-C while it runs stops cleanly with everything flushed.

Needs Xvfb, xwininfo and xwd (Debian: xvfb x11-utils x11-apps; `.ci/install-browser`
installs them); skips with the reason where they are missing.
"""

from __future__ import annotations

import os
import shutil
import signal
import struct
import subprocess
import sys
import time

import cv2
import numpy as np
import pytest

TOOLS = ("Xvfb", "xwininfo", "xwd")
UPDATE = os.environ.get("MOEXT_UPDATE_SCREENSHOTS") == "1"
pytestmark = pytest.mark.skipif(
    not all(shutil.which(t) for t in TOOLS),
    reason="needs Xvfb, xwininfo and xwd (apt-get install xvfb x11-utils x11-apps)",
)


@pytest.fixture
def display():
    r, w = os.pipe()
    xvfb = subprocess.Popen(["Xvfb", "-displayfd", str(w), "-screen", "0", "1280x800x24", "-nolisten", "tcp"],
                            pass_fds=(w,), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    os.close(w)
    with os.fdopen(r) as fh:
        number = fh.readline().strip()
    yield f":{number}"
    xvfb.terminate()
    xvfb.wait(timeout=10)


def _xwd_to_bgr(data: bytes) -> np.ndarray:
    """An X window dump (ZPixmap, 24/32 bits per pixel) as an HxWx3 BGR array."""
    hdr = struct.unpack(">25I", data[:100])
    header_size, w, h, byte_order, bpp, bpl, ncolors = (hdr[0], hdr[4], hdr[5], hdr[7], hdr[11],
                                                        hdr[12], hdr[19])
    k = bpp // 8
    off = header_size + ncolors * 12
    px = np.frombuffer(data[off:off + bpl * h], np.uint8).reshape(h, bpl)[:, : w * k].reshape(h, w, k)
    return np.ascontiguousarray(px[..., :3] if byte_order == 0 else px[..., -3:][..., ::-1])


def _window(env: dict) -> tuple[int, int, int, int] | None:
    out = subprocess.run(["xwininfo", "-root", "-tree"], env=env, capture_output=True, text=True).stdout
    for line in out.splitlines():
        if '"moext-live"' in line:
            geo = line.split(")")[-1].split()[0]  # e.g. 640x542+0+0
            size, x, y = geo.split("+")[:3]
            w, h = map(int, size.split("x"))
            return int(x), int(y), w, h
    return None


@pytest.mark.slow
def test_window_shows_overlay_and_ctrl_c_flushes(display, tmp_path):
    env = {**os.environ, "DISPLAY": display, "MOEXT_CACHE_DIR": str(tmp_path / "cache")}
    events = tmp_path / "events.jsonl"
    frames = tmp_path / "frames.csv"
    p = subprocess.Popen([sys.executable, "-m", "realtime.cli", "--demo", "--events", str(events),
                          "--frames", str(frames)], env=env, stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, text=True)
    try:
        geo = None
        deadline = time.time() + 120
        while geo is None and time.time() < deadline and p.poll() is None:
            time.sleep(0.5)
            geo = _window(env)
        assert geo is not None, "no moext-live window appeared"
        # The window exists before the first frame is drawn (and is resized to the picture
        # when that comes): grab the screen until it shows a picture, and a second of video
        # more so the motion curve has a history; read the geometry again each time.
        drawn = good = None
        while time.time() < deadline and p.poll() is None:
            geo = _window(env) or geo
            x, y, w, h = geo
            shot = _xwd_to_bgr(subprocess.run(["xwd", "-root", "-silent"], env=env,
                                              capture_output=True, check=True).stdout)
            if w >= 640 and shot[y:y + h, x:x + w].std() > 20:
                good = (shot, geo)  # the last picture of the window (the demo may end first)
                if drawn is None:
                    drawn = time.time()
                elif time.time() - drawn > (3.0 if UPDATE else 1.5):  # the README's shot: after events
                    break
            time.sleep(0.3)
        # The window runs the 20 s demo faster than real time; the README's shot waits for
        # events, and the demo may end by itself first (then there is no Ctrl-C to check).
        ended_itself = p.poll() is not None
        assert UPDATE or not ended_itself, "the demo ended before the test could interrupt it"
        p.send_signal(signal.SIGINT)
        out, err = p.communicate(timeout=60)
    finally:
        if p.poll() is None:
            p.kill()
    if good is not None:
        shot, geo = good
        x, y, w, h = geo
    cv2.imwrite(str(tmp_path / "window.png"), shot)
    if UPDATE:  # refresh the README's picture of the window
        from pathlib import Path

        cv2.imwrite(str(Path(__file__).resolve().parents[1] / "docs" / "screenshot-live.png"),
                    shot[y:y + h, x:x + w])
    assert w >= 640 and h >= 360 + 120, geo  # the frame plus the motion strip
    win = shot[y:y + h, x:x + w]
    # The video frame (a face on a coloured background) is in the window, not a blank.
    assert win.std() > 20, win.std()
    # The motion strip under the frame: black background with the green motion curve.
    strip = win[h - 140:h - 20]
    green = (strip[..., 1] > 150) & (strip[..., 0] < 100) & (strip[..., 2] < 100)
    assert green.sum() > 50, green.sum()
    assert "no display found" not in err
    assert p.returncode == (0 if ended_itself else 130), err[-2000:]  # 130: 128 + SIGINT
    assert ended_itself or "stopped: interrupted (SIGINT)" in out
    assert "frames:" in out and "faces found:" in out
    rows = frames.read_text().splitlines()
    n = int(out.split("frames: ")[1].split()[0])
    assert len(rows) == n + 1  # header + one row per frame, all flushed at Ctrl-C
    assert events.exists()
