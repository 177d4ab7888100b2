"""Checkpoints: weights as safetensors, the model's typed config as JSON beside them.

`weights.safetensors` + `weights.json`. The JSON names the model kind and its config, so
`load_checkpoint(path)` rebuilds the exact network; nothing is unpickled.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file
from torch import nn

from moext.io import atomic_save, atomic_write_text
from moext.registry import Registry

FORMAT = "moext-checkpoint"
FORMAT_VERSION = 1

class CheckpointError(ValueError):
    """A checkpoint that cannot be loaded; the message names the file and the mismatch."""


# kind -> (model class, config class). Other methods register themselves here.
MODEL_KINDS: Registry[tuple[type[nn.Module], type]] = Registry("model kind", CheckpointError)


def register_model(kind: str, model_cls: type[nn.Module], config_cls: type) -> None:
    MODEL_KINDS.register(kind, (model_cls, config_cls), help=model_cls.__name__)
    model_cls.checkpoint_kind = kind


def config_path(weights: str | Path) -> Path:
    return Path(weights).with_suffix(".json")


def save_checkpoint(model: nn.Module, path: str | Path, extra: dict[str, Any] | None = None) -> Path:
    """Write `path` (.safetensors) and its JSON config atomically; returns the weights path.

    Args:
        model: a registered model with a `cfg` dataclass.
        extra: JSON-serialisable facts to keep beside the config (epoch, metrics, provenance).
    """
    path = Path(path)
    if path.suffix != ".safetensors":
        raise ValueError(f"checkpoint path {path} must end in .safetensors")
    kind = getattr(type(model), "checkpoint_kind", None)
    if kind is None:
        raise ValueError(f"{type(model).__name__} is not a registered checkpoint kind")
    path.parent.mkdir(parents=True, exist_ok=True)
    meta = {
        "format": FORMAT,
        "version": FORMAT_VERSION,
        "kind": kind,
        "config": model.cfg.to_dict(),
        "extra": extra or {},
    }
    state = {k: v.detach().contiguous().cpu() for k, v in model.state_dict().items()}
    # One metadata key: safetensors writes its metadata map in a random order, and two keys
    # made equal weights differ in bytes (a resumed run's checkpoint rebuilt the export cache).
    header = {FORMAT: kind}
    atomic_save(path, lambda tmp: save_file(state, str(tmp), metadata=header))
    atomic_write_text(config_path(path), json.dumps(meta, indent=2))
    return path


def read_checkpoint_meta(path: str | Path) -> dict[str, Any]:
    """The JSON beside a checkpoint, validated; raises CheckpointError naming the file."""
    path = Path(path)
    cpath = config_path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint {path} does not exist; pass a .safetensors file")
    if not cpath.is_file():
        raise CheckpointError(
            f"checkpoint {path} has no config {cpath.name} beside it; a moext checkpoint is "
            "a .safetensors file plus the .json written with it"
        )
    try:
        meta = json.loads(cpath.read_text())
    except json.JSONDecodeError as e:
        raise CheckpointError(f"checkpoint config {cpath} is not valid JSON: {e}") from None
    if not isinstance(meta, dict) or meta.get("format") != FORMAT or "kind" not in meta:
        raise CheckpointError(f"{cpath} is not a moext checkpoint config (no format/kind)")
    if meta["kind"] not in MODEL_KINDS:
        raise CheckpointError(
            f"{cpath}: unknown model kind {meta['kind']!r}; known: {sorted(MODEL_KINDS)}"
        )
    return meta


# MoExt configs written before `ModelConfig.arch` existed describe the paper's vector
# architecture (Tables 1-2) with its full reconstruction; the defaults are now the released
# U-Net architecture and a residual reconstruction.
_LEGACY_MOEXT_KINDS = ("moext-pretrain", "moext-classifier")
# MIACNet configs written before `MIACNetConfig.feature_stride` existed read the backbone's
# last (stride-32) map; the default is now stride 8.
_MIACNET_KINDS = ("miacnet-pretrain", "miacnet")


def build_from_meta(meta: dict[str, Any], source: Path | str = "<config>") -> nn.Module:
    model_cls, config_cls = MODEL_KINDS[meta["kind"]]
    config = dict(meta["config"])
    if meta["kind"] in _LEGACY_MOEXT_KINDS and "arch" not in config:
        config.update(arch="paper", reconstruction="full")
    if meta["kind"] in _MIACNET_KINDS and "feature_stride" not in config:
        config.update(feature_stride=32)
    try:
        cfg = config_cls.from_dict(config)
    except (TypeError, ValueError) as e:
        raise CheckpointError(f"{source}: bad config: {e}") from None
    return model_cls(cfg)


def load_checkpoint(
    path: str | Path, expect_kind: str | tuple[str, ...] | None = None
) -> tuple[nn.Module, dict[str, Any]]:
    """Rebuild the exact model stored at `path`; returns (model in eval mode, metadata).

    Raises:
        CheckpointError: missing/invalid config, another kind than expected, or weights whose
            keys or shapes do not match the config's architecture (all named in the message).
    """
    path = Path(path)
    meta = read_checkpoint_meta(path)
    if expect_kind is not None:
        kinds = (expect_kind,) if isinstance(expect_kind, str) else expect_kind
        if meta["kind"] not in kinds:
            raise CheckpointError(
                f"checkpoint {path} holds a {meta['kind']!r} model; expected {' or '.join(kinds)}"
            )
    model = build_from_meta(meta, path)
    try:
        state = load_file(str(path))
    except (SafetensorError, OSError) as e:
        raise CheckpointError(f"checkpoint {path} is not a readable safetensors file: {e}") from None
    check_state_dict(model, state, path)
    model.load_state_dict(state, strict=True)
    model.eval()
    return model, meta


def check_state_dict(model: nn.Module, state: dict[str, torch.Tensor], source: Path | str) -> None:
    """Raise CheckpointError listing missing, unexpected and wrongly shaped tensors."""
    want = model.state_dict()
    missing = sorted(set(want) - set(state))
    unexpected = sorted(set(state) - set(want))
    shapes = [
        f"{k}: file {tuple(state[k].shape)} vs model {tuple(want[k].shape)}"
        for k in sorted(set(want) & set(state))
        if state[k].shape != want[k].shape
    ]
    problems = []
    if missing:
        problems.append(f"missing {len(missing)} tensors (e.g. {missing[:3]})")
    if unexpected:
        problems.append(f"unexpected {len(unexpected)} tensors (e.g. {unexpected[:3]})")
    if shapes:
        problems.append(f"{len(shapes)} shape mismatches (e.g. {shapes[:3]})")
    if problems:
        raise CheckpointError(
            f"checkpoint {source} does not match its config's architecture: " + "; ".join(problems)
        )


# Pre-trained -> classifier (§3.4): keep the shape extractor and the motion extractor,
# drop the texture branch, the reconstructor and the projection.
TRANSFER_PREFIXES = ("separator.backbone.", "separator.shape_branch.", "motion.")


def transfer_pretrained(
    pretrained: nn.Module, classifier: nn.Module, prefixes: tuple[str, ...] = TRANSFER_PREFIXES
) -> list[str]:
    """Copy the tensors whose keys start with `prefixes` (default: MoExt's shape branch,
    backbone and motion extractor) into a classifier; returns the copied keys.

    Raises:
        CheckpointError: a tensor has no same-shaped counterpart (the two models were built
            with different backbones or widths).
    """
    src = pretrained.state_dict()
    dst = classifier.state_dict()
    copied = []
    for k, v in src.items():
        if k.startswith(prefixes):
            if k not in dst or dst[k].shape != v.shape:
                raise CheckpointError(
                    f"pre-trained tensor {k} {tuple(v.shape)} has no counterpart of that shape "
                    "in the classifier; were both built with the same backbone and widths?"
                )
            dst[k] = v.clone()
            copied.append(k)
    classifier.load_state_dict(dst)
    return copied
