"""Browser demo (Gradio): live webcam and uploaded videos through the live recognizer.

The web layer only moves frames and draws results: every frame goes to
`realtime.recognizer.Recognizer.process`, the same aligner, spotter and backend as
`moext-live` on a camera.

- **Live tab**: the browser's webcam is streamed with Gradio's streaming image input
  (`gr.Image(sources=["webcam"], streaming=True).stream(...)`). Gradio's stream route keeps
  only the newest frame while the handler is busy, so a slow CPU drops frames instead of
  building up latency. Each browser session has its own `LiveSession` (a `gr.State`): its
  own recognizer, rolling buffer, events and files; two tabs never share one.
- **Video tab**: an uploaded video is read with `realtime.sources.VideoSource` (the file's
  own timestamps, as `moext-live --video`), with a progress bar; events table, motion curve,
  events CSV and the per-frame CSV of `realtime.events.FrameWriter`.

Limits (`WebConfig`): streams and video jobs share one concurrency limit; each stream runs
at most `time_limit` seconds of processing before it stops (press record again to go on);
uploads above `max_file_size` are refused by Gradio before they reach the server's disk, and
videos longer than `max_video_seconds` are refused with a message.

Faces are biometric data, so nothing outlives the session unless the user downloads it:
- webcam frames arrive in the request body and live only in memory (the recognizer's
  rolling buffer of a few seconds); no output is a `gr.Image`, which would write a PNG to
  Gradio's cache per frame: the curve and the face thumbnails are inline `data:` URIs;
- the CSVs a session can download are written in a per-session folder inside Gradio's
  cache (so Gradio serves them without copying); that folder, the session's uploaded videos
  and its recognizer are deleted when the tab is closed (`Blocks.unload`);
- `serve` points Gradio's cache (`GRADIO_TEMP_DIR`) at a fresh private temporary folder,
  sets `delete_cache` so that any file older than `WebConfig.cache_max_age_s` is removed
  even if a session never signs off, and deletes the whole folder when the server stops.
"""

from __future__ import annotations

import logging
import math
import os
import shutil
import signal
import tempfile
import time
from pathlib import Path
from typing import Any, Callable

import cv2
import gradio as gr
import numpy as np

from realtime.events import Event, FrameWriter
from realtime.pipeline import run_frames
from realtime.recognizer import Recognizer
from realtime.web_draw import thumbnails_html, video_figure
from realtime.web_session import (  # noqa: F401 - EVENT_COLUMNS, WebConfig: this module's API too
    EVENT_COLUMNS,
    LiveSession,
    SessionEnded,
    SessionFiles,
    WebConfig,
    _entry_threshold,
    _events_frame,
    _mark,
    _write_events_csv,
)

log = logging.getLogger("moext.web")

