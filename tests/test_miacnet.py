"""MIACNet: config, classifier seam, gradients, tiny overfit, checkpoints, transfer, ONNX."""

import dataclasses

import numpy as np
import pytest
import torch

from moext import (
    CheckpointError,
    MA2MIPretrain,
    MIACNet,
    MIACNetConfig,
    load_checkpoint,
    save_checkpoint,
    transfer_ma2mi,
)
from moext.checkpoint import MODEL_KINDS
from moext.modeling.backbone import BACKBONES, Backbone


def tiny(**kw) -> MIACNetConfig:
    """A MIACNet small enough to train in seconds on CPU (64 px, narrow branches)."""
    base = dict(
        backbone="mobilenet_v3_small", image_size=64, action_channels=16, position_channels=8,
        fusion_channels=16, latent_channels=4, latent_width=8, dropout=0.0,
        num_classes=3, class_names=["negative", "positive", "surprise"],
    )
    base.update(kw)
    return MIACNetConfig(**base)


def blob_pairs(n: int, size: int = 64):
    """Onset/apex pairs on smooth random 'faces'; the apex adds a blob whose place is the class."""
    g = torch.Generator().manual_seed(0)
    x_o = torch.nn.functional.interpolate(torch.randn(n, 3, 8, 8, generator=g), size=size, mode="bilinear")
    y = torch.arange(n) % 3
    x_a = x_o.clone()
    for i, c in enumerate(y.tolist()):
        r = 4 + 20 * c
        x_a[i, :, r : r + 14, 16:48] += 1.5
    return x_o, x_a, y


def test_registered_kinds():
    assert MODEL_KINDS["miacnet"] == (MIACNet, MIACNetConfig)
    assert MODEL_KINDS["miacnet-pretrain"] == (MA2MIPretrain, MIACNetConfig)


def _uncut_stage(net, x, stride):
    """The uncut backbone's map at `stride`, with the cut one's weights."""
    full = Backbone(net.cfg.backbone)
    full.load_state_dict(net.backbone.state_dict(), strict=False)
    return full.eval().stages(x)[stride]


def test_config_without_feature_stride_is_a_stride_32_file():
    # Files written before `feature_stride` existed read the last (stride-32) map.
    from moext.checkpoint import build_from_meta

    d = tiny().to_dict()
    del d["feature_stride"]
    net = build_from_meta({"kind": "miacnet", "config": d})
    assert net.cfg.feature_stride == 32
    assert MIACNetConfig().feature_stride == 8


def test_config_round_trip_and_actionable_errors():
    cfg = tiny(delta_min=2, delta_max=5, use_position_branch=False)
    assert MIACNetConfig.from_dict(cfg.to_dict()) == cfg
    with pytest.raises(ValueError, match="class_names"):
        MIACNetConfig(num_classes=5, class_names=["a", "b"])
    with pytest.raises(ValueError, match="delta_min"):
        MIACNetConfig(delta_min=3, delta_max=2)
    with pytest.raises(ValueError, match="delta_min"):
        MIACNetConfig(delta_min=0)
    with pytest.raises(ValueError, match="multiple of 32"):
        MIACNetConfig(image_size=100)
    with pytest.raises(ValueError, match="unknown MIACNetConfig fields"):
        MIACNetConfig.from_dict({"bogus": 1})
    with pytest.raises(ValueError, match="feature_stride"):
        MIACNetConfig(feature_stride=4)


@pytest.mark.parametrize("backbone,size,stride", [("mobilenet_v3_small", 64, 8), ("mobilenet_v3_small", 64, 32),
                                                   ("resnet18", 224, 8), ("resnet18", 224, 16)])
