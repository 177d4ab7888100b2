"""Inference backends for the classifier's two seam parts: `features` and `head`.

Every backend takes and returns NumPy float32 arrays, so the recognizer does not care which
one runs:

- `features(x)`: x (B, 3, S, S) float32 (RGB, ImageNet-normalised, from
  `moext.preprocess`) -> features (B, D...) float32, one backbone pass per frame.
- `head(f_o, f_a)`: onset and current features -> logits (B, num_classes) float32.

`tensorrt` (torch-tensorrt, fp16, CUDA), `onnx` (ONNX Runtime on CPU), `torch` (eager).
`choose_backend("auto")` picks the first usable one in `REGISTRY` order (TensorRT where CUDA
and torch-tensorrt are present, else ONNX Runtime, else PyTorch) and says why.

Every backend is one `BackendSpec` in `REGISTRY` (name, help, a probe that says why it
cannot run here, and a builder); the CLIs' choices, `--help` and `load_backend` all read
that table. A new backend is a module defining a class with `name`, `features` and `head`
and calling `register_backend(BackendSpec(...))`, plus its import in `_PLUGINS` below
(docs/ARCHITECTURE.md has the steps).
"""

from __future__ import annotations

import importlib
import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Callable, Protocol

import numpy as np

if TYPE_CHECKING:
    from torch import nn

# torch and the exporters load on first use: `moext-live --help` reads this registry and
# should not wait 2.5 s for torch.

class BackendUnavailable(RuntimeError):
    """The chosen backend cannot run here; the message says what to install or choose."""


class Backend(Protocol):
    """What the recognizer needs of a backend (all arrays NumPy float32)."""

    name: str

    def features(self, x: np.ndarray) -> np.ndarray:
        """(B, 3, S, S) network input -> (B, D...) backbone features."""
        ...

    def head(self, f_o: np.ndarray, f_a: np.ndarray, flow: np.ndarray | None = None) -> np.ndarray:
        """Onset and current features (and, for a classifier that reads it, the onset ->
        current flow (B, 3, n, n)) -> (B, num_classes) logits."""
        ...


@dataclass(frozen=True)
class BackendSpec:
    """One backend in the registry.

    Attributes:
        name: what --backend calls it.
        label: what messages call it ("ONNX Runtime").
        help: one line for --help.
        unavailable: () -> why it cannot run on this machine (with the fix), or None.
        build: (checkpoint path, model, threads, precision) -> a `Backend`; may raise
            `BackendUnavailable`.
        precisions: the --precision values it runs.
        own_precision: it runs one precision of its own whatever --precision says
            (TensorRT: fp16), so `auto` may keep it for an int8 request.
    """

    name: str
    label: str
    help: str
    unavailable: Callable[[], str | None]
    build: Callable[..., Backend]
    precisions: tuple[str, ...] = ("fp32",)
    own_precision: str | None = None


REGISTRY: dict[str, BackendSpec] = {}


def register_backend(spec: BackendSpec) -> None:
    """Add a backend; `auto` tries backends in registration order."""
    REGISTRY[spec.name] = spec


def backend_names() -> tuple[str, ...]:
    """The --backend choices: auto, then every registered backend."""
    return ("auto", *REGISTRY)


class TorchBackend:
    """Eager PyTorch, on CPU unless a device is given."""

    name = "torch"

    def __init__(self, model: nn.Module, device: str = "cpu"):
        import torch

        self._torch = torch
        self.device = torch.device(device)
        self.model = model.eval().float().to(self.device)

    def features(self, x: np.ndarray) -> np.ndarray:
        torch = self._torch
        with torch.inference_mode():
            f = self.model.forward_features(torch.from_numpy(x).to(self.device))
            return f.float().cpu().numpy()

    def head(self, f_o: np.ndarray, f_a: np.ndarray, flow: np.ndarray | None = None) -> np.ndarray:
        torch = self._torch
        with torch.inference_mode():
            t = lambda a: torch.from_numpy(a).to(self.device)  # noqa: E731
            args = (t(f_o), t(f_a)) if flow is None else (t(f_o), t(f_a), t(flow))
            return self.model.forward_head(*args).float().cpu().numpy()


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
        self._head_inputs = {i.name for i in self._head.get_inputs()}
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

    def head(self, f_o: np.ndarray, f_a: np.ndarray, flow: np.ndarray | None = None) -> np.ndarray:
        feed = {"f_onset": np.ascontiguousarray(f_o, np.float32),
                "f_current": np.ascontiguousarray(f_a, np.float32)}
        if flow is not None:
            feed["flow"] = np.ascontiguousarray(flow, np.float32)
        # The exporter drops inputs a head never reads (STSTNet's frame features).
        return self._head.run(None, {k: v for k, v in feed.items() if k in self._head_inputs})[0]


class TensorRTBackend:
    """torch-tensorrt programs compiled in fp16 (inputs converted to half on the GPU)."""

    name = "tensorrt"

    def __init__(self, features_path: str | Path, head_path: str | Path):
        import torch

        from realtime.export import import_torch_tensorrt

        import_torch_tensorrt()  # registers the TensorRT runtime ops the programs call
        self._torch = torch
        self._feat = torch.export.load(str(features_path)).module()
        self._head = torch.export.load(str(head_path)).module()
        self.device = torch.device("cuda")

    def features(self, x: np.ndarray) -> np.ndarray:
        torch = self._torch
        with torch.inference_mode():
            t = torch.from_numpy(x).to(self.device, non_blocking=True).half()
            return self._feat(t).float().cpu().numpy()

    def head(self, f_o: np.ndarray, f_a: np.ndarray, flow: np.ndarray | None = None) -> np.ndarray:
        torch = self._torch
        with torch.inference_mode():
            t = lambda a: torch.from_numpy(a).to(self.device).half()  # noqa: E731
            args = (t(f_o), t(f_a)) if flow is None else (t(f_o), t(f_a), t(flow))
            return self._head(*args).float().cpu().numpy()


@dataclass
class BackendChoice:
    name: str
    reason: str


def _tensorrt_unavailable() -> str | None:
    from realtime.export import TensorRTUnavailable, import_torch_tensorrt

    try:
        import_torch_tensorrt()
    except TensorRTUnavailable as e:
        return str(e)
    return None


def _onnx_unavailable() -> str | None:
    try:
        import onnxruntime  # noqa: F401
    except ImportError as e:
        return f"onnxruntime cannot be imported ({e}); pip install onnxruntime"
    return None


def _build_torch(checkpoint, model, threads, precision) -> Backend:
    import torch

    if threads:
        torch.set_num_threads(threads)
    return TorchBackend(model, "cuda" if torch.cuda.is_available() else "cpu")


def _build_onnx(checkpoint, model, threads, precision) -> Backend:
    from realtime.export import cached_onnx

    feat, head = cached_onnx(checkpoint, model, precision)
    return OnnxBackend(feat, head, threads or _default_threads())


def _build_tensorrt(checkpoint, model, threads, precision) -> Backend:
    from realtime.export import TensorRTUnavailable, cached_tensorrt

    try:
        feat, head = cached_tensorrt(checkpoint, model)
    except TensorRTUnavailable as e:
        raise BackendUnavailable(str(e)) from None
    return TensorRTBackend(feat, head)


register_backend(BackendSpec("tensorrt", "TensorRT", "torch-tensorrt on an NVIDIA GPU, fp16 (the tensorrt extra: moext\\[tensorrt])",
                             _tensorrt_unavailable, _build_tensorrt, own_precision="fp16"))
register_backend(BackendSpec("onnx", "ONNX Runtime", "ONNX Runtime on the CPU (fp32, or int8 with --precision int8)",
                             _onnx_unavailable, _build_onnx, ("fp32", "int8")))
register_backend(BackendSpec("torch", "eager PyTorch", "eager PyTorch (GPU when CUDA is there, else CPU)",
                             lambda: None, _build_torch))

