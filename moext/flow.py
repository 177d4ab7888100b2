"""Dense optical flow between two aligned face crops: the one function both sides call.

Training caches the onset -> apex flow of every sample (`moext-train preprocess`, or on first
use) as the input of flow-fed classifiers (`--method ststnet`, MoExt / MIACNet with
`flow_input`); the live recognizer measures the same flow from the onset to the current frame
with the same `motion_channels`, and its spotting cue (`realtime.motion.FlowMeter`) runs
`DenseFlow` too, at its own speed preset.

Why flow at all: measured independently on 142 real CASME II samples, a 16-filter network on
onset -> apex flow (STSTNet, 2019) scored strict UF1 0.79-0.81 where our two-frame networks
scored 0.33-0.66: a micro-expression moves the skin by a pixel or two, which flow states
explicitly and a backbone on two frames has to discover.

Layout: a flow field is float32 (H, W, 2), (u, v) in pixels of the grid it was computed on,
u to the right, v down. `motion_channels` returns (3, n, n): u, v and the optical strain.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

PRESETS = {
    "ultrafast": cv2.DISOPTICAL_FLOW_PRESET_ULTRAFAST,
    "fast": cv2.DISOPTICAL_FLOW_PRESET_FAST,
    "medium": cv2.DISOPTICAL_FLOW_PRESET_MEDIUM,
}
CHANNELS = ("u", "v", "strain")


class DenseFlow:
    """OpenCV's DIS optical flow with a fixed preset; one instance per thread (DIS objects
    keep state between calls and are not safe to share).

    Args:
        preset: "ultrafast" (the live spotting cue: ~1 ms at 112 px), "fast" or "medium"
            (the flow STSTNet is trained on; ~3 ms at 128 px here).
        finest_scale: DIS's finest pyramid level (0 = full resolution); None keeps the preset's.
    """

    def __init__(self, preset: str = "medium", finest_scale: int | None = None):
        if preset not in PRESETS:
            raise ValueError(f"unknown DIS preset {preset!r}; choose one of {', '.join(PRESETS)}")
        self.dis = cv2.DISOpticalFlow_create(PRESETS[preset])
        if finest_scale is not None:
            self.dis.setFinestScale(int(finest_scale))

    def __call__(self, grey_a: np.ndarray, grey_b: np.ndarray) -> np.ndarray:
        """Flow from grey uint8 image `a` to `b` (same size): float32 (H, W, 2)."""
        if grey_a.shape != grey_b.shape:
            raise ValueError(f"flow needs two images of one size, got {grey_a.shape} and {grey_b.shape}")
        return self.dis.calc(grey_a, grey_b, None)


@dataclass(frozen=True)
class FlowConfig:
    """How a classifier's flow input is made (stored in its model config, so a checkpoint
    says what flow it was trained on and the live recognizer makes the same).

    Attributes:
        size: side of the grey crops the flow is computed on (STSTNet's practice: 128).
        preset: DIS preset (see `DenseFlow`).
        out_size: side of the (3, out_size, out_size) input the network sees (STSTNet: 28).
    """

    size: int = 128
    preset: str = "medium"
    out_size: int = 28


def grey_crop(crop_bgr: np.ndarray, size: int) -> np.ndarray:
    """Aligned crop, uint8 BGR (S, S, 3) -> grey uint8 (size, size), area-resampled."""
    grey = cv2.cvtColor(np.ascontiguousarray(crop_bgr), cv2.COLOR_BGR2GRAY)
    if grey.shape[0] != size or grey.shape[1] != size:
        grey = cv2.resize(grey, (size, size), interpolation=cv2.INTER_AREA)
    return grey


def optical_strain(uv: np.ndarray) -> np.ndarray:
    """Magnitude of the flow's strain tensor, sqrt(u_x^2 + v_y^2 + ((u_y + v_x) / 2)^2 * 2),
    float32 (H, W): how much the skin stretches, whatever the crop's own translation."""
    u, v = uv[..., 0], uv[..., 1]
    u_y, u_x = np.gradient(u)
    v_y, v_x = np.gradient(v)
    shear = 0.5 * (u_y + v_x)
    return np.sqrt(u_x**2 + v_y**2 + 2.0 * shear**2).astype(np.float32)


def flow_field(onset_bgr: np.ndarray, apex_bgr: np.ndarray, cfg: FlowConfig,
               flow: DenseFlow | None = None) -> np.ndarray:
    """Onset -> apex flow of two aligned crops at `cfg.size`: float32 (size, size, 2)."""
    flow = flow or DenseFlow(cfg.preset)
    return flow(grey_crop(onset_bgr, cfg.size), grey_crop(apex_bgr, cfg.size))


def channels_from_field(uv: np.ndarray, out_size: int) -> np.ndarray:
    """A flow field (H, W, 2) -> float32 (3, out_size, out_size): u, v, optical strain,
    area-resampled. Values stay in pixels of the field's grid (STSTNet's input as published)."""
    strain = optical_strain(uv)
    stack = np.dstack([uv[..., 0], uv[..., 1], strain]).astype(np.float32)  # (H, W, 3)
    if stack.shape[0] != out_size:
        stack = cv2.resize(stack, (out_size, out_size), interpolation=cv2.INTER_AREA)
    return np.ascontiguousarray(stack.transpose(2, 0, 1))  # (3, n, n)


def motion_channels(onset_bgr: np.ndarray, apex_bgr: np.ndarray, cfg: FlowConfig,
                    flow: DenseFlow | None = None) -> np.ndarray:
    """Aligned onset and apex crops (uint8 BGR, any equal size) -> the flow input of a
    flow-fed classifier, float32 (3, out_size, out_size): u, v, strain."""
    return channels_from_field(flow_field(onset_bgr, apex_bgr, cfg, flow), cfg.out_size)


def transform_field(uv: np.ndarray, mirror: bool, angle_deg: float) -> np.ndarray:
    """The flow of a mirrored and/or rotated pair, from the flow of the original pair:
    the field is resampled and its vectors turned with it (mirror negates u). Lets training
    augment cached flow without recomputing it per draw."""
    out = uv
    if mirror:
        out = out[:, ::-1].copy()
        out[..., 0] *= -1.0
    if angle_deg:
        h, w = out.shape[:2]
        # Rotating the image by +angle (OpenCV: counter-clockwise on screen, y down).
        rot = cv2.getRotationMatrix2D((w / 2.0, h / 2.0), angle_deg, 1.0)
        warped = cv2.warpAffine(out, rot, (w, h), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
        a = rot[:, :2]  # the vectors turn by the same linear part
        out = (warped.reshape(-1, 2) @ a.T).reshape(warped.shape).astype(np.float32)
    return np.ascontiguousarray(out, dtype=np.float32)


@dataclass
class FlowFields:
    """How the flow input is made (every flow-fed config has these fields).

    Attributes:
        flow_size: side of the grey crops the onset -> apex flow is computed on (STSTNet: 128).
        flow_preset: OpenCV DIS preset: ultrafast, fast or medium (STSTNet-like: medium).
        flow_out_size: side of the (3, n, n) u, v, strain input the network sees (STSTNet: 28).
        flow_aux_weight: with flow_input, the frames' head and the flow branch each also get
            the cross-entropy of their own logits, weighted by this (0: only their sum's), so
            the flow branch still learns when the frames' head alone already fits the
            training set (it memorises identities quickly).
    """

    flow_size: int = 128
    flow_preset: str = "medium"
    flow_out_size: int = 28
    flow_aux_weight: float = 1.0

    @property
    def flow(self) -> FlowConfig:
        return FlowConfig(size=self.flow_size, preset=self.flow_preset, out_size=self.flow_out_size)

    def check_flow(self, name: str) -> None:
        if self.flow_preset not in PRESETS:
            raise ValueError(f"{name}: flow_preset={self.flow_preset!r}; choose one of {', '.join(PRESETS)}")
        if not 0.0 <= self.flow_aux_weight <= 10.0:
            raise ValueError(f"{name}: flow_aux_weight={self.flow_aux_weight}; choose a weight in [0, 10]")
        if not 16 <= self.flow_size <= 512 or not 8 <= self.flow_out_size <= self.flow_size:
            raise ValueError(
                f"{name}: flow_size={self.flow_size}, flow_out_size={self.flow_out_size}; need "
                "16 <= flow_size <= 512 and 8 <= flow_out_size <= flow_size (STSTNet: 128 and 28)"
            )
