"""MIACNet with MA2MI pre-training (Li, Niu, Zhao, arXiv 2405.16451): its `Method`, its
pre-training data and loss. Registered as `--method miacnet` (`--model miacnet` for the
classifier commands) and `--method ma2mi` (the pre-training paradigm's name, the same
method).
"""

from __future__ import annotations


import numpy as np
import torch
from torch import nn
from torch.utils.data import Dataset

import moext
from moext.modeling.ma2mi_losses import ma2mi_diagnostics, ma2mi_loss, sample_pair_indices
from moext.modeling.miacnet import MIACNetConfig
from moext.preprocess import crops_to_tensor
from train.augment import augment_pair
from train.config import TrainError
from train.pairs import CropCache
from train.methods import Method, register_method


class MA2MIPairDataset(Dataset):
    """Frame pairs (I_t, I_{t+δ}) along each row's clip for MA2MI pre-training, (3, S, S) each.

    A row's clip is its `frames` list (aligned crops from the onset on, in frame order, every
    `--frame-stride` source frames, so δ counts entries of that list); a row without at least
    two `frames` contributes its (onset, apex) pair instead. Each item draws its own (t, δ)
    and the shared mirror/rotation from `default_rng([seed, epoch, item])`, like the other
    datasets, so resumed and DDP runs replay the same pairs.
    """

    def __init__(self, rows, cfg: MIACNetConfig, augment, seed: int):
        if not rows:
            raise TrainError("no samples to pre-train on after filtering; check the manifest")
        self.clips = [list(r["frames"]) if len(r.get("frames") or []) >= 2 else [r["onset"], r["apex"]]
                      for r in rows]
        self.image_size, self.augment, self.seed, self.cfg = cfg.image_size, augment, seed, cfg
        self.epoch = 0
        self.read = CropCache()

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return len(self.clips) * (self.augment.repeats if self.augment else 1)

    def __getitem__(self, i: int):
        clip = self.clips[i % len(self.clips)]
        rng = np.random.default_rng([self.seed, self.epoch, i])
        t, td = sample_pair_indices(len(clip), self.cfg, rng)
        a, b = self.read(clip[t]), self.read(clip[td])
        if self.augment is not None:
            a, b = augment_pair(a, b, rng, self.augment)
        x = crops_to_tensor(np.stack([a, b]), self.image_size)  # (2, 3, S, S)
        return x[0], x[1]


def _ma2mi_loss(model: nn.Module, batch) -> tuple[torch.Tensor, dict[str, float]]:
    x_t, x_td = batch  # (B, 3, S, S) each: I_t and I_{t+δ}
    losses = ma2mi_loss(model, x_t, x_td)
    return losses.total, losses.items()


def _ma2mi_report(model: nn.Module, rows, cfg: MIACNetConfig) -> dict:
    from torch.utils.data import DataLoader

    from moext.modeling.losses import learned_motion
    from train.methods import REPORT_PAIRS

    # Un-augmented pairs with a fixed draw of (t, δ), the same for every report.
    ds = MA2MIPairDataset(rows[:REPORT_PAIRS], cfg, None, 0)
    d = ma2mi_diagnostics(model, DataLoader(ds, batch_size=20))
    ok, verdict = learned_motion(d, loss="the latent loss", copy="copying z_t", code="C_Δ")
    return {"diagnostics": d, "learned_motion": ok, "verdict": verdict}


register_method(
    Method(
        name="miacnet",
        config_cls=moext.MIACNetConfig,
        pretrain_kind="miacnet-pretrain",
        classifier_kind="miacnet",
        build_pretrain=moext.MA2MIPretrain,
        build_classifier=moext.MIACNet,
        pretrain_loss=_ma2mi_loss,
        pretrain_dataset=MA2MIPairDataset,
        transfer=moext.transfer_ma2mi,
        ablations={"no-position-branch": {"use_position_branch": False}},
        pretext_report=_ma2mi_report,
    ),
    # `--method ma2mi` names the pre-training paradigm; it is the same method as `--model miacnet`.
    help="MIACNet, pre-trained by MA2MI's latent reconstruction",
    aliases=("ma2mi",),
)
