"""Entry point of `moext-live`.

    moext-live --camera 0                       # window with box, label, motion curve
    moext-live --video clip.mp4 --headless --events out.jsonl --frames frames.csv
    moext-live --demo                           # shipped sample video + demo weights
    moext-live export --format onnx --checkpoint my.safetensors
"""

from __future__ import annotations

import os
import signal
import sys
import threading
import time
from enum import Enum
from pathlib import Path
from typing import Optional

import typer

from realtime.backends import backend_names, backends_help
from realtime.web_cli import Landmarks

app = typer.Typer(
    name="moext-live",
    help="Recognise micro-expressions live from a camera or a video file.",
    add_completion=False,
    pretty_exceptions_enable=False,
)

DEMO_VIDEO = Path(__file__).resolve().parent / "assets" / "demo.mp4"
WINDOW = "moext-live"
# The --backend choices come from the backend registry (realtime/backends.py), not a list here.
BackendName = Enum("BackendName", {n: n for n in backend_names()}, type=str)


class MicroCue(str, Enum):
    flow = "flow"
    landmarks = "landmarks"


class Precision(str, Enum):
    fp32 = "fp32"
    int8 = "int8"


class ExportFormat(str, Enum):
    onnx = "onnx"
    tensorrt = "tensorrt"


def _fail(msg: str, code: int = 2) -> None:
    typer.echo(f"moext-live: error: {msg}", err=True)
    raise typer.Exit(code)


def _info(msg: str) -> None:
    typer.echo(f"moext-live: {msg}", err=True)


