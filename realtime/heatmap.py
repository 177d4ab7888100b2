"""Live heat maps of where MIACNet's action branch responds, one per finished event.

The live overlay (`realtime.overlay.Overlay`) draws the newest event's map as an inset; this
module computes it. Wiring (the recognizer's checkpoint, its rolling buffer)::

    from realtime.heatmap import LiveHeatmap, HeatmapUnavailable

    heat = LiveHeatmap(rec.checkpoint, method="gradcam")   # HeatmapUnavailable if no action branch
    overlay = Overlay(rec.class_names, threshold=..., heatmap=heat, buffer=rec.buffer)
    ...
    cv2.imshow(WINDOW, overlay.draw(frame, result))       # computes a map only at events

`Overlay.draw` hands the frame's finished events and the buffer to `LiveHeatmap.on_events`,
which looks up the event's onset and apex frames in the buffer by frame index (they are still
there: the buffer keeps `RecognizerConfig.buffer_ms` of history, longer than any event) and
runs `moext.explain.action_heatmap` on them; the picture is the apex crop (kept when
`RecognizerConfig.keep_crops`) with the map blended in. Without an overlay, call
`heat.on_events(result.events, rec.buffer)` yourself after each `rec.process` and read
`heat.last`.

Cost: only when an event finishes, never per frame, in PyTorch on the CPU with its own copy
of the weights, whichever backend (ONNX Runtime, TensorRT, torch) classifies the stream.
By default the backbone features the live backend already computed for the onset and apex
frames (`BufferedFrame.features`, the very features the event was classified on) are reused,
so a map costs the action head and, for Grad-CAM, its backward pass (tens of ms), not two
more backbone passes (0.2-0.5 s each for ResNet-18 at 224 px on a 2-core CPU). With
`use_buffered_features=False`, or for a frame without features, the crops go through the
PyTorch backbone (`moext.explain.explain_crops`), i.e. the checkpoint's own fp32 network
even when the live backend runs a quantised one.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable

import numpy as np
import torch
from torch import nn

from realtime.buffer import RollingBuffer
from realtime.events import Event

__all__ = ["EventHeatmap", "HeatmapUnavailable", "LiveHeatmap"]


class HeatmapUnavailable(ValueError):
    """A checkpoint that cannot give heat maps; the one-line message names it and the fix."""


@dataclass
class EventHeatmap:
    """The heat map of one finished event.

    Attributes:
        event: the event it explains.
        heat: (S, S) float32 in [0, 1] (S = the model's image_size), see `moext.explain.HeatMap`.
        image: the apex crop with the heat map blended in, HWC uint8 BGR (crop size, 224).
        method: "gradcam" or "magnitude".
        class_name: the class the map is for (Grad-CAM: the torch model's predicted class);
            None for a model without a classifier head.
        peak: the map's un-normalised range (0 = the action branch responded nowhere).
        ms: milliseconds spent computing it.
    """

    event: Event
    heat: np.ndarray
    image: np.ndarray
    method: str
    class_name: str | None
    peak: float
    ms: float


class LiveHeatmap:
    """Computes `EventHeatmap`s for finished live events from the buffered aligned crops.

    Args:
        checkpoint: a MIACNet checkpoint (`.safetensors` + `.json`), normally the recognizer's
            own (`rec.checkpoint`). An MA2MI pre-training checkpoint works with
            method="magnitude" only.
        method: "gradcam" (default; needs a classifier head) or "magnitude".
        alpha: opacity of the colour map over the apex crop.
        use_buffered_features: reuse the live backend's backbone features of the onset and
            apex frames when the buffer has them (see the module docstring).

    Raises:
        HeatmapUnavailable (a ValueError): the checkpoint cannot be read, or it has no action
            branch (a MoExt classifier), or Grad-CAM was asked of a model without a head.
    """

    def __init__(self, checkpoint: str | Path, method: str = "gradcam", alpha: float = 0.45,
                 use_buffered_features: bool = True):
        from moext.checkpoint import CheckpointError, load_checkpoint
        from moext.explain import METHODS

        self.checkpoint = Path(checkpoint)
        if method not in METHODS:
            raise HeatmapUnavailable(
                f"unknown heat-map method {method!r}; choose one of {', '.join(METHODS)}"
            )
        try:
            model, meta = load_checkpoint(self.checkpoint)
        except CheckpointError as e:
            raise HeatmapUnavailable(f"heat maps: {e}") from None
        kind = meta.get("kind")
        if not (hasattr(model, "action_code") and hasattr(model, "forward_features")):
            raise HeatmapUnavailable(
                f"heat maps: checkpoint {self.checkpoint} holds a {kind!r} model, which has no "
                "action branch; heat maps need a MIACNet checkpoint from "
                "`moext-train finetune --model miacnet`"
            )
        if method == "gradcam" and not hasattr(model, "head_from_code"):
            raise HeatmapUnavailable(
                f"heat maps: checkpoint {self.checkpoint} holds a {kind!r} model without a "
                "classifier head, so Grad-CAM has no class to explain; use method 'magnitude' "
                "or a checkpoint from `moext-train finetune --model miacnet`"
            )
        self.model = model.eval().cpu()
        self.method = method
        self.alpha = alpha
        self.use_buffered_features = use_buffered_features
        s = int(model.cfg.image_size)
        with torch.no_grad():  # one small pass at load: the shape buffered features must have
            self._feature_shape = tuple(model.forward_features(torch.zeros(1, 3, s, s)).shape[1:])
        self.last: EventHeatmap | None = None
        self.computed = 0  # heat maps computed so far (one per event that had its crops)
        self.skipped = 0  # events whose onset or apex crop was not in the buffer
        self.from_features = 0  # of `computed`, how many reused the buffered features

    def compute(self, event: Event, onset_crop: np.ndarray, apex_crop: np.ndarray,
                onset_features: np.ndarray | None = None,
                apex_features: np.ndarray | None = None) -> EventHeatmap:
        """The heat map for `event` from its aligned onset and apex crops (HWC uint8 BGR).

        With both frames' backbone features (float32, the shape `forward_features` gives
        one frame) the backbone is skipped; otherwise the crops go through it.
        """
        from moext import explain

        t0 = time.perf_counter()
        feats = None
        if (self.use_buffered_features and onset_features is not None
                and apex_features is not None
                and tuple(onset_features.shape) == self._feature_shape
                and tuple(apex_features.shape) == self._feature_shape):
            feats = (onset_features, apex_features)
        # Grad-CAM needs autograd even if a caller disabled it around the live loop.
        with torch.enable_grad():
            if feats is not None:
                try:
                    hm = _heatmap_from_features(self.model, *feats, self.method)
                except LookupError:  # action_heatmap no longer runs the backbone per frame
                    feats = None
            if feats is None:
                hm, image = explain.explain_crops(self.model, onset_crop, apex_crop,
                                                  method=self.method, alpha=self.alpha)
            else:
                image = explain.overlay_heatmap(apex_crop, hm.heat, self.alpha)
        ms = (time.perf_counter() - t0) * 1e3
        self.computed += 1
        self.from_features += feats is not None
        return EventHeatmap(event=event, heat=hm.heat, image=image, method=hm.method,
                            class_name=hm.class_name, peak=hm.peak, ms=ms)

    def on_events(self, events: Iterable[Event], buffer: RollingBuffer) -> EventHeatmap | None:
        """Update `last` with the newest of `events` whose crops are buffered; returns `last`.

        Call with every frame's `FrameResult.events` (usually empty: then nothing is computed
        and the previous map stays). When several events finish on one frame only the newest
        is computed, since the overlay shows one. An event whose onset or apex crop is gone
        (crops not kept, or the face was lost and the buffer cleared) is counted in `skipped`
        and leaves the previous map in place.
        """
        for ev in sorted(events, key=lambda e: e.apex_index, reverse=True):
            onset, apex = buffer.get(ev.onset_index), buffer.get(ev.apex_index)
            if onset is None or apex is None or onset.crop is None or apex.crop is None:
                self.skipped += 1
                continue
            self.last = self.compute(ev, onset.crop, apex.crop, onset.features, apex.features)
            break
        return self.last

    def reset(self) -> None:
        """Forget the shown map (a new stream)."""
        self.last = None


class _GivenFeatures(nn.Module):
    """The model with its backbone replaced by the features already at hand.

    `moext.explain.action_heatmap` takes network inputs and runs `forward_features` on each;
    here `forward_features(x)` returns the stored features of the placeholder input `x` is
    (so the Grad-CAM / magnitude arithmetic stays in one place, `moext.explain`). Everything
    else (`action_code`, `head_from_code`, `cfg`, train/eval) is the wrapped model's.
    """

    def __init__(self, model: nn.Module, given: dict[int, torch.Tensor]):
        super().__init__()
        self.model = model
        self._given = given  # id(placeholder input) -> (1, C, h, w) features

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        try:
            return self._given[id(x)]
        except KeyError:
            raise LookupError("forward_features on an input with no given features") from None

    def __getattr__(self, name: str):
        try:
            return super().__getattr__(name)  # parameters, buffers, submodules
        except AttributeError:
            return getattr(self._modules["model"], name)


def _heatmap_from_features(model: nn.Module, f_o: np.ndarray, f_a: np.ndarray, method: str):
    """`moext.explain.action_heatmap` on given onset/apex backbone features (C, h, w)."""
    from moext.explain import action_heatmap

    s = int(model.cfg.image_size)
    # placeholders: only their side (the heat map's size) and their identity are used
    x_o, x_a = torch.zeros(1, 3, s, s), torch.zeros(1, 3, s, s)
    given = {id(x_o): torch.from_numpy(np.ascontiguousarray(f_o, np.float32))[None],
             id(x_a): torch.from_numpy(np.ascontiguousarray(f_a, np.float32))[None]}
    return action_heatmap(_GivenFeatures(model, given), x_o, x_a, method=method)
