"""A tiny overfit: the pre-training loss falls and the classifier reaches 100 % on a few pairs."""

import torch

from moext import MoExtClassifier, MoExtPretrain, transfer_pretrained
from moext.modeling.losses import pretraining_loss


def _pairs(n: int, size: int = 64):
    """Onset/apex pairs whose apex adds a class-specific blob: a toy 'motion'."""
    g = torch.Generator().manual_seed(0)
    # smooth 'faces' (upsampled 8x8 noise): something a 32-d code can reconstruct
    x_o = torch.nn.functional.interpolate(
        torch.randn(n, 3, 8, 8, generator=g), size=size, mode="bilinear"
    )
    labels = torch.arange(n) % 3
    x_a = x_o.clone()
    for i, c in enumerate(labels.tolist()):
        r = 8 + 20 * c
        x_a[i, :, r : r + 12, 16:48] += 1.5
    return x_o, x_a, labels


def test_pretraining_loss_goes_down(tiny_cfg):
    torch.manual_seed(0)
    model = MoExtPretrain(tiny_cfg)
    x_o, x_a, _ = _pairs(4)
    m = 3
    # expansion sets: the frame itself plus two noisy copies
    exp = lambda x: torch.stack([x] + [x + 0.1 * torch.randn_like(x) for _ in range(m - 1)], 1)  # noqa: E731
    xo, xa = exp(x_o), exp(x_a)
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    history = []
    for _ in range(30):
        loss = pretraining_loss(model, xo, xa).total
        history.append(loss.item())
        opt.zero_grad()
        loss.backward()
        opt.step()
    # training-mode losses (batch statistics), the last few against the first
    assert sum(history[-3:]) / 3 < 0.6 * history[0], history


def test_classifier_reaches_full_training_accuracy(tiny_cfg):
    torch.manual_seed(0)
    pre = MoExtPretrain(tiny_cfg)
    clf = MoExtClassifier(tiny_cfg)
    transfer_pretrained(pre, clf)
    x_o, x_a, y = _pairs(6)
    opt = torch.optim.Adam(clf.parameters(), lr=3e-3)
    for _ in range(150):
        loss = torch.nn.functional.cross_entropy(clf(x_o, x_a), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
    # 60 steps leave BatchNorm's running averages behind the weights; re-estimate them on
    # the training pairs (weights untouched) so eval mode sees what training saw.
    with torch.no_grad():
        for bn in (m for m in clf.modules() if isinstance(m, torch.nn.BatchNorm2d)):
            bn.reset_running_stats()
            bn.momentum = None  # cumulative average over the passes below
        clf(x_o, x_a)
    clf.eval()
    with torch.no_grad():
        acc = (clf(x_o, x_a).argmax(1) == y).float().mean().item()
    assert acc == 1.0
