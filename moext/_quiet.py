"""Silence the native libraries' start-up chatter (TensorFlow Lite, absl, MediaPipe).

MediaPipe and LiteRT print lines such as "Created TensorFlow Lite XNNPACK delegate",
"All log messages before absl::InitializeLog()" or "Feedback manager requires a model with
a single signature" from C++ straight to file descriptor 2, where Python's logging cannot
reach them. `quiet_native_logs()` points descriptor 2 at /dev/null while a model is built
or first run, and only then. `MOEXT_VERBOSE=1` (the CLIs' `--verbose`) keeps them.
"""

from __future__ import annotations

import contextlib
import os
import sys


def verbose() -> bool:
    return os.environ.get("MOEXT_VERBOSE", "") not in ("", "0")


@contextlib.contextmanager
def quiet_native_logs():
    """Descriptor 2 to /dev/null for the duration (a no-op with MOEXT_VERBOSE=1)."""
    if verbose():
        yield
        return
    os.environ.setdefault("GLOG_minloglevel", "2")
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    try:
        sys.stderr.flush()
        saved = os.dup(2)
    except (OSError, ValueError):  # no usable descriptor 2 (embedded interpreters)
        yield
        return
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, 2)
        yield
    finally:
        try:
            sys.stderr.flush()
        except (OSError, ValueError):
            pass
        os.dup2(saved, 2)
        os.close(saved)
        os.close(devnull)
