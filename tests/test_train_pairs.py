"""Augmentation and datasets: a pair shares its mirror/rotation, expansion sets hold the
frame and m-1 variants, and every item is a function of (seed, epoch, index)."""

import numpy as np
import pytest
import torch
from train_data_helpers import make_cache

from train.augment import augment_pair, expansion_set, pair_transforms, rotation_degrees
from train.config import AugmentConfig
from train.pairs import ExpansionPairDataset, PairDataset, load_rows, make_loader


@pytest.fixture(scope="module")
def rows(tmp_path_factory):
    cache = make_cache(tmp_path_factory.mktemp("cache"), subjects=2)
    return load_rows([cache])


def _face(seed=0, size=48):
    rng = np.random.default_rng(seed)
    return rng.integers(0, 256, (size, size, 3), dtype=np.uint8)


def test_pair_shares_mirror_and_rotation():
    cfg = AugmentConfig(max_rotation_deg=10.0)
    img = _face()
    seen_flip = set()
    for s in range(40):
        o, a = augment_pair(img, img.copy(), np.random.default_rng(s), cfg)
        assert np.array_equal(o, a)  # same transform on both frames: no fake motion
        m_o, _, flip = pair_transforms(np.random.default_rng(s), cfg, 48)
        assert -10.0 <= rotation_degrees(m_o) <= 10.0
        seen_flip.add(flip)
    assert seen_flip == {True, False}


def test_live_like_jitter_moves_only_the_apex():
    cfg = AugmentConfig(max_rotation_deg=0.0, mirror=False, rigid_px=2.0, rigid_deg=1.0, sensor_noise_std=0.0)
    img = _face()
    o, a = augment_pair(img, img.copy(), np.random.default_rng(3), cfg)
    assert np.array_equal(o, img)
    assert not np.array_equal(a, img)
    noisy = AugmentConfig(max_rotation_deg=0.0, mirror=False, sensor_noise_std=3.0)
    o, a = augment_pair(img, img.copy(), np.random.default_rng(3), noisy)
    assert not np.array_equal(o, a)  # independent noise per frame
    assert np.abs(o.astype(int) - img).mean() < 4


def test_expansion_set_is_frame_plus_distinct_variants():
    cfg = AugmentConfig(expansion_m=4)
    img = _face()
    out = expansion_set(img, np.random.default_rng(0), cfg)
    assert len(out) == 4 and out[0] is img
    grays = [v for v in out[1:] if np.array_equal(v[..., 0], v[..., 1]) and np.array_equal(v[..., 1], v[..., 2])]
    assert len(grays) == 1  # one of each of the three variants
    for v in out[1:]:
        assert v.shape == img.shape and v.dtype == np.uint8 and not np.array_equal(v, img)


def test_items_depend_on_seed_epoch_index_only(rows):
    cfg = AugmentConfig(repeats=3)
    a = ExpansionPairDataset(rows, 32, cfg, seed=7)
    b = ExpansionPairDataset(rows, 32, cfg, seed=7)
    assert len(a) == 3 * len(rows)
    for i in (0, 5):
        xa, xb = a[i], b[i]
        assert xa[0].shape == (3, 3, 32, 32)
        assert torch.equal(xa[0], xb[0]) and torch.equal(xa[1], xb[1])
    b.set_epoch(1)
    assert any(not torch.equal(a[i][0], b[i][0]) for i in range(len(a)))
    labelled = [{**r, "label": k % 3} for k, r in enumerate(rows)]
    p = PairDataset(labelled, 32, None, seed=0)  # evaluation: no augmentation, each row once
    x_o, x_a, y, idx, flow = p[4]
    assert len(p) == len(rows) and x_o.shape == (3, 32, 32) and int(y) == 1 and idx == 4
    assert flow.numel() == 0  # no flow asked for
    assert torch.equal(p[4][0], p[4][0])


def test_loader_order_is_seeded_by_epoch_and_sharded(rows):
    ds = PairDataset([{**r, "label": 0} for r in rows], 32, None, seed=0)

    def order(seed, epoch, rank=0, world=1):
        loader, sampler = make_loader(ds, 2 * world, seed=seed, shuffle=True, rank=rank, world_size=world)
        sampler.set_epoch(epoch)
        return [int(i) for batch in loader for i in batch[3]]

    assert order(0, 0) == order(0, 0)
    assert order(0, 0) != order(0, 1) or order(0, 0) != order(0, 2)
    assert sorted(order(0, 0)) == list(range(len(ds)))
    both = order(0, 0, 0, 2) + order(0, 0, 1, 2)
    assert set(both) == set(range(len(ds)))
