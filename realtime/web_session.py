"""The browser demo's session state, without Gradio: what each browser tab owns (its
recognizer, events, downloads) and the settings of the demo. `realtime/web.py` lays the page
out with Gradio and calls these; tests drive them directly.
"""

from __future__ import annotations

import math
import os
import shutil
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np

from realtime.events import Event, EventWriter
from realtime.recognizer import Recognizer, RecognizerConfig
from realtime.web_draw import Mark, curve_html, curve_image, thumbnails_html

EVENT_COLUMNS = ["#", "onset (s)", "apex (s)", "offset (s)", "duration (ms)", "kind", "label",
                 "p(label)", "amplitude (% IOD)", "region", "FACS reading", "action units"]


@dataclass
class WebConfig:
    """Settings of the browser demo.

    Attributes:
        checkpoint: classifier checkpoint; None = the shipped demo weights.
        backend: auto | tensorrt | onnx | torch (see `realtime.backends`).
        recognizer: the live recognizer's settings (spotting thresholds...).
        stream_every: seconds between webcam frames the browser sends (0.033 = 30 fps at
            most; the handler's own speed is the real limit on CPU: frames that arrive while
            it is busy are dropped, the newest one is processed next).
        time_limit: seconds of processing one webcam stream may use before it is stopped.
        concurrency_limit: webcam streams plus video analyses running at once, all users.
        queue_size: users who may wait for a free slot; more are told the server is busy.
        max_file_size: largest upload, e.g. "100mb" (Gradio refuses bigger files).
        max_video_seconds: longest uploaded video that is analysed.
        curve_seconds: width of the live motion curve.
        ui_every: seconds between redraws of the live page (every frame is still analysed).
        gap_reset_s: a pause in the webcam stream longer than this starts the recognizer
            over (its onset reference would be stale).
        cache_max_age_s: files in Gradio's cache older than this are deleted (a backstop
            for sessions that never close cleanly).
    """

    checkpoint: str | Path | None = None
    backend: str = "auto"
    # One intra-op thread per recognizer: sessions run in parallel threads, and on a shared
    # CPU more threads oversubscribe it (tiny net here: 175 ms a frame with 2, 16 ms with 1).
    recognizer: RecognizerConfig = field(default_factory=lambda: RecognizerConfig(threads=1))
    stream_every: float = 0.033
    time_limit: int = 300
    concurrency_limit: int = 2
    queue_size: int = 16
    max_file_size: str = "100mb"
    max_video_seconds: float = 300.0
    curve_seconds: float = 10.0
    ui_every: float = 0.2
    gap_reset_s: float = 1.0
    cache_max_age_s: int = 900


def _events_frame(events: list[Event]):
    import pandas as pd

    rows = []
    for k, e in enumerate(events, 1):
        p = e.probabilities.get(e.label, float("nan")) if e.label else float("nan")
        facs = (e.facs_label or "unclear") + (f" ({e.facs_emotion})" if e.facs_emotion else "")
        if e.truncated:
            facs += ", truncated"
        aus = ", ".join(f"{u['au']} {u['change']:+.2f}" for u in e.action_units[:4])
        rows.append([k, round(e.onset_ms / 1e3, 3), round(e.apex_ms / 1e3, 3), round(e.offset_ms / 1e3, 3),
                     round(e.duration_ms), e.kind, e.label or "", round(p, 3), round(e.amplitude, 2), e.region,
                     facs, aus])
    return pd.DataFrame(rows, columns=EVENT_COLUMNS)


def _entry_threshold(rec: Recognizer) -> float:
    """The sustained detector's landmark entry floor (% IOD), the line on the motion curve
    (the same line the moext-live window draws)."""
    return float(rec.spotter.cfg.enter_min)


def _mark(e: Event) -> Mark:
    p = e.probabilities.get(e.label, 0.0) if e.label else 0.0
    return Mark(e.onset_ms / 1e3, e.apex_ms / 1e3, e.offset_ms / 1e3, f"{e.kind} {e.label or '?'} {p:.2f}")


def _write_events_csv(path: Path, events: list[Event], class_names: list[str]) -> Path:
    """All events to `path` atomically (a download never sees half a file)."""
    tmp = path.with_name(f".tmp-{path.name}")  # keeps the .csv suffix EventWriter needs
    w = EventWriter(tmp, class_names)
    try:
        for e in events:
            w.write(e)
    finally:
        w.close()
    os.replace(tmp, path)
    return path


class SessionFiles:
    """Per-browser-session folders and uploads, deleted when the session ends."""

    def __init__(self, root: Path):
        self.root = root
        self._lock = threading.Lock()
        self._extra: dict[str, set[Path]] = {}
        self.live: dict[str, "LiveSession"] = {}
        # Sessions whose tab has closed. A webcam frame already in Gradio's queue when the
        # tab closes still reaches the handler after `end`; it must not recreate the folder
        # and a recognizer that nothing would ever delete (the likely cause of a CI run in
        # which a closed tab's folder was still there 90 s later).
        self._ended: dict[str, None] = {}

    def ended(self, session: str) -> bool:
        return session in self._ended

    def add_live(self, session: str, live: "LiveSession") -> bool:
        """Register a tab's webcam state; False (and `live` closed, its folder removed) when
        the tab closed meanwhile: `end` may run between the handler's check and this call."""
        with self._lock:
            if session not in self._ended:
                self.live[session] = live
                return True
        live.close()
        shutil.rmtree(self.root / _safe(session), ignore_errors=True)
        return False

    def folder(self, session: str) -> Path:
        if session in self._ended:
            raise SessionEnded(session)
        d = self.root / _safe(session)
        d.mkdir(parents=True, exist_ok=True, mode=0o700)
        return d

    def track(self, session: str, path: str | Path) -> None:
        with self._lock:
            self._extra.setdefault(session, set()).add(Path(path))

    def end(self, session: str) -> None:
        with self._lock:
            self._ended[session] = None
            while len(self._ended) > 100_000:  # a bound on a long-running server's memory
                del self._ended[next(iter(self._ended))]
            extra = self._extra.pop(session, set())
            live = self.live.pop(session, None)
        if live is not None:
            live.close()
        for p in extra:
            p.unlink(missing_ok=True)
        shutil.rmtree(self.root / _safe(session), ignore_errors=True)


