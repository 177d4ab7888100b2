"""Atomic file writes: a reader (or a killed run) never sees half a file.

Every output of the project goes through here: the bytes are written to a temporary file
beside the target and moved over it with `os.replace` (atomic on POSIX and Windows within
one file system). The final file follows the process umask like any file `open()` creates
(0644 under the usual umask 022), whatever created the temporary file: safetensors writes
0600 files of its own, `tempfile.mkstemp` too, and a checkpoint a shared group cannot read
is a bug, not a security feature.
"""

from __future__ import annotations

import os
import secrets
from pathlib import Path
from typing import Callable

__all__ = ["atomic_save", "atomic_write_bytes", "atomic_write_text", "temp_path_for", "umask"]


def umask() -> int:
    """The process umask, read without changing it where the OS allows (Linux /proc)."""
    try:
        with open("/proc/self/status", encoding="ascii") as fh:
            for line in fh:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    mask = os.umask(0o022)  # elsewhere: the only portable way to read it is to set it
    os.umask(mask)
    return mask


def temp_path_for(path: str | Path) -> Path:
    """A fresh hidden temporary name beside `path` that keeps its suffix (some writers, e.g.
    OpenCV's VideoWriter or openpyxl, pick the format from it): `.NAME.tmp<pid>-<token>SUFFIX`.
    Files matching `.*.tmp*` are a killed writer's leftovers and safe to delete."""
    p = Path(path)
    return p.with_name(f".{p.stem}.tmp{os.getpid()}-{secrets.token_hex(3)}{p.suffix}")


def _finish(tmp: Path, path: Path, fsync: bool) -> None:
    os.chmod(tmp, 0o666 & ~umask())
    if fsync:
        fd = os.open(tmp, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
    os.replace(tmp, path)


def atomic_save(path: str | Path, writer: Callable[[Path], object], *, fsync: bool = True) -> Path:
    """Let `writer(tmp_path)` write the file (e.g. `torch.save`, safetensors' `save_file`,
    `Workbook.save`, a video writer), then move it onto `path` with the umask's mode.

    Args:
        fsync: flush the file to disk before the move (a checkpoint must survive a power cut;
            bulk generated frames can skip it).

    Returns:
        `path`. On any error the temporary file is removed and the error re-raised; an
        existing `path` is left as it was.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = temp_path_for(path)
    try:
        writer(tmp)
        _finish(tmp, path, fsync)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return path


def atomic_write_bytes(path: str | Path, data: bytes, *, fsync: bool = True) -> Path:
    """Write `data` to `path` atomically (see `atomic_save`)."""

    def write(tmp: Path) -> None:
        with open(tmp, "wb") as fh:
            fh.write(data)

    return atomic_save(path, write, fsync=fsync)


def atomic_write_text(path: str | Path, text: str, *, encoding: str = "utf-8", fsync: bool = True) -> Path:
    """Write `text` to `path` atomically (see `atomic_save`)."""
    return atomic_write_bytes(path, text.encode(encoding), fsync=fsync)
