"""The OpenCV window: face box, current label and probabilities, scrolling motion curve.

`Overlay.draw(frame, result)` returns a new image (the frame is not modified): the frame
with the face box and landmarks' box, a probability bar per class, and underneath a strip
with the last `window_ms` of motion (% IOD), the entry threshold, onset (blue) and apex
(red) marks of events, and the event label.
"""

from __future__ import annotations

from collections import deque

import cv2
import numpy as np

from realtime.events import Event, FrameResult

STATE_COLOURS = {
    "waiting": (128, 128, 128), "settling": (0, 165, 255), "quiet": (0, 200, 0),
    "active": (0, 0, 255),
}


class Overlay:
    def __init__(self, class_names: list[str], window_ms: float = 6000.0, strip_h: int = 120,
                 scale_max: float = 4.0, threshold: float | None = None):
        self.class_names = class_names
        self.window_ms = window_ms
        self.strip_h = strip_h
        self.scale_max = scale_max  # % IOD at the top of the strip (grows with the signal)
        self.threshold = threshold
        self.curve: deque[tuple[float, float | None]] = deque(maxlen=2048)
        self.events: deque[Event] = deque(maxlen=32)
        self.last_event: Event | None = None

    def draw(self, frame: np.ndarray, r: FrameResult) -> np.ndarray:
        h, w = frame.shape[:2]
        out = np.zeros((h + self.strip_h, w, 3), np.uint8)
        out[:h] = frame
        self.curve.append((r.timestamp_ms, r.motion))
        for ev in r.events:
            self.events.append(ev)
            self.last_event = ev
        colour = STATE_COLOURS.get(r.state, (255, 255, 255))
        if r.box is not None:
            x0, y0, x1, y1 = map(int, r.box)
            cv2.rectangle(out, (x0, y0), (x1, y1), colour, 2)
        text = f"{r.state}"
        if r.motion is not None:
            text += f"  motion {r.motion:.2f}% IOD"
        if not r.face_found:
            text = "no face"
        _put(out, text, (8, 20), colour)
        if r.probabilities:
            for i, c in enumerate(self.class_names):
                p = r.probabilities.get(c, 0.0)
                y = 40 + 18 * i
                cv2.rectangle(out, (8, y - 11), (8 + int(100 * p), y + 3), (200, 200, 0), -1)
                _put(out, f"{c} {p:.2f}", (114, y), (255, 255, 255))
        if self.last_event is not None:
            e = self.last_event
            _put(out, f"last: {e.kind} {e.label or '?'} at {e.apex_ms / 1000:.2f}s "
                      f"({e.amplitude:.1f}% IOD)", (8, h - 10), (0, 255, 255))
        self._strip(out, h, w, r.timestamp_ms)
        return out

    def _strip(self, out: np.ndarray, h: int, w: int, now: float) -> None:
        top, bottom = h + 5, h + self.strip_h - 5
        t0 = now - self.window_ms
        vals = [m for t, m in self.curve if t >= t0 and m is not None]
        peak = max(vals) if vals else 0.0
        scale = max(self.scale_max, peak * 1.1)
        x_of = lambda t: int((t - t0) / self.window_ms * (w - 1))  # noqa: E731
        y_of = lambda m: int(bottom - min(m, scale) / scale * (bottom - top))  # noqa: E731
        if self.threshold:
            y = y_of(self.threshold)
            cv2.line(out, (0, y), (w - 1, y), (80, 80, 80), 1)
        pts = [(x_of(t), y_of(m)) for t, m in self.curve if t >= t0 and m is not None]
        if len(pts) > 1:
            cv2.polylines(out, [np.array(pts, np.int32)], False, (0, 255, 0), 1)
        for e in self.events:
            if e.onset_ms >= t0:
                cv2.line(out, (x_of(e.onset_ms), top), (x_of(e.onset_ms), bottom), (255, 0, 0), 1)
            if e.apex_ms >= t0:
                x = x_of(e.apex_ms)
                cv2.line(out, (x, top), (x, bottom), (0, 0, 255), 1)
                _put(out, f"{e.kind[:2]} {e.label or ''}", (max(0, x - 30), top + 12), (0, 0, 255))
        _put(out, f"motion (% IOD, top {scale:.1f})", (4, bottom), (160, 160, 160), 0.4)


def _put(img, text, org, colour, scale: float = 0.5) -> None:
    cv2.putText(img, text, org, cv2.FONT_HERSHEY_SIMPLEX, scale, (0, 0, 0), 3, cv2.LINE_AA)
    cv2.putText(img, text, org, cv2.FONT_HERSHEY_SIMPLEX, scale, colour, 1, cv2.LINE_AA)


def display_available() -> bool:
    """Whether an OpenCV window can be shown (a display server, and a GUI-enabled build)."""
    import os
    import sys

    if sys.platform.startswith("linux") and not (
        os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")
    ):
        return False
    try:
        cv2.namedWindow("moext-probe", cv2.WINDOW_AUTOSIZE)
        cv2.destroyWindow("moext-probe")
        return True
    except cv2.error:
        return False