@app.callback(invoke_without_command=True)
def main(
    ctx: typer.Context,
    camera: Optional[int] = typer.Option(None, "--camera", help="Camera index to read (0 = default)."),
    video: Optional[Path] = typer.Option(
        None, "--video",
        help="Video file to read (anything OpenCV reads), or a folder of frames as the ME "
             "datasets ship samples (CASME II sub01/EP02_01f/, SAMM, SMIC; natural name order)."),
    clip: bool = typer.Option(
        False, "--clip",
        help="The source is one dataset sample that starts at its onset: report exactly one "
             "event (first frame = onset, apex = the frame that moved most) instead of live "
             "spotting."),
    fps: Optional[float] = typer.Option(
        None, "--fps", min=1.0,
        help="Frame rate of a frame folder (default 30; CASME II and SAMM are 200, SMIC-HS 100)."),
    blendshapes: bool = typer.Option(
        False, "--blendshapes",
        help="Add MediaPipe's 52 raw blendshape scores (bs_<name>) to the --frames CSV, beside "
             "the action-unit columns (AU01_r ... AU45_r) it always has."),
    classify_every: int = typer.Option(
        1, "--classify-every", min=1,
        help="Run the classifier on every N-th frame only (spotting still sees every frame): "
             "for cameras faster than the classifier, e.g. a 200 fps research camera; see the "
             "README's speed section for the rates measured."),
    verbose: bool = typer.Option(
        False, "--verbose", help="Show the native libraries' log lines (TensorFlow Lite, absl)."),
    demo: bool = typer.Option(False, "--demo", help="Run on the shipped sample video with the demo weights."),
    checkpoint: Optional[Path] = typer.Option(
        None, "--checkpoint", help="Classifier checkpoint (.safetensors + .json); default: the demo weights."),
    backend: BackendName = typer.Option(
        BackendName.auto, "--backend", help=f"Inference backend ({backends_help()})."),
    headless: bool = typer.Option(False, "--headless", help="No window (also automatic without a display)."),
    events: Optional[Path] = typer.Option(None, "--events", help="Write events to FILE (.jsonl or .csv)."),
    frames: Optional[Path] = typer.Option(None, "--frames", help="Write one CSV row per frame to FILE."),
    max_frames: Optional[int] = typer.Option(None, "--max-frames", min=1, help="Stop after N frames."),
    threads: Optional[int] = typer.Option(None, "--threads", min=1, help="CPU threads for the backend."),
    precision: Precision = typer.Option(
        Precision.fp32, "--precision",
        help="onnx backend: fp32, or int8 (statically quantised features graph, calibrated "
             "once per checkpoint on the demo video's faces; faster for ResNet-18 on CPUs "
             "with VNNI, probabilities move: benchmarks/realtime.py measures both)."),
    landmarks: Landmarks = typer.Option(
        Landmarks.mesh, "--landmarks",
        help="mesh: MediaPipe's face mesh (478 points, refined eyes and lips); fast: its "
             "landmark model run directly with LiteRT (468 points, about half the per-frame cost, a "
             "little more jitter; see the README's benchmark)."),
    micro_cue: MicroCue = typer.Option(
        MicroCue.flow, "--micro-cue",
        help="What the micro-expression detector measures: flow (optical flow in the aligned "
             "face crop: finds the small movements that landmark jitter hides, ~1.5 ms a frame "
             "more) or landmarks (landmark displacement only, faster, misses more; see the "
             "README's spotting benchmark)."),
    heatmap: bool = typer.Option(
        False, "--heatmap",
        help="In the window, show where a MIACNet checkpoint's action branch responded for the "
             "last event (Grad-CAM on the onset/apex pair, inset top-right; computed once per "
             "event)."),
    pipeline: bool = typer.Option(
        True, "--pipeline/--no-pipeline",
        help="Run face mesh + alignment in a second thread, one frame ahead of the classifier "
             "(same results, higher fps on 2+ cores)."),
    sets: Optional[list[str]] = typer.Option(
        None, "--set", metavar="KEY=VALUE",
        help="Any recognizer or spotting setting (repeatable), e.g. --set spotting.return_frac=0.5 "
             "or --set buffer_ms=6000; checked against the setting's type and range before the "
             "run starts (`moext-live settings` lists them with their defaults)."),
) -> None:
    """Run the live recognizer on a camera, a video file, a frame folder, or the demo video."""
    if ctx.invoked_subcommand is not None:
        return
    if verbose:
        os.environ["MOEXT_VERBOSE"] = "1"
    if demo:
        if camera is not None or video is not None:
            _fail("--demo runs the shipped video; do not combine it with --camera or --video")
        if not DEMO_VIDEO.is_file():
            _fail(f"the demo video {DEMO_VIDEO} is missing from this install; use --video FILE")
        video = DEMO_VIDEO
    if camera is None and video is None:
        typer.echo(ctx.get_help())
        _fail("give a source: --camera N, --video PATH or --demo")
    if camera is not None and video is not None:
        _fail("give one source: --camera N or --video PATH, not both")
    if clip and camera is not None:
        _fail("--clip takes a recorded sample (--video FILE or a frame folder), not a camera")
    raise typer.Exit(run(camera, video, checkpoint, backend.value, headless, events, frames,
                         max_frames, threads, pipeline, precision.value, heatmap,
                         landmarks.value, micro_cue.value, clip=clip, fps=fps,
                         blendshapes=blendshapes, classify_every=classify_every, sets=sets or []))


def event_line(ev) -> str:
    """One terminal line per event: kind, both readings, times, amplitude, region, the
    action units that moved, and the classifier's probabilities."""
    probs = " ".join(f"{k}={v:.2f}" for k, v in ev.probabilities.items())
    facs = ev.facs_label or "unclear"
    if ev.facs_emotion:
        facs += f" ({ev.facs_emotion})"
    aus = ev.au_text() or "none measured"
    flags = "".join(f" [{f}]" for f, on in (("truncated", ev.truncated), ("head moving", ev.head_motion)) if on)
    return (f"event {ev.kind} {ev.label or '?'} (FACS: {facs}){flags}: onset {ev.onset_ms / 1000:.3f}s "
            f"apex {ev.apex_ms / 1000:.3f}s offset {ev.offset_ms / 1000:.3f}s amplitude "
            f"{ev.amplitude:.2f}% IOD region {ev.region}; AUs: {aus}; {probs}")


