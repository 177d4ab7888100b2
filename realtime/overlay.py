"""The OpenCV window: face box, current label and probabilities, scrolling motion curve.

`Overlay.draw(frame, result)` returns a new image (the frame is not modified): the frame
with the face box and landmarks' box, a probability bar per class, the last event (its
kind, the classifier's and the FACS reading, and the action units that moved), and underneath a strip
with the last `window_ms` of motion (% IOD), the entry threshold, onset (blue) and apex
(red) marks of events, and the event label.

With a heat-map source (`Overlay(..., heatmap=LiveHeatmap(rec.checkpoint), buffer=rec.buffer)`,
see `realtime.heatmap`) it also shows, in the top-right corner, the newest event's apex crop
with the heat map of MIACNet's action branch blended in and a caption (method, class, event
apex time); the map is computed when an event finishes and stays until the next one replaces
it. Without one, `draw` is exactly what it was.
"""

from __future__ import annotations

from collections import deque
from typing import TYPE_CHECKING

import cv2
import numpy as np

from realtime.events import Event, FrameResult

if TYPE_CHECKING:
    from realtime.buffer import RollingBuffer
    from realtime.heatmap import EventHeatmap, LiveHeatmap

STATE_COLOURS = {
    "waiting": (128, 128, 128), "settling": (0, 165, 255), "quiet": (0, 200, 0),
    "active": (0, 0, 255),
}


class Overlay:
    def __init__(self, class_names: list[str], window_ms: float = 6000.0, strip_h: int = 120,
                 scale_max: float = 4.0, threshold: float | None = None,
                 heatmap: LiveHeatmap | None = None, buffer: RollingBuffer | None = None,
                 inset_size: int = 128):
        """
        Args:
            heatmap: optional source of per-event heat maps (`realtime.heatmap.LiveHeatmap`).
            buffer: the recognizer's rolling buffer (`rec.buffer`), where the heat map finds
                an event's onset and apex crops; required with `heatmap`.
            inset_size: side of the heat-map inset in pixels (shrunk to fit small frames).
        """
        if heatmap is not None and buffer is None:
            raise ValueError("Overlay(heatmap=...) needs buffer=rec.buffer to find the event's crops")
        self.heatmap = heatmap
        self.buffer = buffer
        self.inset_size = inset_size
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
        if self.heatmap is not None and r.events:
            self.heatmap.on_events(r.events, self.buffer)  # only at events: a backward pass
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
            _put(out, f"last: {e.kind} {e.label or '?'} (FACS {e.facs_label or '?'}) at "
                      f"{e.apex_ms / 1000:.2f}s ({e.amplitude:.1f}% IOD)"
                      f"{' truncated' if e.truncated else ''}", (8, h - 28), (0, 255, 255))
            # What moved, as FACS coders name it (the three largest changes).
            aus = ", ".join(f"{u['au']} {u['change']:+.2f}" for u in e.action_units[:3])
            _put(out, f"moved: {aus or 'no action units measured'}", (8, h - 10), (0, 255, 255))
        if self.heatmap is not None and self.heatmap.last is not None:
            self._inset(out, w, self.heatmap.last)
        self._strip(out, h, w, r.timestamp_ms)
        return out

    CAPTION_H = 30  # two caption lines under the inset

    def inset_rect(self, w: int, h: int) -> tuple[int, int, int, int] | None:
        """(x0, y0, x1, y1) of the heat-map inset plus its caption on a w x h frame (x1, y1
        exclusive), or None when the frame is too small to hold one."""
        margin = 8
        side = min(self.inset_size, w // 3, h - self.CAPTION_H - 2 * margin)
        if side < 32:
            return None
        x1 = w - margin
        return x1 - side, margin, x1, margin + side + self.CAPTION_H

    def _inset(self, out: np.ndarray, w: int, hm: EventHeatmap) -> None:
        h = out.shape[0] - self.strip_h
        rect = self.inset_rect(w, h)
        if rect is None:
            return
        x0, y0, x1, y1 = rect
        side = x1 - x0
        out[y0:y0 + side, x0:x1] = cv2.resize(hm.image, (side, side), interpolation=cv2.INTER_AREA)
        # The caption is drawn on its own dark band (readable on any frame, and a long class
        # name is clipped there instead of spilling over the frame).
        band = np.full((y1 - y0 - side, side, 3), 32, np.uint8)
        for i, text in enumerate(inset_caption(hm)):
            _put_fit(band, text, (3, 12 + 13 * i), side - 6, (255, 255, 255))
        out[y0 + side:y1, x0:x1] = band
        cv2.rectangle(out, (x0, y0), (x1 - 1, y1 - 1), (0, 255, 255), 1)

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


# A dark outline around each label: the same 1-px text shifted to the 8 neighbours. (A
# thicker stroke is not an outline with OpenCV 5: its glyphs widen with the thickness, so a
# thick dark copy runs ahead of the text and doubles it.)
_OUTLINE = [(dx, dy) for dx in (-1, 0, 1) for dy in (-1, 0, 1) if dx or dy]


def _put(img, text, org, colour, scale: float = 0.5) -> None:
    x, y = org
    for dx, dy in _OUTLINE:
        cv2.putText(img, text, (x + dx, y + dy), cv2.FONT_HERSHEY_SIMPLEX, scale, (0, 0, 0), 1, cv2.LINE_AA)
    cv2.putText(img, text, org, cv2.FONT_HERSHEY_SIMPLEX, scale, colour, 1, cv2.LINE_AA)


def inset_caption(hm: EventHeatmap) -> list[str]:
    """The inset's two caption lines: method and class; event kind and apex time."""
    e = hm.event
    when = f"{e.kind} at {e.apex_ms / 1000:.2f}s"
    # an all-zero map is drawn all blue: say that it means "no response", not "cold everywhere"
    return [f"{hm.method} {hm.class_name or e.label or '?'}",
            when if hm.peak > 0 else f"{when}: no response"]


def _put_fit(img, text, org, max_w: int, colour) -> None:
    """`_put` at the largest scale up to 0.4 at which `text` fits in `max_w` pixels."""
    scale = 0.4
    while scale > 0.25 and cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, scale, 1)[0][0] > max_w:
        scale -= 0.025
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