class WebApp:
    """Builds the Gradio Blocks; one instance serves every browser session."""

    def __init__(self, cfg: WebConfig, recognizer_factory: Callable[[], Recognizer] | None = None,
                 files_root: Path | None = None, clock: Callable[[], float] = time.monotonic):
        self.cfg = cfg
        self.clock = clock  # arrival clock of webcam frames (tests step it by hand)
        self.make_recognizer = recognizer_factory or (
            lambda: Recognizer.from_checkpoint(cfg.checkpoint, cfg.backend, cfg.recognizer)
        )
        if files_root is None:
            from gradio.utils import get_upload_folder

            files_root = Path(get_upload_folder()) / "moext-sessions"
        self.files = SessionFiles(files_root)

    # -- live ------------------------------------------------------------------------

    def live_frame(self, frame_rgb: np.ndarray | None, session: LiveSession | None, request: Any):
        sid = getattr(request, "session_hash", None) or "anonymous"
        if session is None or session.closed:  # first frame, after a reset, or after the tab closed
            try:
                folder = self.files.folder(sid)
            except SessionEnded:  # a frame still in the queue when the tab closed: make nothing
                return (gr.skip(),) * 6 + (None,)
            session = LiveSession(self.make_recognizer(), folder, self.cfg, self.clock)
            if not self.files.add_live(sid, session):  # the tab closed while it was being built
                return (gr.skip(),) * 6 + (None,)
        if frame_rgb is None:
            return (gr.skip(),) * 6 + (session,)
        try:
            # Gradio's webcam mirrors the picture it sends (as it mirrors the preview; seen
            # in gradio 6.31): flip back so the recognizer sees what the camera saw.
            frame_bgr = cv2.flip(cv2.cvtColor(frame_rgb, cv2.COLOR_RGB2BGR), 1)
            out = session.step(frame_bgr)
        except Exception as e:  # a bad frame is skipped and counted, never fatal to the stream
            session.skipped += 1
            log.exception("webcam frame skipped")
            return (gr.skip(), f"frame skipped ({type(e).__name__}: {e})") + (gr.skip(),) * 4 + (session,)
        r = out["result"]
        # Every frame is recognised, but the page is redrawn at most every `ui_every` s (and
        # at once for a new event): redrawing the label, curve and text costs the browser
        # more than the stream itself, and on a small CPU it would slow the frames sent.
        if not out["new_events"] and session.clock() - session.last_ui < self.cfg.ui_every:
            return (gr.skip(),) * 6 + (session,)
        session.last_ui = session.clock()
        if not r.face_found:
            label: Any = "no face"
        elif r.probabilities:
            label = r.probabilities
        else:
            label = "face found, hold still"
        status = (f"**{'no face' if not r.face_found else r.state}** · {session.fps:.1f} fps · "
                  f"frame {session.frames} · dropped {session.dropped} · no face in {session.no_face} · "
                  f"events {len(session.events)}")
        if out["new_events"]:
            table, csv_out = _events_frame(session.events), str(session.csv_path)
            thumbs = session.thumbs
        else:
            table = csv_out = thumbs = gr.skip()
        return label, status, session.curve(), thumbs, table, csv_out, session

    def reset_live(self, session: LiveSession | None, request: Any):
        sid = getattr(request, "session_hash", None) or "anonymous"
        if session is not None:
            session.close()
            if session.csv_path is not None:
                session.csv_path.unlink(missing_ok=True)
        self.files.live.pop(sid, None)
        return (None, "reset: a new recognizer starts with the next frame", "",
                thumbnails_html(None, None, "no event yet"),
                _events_frame([]), None, None)

    # -- video -----------------------------------------------------------------------

    def analyse_video(self, path: str | None, request: Any, progress: Any = None):
        from realtime.sources import SourceError, VideoSource

        sid = getattr(request, "session_hash", None) or "anonymous"
        if not path:
            raise _refused("Upload a video first (mp4, webm, avi, mov ...).")
        self.files.track(sid, path)
        try:
            src = VideoSource(path)
        except SourceError as e:
            if "still image" in str(e):
                raise _refused(str(e)) from None
            raise _refused(f"{Path(path).name}: {str(e).split(';')[-1].strip() or e}") from None
        n = src.frame_count
        seconds = n / src.fps if n else 0.0
        if seconds > self.cfg.max_video_seconds:
            src.close()
            raise _refused(f"This video is {seconds:.0f} s long; this server analyses videos up to "
                           f"{self.cfg.max_video_seconds:.0f} s. Cut it shorter and upload again.")
        folder = self.files.folder(sid)
        tag = f"{int(time.time() * 1000) % 10**9:09d}"
        rec = self.make_recognizer()
        frames_csv = folder / f"video-frames-{tag}.csv"
        fw = FrameWriter(frames_csv, rec.class_names, rec.regions)
        events: list[Event] = []
        t_s: list[float] = []
        motion: list[float] = []
        try:
            with src:
                # The same loop as moext-live --video (two-stage pipeline, same results).
                for fr, r in run_frames(rec, src):
                    fw.write(r)
                    events.extend(r.events)
                    t_s.append(fr.timestamp_ms / 1e3)
                    motion.append(r.motion if r.motion is not None else math.nan)
                    if progress is not None and (fr.index % 5 == 0 or fr.index + 1 == n):
                        progress((fr.index + 1, max(n, fr.index + 1)), desc="analysing frames", unit="frames")
                events.extend(rec.finish())  # a movement still going when the file ends
            threshold = _entry_threshold(rec)
            summary = rec.summary()
        finally:
            fw.close()
            rec.close()
        events_csv = _write_events_csv(folder / f"video-events-{tag}.csv", events, rec.class_names)
        fig = video_figure(t_s, motion, [_mark(e) for e in events], threshold)
        faces = summary.faces_found
        text = (f"**{len(events)} event{'' if len(events) == 1 else 's'}** ({summary.micro} micro, {summary.macro} macro) in "
                f"{summary.frames} frames ({seconds:.1f} s); face found in {faces} frames"
                + (" — **no face** was found in this video" if faces == 0 else "")
                + f"; {summary.fps:.1f} frames/s analysed with backend {summary.backend}.")
        return text, _events_frame(events), fig, str(events_csv), str(frames_csv)

    # -- session end -----------------------------------------------------------------

    def end_session(self, request: Any) -> None:
        sid = getattr(request, "session_hash", None)
        if sid:
            self.files.end(sid)

    # -- layout ----------------------------------------------------------------------

    def build(self) -> gr.Blocks:
        cfg = self.cfg

        # Type annotations let Gradio inject the request (session id) into the handlers.
        def live_frame(frame, session, request: gr.Request):
            return self.live_frame(frame, session, request)

        def reset_live(session, request: gr.Request):
            return self.reset_live(session, request)

        def analyse_video(path, request: gr.Request, progress=gr.Progress()):
            return self.analyse_video(path, request, progress)

        def end_session(request: gr.Request):
            self.end_session(request)

        with gr.Blocks(title="moext — live micro-expression recognition",
                       delete_cache=(60, cfg.cache_max_age_s), analytics_enabled=False) as demo:
            gr.Markdown(
                "# moext — micro-expression recognition\n"
                "Frames are analysed on this server and kept in memory only for the session; "
                "nothing is stored after you close the tab unless you download it."
            )
            with gr.Tab("Live", id="live"):
                session = gr.State(None)
                with gr.Row():
                    with gr.Column(scale=1):
                        cam = gr.Image(sources=["webcam"], streaming=True, type="numpy", label="Webcam",
                                       elem_id="moext-webcam", height=360)
                        reset = gr.Button("Reset session", elem_id="moext-reset", size="sm")
                    with gr.Column(scale=1):
                        label = gr.Label(label="This frame vs. the onset reference (meaningful during a movement)",
                                         elem_id="moext-label")
                        status = gr.Markdown("press record to start", elem_id="moext-status")
                        thumbs = gr.HTML(thumbnails_html(None, None, "no event yet"), label="Last event")
                curve = gr.HTML(label="Motion", elem_id="moext-curve")
                table = gr.Dataframe(_events_frame([]), label="Events", elem_id="moext-events",
                                     interactive=False, wrap=True)
                csv = gr.DownloadButton("Download events (CSV)", elem_id="moext-events-csv")
                cam.stream(
                    live_frame, [cam, session], [label, status, curve, thumbs, table, csv, session],
                    stream_every=cfg.stream_every, time_limit=cfg.time_limit,
                    concurrency_limit=cfg.concurrency_limit, concurrency_id="recognizer",
                    show_progress="hidden",
                )
                reset.click(reset_live, [session], [label, status, curve, thumbs, table, csv, session])
            with gr.Tab("Video", id="video"):
                with gr.Row():
                    with gr.Column(scale=1):
                        video = gr.Video(sources=["upload"], elem_id="moext-video",
                                         label=f"Video (up to {cfg.max_file_size}, "
                                               f"{cfg.max_video_seconds:.0f} s)")
                        go = gr.Button("Analyse", variant="primary", elem_id="moext-analyse")
                    with gr.Column(scale=1):
                        vsummary = gr.Markdown(elem_id="moext-video-summary")
                        vcsv = gr.DownloadButton("Download events (CSV)", elem_id="moext-video-events-csv")
                        fcsv = gr.DownloadButton("Download per-frame CSV", elem_id="moext-video-frames-csv")
                vplot = gr.Plot(label="Motion", elem_id="moext-video-curve")
                vtable = gr.Dataframe(_events_frame([]), label="Events", elem_id="moext-video-events",
                                      interactive=False, wrap=True)
                go.click(analyse_video, [video], [vsummary, vtable, vplot, vcsv, fcsv],
                         concurrency_limit=cfg.concurrency_limit, concurrency_id="recognizer")
            demo.unload(end_session)
        demo.queue(max_size=cfg.queue_size)
        return demo