def run(camera, video, checkpoint, backend, headless, events_path, frames_path, max_frames,
        threads, pipeline: bool = True, precision: str = "fp32", heatmap: bool = False,
        landmarks: str = "mesh", micro_cue: str = "flow", clip: bool = False,
        fps: float | None = None, blendshapes: bool = False, classify_every: int = 1,
        sets: list[str] | None = None) -> int:
    """The loop behind `moext-live`; returns the exit code."""
    from realtime.backends import BackendUnavailable
    from realtime.events import EventWriter, FrameWriter
    from realtime.pipeline import run_frames
    from realtime.recognizer import Recognizer, RecognizerConfig, RecognizerError
    from realtime.sources import SourceError, open_source
    from realtime.spotting import SpottingConfig

    # Open the cheap things first so that a typo in a path or a setting fails before models load.
    config = RecognizerConfig(threads=threads, precision=precision, landmarks=landmarks,
                              classify_every=classify_every, spotting=SpottingConfig(transient_cue=micro_cue))
    if sets:
        from moext.settings import SettingError, apply_sets

        try:
            config = apply_sets(config, sets)
        except SettingError as e:
            _fail(str(e))
    if events_path and frames_path and Path(events_path).resolve() == Path(frames_path).resolve():
        _fail(f"--events and --frames both name {events_path}; give each its own file (their rows differ)")
    try:
        source = open_source(camera=camera, video=video, fps=fps)
    except SourceError as e:
        _fail(str(e))
    if fps is not None and not hasattr(source, "files"):
        _info("--fps applies to frame folders; a video file and a camera give their own times")
    elif hasattr(source, "files") and fps is None:
        _info(f"frame folder: {source.fps:g} fps assumed (--fps N to set it; CASME II and SAMM "
              "are 200, SMIC-HS 100)")
    try:
        if threads is None and not pipeline:
            # Without the pipeline the classifier has every core to itself (the ONNX
            # backend would otherwise pick one thread for a cheap graph, see backends.py).
            threads = os.cpu_count() or None
        if threads is not None and config.threads is None:
            from dataclasses import replace

            config = replace(config, threads=threads)
        rec = Recognizer.from_checkpoint(checkpoint, backend=backend, config=config)
    except (RecognizerError, BackendUnavailable) as e:
        source.close()
        _fail(str(e))
    _info(f"backend: {rec.backend_choice.name} ({rec.backend_choice.reason})")
    _info(f"source: {source.name}")
    heat = None
    if heatmap:
        from realtime.heatmap import HeatmapUnavailable, LiveHeatmap

        try:
            heat = LiveHeatmap(rec.checkpoint)
        except HeatmapUnavailable as e:
            source.close()
            rec.close()
            _fail(str(e))

    writers = []
    ev_w = fr_w = None
    try:
        flag, path = "--events", events_path
        ev_w = EventWriter(events_path, rec.class_names) if events_path else None
        flag, path = "--frames", frames_path
        fr_w = FrameWriter(frames_path, rec.class_names, rec.regions, blendshapes=blendshapes) \
            if frames_path else None
    except (ValueError, OSError) as e:
        source.close()
        rec.close()
        if ev_w is not None:
            ev_w.close()
        if isinstance(e, OSError):
            _fail(f"{flag} {path}: cannot write there ({e.strerror or e}); choose a path in a "
                  "folder you can write to")
        _fail(str(e))
    writers = [w for w in (ev_w, fr_w) if w is not None]
    if clip:
        return _run_clip(rec, source, ev_w, fr_w, writers)

    show = not headless
    if show:
        from realtime.overlay import display_available

        if not display_available():
            _info("no display found: running headless")
            show = False
    if heat is not None and not show:
        _info("--heatmap draws in the window; without one no heat maps are computed")
    overlay = None
    if show:
        import cv2

        from realtime.overlay import Overlay

        overlay = Overlay(rec.class_names, threshold=rec.spotter.cfg.enter_min, heatmap=heat,
                          buffer=rec.buffer)
        cv2.namedWindow(WINDOW, cv2.WINDOW_AUTOSIZE)

    stopped = "end of stream"
    frames_iter = run_frames(rec, source, pipelined=pipeline)
    signals = _StopOnSignal()
    try:
        for fr, r in frames_iter:
            if fr_w is not None:
                fr_w.write(r)
            for ev in r.events:
                if ev_w is not None:
                    ev_w.write(ev)
                typer.echo(event_line(ev))
            if ev_w is not None:
                for d in r.not_reported:
                    ev_w.write(d)
            if overlay is not None:
                import cv2

                cv2.imshow(WINDOW, overlay.draw(fr.image, r))
                key = cv2.waitKey(1) & 0xFF
                if key in (27, ord("q")):
                    stopped = "key pressed"
                    break
                if cv2.getWindowProperty(WINDOW, cv2.WND_PROP_VISIBLE) < 1:
                    stopped = "window closed"
                    break
            if max_frames and rec.frames >= max_frames:
                stopped = f"--max-frames {max_frames}"
                break
            if signals.received:
                stopped = f"interrupted ({signals.received})"
                break
    except KeyboardInterrupt:  # a second Ctrl-C: stop now, mid-frame
        stopped = "interrupted"
    except SourceError as e:
        stopped = str(e)
    else:
        missing = source.missing_frames() if hasattr(source, "missing_frames") else 0
        if stopped == "end of stream" and missing:
            stopped = (f"end of stream, {missing} of the {source.frame_count} frames the file "
                       "announces could not be read (a truncated or damaged file)")
    finally:
        signals.restore()
        frames_iter.close()  # stops and joins the stage-1 thread before anything is closed
        # A movement still in flight (end of file, Ctrl-C) is closed and reported, not lost.
        for ev in rec.finish():
            if ev_w is not None:
                ev_w.write(ev)
            typer.echo(event_line(ev))
        for d in rec.take_not_reported():
            if ev_w is not None:
                ev_w.write(d)
        for w in writers:
            w.close()
        rec.decode_failures = source.decode_failures
        rec.dropped = getattr(source, "dropped", 0)
        source.close()
        if overlay is not None:
            import cv2

            cv2.destroyAllWindows()
        summary = rec.summary()
        rec.close()
    typer.echo(f"stopped: {stopped}")
    typer.echo(summary.format())
    if ev_w is not None:
        typer.echo(f"events written: {ev_w.path} ({ev_w.count} events, {ev_w.dropped_count} "
                   "dropped movements with the rule that dropped each)")
    if fr_w is not None:
        typer.echo(f"frames written: {fr_w.path} ({fr_w.count} rows)")
    # A run cut short by Ctrl-C or SIGTERM is not a finished one: 128 + the signal (130, 143),
    # as shells report it, so that a script can tell the two apart. Its files are complete.
    if stopped.startswith("interrupted"):
        return 128 + (signal.SIGTERM if "SIGTERM" in stopped else signal.SIGINT)
    return 0


def _run_clip(rec, source, ev_w, fr_w, writers) -> int:
    """`--clip`: one event for the whole sample."""
    from realtime.clip import ClipError, recognize_clip

    if fr_w is not None:
        _info("--frames is written by live spotting; --clip reports the one event only")
    try:
        ev, n = recognize_clip(rec, source)
    except ClipError as e:
        _fail(str(e))
    finally:
        source.close()
        rec.close()
    if ev_w is not None:
        ev_w.write(ev)
    typer.echo(event_line(ev))
    typer.echo(f"clip: {n} frames; onset frame {ev.onset_index}, apex frame {ev.apex_index}, "
               f"offset frame {ev.offset_index}")
    for w in writers:
        w.close()
    if ev_w is not None:
        typer.echo(f"events written: {ev_w.path} ({ev_w.count} rows)")
    return 0


class _StopOnSignal:
    """Ctrl-C (SIGINT) or SIGTERM ends the run after the frame in hand, so that every frame
    the summary counts is also in the --frames and --events files; a second Ctrl-C stops
    at once. Installed only in the main thread (where Python delivers signals)."""

    def __init__(self) -> None:
        self.received: str | None = None
        self._old: dict = {}
        if threading.current_thread() is not threading.main_thread():
            return
        for sig in (signal.SIGINT, signal.SIGTERM):
            self._old[sig] = signal.signal(sig, self._handle)

    def _handle(self, signum, frame) -> None:
        if self.received and signum == signal.SIGINT:
            raise KeyboardInterrupt
        self.received = signal.Signals(signum).name

    def restore(self) -> None:
        for sig, old in self._old.items():
            signal.signal(sig, old)
        self._old = {}


