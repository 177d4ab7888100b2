"""The preprocess cache's manifest: `CACHE/manifest.jsonl`, one JSON object per sample.

Fields (docs/ARCHITECTURE.md): dataset, subject, sample, emotion, kind, onset_index,
apex_index, offset_index, onset, apex (crop PNG paths relative to CACHE), frames (further
crop paths), source (absolute source frame paths: onset, apex, then frames), warnings,
status (ok|skipped), reason. Extra: frame_indices (frame numbers of `frames`), aus.

Rows are appended one whole line at a time (write + fsync), after the sample's crops are in
place, so a killed run leaves at most one torn last line; readers ignore it and the next
preprocess run rewrites the file without it.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from moext.io import atomic_write_text

MANIFEST = "manifest.jsonl"
PATH_FIELDS = ("onset", "apex")


class ManifestError(ValueError):
    """A cache whose manifest is missing, empty or corrupt; the message says what to run."""


def _parse(path: Path) -> tuple[list[dict[str, Any]], bool]:
    """(rows, torn): a final line without newline that does not parse is a torn write."""
    text = path.read_text(encoding="utf-8")
    lines = text.split("\n")
    rows, torn = [], False
    for i, line in enumerate(lines):
        if not line.strip():
            continue
        try:
            rows.append(json.loads(line))
        except json.JSONDecodeError as e:
            if i == len(lines) - 1:  # no trailing newline: the write was cut off
                torn = True
                continue
            raise ManifestError(f"{path} line {i + 1} is not JSON ({e}); delete the cache and re-run preprocess") from None
    return rows, torn


def load_rows(cache_dir: str | Path) -> list[dict[str, Any]]:
    """All rows (ok and skipped) as written, paths relative; [] when there is no manifest."""
    path = Path(cache_dir) / MANIFEST
    if not path.is_file():
        return []
    return _parse(path)[0]


def read_manifest(cache_dir: str | Path) -> list[dict[str, Any]]:
    """The ok rows of `cache_dir`'s manifest with crop paths made absolute.

    Raises:
        ManifestError: no manifest, or a manifest without any rows.
    """
    cache = Path(cache_dir)
    path = cache / MANIFEST
    if not path.is_file():
        raise ManifestError(
            f"no {MANIFEST} in {cache}; run `moext-train preprocess DATASET ROOT --out {cache}` first"
        )
    rows, _ = _parse(path)
    if not rows:
        raise ManifestError(
            f"{path} is empty; run `moext-train preprocess DATASET ROOT --out {cache}` (again) to fill it"
        )
    root = cache.resolve()
    out = []
    for r in rows:
        if r.get("status") != "ok":
            continue
        r = dict(r)
        for k in PATH_FIELDS:
            r[k] = str(root / r[k])
        r["frames"] = [str(root / f) for f in r.get("frames") or []]
        out.append(r)
    return out


def append_row(cache_dir: str | Path, row: dict[str, Any]) -> None:
    """Append one row as a single line, flushed to disk before returning."""
    line = json.dumps(row, ensure_ascii=False) + "\n"
    with open(Path(cache_dir) / MANIFEST, "a", encoding="utf-8") as fh:
        fh.write(line)
        fh.flush()
        os.fsync(fh.fileno())


def rewrite_rows(cache_dir: str | Path, rows: list[dict[str, Any]]) -> None:
    """Replace the manifest atomically (temp file + os.replace)."""
    text = "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows)
    atomic_write_text(Path(cache_dir) / MANIFEST, text)
