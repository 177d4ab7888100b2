"""Inference backends for the classifier's two seam parts: `features` and `head`.

Every backend takes and returns NumPy float32 arrays, so the recognizer does not care which
one runs:

- `features(x)`: x (B, 3, S, S) float32 (RGB, ImageNet-normalised, from
  `moext.preprocess`) -> features (B, D...) float32, one backbone pass per frame.
- `head(f_o, f_a)`: onset and current features -> logits (B, num_classes) float32.

`tensorrt` (torch-tensorrt, fp16, CUDA), `onnx` (ONNX Runtime on CPU), `torch` (eager).
`select_backend("auto")` picks TensorRT where CUDA and torch-tensorrt are present, else
ONNX Runtime, and says why.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from realtime.export import (
    TensorRTUnavailable,
    cached_onnx,
    cached_tensorrt,
    import_torch_tensorrt,
)

BACKENDS = ("auto", "tensorrt", "onnx", "torch")


class BackendUnavailable(RuntimeError):
    """The chosen backend cannot run here; the message says what to install or choose."""


class TorchBackend:
    """Eager PyTorch, on CPU unless a device is given."""

    name = "torch"

    def __init__(self, model: nn.Module, device: str = "cpu"):
        self.device = torch.device(device)
        self.model = model.eval().float().to(self.device)

    @torch.inference_mode()
    def features(self, x: np.ndarray) -> np.ndarray:
        f = self.model.forward_features(torch.from_numpy(x).to(self.device))
        return f.float().cpu().numpy()

    @torch.inference_mode()
    def head(self, f_o: np.ndarray, f_a: np.ndarray) -> np.ndarray:
        t = lambda a: torch.from_numpy(a).to(self.device)  # noqa: E731
        return self.model.forward_head(t(f_o), t(f_a)).float().cpu().numpy()


# Features passes faster than this (ms, on all cores) run on one thread, see OnnxBackend.
CHEAP_FEATURES_MS = 8.0


class OnnxBackend:
    """ONNX Runtime on CPU, on the exported `features.onnx` and `head.onnx`."""

    name = "onnx"

    def __init__(self, features_path: str | Path, head_path: str | Path, threads: int | None = None):
        try:
            import onnxruntime as ort
        except ImportError as e:
            raise BackendUnavailable(
                f"onnxruntime cannot be imported ({e}); pip install onnxruntime, "
                "or choose --backend torch"
            ) from None
        opts = ort.SessionOptions()
        opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        if threads:
            opts.intra_op_num_threads = threads
        # The head is a few small matrix products: a thread pool costs more than it saves.
        head_opts = ort.SessionOptions()
        head_opts.intra_op_num_threads = 1
        prov = ["CPUExecutionProvider"]
        self._feat = ort.InferenceSession(str(features_path), opts, providers=prov)
        self._head = ort.InferenceSession(str(head_path), head_opts, providers=prov)
        self.threads = threads
        if threads is None and (os.cpu_count() or 1) > 1 and self._features_ms() < CHEAP_FEATURES_MS:
            # A cheap features pass (MobileNetV3: ~3 ms) gains little from a second thread,
            # and that thread's spinning takes the core the face mesh runs on in the
            # pipeline. Measured here, pipelined, 2 cores: MobileNetV3-Small 122 fps with 1
            # thread vs 84 with 2; ResNet-18 int8 (with --landmarks fast) 58 vs 64, fp32 21 vs 31 (so those keep all).
            opts.intra_op_num_threads = 1
            self._feat = ort.InferenceSession(str(features_path), opts, providers=prov)
            self.threads = 1

    def _features_ms(self, runs: int = 5) -> float:
        """Mean ms of one features pass on a zero image (after a warm-up pass)."""
        import time

        shape = [d if isinstance(d, int) else 1 for d in self._feat.get_inputs()[0].shape]
        x = np.zeros(shape, np.float32)
        self.features(x)
        t0 = time.perf_counter()
        for _ in range(runs):
            self.features(x)
        return (time.perf_counter() - t0) / runs * 1e3

    def features(self, x: np.ndarray) -> np.ndarray:
        return self._feat.run(None, {"image": np.ascontiguousarray(x, np.float32)})[0]

    def head(self, f_o: np.ndarray, f_a: np.ndarray) -> np.ndarray:
        feed = {"f_onset": np.ascontiguousarray(f_o, np.float32),
                "f_current": np.ascontiguousarray(f_a, np.float32)}
        return self._head.run(None, feed)[0]


class TensorRTBackend:
    """torch-tensorrt programs compiled in fp16 (inputs converted to half on the GPU)."""

    name = "tensorrt"

    def __init__(self, features_path: str | Path, head_path: str | Path):
        import_torch_tensorrt()  # registers the TensorRT runtime ops the programs call
        self._feat = torch.export.load(str(features_path)).module()
        self._head = torch.export.load(str(head_path)).module()
        self.device = torch.device("cuda")

    @torch.inference_mode()
    def features(self, x: np.ndarray) -> np.ndarray:
        t = torch.from_numpy(x).to(self.device, non_blocking=True).half()
        return self._feat(t).float().cpu().numpy()

    @torch.inference_mode()
    def head(self, f_o: np.ndarray, f_a: np.ndarray) -> np.ndarray:
        t = lambda a: torch.from_numpy(a).to(self.device).half()  # noqa: E731
        return self._head(t(f_o), t(f_a)).float().cpu().numpy()


@dataclass
class BackendChoice:
    name: str
    reason: str


def _onnxruntime_present() -> bool:
    try:
        import onnxruntime  # noqa: F401
    except ImportError:
        return False
    return True


def choose_backend(requested: str) -> BackendChoice:
    """Resolve `auto` to a concrete backend, with the reason in words."""
    if requested not in BACKENDS:
        raise BackendUnavailable(f"unknown backend {requested!r}; choose one of {', '.join(BACKENDS)}")
    if requested != "auto":
        return BackendChoice(requested, "chosen with --backend")
    try:
        trt = import_torch_tensorrt()
        return BackendChoice(
            "tensorrt",
            f"CUDA device {torch.cuda.get_device_name()} and torch-tensorrt {trt.__version__} found",
        )
    except TensorRTUnavailable as e:
        why = "no CUDA device" if not torch.cuda.is_available() else "torch-tensorrt is not usable"
        if _onnxruntime_present():
            return BackendChoice("onnx", f"{why} for TensorRT ({e.args[0].split(';')[0]}), "
                                 "so ONNX Runtime on CPU")
        return BackendChoice("torch", f"{why} for TensorRT and onnxruntime is missing, so eager PyTorch")


def load_backend(
    checkpoint: str | Path,
    model: nn.Module,
    requested: str = "auto",
    threads: int | None = None,
    precision: str = "fp32",
):
    """Build a backend for `model` (loaded from `checkpoint`); returns (backend, BackendChoice).

    `precision="int8"` runs ONNX Runtime on a statically quantised features graph
    (`realtime.export.quantize_features`); the other backends have one precision each
    (TensorRT fp16, torch fp32).

    Raises:
        BackendUnavailable: the requested backend cannot run here (message says why and how).
    """
    if precision not in ("fp32", "int8"):
        raise BackendUnavailable(f"unknown precision {precision!r}; choose fp32 or int8")
    choice = choose_backend(requested)
    if precision == "int8":
        if choice.name == "torch" or (choice.name == "tensorrt" and requested != "auto"):
            raise BackendUnavailable(
                f"--precision int8 runs on ONNX Runtime only; use --backend onnx (or auto), "
                f"not {choice.name}"
            )
        if choice.name == "tensorrt":
            choice = BackendChoice("tensorrt", choice.reason + "; int8 applies to ONNX Runtime "
                                   "only, TensorRT runs fp16")
    if choice.name == "torch":
        if threads:
            torch.set_num_threads(threads)
        return TorchBackend(model, "cuda" if torch.cuda.is_available() else "cpu"), choice
    if choice.name == "onnx":
        if not _onnxruntime_present():
            raise BackendUnavailable("onnxruntime is not installed; pip install onnxruntime, "
                                     "or choose --backend torch")
        feat, head = cached_onnx(checkpoint, model, precision)
        if precision == "int8":
            choice = BackendChoice("onnx-int8", choice.reason + ", int8 features graph")
        return OnnxBackend(feat, head, threads or _default_threads()), choice
    try:
        feat, head = cached_tensorrt(checkpoint, model)
        return TensorRTBackend(feat, head), choice
    except TensorRTUnavailable as e:
        raise BackendUnavailable(str(e)) from None


def _default_threads() -> int | None:
    env = os.environ.get("MOEXT_THREADS")
    return int(env) if env else None
