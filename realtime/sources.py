"""Frame sources: a camera index or a video file, each frame with a monotonic timestamp.

- Video: the file's own timestamps (`CAP_PROP_POS_MSEC`), forced strictly increasing
  (some containers repeat or lack them; then frame index / fps fills in).
- Camera: the capture clock, `time.monotonic()` when the frame was grabbed, in ms since
  the source opened.

Frames that fail to decode in the middle of a stream are skipped and counted
(`decode_failures`), never fatal; a source that cannot be opened at all raises
`SourceError` with a one-line message naming it.
"""

from __future__ import annotations

import os
import re
import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import cv2
import numpy as np

# FFmpeg's own messages ("moov atom not found") would precede our one-line error; the level
# is read when OpenCV's FFmpeg backend first opens a file. -8 is FFmpeg's AV_LOG_QUIET.
os.environ.setdefault("OPENCV_FFMPEG_LOGLEVEL", "-8")


@contextmanager
def _opencv_quiet():
    """Silence OpenCV's own log lines while probing a source: our one-line error says it."""
    # OpenCV 4 has cv2.getLogLevel/setLogLevel; OpenCV 5 keeps them in cv2.utils.logging.
    log = getattr(getattr(cv2, "utils", None), "logging", None)
    get = getattr(cv2, "getLogLevel", None) or getattr(log, "getLogLevel", None)
    set_ = getattr(cv2, "setLogLevel", None) or getattr(log, "setLogLevel", None)
    if get is None or set_ is None:
        yield
        return
    level = get()
    set_(0)  # 0 = silent
    try:
        yield
    finally:
        set_(level)


class SourceError(RuntimeError):
    """A camera or file that cannot be opened or read; the message names it."""


@dataclass
class Frame:
    """One decoded frame: HWC uint8 BGR image, its timestamp (ms) and its number.

    `t_read` is `time.perf_counter()` when the frame was captured (a camera's grab) or
    decoded (a file): the start of its latency."""

    image: np.ndarray
    timestamp_ms: float
    index: int
    decode_ms: float
    t_read: float = 0.0


class _Source:
    name: str
    # Consecutive failed reads after which a stream is taken to have ended rather than to
    # have one bad frame (a truncated file fails on every read after the cut).
    max_consecutive_failures = 30

    def __init__(self) -> None:
        self.cap: cv2.VideoCapture | None = None
        self.decode_failures = 0
        self.frames_read = 0
        self.dropped = 0  # frames a live source replaced before they were taken
        self._last_ts: float | None = None

    @property
    def fps(self) -> float:
        f = self.cap.get(cv2.CAP_PROP_FPS) if self.cap is not None else 0.0
        return f if f and 1.0 <= f <= 1000.0 else 30.0

    def _monotonic(self, ts: float) -> float:
        if self._last_ts is not None and ts <= self._last_ts:
            ts = self._last_ts + 1000.0 / self.fps
        self._last_ts = ts
        return ts

    def close(self) -> None:
        if self.cap is not None:
            self.cap.release()
            self.cap = None

    def __enter__(self):
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __iter__(self) -> Iterator[Frame]:
        raise NotImplementedError


STILL_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp", ".gif")


