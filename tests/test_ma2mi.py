"""MA2MI pre-training: the pretext loss, pair sampling, gradients, a falling reconstruction
loss on generated moving-blob "macro clips", and the real `moext-train` commands end to end.

Everything here runs on generated data (moving Gaussian blobs on smooth random textures, not
faces); the numbers only show that the machinery learns, not how well it recognises MEs.
"""

import json
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from moext import MA2MIPretrain, MIACNetConfig, load_checkpoint
from moext.modeling.ma2mi_losses import ma2mi_loss, sample_pair_indices


def tiny(**kw) -> MIACNetConfig:
    base = dict(
        backbone="mobilenet_v3_small", image_size=64, action_channels=16, position_channels=8,
        fusion_channels=16, latent_channels=4, latent_width=8, dropout=0.0,
    )
    base.update(kw)
    return MIACNetConfig(**base)


def blob_clips(n: int, frames: int = 8, size: int = 64, seed: int = 0) -> np.ndarray:
    """(n, frames, size, size, 3) uint8 BGR clips: a blob drifting 1-3 px per frame over a
    smooth random background, the stand-in for a macro-expression clip."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32)
    out = np.empty((n, frames, size, size, 3), np.uint8)
    for i in range(n):
        bg = cv2.resize(rng.uniform(60, 190, (6, 6, 3)).astype(np.float32), (size, size),
                        interpolation=cv2.INTER_CUBIC)
        p = rng.uniform(size * 0.3, size * 0.7, 2)
        v = rng.uniform(1, 3, 2) * rng.choice([-1, 1], 2)
        colour = rng.uniform(-90, 90, 3)
        for t in range(frames):
            cx, cy = p + v * t
            g = np.exp(-((xx - cx) ** 2 + (yy - cy) ** 2) / (2 * (size / 12) ** 2))
            out[i, t] = np.clip(bg + g[..., None] * colour, 0, 255).astype(np.uint8)
    return out


def clip_pairs(clips: np.ndarray, cfg: MIACNetConfig, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    from moext.preprocess import crops_to_tensor

    rng = np.random.default_rng(seed)
    idx = [sample_pair_indices(clips.shape[1], cfg, rng) for _ in range(len(clips))]
    a = crops_to_tensor(np.stack([c[t] for c, (t, _) in zip(clips, idx)]), cfg.image_size)
    b = crops_to_tensor(np.stack([c[u] for c, (_, u) in zip(clips, idx)]), cfg.image_size)
    return a, b


@pytest.mark.parametrize("use_position_branch", [True, False])
def test_every_parameter_gets_a_gradient_from_the_pretext_loss(use_position_branch):
    model = MA2MIPretrain(tiny(use_position_branch=use_position_branch))
    x_t = torch.randn(3, 3, 64, 64)
    losses = ma2mi_loss(model, x_t, x_t + 0.3 * torch.randn_like(x_t))
    assert set(losses.items()) == {"total", "latent", "pixel", "copy"}
    torch.testing.assert_close(losses.total, losses.latent + model.cfg.alpha_pixel * losses.pixel)
    losses.total.backward()
    missing = [n for n, p in model.named_parameters() if p.grad is None or p.grad.abs().sum() == 0]
    assert not missing, f"parameters without gradient: {missing}"
    assert torch.isfinite(losses.total)


def test_shapes_and_stop_gradient_on_latent_targets():
    cfg = tiny()
    model = MA2MIPretrain(cfg)
    x_t = torch.randn(2, 3, 64, 64)
    out = model(x_t, x_t + 0.2)
    assert out["z_hat"].shape == out["z_t"].shape == out["z_td"].shape == (2, cfg.latent_channels, 8, 8)
    assert out["x_rec"].shape == (4, 3, 64, 64)
    # the latent loss alone must not reach the autoencoder: it would shape its own target
    torch.nn.functional.mse_loss(out["z_hat"], out["z_td"]).backward()
    ae = [p.grad for p in model.autoencoder.parameters()]
    assert all(g is None or g.abs().sum() == 0 for g in ae)
    assert model.action.code.weight.grad.abs().sum() > 0
    assert model.backbone.body[0][0].weight.grad.abs().sum() > 0


def test_pair_sampling_draws_every_delta_in_range_and_stays_in_the_clip():
    cfg = MIACNetConfig(delta_min=2, delta_max=4)
    rng = np.random.default_rng(0)
    pairs = [sample_pair_indices(10, cfg, rng) for _ in range(400)]
    deltas = {b - a for a, b in pairs}
    assert deltas == {2, 3, 4}
    assert all(0 <= a < b <= 9 for a, b in pairs)
    # a clip shorter than delta_max + 1 still gives pairs, with the gap clipped to it
    assert all(b - a <= 2 for a, b in (sample_pair_indices(3, cfg, rng) for _ in range(50)))
    with pytest.raises(ValueError, match="at least 2 frames"):
        sample_pair_indices(1, cfg, rng)


@pytest.mark.slow
def test_reconstruction_loss_falls_on_generated_macro_clips():
    torch.manual_seed(0)
    cfg = tiny(delta_min=1, delta_max=3)
    model = MA2MIPretrain(cfg)
    train_clips = blob_clips(8, seed=0)
    held_x = clip_pairs(blob_clips(6, seed=1), cfg, seed=99)  # pairs never trained on
    seen_x = clip_pairs(train_clips, cfg, seed=1000)

    def losses(x):
        with torch.no_grad():
            return ma2mi_loss(model, *x).items()

    before = losses(held_x)
    # the predictor starts as the copy guess z_t: its latent loss is the copy baseline's
    assert before["latent"] == pytest.approx(before["copy"], rel=0.05)
    opt = torch.optim.Adam(model.parameters(), lr=2e-3)
    for step in range(30):
        loss = ma2mi_loss(model, *clip_pairs(train_clips, cfg, seed=step)).total
        opt.zero_grad()
        loss.backward()
        opt.step()
    after = losses(held_x)
    assert after["total"] < 0.75 * before["total"], (before, after)
    assert after["pixel"] < 0.75 * before["pixel"], (before, after)
    assert after["latent"] < before["latent"], (before, after)
    # on clips it has seen, the motion code beats copying I_t (latent/copy measured 0.895 at
    # 30 steps; held-out pairs stay near 1.06 with 8 clips: that needs more data, not a test)
    seen = losses(seen_x)
    assert seen["latent"] < 0.95 * seen["copy"], seen


# ----------------------------------------------------------------- the real commands


TINY_SET = [
    "--backbone", "mobilenet_v3_small", "--image-size", "64",
    "--set", "action_channels=8", "--set", "position_channels=8", "--set", "fusion_channels=8",
    "--set", "latent_channels=4", "--set", "latent_width=8", "--set", "delta_max=3",
]
EMOTIONS = ("disgust", "happiness", "surprise")  # CDE: negative, positive, surprise


def write_cache(root: Path, subjects: int = 2) -> Path:
    """A preprocess cache (manifest.jsonl + PNG crops): per subject one macro clip with
    `frames` (for MA2MI) and one micro pair per CDE class whose blob place is the class."""
    root.mkdir(parents=True, exist_ok=True)
    rows = []
    clips = blob_clips(subjects, frames=6, size=64, seed=3)
    for s in range(subjects):
        subject = f"sub{s + 1:02d}"
        rel = Path("crops") / subject
        (root / rel).mkdir(parents=True, exist_ok=True)
        names = []
        for t, img in enumerate(clips[s]):
            names.append(str(rel / f"macro_{t}.png"))
            cv2.imwrite(str(root / names[-1]), img)
        rows.append(dict(dataset="macro", subject=subject, sample="m0", emotion="happiness", kind="macro",
                         onset_index=0, apex_index=5, offset_index=5, onset=names[0], apex=names[-1],
                         frames=names, source=[], warnings=[], status="ok", reason=None))
        for c, emotion in enumerate(EMOTIONS):
            onset = clips[s, 0].copy()
            apex = onset.copy()
            y0 = 4 + 20 * c
            apex[y0 : y0 + 14, 12:52] = np.clip(apex[y0 : y0 + 14, 12:52].astype(int) + 60, 0, 255)
            paths = {}
            for role, img in (("onset", onset), ("apex", apex)):
                paths[role] = str(rel / f"ep{c}_{role}.png")
                cv2.imwrite(str(root / paths[role]), img)
            rows.append(dict(dataset="casme2", subject=subject, sample=f"ep{c}", emotion=emotion,
                             kind="micro", onset_index=0, apex_index=4, offset_index=8, frames=[],
                             source=[], warnings=[], status="ok", reason=None, **paths))
    with open(root / "manifest.jsonl", "w") as fh:
        for r in rows:
            fh.write(json.dumps(r) + "\n")
    from train_data_helpers import mark_landmarker

    mark_landmarker(root, "casme2", "macro")
    return root


def test_ma2mi_dataset_samples_pairs_along_frames(tmp_path):
    from train.config import AugmentConfig
    from train.pairs import load_rows
    from train.methods import get_method

    cache = write_cache(tmp_path / "cache", subjects=1)
    rows = [r for r in load_rows([cache]) if r["kind"] == "macro"]
    method = get_method("ma2mi")
    ds = method.pretrain_dataset(rows, tiny(delta_min=2, delta_max=2), AugmentConfig(repeats=4, mirror=False,
                                                                                     max_rotation_deg=0), 0)
    assert len(ds) == 4
    from moext.preprocess import crops_to_tensor

    frames = crops_to_tensor(np.stack([cv2.imread(p) for p in rows[0]["frames"]]), 64)
    for i in range(len(ds)):
        x_t, x_td = ds[i]
        t = int(np.argmin([(x_t - f).abs().sum() for f in frames]))
        u = int(np.argmin([(x_td - f).abs().sum() for f in frames]))
        assert torch.equal(x_t, frames[t]) and torch.equal(x_td, frames[u]) and u - t == 2


@pytest.mark.slow
def test_cli_pretrain_ma2mi_then_finetune_miacnet(tmp_path):
    from train.cli import app

    torch.set_num_threads(1)
    cache = write_cache(tmp_path / "cache")
    runner = CliRunner()
    common = ["--epochs", "1", "--batch-size", "4", "--repeats", "1", "--quiet"]
    res = runner.invoke(app, ["pretrain", str(cache), "--out", str(tmp_path / "pre"), "--method", "ma2mi",
                              *common, *TINY_SET])
    assert res.exit_code == 0, res.output
    pre_path = tmp_path / "pre" / "pretrained.safetensors"
    pre, meta = load_checkpoint(pre_path)
    assert meta["kind"] == "miacnet-pretrain" and isinstance(pre, MA2MIPretrain)
    assert pre.cfg.delta_max == 3 and pre.cfg.action_channels == 8
    hist = meta["extra"]["history"]
    assert len(hist) == 1 and {"total", "latent", "pixel", "copy"} <= set(hist[0])
    assert meta["extra"]["macro_pairs"] == 2
    assert (tmp_path / "pre" / "loss_curves.png").is_file()

    res = runner.invoke(app, ["finetune", str(cache), "--out", str(tmp_path / "ft"), "--model", "miacnet",
                              "--protocol", "cde", "--init", str(pre_path), *common])
    assert res.exit_code == 0, res.output
    clf, meta = load_checkpoint(tmp_path / "ft" / "classifier.safetensors")
    assert meta["kind"] == "miacnet" and clf.cfg.num_classes == 3
    n_transfer = sum(k.startswith(("backbone.", "action.", "position.")) for k in pre.state_dict())
    assert meta["extra"]["transferred_tensors"] == n_transfer > 0

    # a MoExt checkpoint as --init of a MIACNet run is a user error naming the fix, no traceback
    res = runner.invoke(app, ["finetune", str(cache), "--out", str(tmp_path / "bad"), "--model", "miacnet",
                              "--protocol", "cde", "--init", str(tmp_path / "ft" / "classifier.safetensors"),
                              *common])
    assert res.exit_code == 2 and "pretrain --method miacnet" in res.output
