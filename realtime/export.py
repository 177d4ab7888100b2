"""Export a classifier checkpoint for the fast backends (`moext-live export`).

The network is exported as its two seam parts (docs/ARCHITECTURE.md): `features`
(`forward_features`, one backbone pass per frame) and `head` (`forward_head(f_o, f_a)`), so
the live recognizer can cache the onset's features and run only the head for it.

- ONNX: `features.onnx` + `head.onnx` (opset 17, dynamic batch), for ONNX Runtime.
- TensorRT: torch-tensorrt's dynamo path in fp16. On that path `enabled_precisions` is
  ignored (explicit typing), so the module and its example inputs are converted to half
  before compiling; the compiled programs are saved with `torch_tensorrt.save` and reloaded
  with `torch.export.load`.

Exports are cached under `cache_dir()` keyed by the checkpoint's SHA-256 (and, for
TensorRT, the GPU name and torch-tensorrt version), written atomically, and reused.
"""

from __future__ import annotations

import copy
import hashlib
import json
import os
import re
import tempfile
import warnings
from pathlib import Path

import torch
from torch import nn

ONNX_OPSET = 17


def cache_dir() -> Path:
    """`$MOEXT_CACHE_DIR`, else `$XDG_CACHE_HOME/moext`, else `~/.cache/moext`."""
    env = os.environ.get("MOEXT_CACHE_DIR")
    if env:
        return Path(env)
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "moext"


def checkpoint_hash(path: str | Path) -> str:
    """SHA-256 over the weights and their JSON config (a changed config is a new model)."""
    from moext.checkpoint import config_path

    h = hashlib.sha256()
    for p in (Path(path), config_path(path)):
        with open(p, "rb") as fh:
            for chunk in iter(lambda: fh.read(1 << 20), b""):
                h.update(chunk)
    return h.hexdigest()


class FeaturesPart(nn.Module):
    """`forward_features` as a module of its own: (B, 3, S, S) -> features."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model.forward_features(x)


class HeadPart(nn.Module):
    """`forward_head` as a module of its own: (f_o, f_a) -> logits (B, num_classes)."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model

    def forward(self, f_o: torch.Tensor, f_a: torch.Tensor) -> torch.Tensor:
        return self.model.forward_head(f_o, f_a)


def _atomic_target(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    os.close(fd)
    return Path(tmp)


def export_onnx(model: nn.Module, out_dir: str | Path) -> tuple[Path, Path]:
    """Write `features.onnx` and `head.onnx` for `model` into `out_dir`; returns both paths."""
    out_dir = Path(out_dir)
    # A copy, and every wrapper in eval mode: a freshly built wrapper module is in training
    # mode, and tracing it so updates BatchNorm statistics of the caller's model.
    model = copy.deepcopy(model).eval().float().cpu()
    s = model.cfg.image_size
    x = torch.zeros(1, 3, s, s)
    with torch.no_grad():
        f = model.forward_features(x)
    paths = out_dir / "features.onnx", out_dir / "head.onnx"
    feat_axes = {0: "batch"}
    jobs = [
        (FeaturesPart(model).eval(), (x,), ["image"], ["features"],
         {"image": {0: "batch"}, "features": feat_axes}),
        (HeadPart(model).eval(), (f, f), ["f_onset", "f_current"], ["logits"],
         {"f_onset": feat_axes, "f_current": feat_axes, "logits": {0: "batch"}}),
    ]
    for (module, args, inputs, outputs, axes), path in zip(jobs, paths):
        tmp = _atomic_target(path)
        # The TorchScript exporter: the torch.export one needs onnxscript, which we do not
        # ship, and these plain conv/linear graphs need nothing newer.
        with torch.no_grad(), warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)  # "legacy exporter" notices
            torch.onnx.export(
                module, args, str(tmp), input_names=inputs, output_names=outputs,
                dynamic_axes=axes, opset_version=ONNX_OPSET, dynamo=False,
            )
        os.replace(tmp, path)
    (out_dir / "export.json").write_text(
        json.dumps({"format": "onnx", "opset": ONNX_OPSET, "image_size": s,
                    "class_names": list(model.cfg.class_names)}, indent=2)
    )
    return paths