# Backends that live in modules of their own: each calls register_backend when imported.
_PLUGINS: tuple[str, ...] = ()
for _mod in _PLUGINS:
    importlib.import_module(_mod)

BACKENDS = backend_names()


def backends_help() -> str:
    return "; ".join(f"{s.name}: {s.help}" for s in REGISTRY.values()) + "; auto: the first usable of these"


def choose_backend(requested: str) -> BackendChoice:
    """Resolve `auto` to a concrete backend, with the reason in words."""
    if requested not in backend_names():
        raise BackendUnavailable(f"unknown backend {requested!r}; choose one of {', '.join(backend_names())}")
    if requested != "auto":
        return BackendChoice(requested, "chosen with --backend")
    skipped = []
    for spec in REGISTRY.values():
        why = spec.unavailable()
        where = " on CPU" if spec.name == "onnx" else ""
        if why is None:
            if spec.name == "tensorrt" and not skipped:
                import torch

                from realtime.export import import_torch_tensorrt

                trt = import_torch_tensorrt()
                return BackendChoice("tensorrt", f"CUDA device {torch.cuda.get_device_name()} and "
                                                 f"torch-tensorrt {trt.__version__} found")
            if not skipped:
                return BackendChoice(spec.name, f"{spec.label}{where} is usable here")
            return BackendChoice(spec.name, "; ".join(skipped) + f", so {spec.label}{where}")
        if spec.name == "tensorrt":
            import torch

            cause = "no CUDA device" if not torch.cuda.is_available() else "torch-tensorrt is not usable"
            skipped.append(f"{cause} for TensorRT ({why.split(';')[0]})")
        else:
            skipped.append(f"{spec.label} unusable ({why.split(';')[0]})")
    raise BackendUnavailable("no backend can run here: " + "; ".join(skipped))


def load_backend(
    checkpoint: str | Path,
    model: nn.Module,
    requested: str = "auto",
    threads: int | None = None,
    precision: str = "fp32",
) -> tuple[Backend, BackendChoice]:
    """Build a backend for `model` (loaded from `checkpoint`); returns (backend, BackendChoice).

    `precision="int8"` runs ONNX Runtime on a statically quantised features graph
    (`realtime.export.quantize_features`); the other backends have one precision each
    (TensorRT fp16, torch fp32). With `auto`, int8 picks the first backend that runs it.

    Raises:
        BackendUnavailable: the requested backend cannot run here (message says why and how).
    """
    if precision not in ("fp32", "int8"):
        raise BackendUnavailable(f"unknown precision {precision!r}; choose fp32 or int8")
    if precision == "int8" and not getattr(type(model.cfg), "uses_images", True):
        raise BackendUnavailable(f"--precision int8 quantises the frames' backbone, and {checkpoint} reads only "
                                 "the optical flow (STSTNet); run it in fp32")
    choice = choose_backend(requested)
    spec = REGISTRY[choice.name]
    if precision not in spec.precisions:
        runs = [s for s in REGISTRY.values() if precision in s.precisions]
        if requested == "auto" and spec.own_precision:
            # auto found a GPU backend: it is faster in its own precision than int8 on a CPU.
            choice = BackendChoice(spec.name, choice.reason + f"; {precision} applies to "
                                   f"{' or '.join(r.label for r in runs)} only, {spec.label} runs {spec.own_precision}")
            precision = "fp32"
        else:
            raise BackendUnavailable(
                f"--precision {precision} runs on {' or '.join(r.label for r in runs)} only; use "
                f"--backend {runs[0].name} (or auto), not {choice.name}")
    why = spec.unavailable()
    if why is not None:
        raise BackendUnavailable(why)
    backend = spec.build(checkpoint, model, threads, precision)
    if precision == "int8":
        choice = BackendChoice(f"{spec.name}-int8", choice.reason + ", int8 features graph")
    return backend, choice


def _default_threads() -> int | None:
    env = os.environ.get("MOEXT_THREADS")
    return int(env) if env else None
