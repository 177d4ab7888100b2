"""Where preprocessing and training keep a sample's onset -> apex flow field on disk.

Preprocessing writes the file beside the crops (`train.datasets.cache`); training reads it, or
computes and writes it for a cache made before flow existed (`train.pairs.FlowStore`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from moext.flow import FlowConfig
from moext.io import atomic_write_bytes


def flow_file(row: dict[str, Any], cfg: FlowConfig) -> Path:
    """Where a row's onset -> apex flow field is cached: beside its onset crop, named by
    both crops (caches may keep several samples' crops in one folder)."""
    onset, apex = Path(row["onset"]), Path(row["apex"])
    return onset.with_name(f"{onset.stem}-{apex.stem}.flow_{cfg.preset}_{cfg.size}.npy")


def write_flow(path: Path, uv: np.ndarray) -> None:
    """Save a flow field atomically; a read-only cache only loses the disk copy."""
    import io

    buf = io.BytesIO()
    np.save(buf, uv.astype(np.float32))
    try:
        atomic_write_bytes(path, buf.getvalue(), fsync=False)
    except OSError:
        pass