@app.command("settings")
def settings_cmd() -> None:
    """List every setting `--set KEY=VALUE` takes, with its default (docs: SpottingConfig and
    RecognizerConfig in realtime/)."""
    from moext.settings import setting_names
    from realtime.recognizer import RecognizerConfig

    cfg = RecognizerConfig()
    for key in setting_names(RecognizerConfig):
        value = cfg
        for part in key.split("."):
            value = getattr(value, part)
        typer.echo(f"{key} = {value!r}")


@app.command("export")
def export_cmd(
    format: ExportFormat = typer.Option(ExportFormat.onnx, "--format", help="onnx or tensorrt."),
    checkpoint: Optional[Path] = typer.Option(
        None, "--checkpoint", help="Classifier checkpoint; default: the demo weights."),
    out: Optional[Path] = typer.Option(
        None, "--out", help="Folder to write into; default: the cache the recognizer reads."),
    precision: Precision = typer.Option(
        Precision.fp32, "--precision",
        help="onnx: also write the int8 features graph (features.int8.onnx)."),
    calibration: Optional[Path] = typer.Option(
        None, "--calibration",
        help="int8: video whose faces calibrate the quantisation (default: the demo video; "
             "a recording of your own camera and faces fits best)."),
) -> None:
    """Export a classifier for ONNX Runtime or TensorRT (features + head, see docs)."""
    from moext.checkpoint import CheckpointError, load_checkpoint
    from realtime import export as ex
    from realtime.recognizer import DEMO_WEIGHTS

    ck = checkpoint or DEMO_WEIGHTS
    try:
        model, meta = load_checkpoint(ck)
    except CheckpointError as e:
        _fail(str(e))
    if not hasattr(model, "forward_head"):
        _fail(f"checkpoint {ck} holds a {meta['kind']!r} model, not a classifier")
    if precision == Precision.int8 and not getattr(type(model.cfg), "uses_images", True):
        _fail(f"--precision int8 quantises the frames' backbone, and {ck} ({meta['kind']}) reads only the optical "
              "flow; export it in fp32")
    t0 = time.perf_counter()
    try:
        if format == ExportFormat.onnx:
            paths = ex.export_onnx(model, out) if out else ex.cached_onnx(ck, model)
            if precision == Precision.int8:
                q = paths[0].with_name("features.int8.onnx")
                inputs = ex.calibration_inputs(model.cfg.image_size, calibration)
                paths = (ex.quantize_features(paths[0], q, inputs), paths[1])
        else:
            if precision == Precision.int8:
                _fail("--precision int8 is for --format onnx; TensorRT engines are fp16")
            paths = ex.export_tensorrt(model, out) if out else ex.cached_tensorrt(ck, model)
    except (ex.TensorRTUnavailable, ValueError) as e:
        _fail(str(e))
    for p in paths:
        typer.echo(str(p))
    _info(f"exported {format.value} in {time.perf_counter() - t0:.1f}s")


# The browser demo (realtime/web.py, Gradio) registers its command from a light module so
# that `moext-live --video ...` never imports Gradio.
from realtime.web_cli import web_command  # noqa: E402

app.command("web")(web_command)


if __name__ == "__main__":
    sys.exit(app())