class SessionEnded(RuntimeError):
    """A request arrived for a browser session whose tab has already closed."""


def _safe(session: str) -> str:
    return "".join(c for c in session if c.isalnum() or c in "-_") or "anonymous"


class LiveSession:
    """One browser tab's webcam state: a recognizer and what the page shows."""

    def __init__(self, rec: Recognizer, folder: Path, cfg: WebConfig,
                 clock: Callable[[], float] = time.monotonic):
        self.rec = rec
        self.folder = folder
        self.cfg = cfg
        self.clock = clock
        self.t0 = clock()
        self.last_ms = -math.inf
        self.last_wall: float | None = None
        n = 4096
        self.t_s: deque[float] = deque(maxlen=n)
        self.motion: deque[float] = deque(maxlen=n)
        self.events: list[Event] = []
        self.thumbs = thumbnails_html(None, None, "no event yet")
        self.csv_path: Path | None = None
        self.frames = 0
        self.no_face = 0
        self.skipped = 0
        self.fps = 0.0
        self.last_ui = -math.inf
        self.slot = -1  # the send slot (multiple of cfg.stream_every) of the last frame
        self.dropped = 0  # slots that brought no frame (dropped while the handler was busy)
        self.closed = False
        # Reset and tab-close arrive on other threads than the stream's frames.
        self._lock = threading.Lock()

    def close(self) -> None:
        with self._lock:
            if not self.closed:
                self.closed = True
                self.rec.buffer.clear()  # the buffer holds face crops: drop them now
                self.rec.close()

    def step(self, frame_bgr: np.ndarray) -> dict[str, Any]:
        """Process one webcam frame; returns what changed for the page."""
        with self._lock:
            if self.closed:
                raise RuntimeError("this session was reset or closed")
            return self._step(frame_bgr)

    def _step(self, frame_bgr: np.ndarray) -> dict[str, Any]:
        now = self.clock()
        if self.last_wall is not None:
            gap = now - self.last_wall
            if gap > self.cfg.gap_reset_s:  # the stream was paused: references are stale
                self.rec.reset()
                self.t0, self.slot, self.last_ms = now, -1, -math.inf
            elif gap > 0:
                self.fps = 0.8 * self.fps + 0.2 / gap if self.fps else 1.0 / gap
        self.last_wall = now
        ts = self._timestamp(now)
        self.frames += 1
        r = self.rec.process(frame_bgr, ts)
        if not r.face_found:
            self.no_face += 1
        self.t_s.append(ts / 1e3)
        self.motion.append(r.motion if r.motion is not None else math.nan)
        new_events = list(r.events)
        for e in new_events:
            onset = self.rec.buffer.get(e.onset_index)
            apex = self.rec.buffer.get(e.apex_index)
            p = e.probabilities.get(e.label, 0.0) if e.label else 0.0
            aus = ", ".join(f"{u['au']} {u['name']} {u['change']:+.2f}" for u in e.action_units[:3])
            self.thumbs = thumbnails_html(
                onset.crop if onset is not None else None,
                apex.crop if apex is not None else None,
                f"last event: {e.kind} {e.label or '?'} (p={p:.2f}; FACS {e.facs_label or 'unclear'}) "
                f"at {e.apex_ms / 1e3:.2f} s, {e.duration_ms:.0f} ms, {e.amplitude:.1f} % IOD, "
                f"{e.region}; moved: {aus or 'no action units measured'}",
            )
        if new_events:
            self.events.extend(new_events)
            old = self.csv_path
            # A new name per version: the browser must not serve an older download from cache.
            self.csv_path = _write_events_csv(
                self.folder / f"live-events-{len(self.events):04d}.csv", self.events, self.rec.class_names
            )
            if old is not None and old != self.csv_path:
                old.unlink(missing_ok=True)
        return {"result": r, "new_events": bool(new_events)}

    def _timestamp(self, now: float) -> float:
        """A steady clock for the stream: Gradio's webcam stream carries no capture time
        (the page sends a JPEG every `stream_every` s and nothing else), so each frame gets
        the send slot its arrival falls in. Arrival jitter within a slot (upload, queue)
        no longer moves timestamps, and slots that brought no frame (Gradio keeps only the
        newest frame while the handler is busy) are counted as dropped, so the time between
        frames stays true."""
        period = self.cfg.stream_every
        slot = max(int(round((now - self.t0) / period)), self.slot + 1)
        if self.slot >= 0:
            self.dropped += slot - self.slot - 1
        self.slot = slot
        ts = max(slot * period * 1e3, self.last_ms + 1e-3)
        self.last_ms = ts
        return ts

    def curve(self) -> str:
        marks = [_mark(e) for e in self.events[-20:]]
        now = self.t_s[-1] if self.t_s else 0.0
        img = curve_image(list(self.t_s), list(self.motion), marks, self.cfg.curve_seconds, max(now, self.cfg.curve_seconds),
                          threshold=_entry_threshold(self.rec))
        return curve_html(img)
