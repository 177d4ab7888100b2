"""The shipped MediaPipe face landmarker (`.task` archive) and its member files.

The face tracker (`moext.face`) runs the whole archive; the blendshape model
(`moext.blendshapes`) and the fast tracker read single members. Nothing is downloaded at
run time.
"""

from __future__ import annotations

import zipfile
from functools import lru_cache
from pathlib import Path

# MediaPipe's face landmarker v2 with blendshapes (Apache-2.0; provenance and licence in
# moext/assets/README.md). Shipped inside the package: nothing is downloaded at run time.
TASK_MODEL = Path(__file__).resolve().parent / "assets" / "face_landmarker_v2_with_blendshapes.task"


@lru_cache(maxsize=None)
def task_member(name: str) -> bytes:
    """One model file from the shipped `.task` archive, read into memory."""
    if not TASK_MODEL.is_file():
        raise FileNotFoundError(
            f"the face model {TASK_MODEL} is missing; reinstall moext (pip install -e .)"
        )
    with zipfile.ZipFile(TASK_MODEL) as z:
        return z.read(name)


@lru_cache(maxsize=1)
def task_member_all() -> bytes:
    """The whole shipped `.task` archive (what `FaceLandmarker` takes as its model)."""
    if not TASK_MODEL.is_file():
        raise FileNotFoundError(
            f"the face model {TASK_MODEL} is missing; reinstall moext (pip install -e .)"
        )
    return TASK_MODEL.read_bytes()
