"""The live recognizer's classifier stage: the backend, what the checkpoint reads, and the
onset -> current optical flow for a classifier that reads it.

A frame's backbone features are computed once (`features`) and cached in the buffer, so a
frame's probabilities against its reference cost one head pass (`logits`). A flow-fed
classifier (`--method ststnet`, or MoExt / MIACNet trained with `flow_input`) also gets the
flow between the two aligned crops, made by `moext.flow.motion_channels` with the settings
stored in its checkpoint: the function training cached its inputs with.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from moext.flow import DenseFlow, FlowConfig, motion_channels
from realtime.backends import Backend


@dataclass
class ClassifierInputs:
    """What a checkpoint's classifier reads.

    Attributes:
        image_size: side of the network's frame input (a flow-only classifier takes a small
            placeholder frame).
        images: it reads the two frames (False: STSTNet).
        flow: how to make its flow input, or None when it reads no flow.
    """

    image_size: int
    images: bool = True
    flow: FlowConfig | None = None

    @classmethod
    def of(cls, model) -> "ClassifierInputs":
        from moext import classifier_inputs

        images, flow = classifier_inputs(model)
        return cls(int(getattr(model.cfg, "image_size", 32)), images, model.cfg.flow if flow else None)


class ClassifierStage:
    """Backend + the flow a classifier reads. Frames are `BufferedFrame`s (features set by
    the recognizer from `features`, crops kept in the buffer)."""

    def __init__(self, backend: Backend, inputs: ClassifierInputs):
        self.backend = backend
        self.inputs = inputs
        self._flow = DenseFlow(inputs.flow.preset) if inputs.flow is not None else None

    @property
    def needs_crops(self) -> bool:
        """The onset -> current flow is measured on the buffered crops."""
        return self.inputs.flow is not None

    def features(self, x: np.ndarray) -> np.ndarray:
        """(B, 3, S, S) network input -> (B, D...) features, the cacheable part."""
        return self.backend.features(x)

    def logits(self, ref, cur) -> np.ndarray | None:
        """(1, K) logits of `cur` against the reference `ref`; None when a needed part (a
        frame's features, or a crop for the flow) is missing."""
        if ref.features is None or cur.features is None:
            return None
        flow = None
        if self._flow is not None:
            if ref.crop is None or cur.crop is None:
                return None
            flow = motion_channels(ref.crop, cur.crop, self.inputs.flow, self._flow)[None]  # (1, 3, n, n)
        return self.backend.head(ref.features[None], cur.features[None], flow)