def serve(cfg: WebConfig, host: str = "127.0.0.1", port: int = 7860, share: bool = False) -> None:
    """Check the checkpoint, then serve the demo until interrupted (Ctrl-C)."""
    # Load once before serving: a bad checkpoint or backend fails here with its message,
    # not in the first visitor's browser; it also exports/caches the ONNX files once.
    Recognizer.from_checkpoint(cfg.checkpoint, cfg.backend, cfg.recognizer).close()
    own_cache = "GRADIO_TEMP_DIR" not in os.environ
    cache = Path(tempfile.mkdtemp(prefix="moext-web-")) if own_cache else Path(os.environ["GRADIO_TEMP_DIR"])
    if own_cache:
        os.environ["GRADIO_TEMP_DIR"] = str(cache)  # read by Gradio when the Blocks are built
    # `kill` (SIGTERM) must clean up like Ctrl-C: Gradio's shutdown deletes its cache files.
    signal.signal(signal.SIGTERM, _interrupt)
    # No usage statistics leave the machine (Gradio sends them unless told not to).
    os.environ["GRADIO_ANALYTICS_ENABLED"] = "False"
    try:
        demo = WebApp(cfg).build()
        # quiet: Gradio's own banner tells people to "set share=True in launch()", which
        # they cannot do from the command line; ours names the flag.
        demo.launch(server_name=host, server_port=port, share=share, max_file_size=cfg.max_file_size,
                    show_error=True, quiet=True, prevent_thread_lock=True)
        print(f"moext-live web: serving on {demo.local_url}"
              + (f" and {demo.share_url}" if share and getattr(demo, "share_url", None) else "")
              + ("" if share else " (moext-live web --share also publishes a public link)")
              + "; Ctrl-C stops it", flush=True)
        demo.block_thread()
    finally:
        if own_cache:
            shutil.rmtree(cache, ignore_errors=True)


def _refused(message: str) -> Exception:
    """A message for the user about their input: shown in the page, not logged as a server
    traceback (Gradio prints one for every `gr.Error` unless told not to)."""
    return gr.Error(message, print_exception=False)


def _interrupt(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt
