"""Each pre-training loss against a hand computation (eq. 5-9)."""

import math

import pytest
import torch

from moext import MoExtPretrain
from moext.modeling import Projection
from moext.modeling.losses import (
    pretraining_loss,
    reconstruction_loss,
    shape_shape_loss,
    shape_texture_loss,
)


def identity_projection(dim: int = 2) -> Projection:
    """f(x) = x / |x|: Linear set to the identity, then the L2 normalisation of f."""
    f = Projection(dim, dim)
    with torch.no_grad():
        f.fc.weight.copy_(torch.eye(dim))
        f.fc.bias.zero_()
    return f


def test_reconstruction_loss_is_mean_absolute_error():
    a = torch.tensor([[1.0, -2.0], [0.5, 0.0]])
    b = torch.tensor([[0.0, -2.0], [1.5, 2.0]])
    assert reconstruction_loss(a, b).item() == pytest.approx((1 + 0 + 1 + 2) / 4)


def test_shape_texture_loss_by_hand_including_the_hinge_at_zero():
    s = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    t = torch.tensor([[2.0, 0.0], [0.0, -3.0]])  # f(t1) = f(s1); f(t2) = -f(s2)
    eps = 0.3
    # anchor: f(mean S) = (1, 1)/sqrt2; |f(S_bar) - f(S_i)| = sqrt(2 - sqrt2) for both.
    pos = math.sqrt(2 - math.sqrt(2))
    # instance 1: texture coincides with shape -> hinge active: pos - 0 + eps
    # instance 2: texture opposite (distance 2) -> pos - 2 + eps < 0 -> hinge at zero
    expected = (max(0.0, pos - 0 + eps) + max(0.0, pos - 2 + eps)) / 2
    assert pos - 2 + eps < 0
    got = shape_texture_loss(s, t, identity_projection(), eps)
    assert got.item() == pytest.approx(expected, abs=1e-6)


def test_shape_texture_loss_is_zero_when_all_hinges_are_inactive():
    s = torch.tensor([[1.0, 0.0], [1.0, 0.01]])
    t = -s
    assert shape_texture_loss(s, t, identity_projection(), 0.3).item() == 0.0


def test_shape_shape_loss_by_hand():
    # one pair, m = 2: instances 0-1 are the onset expansion set, 2-3 the apex set
    s = torch.tensor([[[1.0, 0.0], [0.0, 1.0], [1.0, 0.0], [-1.0, 0.0]]])
    is_apex = torch.tensor([False, False, True, True])
    eps = 0.3
    # same-set pairs contribute d^2; cross-set pairs max(0, eps - d)^2
    per_pair = {
        (0, 1): 2.0,  # same (onset), d = sqrt2
        (0, 2): eps**2,  # cross, d = 0: full penalty
        (0, 3): 0.0,  # cross, d = 2: hinge at zero
        (1, 2): 0.0,  # cross, d = sqrt2
        (1, 3): 0.0,  # cross, d = sqrt2
        (2, 3): 4.0,  # same (apex), d = 2
    }
    expected = sum(per_pair.values()) / len(per_pair)
    got = shape_shape_loss(s, is_apex, identity_projection(), eps)
    assert got.item() == pytest.approx(expected, abs=1e-6)


def test_shape_shape_loss_averages_over_pairs_in_batch():
    s1 = torch.tensor([[[1.0, 0.0], [1.0, 0.0]]])  # identical onset/apex: eps^2
    s2 = torch.tensor([[[1.0, 0.0], [-1.0, 0.0]]])  # far apart: 0
    is_apex = torch.tensor([False, True])
    f = identity_projection()
    got = shape_shape_loss(torch.cat([s1, s2]), is_apex, f, 0.5)
    assert got.item() == pytest.approx((0.25 + 0.0) / 2)


def test_total_is_eq9_weighted_sum(tiny_cfg):
    model = MoExtPretrain(tiny_cfg)
    x_o = torch.randn(2, 3, 3, 64, 64)
    losses = pretraining_loss(model, x_o, x_o + 0.2)
    want = losses.re + tiny_cfg.alpha_st * losses.st + tiny_cfg.alpha_ss * losses.ss
    assert losses.total.item() == pytest.approx(want.item(), rel=1e-6)
    assert (tiny_cfg.alpha_st, tiny_cfg.alpha_ss) == (0.5, 1.0)  # the paper's weights