def cached_onnx(checkpoint: str | Path, model: nn.Module | None = None) -> tuple[Path, Path]:
    """ONNX files for `checkpoint`, exported once into the cache and reused."""
    out = cache_dir() / "onnx" / checkpoint_hash(checkpoint)[:20]
    paths = out / "features.onnx", out / "head.onnx"
    if all(p.is_file() for p in paths):
        return paths
    if model is None:
        from moext.checkpoint import load_checkpoint

        model, _ = load_checkpoint(checkpoint)
    return export_onnx(model, out)


class TensorRTUnavailable(RuntimeError):
    """torch-tensorrt or CUDA is missing; the message says how to install it."""


INSTALL_TRT = (
    "the TensorRT backend needs an NVIDIA GPU with CUDA and torch-tensorrt: "
    "pip install 'moext[tensorrt]' (or choose --backend onnx or torch)"
)


def import_torch_tensorrt():
    """Import torch_tensorrt, or raise TensorRTUnavailable with the install hint.

    The import fails with OSError/RuntimeError (not only ImportError) on machines without an
    NVIDIA driver, so every failure is caught here.
    """
    if not torch.cuda.is_available():
        raise TensorRTUnavailable(f"no CUDA device is available; {INSTALL_TRT}")
    try:
        import torch_tensorrt  # noqa: F401
    except Exception as e:  # ImportError, OSError (libnvinfer), RuntimeError
        raise TensorRTUnavailable(f"torch_tensorrt cannot be imported ({e}); {INSTALL_TRT}") from None
    return torch_tensorrt


def tensorrt_dir(checkpoint: str | Path) -> Path:
    """Engine cache folder, keyed by checkpoint hash, GPU name and torch-tensorrt version."""
    trt = import_torch_tensorrt()
    gpu = re.sub(r"[^A-Za-z0-9]+", "-", torch.cuda.get_device_name()).strip("-")
    key = f"{checkpoint_hash(checkpoint)[:20]}-{gpu}-trt{trt.__version__}"
    return cache_dir() / "tensorrt" / key


def export_tensorrt(model: nn.Module, out_dir: str | Path) -> tuple[Path, Path]:
    """Compile both parts with torch-tensorrt (dynamo, fp16) and save them into `out_dir`."""
    trt = import_torch_tensorrt()
    out_dir = Path(out_dir)
    dev = torch.device("cuda")
    model = copy.deepcopy(model).eval().to(dev).half()  # fp16 by converting the module...
    s = model.cfg.image_size
    x = torch.zeros(1, 3, s, s, device=dev, dtype=torch.half)  # ...and its inputs
    with torch.no_grad():
        f = model.forward_features(x)
    paths = out_dir / "features.ep", out_dir / "head.ep"
    for module, args, path in (
        (FeaturesPart(model).eval(), (x,), paths[0]),
        (HeadPart(model).eval(), (f, f), paths[1]),
    ):
        ep = torch.export.export(module.eval(), args)
        compiled = trt.dynamo.compile(ep, inputs=list(args), min_block_size=1)
        tmp = _atomic_target(path)
        tmp.unlink()
        trt.save(compiled, str(tmp), output_format="exported_program", inputs=list(args))
        os.replace(tmp, path)
    return paths


def cached_tensorrt(checkpoint: str | Path, model: nn.Module | None = None) -> tuple[Path, Path]:
    out = tensorrt_dir(checkpoint)
    paths = out / "features.ep", out / "head.ep"
    if all(p.is_file() for p in paths):
        return paths
    if model is None:
        from moext.checkpoint import load_checkpoint

        model, _ = load_checkpoint(checkpoint)
    return export_tensorrt(model, out)
