"""Run a recognizer over a frame source, optionally as a two-stage pipeline.

    from realtime.pipeline import run_frames

    for frame, result in run_frames(rec, source, pipelined=True):
        ...  # results come in stream order, exactly as `rec.process` would give them

Stage 1 (decode, face mesh, the crop warp and optical flow of the spotter's micro cue, and
the network input unless stage 2 has more time for it: `Recognizer.prepare`) runs in a
worker thread one or two frames ahead of stage 2 (classifier, spotting, events:
`Recognizer.process`) in the caller's thread. On a 2-core CPU the two stages then overlap
instead of adding up: the face mesh, OpenCV and ONNX Runtime all release the GIL while
they compute. Results are the same as running `process` frame by frame (a test checks it);
only the wall time differs.

The worker stops when the caller stops iterating (break, exception, Ctrl-C): the generator's
`finally` tells it to stop, drains the queue so it cannot block, and joins it.
"""

from __future__ import annotations

import queue
import sys
import threading
from collections.abc import Iterable, Iterator

from realtime.recognizer import Recognizer
from realtime.sources import Frame

# Frames stage 1 may run ahead. 2 keeps both stages busy; more only adds latency.
QUEUE_DEPTH = 2
# MediaPipe hands its results to Python through a callback that needs the GIL; with the
# default 5 ms switch interval, a Python-busy stage 2 delays each face-mesh call by up to
# 5 ms (measured: 7.7 -> 14.9 ms per frame beside a spinning Python thread).
SWITCH_INTERVAL_S = 0.0005

_END = object()


class _Failure:
    def __init__(self, exc: BaseException):
        self.exc = exc


class _Balance:
    """Where the network input is made (warp + resize + normalise, ~1.5 ms; with the flow
    cue the warp stays in stage 1): in stage 1 unless stage 2 has more idle time than
    stage 1. With a fast classifier (MobileNetV3: 3 ms) the face mesh stage is the
    bottleneck and this work belongs in stage 2; with ResNet-18 (12-35 ms) the other way
    round. Decided from running means of the measured stage times."""

    RATE = 0.05  # EMA weight per frame

    def __init__(self) -> None:
        self.stage1 = 0.0  # decode + landmarks + fixed stage-1 work (flow cue), ms
        self.stage2 = 0.0  # classifier + spotting, ms
        self.align = 0.0
        self.frames = 0

    def align_in_stage1(self) -> bool:
        if self.frames < 10:  # not measured yet
            return True
        # The slower stage sets the frame rate: put the alignment where the slower one is
        # the faster.
        s1, s2, a = self.stage1, self.stage2, self.align
        return max(s1 + a, s2) <= max(s1, s2 + a)

    def update(self, decode_ms: float, t: dict[str, float], fixed_ms: float = 0.0) -> None:
        """`fixed_ms`: stage-1 work besides the face mesh that cannot move (flow cue)."""
        if "classifier" not in t:  # no face: nothing to learn about the classifier stage
            return
        a = 1.0 if self.frames == 0 else self.RATE
        self.frames += 1
        self.stage1 += a * (decode_ms + t.get("landmarks", 0.0) + fixed_ms - self.stage1)
        self.stage2 += a * (t.get("classifier", 0.0) + t.get("spotting", 0.0) - self.stage2)
        movable = t.get("align", 0.0) + t.get("flow", 0.0) - fixed_ms
        self.align += a * (movable - self.align)


def run_frames(
    rec: Recognizer, source: Iterable[Frame], pipelined: bool = True
) -> Iterator[tuple[Frame, object]]:
    """Yield (frame, FrameResult) for every frame of `source`, in order.

    Each frame's decode time is accounted to the recognizer's "decode" stage, its latency
    (capture or decode to result) to `rec.note_latency`, and the recognizer's clock starts
    before the first read, so `rec.summary().fps` is end to end.
    Exceptions raised while reading the source (e.g. `SourceError`) or in stage 1 are
    re-raised here, in the caller's thread, after the frames before them.
    """
    rec.start_clock()
    if not pipelined:
        for fr in source:
            rec.add_timing("decode", fr.decode_ms)
            r = rec.process(fr.image, fr.timestamp_ms)
            rec.note_latency(r, fr.t_read)
            yield fr, r
        return

    q: queue.Queue = queue.Queue(maxsize=QUEUE_DEPTH)
    stop = threading.Event()

    def put(item) -> bool:
        while not stop.is_set():
            try:
                q.put(item, timeout=0.05)
                return True
            except queue.Full:
                continue
        return False

    balance = _Balance()

    def stage1() -> None:
        try:
            for fr in source:
                if stop.is_set():
                    return
                prepared = rec.prepare(fr.image, align=balance.align_in_stage1(),
                                       timestamp_ms=fr.timestamp_ms)
                if not put((fr, prepared)):
                    return
        except BaseException as e:  # handed to the caller's thread
            put(_Failure(e))
            return
        put(_END)

    old_interval = sys.getswitchinterval()
    sys.setswitchinterval(min(old_interval, SWITCH_INTERVAL_S))
    worker = threading.Thread(target=stage1, name="moext-stage1", daemon=True)
    worker.start()
    try:
        while True:
            item = q.get()
            if item is _END:
                return
            if isinstance(item, _Failure):
                raise item.exc
            fr, prepared = item
            rec.add_timing("decode", fr.decode_ms)
            result = rec.process(fr.image, fr.timestamp_ms, prepared)
            rec.note_latency(result, fr.t_read)
            balance.update(fr.decode_ms, result.timings_ms, prepared.fixed_ms)
            yield fr, result
    finally:
        stop.set()
        while worker.is_alive():
            try:
                q.get(timeout=0.05)
            except queue.Empty:
                pass
        worker.join()
        sys.setswitchinterval(old_interval)
