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


def test_shape_texture_loss_anchor_is_the_batch_mean_before_f():
    """eq. 6: the anchor is f(S_bar) with S_bar the mean of the shape features, not the mean
    of f(S): with features of different norms the two differ."""
    s = torch.tensor([[2.0, 0.0], [0.0, 1.0]])
    t = 3 * s  # f(T) = f(S): every hinge is active, so the loss is mean(pos) + eps
    eps = 0.2
    anchor = torch.tensor([2.0, 1.0]) / math.sqrt(5)  # f((1, 0.5)); mean of f(S) would be (1, 1)/sqrt2
    fs = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    pos = (anchor - fs).norm(dim=1)
    neg = torch.zeros(2)
    expected = torch.relu(pos - neg + eps).mean().item()
    assert shape_texture_loss(s, t, identity_projection(), eps).item() == pytest.approx(expected, abs=1e-6)
    wrong = torch.relu((torch.tensor([1.0, 1.0]) / math.sqrt(2) - fs).norm(dim=1) - neg + eps).mean().item()
    assert abs(expected - wrong) > 1e-3  # the test tells the two anchors apart


def test_shape_shape_loss_by_hand_eq8():
    # one pair, m = 2: instances 0-1 are the onset expansion set, 2-3 the apex set
    s = torch.tensor([[[1.0, 0.0], [0.0, 1.0], [1.0, 0.0], [-1.0, 0.0]]])
    is_apex = torch.tensor([False, False, True, True])
    eps = 0.3
    # eq. 8: same-set pairs add d (not squared), cross-set pairs max(0, eps - d); every
    # ordered (j, k) of the 4 x 4 set, divided by (2m)^2 = 16.
    unordered = {
        (0, 1): math.sqrt(2),  # same (onset), d = sqrt2
        (0, 2): eps,  # cross, d = 0: full penalty
        (0, 3): 0.0,  # cross, d = 2: hinge at zero
        (1, 2): 0.0,  # cross, d = sqrt2
        (1, 3): 0.0,  # cross, d = sqrt2
        (2, 3): 2.0,  # same (apex), d = 2
    }
    expected = 2 * sum(unordered.values()) / 16  # (j, k) and (k, j); the diagonal adds 0
    got = shape_shape_loss(s, is_apex, identity_projection(), eps)
    assert got.item() == pytest.approx(expected, abs=1e-6)


def test_shape_shape_loss_averages_over_pairs_in_batch():
    s1 = torch.tensor([[[1.0, 0.0], [1.0, 0.0]]])  # identical onset/apex: eps for (0,1) and (1,0)
    s2 = torch.tensor([[[1.0, 0.0], [-1.0, 0.0]]])  # far apart: 0
    is_apex = torch.tensor([False, True])
    f = identity_projection()
    got = shape_shape_loss(torch.cat([s1, s2]), is_apex, f, 0.5)
    assert got.item() == pytest.approx((2 * 0.5 / 4 + 0.0) / 2)


@pytest.mark.parametrize("maps", [False, True])
def test_shape_shape_loss_matches_a_loop_over_every_j_k(maps):
    """eq. 8 recomputed independently: a plain loop over all (j, k), j == k included."""
    torch.manual_seed(3)
    m, eps = 3, 0.4
    s = torch.randn(2, 2 * m, 5, 2, 3) if maps else torch.randn(2, 2 * m, 5)
    is_apex = torch.arange(2 * m) >= m
    f = Projection(5, 4)
    with torch.no_grad():
        z = f(s)
        per_item = []
        for b in range(len(s)):
            total = 0.0
            for j in range(2 * m):
                for k in range(2 * m):
                    d = float(torch.dist(z[b, j], z[b, k]))
                    total += d if bool(is_apex[j]) == bool(is_apex[k]) else max(0.0, eps - d)
            per_item.append(total / (2 * m) ** 2)
        got = shape_shape_loss(s, is_apex, f, eps)
    assert got.item() == pytest.approx(sum(per_item) / len(per_item), rel=1e-5)


def test_shape_shape_loss_has_finite_gradients_with_identical_instances():
    s = torch.ones(1, 4, 3, requires_grad=True)  # every distance 0, the diagonal included
    shape_shape_loss(s, torch.tensor([False, False, True, True]), Projection(3, 2), 0.3).backward()
    assert torch.isfinite(s.grad).all()


def test_total_is_eq9_weighted_sum(tiny_cfg):
    model = MoExtPretrain(tiny_cfg)
    x_o = torch.randn(2, 3, 3, 64, 64)
    losses = pretraining_loss(model, x_o, x_o + 0.2)
    want = losses.re + tiny_cfg.alpha_st * losses.st + tiny_cfg.alpha_ss * losses.ss
    assert losses.total.item() == pytest.approx(want.item(), rel=1e-6)
    assert (tiny_cfg.alpha_st, tiny_cfg.alpha_ss) == (0.5, 1.0)  # the paper's weights


@pytest.mark.parametrize("arch", ["paper", "unet"])
def test_pretext_diagnostics_names_copy_and_motion_baselines(tiny_cfg, arch):
    import dataclasses

    from moext.modeling.losses import learned_motion, pretext_diagnostics

    model = MoExtPretrain(dataclasses.replace(tiny_cfg, arch=arch))
    x_o = torch.randn(4, 3, 64, 64)
    x_a = x_o + 0.05 * torch.randn_like(x_o)
    d = pretext_diagnostics(model, [(x_o, x_a)])
    assert d["re_copy_onset"] == pytest.approx(reconstruction_loss(x_a, x_o).item(), rel=1e-5)
    assert {"re", "re_motion_zeroed", "re_no_motion", "shape_cosine", "dead_units"} <= set(d) and d["pairs"] == 4
    ok, text = learned_motion(d)
    assert not ok and "NOT learned motion" in text  # an untrained reconstructor never beats copying
    ok, text = learned_motion({**d, "re": 0.5 * d["re_copy_onset"], "re_motion_zeroed": d["re_copy_onset"]})
    assert ok and "learned motion" in text