def test_seam_shapes(backbone, size, stride):
    cfg = tiny(backbone=backbone, image_size=size, feature_stride=stride)
    net = MIACNet(cfg).eval()
    x_o, x_a = torch.randn(2, 3, size, size), torch.randn(2, 3, size, size)
    # The backbone is cut after its last layer at the stride: its map there, nothing deeper.
    channels = BACKBONES[backbone][1] if stride == 32 else Backbone(backbone).stage_channels[stride]
    with torch.no_grad():
        f_o, f_a = net.forward_features(x_o), net.forward_features(x_a)
        assert f_o.shape == (2, channels, size // stride, size // stride)
        torch.testing.assert_close(f_o, _uncut_stage(net, x_o, stride))
        c = net.action_code(f_o, f_a)
        assert c.shape == (2, cfg.action_channels, size // stride, size // stride)
        logits = net(x_o, x_a)
        assert logits.shape == (2, cfg.num_classes)
        torch.testing.assert_close(logits, net.forward_head(f_o, f_a))
        torch.testing.assert_close(logits, net.head_from_code(c, f_o))


def test_position_ablation_drops_the_branch():
    ablated = MIACNet(tiny(use_position_branch=False))
    assert ablated.position is None
    assert not any(k.startswith("position.") for k in ablated.state_dict())
    x = torch.randn(1, 3, 64, 64)
    assert ablated(x, x).shape == (1, 3)


@pytest.mark.parametrize("use_position_branch", [True, False])
def test_classifier_every_parameter_gets_a_gradient(use_position_branch):
    net = MIACNet(tiny(use_position_branch=use_position_branch))
    x_o, x_a, y = blob_pairs(4)
    loss = torch.nn.functional.cross_entropy(net(x_o, x_a), y)
    loss.backward()
    missing = [n for n, p in net.named_parameters() if p.grad is None or p.grad.abs().sum() == 0]
    assert not missing, f"parameters without gradient: {missing}"
    assert torch.isfinite(loss)


@pytest.mark.slow
def test_tiny_overfit_reaches_full_training_accuracy():
    torch.manual_seed(0)
    net = MIACNet(tiny())
    x_o, x_a, y = blob_pairs(6)
    opt = torch.optim.Adam(net.parameters(), lr=3e-3)
    for _ in range(40):
        loss = torch.nn.functional.cross_entropy(net(x_o, x_a), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
    # torchvision's MobileNetV3 BatchNorm has momentum 0.01: 60 steps leave its running
    # statistics half way from their init, so re-estimate them (cumulative average) first.
    recalibrate_batchnorm(net, lambda: net(x_o, x_a))
    net.eval()
    with torch.no_grad():
        acc = (net(x_o, x_a).argmax(1) == y).float().mean().item()
    assert acc == 1.0, f"training accuracy {acc}"


def recalibrate_batchnorm(net: torch.nn.Module, forward, passes: int = 2) -> None:
    bns = [m for m in net.modules() if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)]
    for m in bns:
        m.reset_running_stats()
        m.momentum = None  # cumulative moving average over the passes below
    net.train()
    with torch.no_grad():
        for _ in range(passes):
            forward()


@pytest.mark.parametrize("cls", [MIACNet, MA2MIPretrain])
def test_checkpoint_round_trip_is_bit_identical(tmp_path, cls):
    cfg = tiny(delta_max=3)
    net = cls(cfg)
    # move BN running statistics off their defaults so that buffers are checked too
    net.train()
    with torch.no_grad():
        x = torch.randn(2, 3, 64, 64)
        net(x, x + 0.1)
    path = save_checkpoint(net, tmp_path / "m.safetensors", {"note": "test"})
    back, meta = load_checkpoint(path)
    assert type(back) is cls and back.cfg == cfg and meta["extra"] == {"note": "test"}
    a, b = net.state_dict(), back.state_dict()
    assert a.keys() == b.keys()
    for k in a:
        assert torch.equal(a[k], b[k]), k
    net.eval()
    with torch.no_grad():
        out_a, out_b = net(x, x + 0.1), back(x, x + 0.1)
    if isinstance(out_a, dict):
        out_a, out_b = out_a["z_hat"], out_b["z_hat"]
    assert torch.equal(out_a, out_b)
    with pytest.raises(CheckpointError, match="expected"):
        load_checkpoint(path, expect_kind="moext-classifier")


def test_transfer_copies_backbone_and_both_branches():
    pre = MA2MIPretrain(tiny())
    clf = MIACNet(tiny(num_classes=5, class_names=list("abcde")))
    copied = transfer_ma2mi(pre, clf)
    assert copied and all(k.startswith(("backbone.", "action.", "position.")) for k in copied)
    assert any(k.startswith("action.") for k in copied) and any(k.startswith("position.") for k in copied)
    assert not any(k.startswith(("autoencoder.", "predictor.")) for k in clf.state_dict())
    pre.eval(), clf.eval()
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        f = pre.forward_features(x)
        torch.testing.assert_close(f, clf.forward_features(x), rtol=0, atol=0)
        torch.testing.assert_close(pre.action_code(f, f * 1.1), clf.action_code(f, f * 1.1), rtol=0, atol=0)
    with pytest.raises(CheckpointError, match="same backbone"):
        transfer_ma2mi(MA2MIPretrain(tiny(action_channels=32)), MIACNet(tiny()))


class _Features(torch.nn.Module):
    def __init__(self, net):
        super().__init__()
        self.net = net

    def forward(self, x):
        return self.net.forward_features(x)


class _Head(torch.nn.Module):
    def __init__(self, net):
        super().__init__()
        self.net = net

    def forward(self, f_o, f_a):
        return self.net.forward_head(f_o, f_a)


def test_onnx_runtime_matches_torch_for_both_parts(tmp_path):
    ort = pytest.importorskip("onnxruntime")
    # resnet18: an untrained MobileNetV3 in eval mode gives ~1e-8 features (BN momentum 0.01,
    # default running statistics), which would make the comparison vacuous
    net = MIACNet(tiny(backbone="resnet18")).eval()
    x2 = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        f2 = net.forward_features(x2)
    torch.onnx.export(
        _Features(net).eval(), (x2,), str(tmp_path / "features.onnx"), dynamo=False, opset_version=17,
        input_names=["x"], output_names=["f"], dynamic_axes={"x": {0: "batch"}, "f": {0: "batch"}},
    )
    torch.onnx.export(
        _Head(net).eval(), (f2, f2), str(tmp_path / "head.onnx"), dynamo=False, opset_version=17,
        input_names=["f_o", "f_a"], output_names=["logits"],
        dynamic_axes={"f_o": {0: "batch"}, "f_a": {0: "batch"}, "logits": {0: "batch"}},
    )
    feat = ort.InferenceSession(str(tmp_path / "features.onnx"), providers=["CPUExecutionProvider"])
    head = ort.InferenceSession(str(tmp_path / "head.onnx"), providers=["CPUExecutionProvider"])
    # another batch size than the export's: the batch axis is dynamic
    x_o, x_a = torch.randn(3, 3, 64, 64), torch.randn(3, 3, 64, 64)
    with torch.no_grad():
        f_o, f_a = net.forward_features(x_o), net.forward_features(x_a)
        logits = net.forward_head(f_o, f_a)
    assert not net.training  # export restores the wrappers' mode, which must be eval
    assert np.abs(f_o.numpy()).mean() > 1e-2 and logits.std() > 1e-3  # not a vacuous comparison
    (g_o,) = feat.run(None, {"x": x_o.numpy()})
    (g_a,) = feat.run(None, {"x": x_a.numpy()})
    np.testing.assert_allclose(g_o, f_o.numpy(), atol=1e-3, rtol=0)
    (out,) = head.run(None, {"f_o": g_o, "f_a": g_a})
    assert out.shape == (3, 3)
    np.testing.assert_allclose(out, logits.numpy(), atol=1e-3, rtol=0)


def test_dataclass_replace_builds_a_classifier_for_another_protocol():
    # train.methods builds the fine-tuning config with dataclasses.replace on the pre-trained one
    cfg = dataclasses.replace(tiny(), num_classes=5, class_names=list("abcde"))
    assert MIACNet(cfg)(torch.randn(1, 3, 64, 64), torch.randn(1, 3, 64, 64)).shape == (1, 5)
