"""Heat maps of MIACNet's action branch (`moext.explain`) and `moext-train explain`."""

from types import SimpleNamespace

import cv2
import numpy as np
import pytest
import torch
import torch.nn.functional as F
from typer.testing import CliRunner

from moext import MA2MIPretrain, MIACNet, MIACNetConfig, ModelConfig, MoExtClassifier, save_checkpoint
from moext.explain import action_heatmap, explain_crops, overlay_heatmap


class LinearAction(torch.nn.Module):
    """A stand-in whose action code is known exactly: f = 8x8 average pool (4x4 cells of a
    32 px input), C = f_a - f_o, logits = (+sum C, -sum C). Tests the heat-map arithmetic."""

    def __init__(self):
        super().__init__()
        self.cfg = SimpleNamespace(image_size=32, class_names=["up", "down"])
        self.dummy = torch.nn.Parameter(torch.zeros(()))

    def forward_features(self, x):
        return F.avg_pool2d(x, 8)  # (B, 3, 4, 4)

    def action_code(self, f_o, f_a):
        return f_a - f_o  # (B, 3, 4, 4)

    def head_from_code(self, c, f_o):
        s = c.sum(dim=(1, 2, 3))
        return torch.stack([s, -s], dim=1)  # (B, 2)


def brightened(cell: tuple[int, int], amount: float = 1.0):
    x_o = torch.zeros(1, 3, 32, 32)
    x_a = x_o.clone()
    r, c = cell
    x_a[:, :, 8 * r : 8 * r + 8, 8 * c : 8 * c + 8] += amount
    return x_o, x_a


def cell_of_max(heat: np.ndarray) -> tuple[int, int]:
    cells = heat.reshape(4, 8, 4, 8).mean(axis=(1, 3))
    return tuple(int(i) for i in np.unravel_index(cells.argmax(), cells.shape))


@pytest.mark.parametrize("cell", [(0, 0), (0, 3), (2, 1), (3, 3)])
@pytest.mark.parametrize("method", ["magnitude", "gradcam"])
def test_heat_map_peaks_where_the_action_is(cell, method):
    hm = action_heatmap(LinearAction(), *brightened(cell), method=method)
    assert hm.heat.shape == (32, 32) and hm.heat.dtype == np.float32
    assert hm.heat.min() >= 0.0 and hm.heat.max() == pytest.approx(1.0)
    assert cell_of_max(hm.heat) == cell
    assert hm.peak == pytest.approx(np.sqrt(3.0) if method == "magnitude" else 3.0, rel=1e-5)
    assert hm.class_index == 0 and hm.class_name == "up"
    np.testing.assert_allclose(hm.probabilities.sum(), 1.0, rtol=1e-5)


def test_gradcam_of_the_other_class_and_of_no_motion_is_empty():
    net = LinearAction()
    # class "down" has negative weights: ReLU removes the brightened cell, nothing remains
    hm = action_heatmap(net, *brightened((1, 1)), method="gradcam", class_index=1)
    assert hm.class_name == "down" and hm.peak == 0.0 and not hm.heat.any()
    x = torch.randn(1, 3, 32, 32)
    for method in ("magnitude", "gradcam"):
        hm = action_heatmap(net, x, x, method=method)
        assert hm.peak == 0.0 and not hm.heat.any()
    with pytest.raises(ValueError, match="out of range"):
        action_heatmap(net, *brightened((1, 1)), method="gradcam", class_index=2)
    with pytest.raises(ValueError, match="choose one of"):
        action_heatmap(net, x, x, method="saliency")


def tiny(**kw) -> MIACNetConfig:
    # resnet18: its BatchNorm (momentum 0.1, unit running variance at init) keeps an untrained
    # net's eval-mode features alive, so the maps are not empty
    base = dict(backbone="resnet18", image_size=64, action_channels=8, position_channels=8,
                fusion_channels=8, latent_channels=4, latent_width=8)
    base.update(kw)
    return MIACNetConfig(**base)


def test_real_miacnet_maps_are_in_range_and_leave_the_model_as_it_was():
    net = MIACNet(tiny())
    net.train()
    x_o = torch.randn(1, 3, 64, 64)
    x_a = x_o.clone()
    x_a[:, :, :24, :24] += 2.0
    for method in ("gradcam", "magnitude"):
        hm = action_heatmap(net, x_o, x_a, method=method)
        assert hm.heat.shape == (64, 64) and 0.0 <= hm.heat.min() and hm.heat.max() <= 1.0
        assert hm.peak > 0 and hm.heat.max() == pytest.approx(1.0)
    assert net.training  # restored
    assert all(p.grad is None for p in net.parameters())  # Grad-CAM touched no parameter
    pre = MA2MIPretrain(tiny())
    assert action_heatmap(pre, x_o, x_a, method="magnitude").class_index is None
    with pytest.raises(ValueError, match="magnitude"):
        action_heatmap(pre, x_o, x_a, method="gradcam")
    with pytest.raises(ValueError, match="no action branch"):
        action_heatmap(MoExtClassifier(ModelConfig(backbone="mobilenet_v3_small", image_size=64,
                                                   branch_channels=8, feature_dim=8)), x_o, x_a)


