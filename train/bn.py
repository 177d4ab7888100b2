"""Re-estimate a trained classifier's BatchNorm running statistics on its training pairs.

Why: a CPU-sized schedule is a few hundred steps, and BatchNorm running statistics are an
exponential average over them, weighted toward the augmented batches of the last steps. With
torchvision's MobileNetV3 momentum 0.01 they had not even left their initial values (variance
1 while the deep activations vary ~1000x less): in eval mode every input gave the same output
(measured: identical probabilities for all 180 training pairs of the synthetic set). The
backbone now uses momentum 0.1 (moext/modeling/backbone.py), which settles; this pass still
makes the eval statistics exact for the final weights rather than a trailing average. One
pass in train mode with a cumulative average (momentum None) over the un-augmented training
pairs sets them to what the weights actually produce; the weights themselves do not change.
This is what `torch.optim.swa_utils.update_bn` does, for a model that takes (onset, apex)
pairs: MoExt and MIACNet classifiers both have `forward(x_o, x_a)` (MIACNet runs both frames
as one backbone batch, so its statistics cover onset and apex alike, as in training).
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn
from torch.utils.data import DataLoader

from train.methods import classify
from train.pairs import pair_dataset


@torch.no_grad()
def reestimate_bn(model: nn.Module, rows: list[dict[str, Any]], batch_size: int = 20) -> nn.Module:
    """Set every BatchNorm's running mean/var to the cumulative average over `rows`' pairs
    (no augmentation, the eval-time inputs); returns `model` in eval mode. Dropout is off
    during the pass (it would change what the later layers' statistics see)."""
    bns = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    momenta = [m.momentum for m in bns]
    model.eval()
    for m in bns:
        m.reset_running_stats()
        m.momentum = None  # cumulative moving average over the whole pass
        m.train()
    device = next(model.parameters()).device
    for x_o, x_a, _, _, flow in DataLoader(pair_dataset(model, rows, None, 0), batch_size=batch_size):
        # (B, 3, S, S) x 2 (+ flow) -> logits; only the BN buffers change
        classify(model, x_o.to(device), x_a.to(device), flow.to(device))
    for m, mom in zip(bns, momenta):
        m.momentum = mom
    return model.eval()
