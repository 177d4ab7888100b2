"""`moext-live web`: the browser demo's command line (kept light: Gradio loads on use).

`realtime/cli.py` registers it with `app.command("web")(web_command)`;
`python -m realtime.web_cli` runs the same command.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Optional

import typer

from enum import Enum

from realtime.backends import backend_names, backends_help

BackendName = Enum("BackendName", {n: n for n in backend_names()}, type=str)


class Landmarks(str, Enum):
    mesh = "mesh"
    fast = "fast"


def web_command(
    checkpoint: Optional[Path] = typer.Option(
        None, "--checkpoint", help="Classifier checkpoint (.safetensors + .json); default: the demo weights."),
    backend: BackendName = typer.Option(BackendName.auto, "--backend",
                                        help=f"Inference backend ({backends_help()})."),
    host: str = typer.Option("127.0.0.1", "--host", help="Address to serve on; 127.0.0.1 keeps the demo on this machine."),
    port: int = typer.Option(7860, "--port", min=1, max=65535, help="Port to serve on."),
    share: bool = typer.Option(False, "--share", help="Also publish a public Gradio share link (off unless asked)."),
    concurrency: int = typer.Option(2, "--concurrency", min=1, help="Webcam streams + video analyses running at once, all users together."),
    time_limit: int = typer.Option(300, "--time-limit", min=10, help="Seconds of processing one webcam stream may use before it stops."),
    max_file_size: str = typer.Option("100mb", "--max-file-size", help="Largest video upload, e.g. 100mb."),
    max_video_seconds: float = typer.Option(300.0, "--max-video-seconds", min=1.0, help="Longest video the Video tab analyses."),
    stream_every: float = typer.Option(0.033, "--stream-every", min=0.01, help="Seconds between webcam frames the browser sends."),
    threads: int = typer.Option(1, "--threads", min=1, help="CPU threads per recognizer (sessions already run in parallel)."),
    landmarks: Landmarks = typer.Option(
        Landmarks.mesh, "--landmarks",
        help="mesh: MediaPipe's face mesh (478 points); fast: its landmark model run directly with "
             "LiteRT (about half the per-frame cost, so fewer webcam frames are dropped on a slow CPU)."),
    sets: Optional[list[str]] = typer.Option(
        None, "--set", metavar="KEY=VALUE",
        help="Any recognizer or spotting setting, as moext-live --set (`moext-live settings` lists them)."),
) -> None:
    """Serve the browser demo (live webcam + video upload) on HOST:PORT."""
    from realtime.backends import BackendUnavailable
    from realtime.recognizer import RecognizerConfig, RecognizerError
    from realtime.web import WebConfig, serve

    if not re.fullmatch(r"\s*\d+\s*(b|kb|mb|gb|tb)?\s*", max_file_size, re.I):
        typer.echo(f"moext-live: error: --max-file-size {max_file_size!r} is not a size; write e.g. 100mb or 2gb",
                   err=True)
        raise typer.Exit(2)

    if share:
        typer.echo("moext-live: --share publishes this server through a public Gradio link; "
                   "anyone with the link can send it video.", err=True)
    if not _loopback(host):
        typer.echo(f"moext-live: warning: --host {host} serves the demo to the network: anyone who "
                   "can reach this machine can open the page, and the faces it analyses are biometric "
                   "data; use 127.0.0.1 unless that is what you want", err=True)
    recognizer = RecognizerConfig(threads=threads, landmarks=landmarks.value)
    if sets:
        from moext.settings import SettingError, apply_sets

        try:
            recognizer = apply_sets(recognizer, sets)
        except SettingError as e:
            typer.echo(f"moext-live: error: {e}", err=True)
            raise typer.Exit(2) from None
    cfg = WebConfig(checkpoint=checkpoint, backend=backend.value, concurrency_limit=concurrency,
                    time_limit=time_limit, max_file_size=max_file_size,
                    max_video_seconds=max_video_seconds, stream_every=stream_every,
                    recognizer=recognizer)
    try:
        serve(cfg, host, port, share)
    except (RecognizerError, BackendUnavailable) as e:  # bad checkpoint, backend not usable here
        typer.echo(f"moext-live: error: {e}", err=True)
        raise typer.Exit(2) from None
    except OSError as e:  # port taken, host not an address of this machine
        typer.echo(f"moext-live: error: cannot serve on {host}:{port} ({e}); choose another --port or --host", err=True)
        raise typer.Exit(2) from None


def _loopback(host: str) -> bool:
    import ipaddress

    if host in ("localhost", ""):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:  # a host name: only "localhost" is known to stay on this machine
        return False


if __name__ == "__main__":
    typer.run(web_command)