def test_overlay_and_explain_crops():
    img = np.full((50, 50, 3), 100, np.uint8)
    heat = np.zeros((10, 10), np.float32)
    heat[:5, :5] = 1.0
    out = overlay_heatmap(img, heat, alpha=0.5)
    assert out.shape == img.shape and out.dtype == np.uint8
    assert not np.array_equal(out[5, 5], out[45, 45])  # hot corner differs from the cold one
    with pytest.raises(ValueError, match="uint8"):
        overlay_heatmap(img.astype(np.float32), heat)
    onset = np.random.default_rng(0).integers(0, 255, (224, 224, 3), dtype=np.uint8)
    apex = onset.copy()
    apex[20:80, 20:80] = 255
    hm, ov = explain_crops(MIACNet(tiny()), onset, apex, method="magnitude")
    assert hm.heat.shape == (64, 64) and ov.shape == (224, 224, 3)


def _write(path, img):
    assert cv2.imwrite(str(path), img)
    return str(path)


def test_cli_explain_aligned_crops_and_user_errors(tmp_path):
    from train.cli import app

    torch.manual_seed(0)
    ckpt = save_checkpoint(MIACNet(tiny()), tmp_path / "miac.safetensors")
    other = save_checkpoint(
        MoExtClassifier(ModelConfig(backbone="mobilenet_v3_small", image_size=64, branch_channels=8,
                                    feature_dim=8)), tmp_path / "moext.safetensors")
    rng = np.random.default_rng(0)
    onset = cv2.GaussianBlur(rng.integers(40, 220, (224, 224, 3), dtype=np.uint8), (9, 9), 0)
    apex = onset.copy()
    apex[30:90, 30:110] = 250
    on, ap = _write(tmp_path / "on.png", onset), _write(tmp_path / "ap.png", apex)
    runner = CliRunner()
    out = tmp_path / "figs" / "heat.png"
    res = runner.invoke(app, ["explain", on, ap, "--checkpoint", str(ckpt), "--out", str(out), "--aligned"])
    assert res.exit_code == 0, res.output
    assert "gradcam" in res.output and "class " in res.output
    panel = cv2.imread(str(out))
    assert panel.shape == (224, 3 * 224, 3)
    np.testing.assert_array_equal(panel[:, 224:448], apex)  # the middle tile is the apex crop
    res = runner.invoke(app, ["explain", on, ap, "-c", str(ckpt), "-o", str(tmp_path / "m.png"),
                              "--aligned", "--method", "magnitude"])
    assert res.exit_code == 0 and "magnitude" in res.output

    for args, needle in [
        (["explain", on, ap, "-c", str(other), "--aligned"], "miacnet"),
        (["explain", str(tmp_path / "missing.png"), ap, "-c", str(ckpt)], "does not exist"),
        (["explain", on, ap, "-c", str(ckpt), "--aligned", "--class", "joy"], "not a class"),
        (["explain", on, ap, "-c", str(ckpt), "--aligned", "--method", "x"], "choose one of"),
    ]:
        res = runner.invoke(app, args + ["-o", str(tmp_path / "x.png")])
        assert res.exit_code == 2, (args, res.output)
        assert needle in res.output and "Traceback" not in res.output
    assert not (tmp_path / "x.png").exists()


@pytest.mark.slow
def test_cli_explain_aligns_photos_with_the_face_mesh(tmp_path):
    from skimage import data

    from train.cli import app

    ckpt = save_checkpoint(MIACNet(tiny()), tmp_path / "miac.safetensors")
    photo = np.ascontiguousarray(data.astronaut()[:, :, ::-1])  # RGB -> BGR
    apex = photo.copy()
    apex[175:205, 170:250] = np.clip(apex[175:205, 170:250].astype(int) + 40, 0, 255)  # near the mouth
    on, ap = _write(tmp_path / "on.png", photo), _write(tmp_path / "ap.png", apex)
    res = CliRunner().invoke(app, ["explain", on, ap, "-c", str(ckpt), "-o", str(tmp_path / "h.png")])
    assert res.exit_code == 0, res.output
    assert cv2.imread(str(tmp_path / "h.png")).shape == (224, 672, 3)
    blank = _write(tmp_path / "blank.png", np.full((240, 320, 3), 128, np.uint8))
    res = CliRunner().invoke(app, ["explain", blank, ap, "-c", str(ckpt), "-o", str(tmp_path / "b.png")])
    assert res.exit_code == 2 and "--aligned" in res.output