class VideoSource(_Source):
    """Any file OpenCV can read; `loop=True` starts over at the end (timestamps go on)."""

    def __init__(self, path: str | Path, loop: bool = False):
        super().__init__()
        self.path = Path(path)
        self.name = str(self.path)
        self.loop = loop
        if not self.path.is_file():
            raise SourceError(f"video {self.path} does not exist; pass a readable video file")
        if self.path.suffix.lower() in STILL_SUFFIXES:
            # OpenCV opens a photo as a one-frame "video" that then looks truncated.
            raise SourceError(f"{self.path.name} is a still image, not a video: pass a video file (mp4, webm, "
                              "avi, mov ...) or a folder of frames")
        with _opencv_quiet():
            self.cap = cv2.VideoCapture(str(self.path))
            opened = self.cap.isOpened()
        if not opened:
            raise SourceError(
                f"video {self.path} cannot be opened by OpenCV; is it a video file "
                "(mp4, avi, mkv, ...) in a codec this OpenCV reads?"
            )
        ok, first = self.cap.read()
        if not ok or first is None:
            raise SourceError(f"video {self.path} opened but no frame could be decoded from it")
        self.cap.set(cv2.CAP_PROP_POS_FRAMES, 0)
        self.frame_count = int(self.cap.get(cv2.CAP_PROP_FRAME_COUNT) or 0)
        self.size = (first.shape[1], first.shape[0])

    def missing_frames(self) -> int:
        """Frames the container announced that were neither read nor counted as bad (a
        truncated file ends early); 0 when the container gives no count, or when looping."""
        if self.loop or not self.frame_count:
            return 0
        return max(0, self.frame_count - self.frames_read - self.decode_failures)

    def __iter__(self) -> Iterator[Frame]:
        offset = 0.0  # timestamp offset of the current loop
        pos = 0  # frame position within the file
        fails = 0
        while self.cap is not None:
            t0 = time.perf_counter()
            ok = self.cap.grab()
            img = None
            if ok:
                ts_file = self.cap.get(cv2.CAP_PROP_POS_MSEC)
                ok, img = self.cap.retrieve()
            decode_ms = (time.perf_counter() - t0) * 1e3
            pos += 1
            if not ok or img is None:
                # Past the known end: the stream is over. Before it: a bad frame, skip it.
                if (self.frame_count and pos >= self.frame_count) or fails >= self.max_consecutive_failures:
                    if fails >= self.max_consecutive_failures and not self.loop:
                        # Not bad frames in the middle: the file ends here (truncated).
                        self.decode_failures -= fails
                    if self.loop and self.frames_read:
                        offset = (self._last_ts or 0.0) + 1000.0 / self.fps
                        self.cap.set(cv2.CAP_PROP_POS_FRAMES, 0)
                        pos, fails = 0, 0
                        continue
                    return
                fails += 1
                self.decode_failures += 1
                continue
            fails = 0
            if not ts_file and pos > 1:  # container without timestamps
                ts_file = (pos - 1) * 1000.0 / self.fps
            ts = self._monotonic(offset + ts_file)
            self.frames_read += 1
            yield Frame(img, ts, self.frames_read - 1, decode_ms, time.perf_counter())


class CameraSource(_Source):
    """A camera by index, timestamps from the capture clock.

    With `drop_late` (the default, as MediaPipe's live-stream mode), a thread grabs frames
    as the camera delivers them and keeps only the newest: when processing is slower than
    the camera, older frames are dropped (counted in `dropped`) instead of queueing in the
    driver, so what is processed is never more than one frame period old plus processing.
    """

    def __init__(self, index: int, width: int | None = None, height: int | None = None,
                 drop_late: bool = True):
        super().__init__()
        self.name = f"camera {index}"
        self.drop_late = drop_late
        # OpenCV logs its own lines when probing a missing camera; our one line says it all.
        with _opencv_quiet():
            self.cap = cv2.VideoCapture(index)
            opened = self.cap.isOpened()
        if not opened:
            self.cap = None
            raise SourceError(
                f"camera {index} cannot be opened; check that it is connected and not used by "
                "another program, try another --camera index, or use --video FILE / --demo"
            )
        if width:
            self.cap.set(cv2.CAP_PROP_FRAME_WIDTH, width)
        if height:
            self.cap.set(cv2.CAP_PROP_FRAME_HEIGHT, height)
        self._t0 = time.monotonic()
        self._stop = threading.Event()

    def _read(self, fails: int) -> tuple[Frame | None, int]:
        """One grab + retrieve: (frame, consecutive failures)."""
        t0 = time.perf_counter()
        ok = self.cap.grab()
        t_grab = time.perf_counter()
        ts = (time.monotonic() - self._t0) * 1e3  # when the frame was grabbed
        img = None
        if ok:
            ok, img = self.cap.retrieve()
        decode_ms = (time.perf_counter() - t0) * 1e3
        if not ok or img is None:
            fails += 1
            self.decode_failures += 1
            if fails >= self.max_consecutive_failures:
                raise SourceError(f"{self.name} stopped delivering frames "
                                  f"({fails} failed reads in a row)")
            return None, fails
        self.frames_read += 1
        return Frame(img, self._monotonic(ts), self.frames_read - 1, decode_ms, t_grab), 0

    def __iter__(self) -> Iterator[Frame]:
        if not self.drop_late:
            fails = 0
            while self.cap is not None:
                fr, fails = self._read(fails)
                if fr is not None:
                    yield fr
            return
        yield from self._latest()

    def _latest(self) -> Iterator[Frame]:
        slot: list = []  # [Frame] or [SourceError]
        cond = threading.Condition()

        def grab() -> None:
            fails = 0
            try:
                while not self._stop.is_set() and self.cap is not None:
                    fr, fails = self._read(fails)
                    if fr is None:
                        continue
                    with cond:
                        if slot:
                            self.dropped += 1  # not taken in time: the newer one replaces it
                        slot[:] = [fr]
                        cond.notify()
            except SourceError as e:
                with cond:
                    slot[:] = [e]
                    cond.notify()

        reader = threading.Thread(target=grab, name="moext-camera", daemon=True)
        reader.start()
        try:
            while True:
                with cond:
                    while not slot:
                        if not reader.is_alive():
                            return
                        cond.wait(0.1)
                    item = slot.pop()
                if isinstance(item, SourceError):
                    raise item
                yield item
        finally:
            self._stop.set()
            reader.join(timeout=2.0)

    def close(self) -> None:
        self._stop.set()
        super().close()


IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff")


def _natural_key(p: Path) -> list:
    """img2 before img10 (CASME II's img46.jpg, SMIC's image000123.bmp, SAMM's 006_1_2_4325.jpg)."""
    return [int(t) if t.isdigit() else t.lower() for t in re.split(r"(\d+)", p.name)]


class FolderSource(_Source):
    """A folder of frames, one image per frame in natural name order, as the ME datasets
    ship their clips (CASME II `sub01/EP02_01f/img46.jpg`, SAMM, SMIC). Timestamps come from
    `fps` (the datasets' cameras: CASME II and SAMM 200, SMIC-HS 100). An image that cannot
    be read is skipped and counted, like a bad video frame."""

    def __init__(self, path: str | Path, fps: float = 30.0):
        super().__init__()
        self.path = Path(path)
        self.name = str(self.path)
        self._fps = float(fps)
        if not self.path.is_dir():
            raise SourceError(f"frame folder {self.path} does not exist")
        self.files = sorted((p for p in self.path.iterdir()
                             if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES), key=_natural_key)
        if not self.files:
            raise SourceError(
                f"frame folder {self.path} holds no images ({', '.join(IMAGE_SUFFIXES)}); pass a "
                "folder of frames or a video file")
        self.frame_count = len(self.files)

    @property
    def fps(self) -> float:
        return self._fps

    def __iter__(self) -> Iterator[Frame]:
        for k, f in enumerate(self.files):
            t0 = time.perf_counter()
            img = cv2.imread(str(f), cv2.IMREAD_COLOR)
            decode_ms = (time.perf_counter() - t0) * 1e3
            if img is None:
                self.decode_failures += 1
                continue
            self.frames_read += 1
            yield Frame(img, self._monotonic(k * 1000.0 / self._fps), self.frames_read - 1, decode_ms,
                        time.perf_counter())


def open_source(camera: int | None = None, video: str | Path | None = None, loop: bool = False,
                fps: float | None = None):
    """A camera, a video file, or a folder of frames (`fps`: the folder's frame rate)."""
    if (camera is None) == (video is None):
        raise SourceError("give exactly one source: --camera N or --video PATH (or --demo)")
    if camera is not None:
        return CameraSource(camera)
    if Path(video).is_dir():
        return FolderSource(video, fps or 30.0)
    return VideoSource(video, loop=loop)
