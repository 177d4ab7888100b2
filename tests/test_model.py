"""Shapes and gradients of the MoExt modules (Tables 1-2, eq. 1-4, 9)."""

import dataclasses

import pytest
import torch

from moext import ModelConfig, MoExtClassifier, MoExtPretrain
from moext.modeling import ApexReconstructor, FeatureSeparator, MotionExtractor
from moext.modeling.backbone import BACKBONES
from moext.modeling.losses import pretraining_loss


@pytest.mark.parametrize("backbone", ["resnet18", "mobilenet_v3_small"])
def test_feature_separator_shapes(backbone):
    cfg = ModelConfig(arch="paper", backbone=backbone, branch_channels=32, feature_dim=512)
    sep = FeatureSeparator(cfg).eval()
    with torch.no_grad():
        s, t = sep(torch.randn(2, 3, 224, 224))
        g = sep.backbone(torch.randn(1, 3, 224, 224))
    assert s.shape == t.shape == (2, 512)
    assert g.shape == (1, BACKBONES[backbone][1], 7, 7)


def test_motion_extractor_forward_is_eq2_and_eq3():
    """arch=paper: M = C2(Concat(C1(|S_a - S_o|), S_a)), computed by `forward` itself."""
    torch.manual_seed(0)
    e = MotionExtractor(16)
    s_o, s_a = torch.randn(4, 16), torch.randn(4, 16)
    m = e(s_o, s_a)
    assert m.shape == (4, 16)
    with torch.no_grad():
        want = e.c2(torch.cat([e.c1((s_a - s_o).abs()), s_a], dim=1))
    torch.testing.assert_close(m, want)
    # |dS| (eq. 2): the motion part is the same for S_a - S_o and S_o - S_a ...
    torch.testing.assert_close(e.c1((s_a - s_o).abs()), e.c1((s_o - s_a).abs()))
    # ... and eq. 3's concat makes M depend on S_a itself, not only on the difference
    assert not torch.allclose(e(s_o + 1.0, s_a + 1.0), m)


def test_map_motion_extractor_forward_is_the_released_residual():
    """arch=unet: M = dS + C2(C1(dS)) with dS = S_a - S_o (signed)."""
    from moext.modeling.moext import MapMotionExtractor

    torch.manual_seed(0)
    e = MapMotionExtractor(8).eval()
    s_o, s_a = torch.randn(2, 8, 4, 4), torch.randn(2, 8, 4, 4)
    with torch.no_grad():
        m = e(s_o, s_a)
        torch.testing.assert_close(m, (s_a - s_o) + e.c2(e.c1(s_a - s_o)))
        torch.testing.assert_close(e(s_o + 3.0, s_a + 3.0), m)  # only the change matters
        e.c2.weight.zero_()
        e.c2.bias.zero_()
        torch.testing.assert_close(e(s_o, s_a), s_a - s_o)  # the residual path alone


@pytest.mark.parametrize("backbone", ["resnet18", "mobilenet_v3_small"])
@pytest.mark.parametrize("stride", [2, 4, 8])
def test_unet_maps_and_reconstruction_shapes(backbone, stride):
    cfg = ModelConfig(backbone=backbone, image_size=64, branch_channels=8, projection_dim=4, map_stride=stride)
    model = MoExtPretrain(cfg).eval()
    with torch.no_grad():
        s, t = model(torch.randn(2, 3, 64, 64))
        assert s.shape == t.shape == (2, 8, 64 // stride, 64 // stride)
        assert model.reconstruct(s, t, s, torch.zeros(2, 3, 64, 64)).shape == (2, 3, 64, 64)
        assert model.projection(s).shape == (2, 4)
    clf = MoExtClassifier(dataclasses.replace(cfg, branch_pool=2)).eval()
    with torch.no_grad():
        f = clf.forward_features(torch.randn(3, 3, 64, 64))
        assert f.shape == (3, 8, 64 // stride, 64 // stride)
        assert clf.forward_head(f, f).shape == (3, 3)


def test_backbone_weights_for_another_architecture_are_refused_by_name(tmp_path):
    from safetensors.torch import save_file
    from torchvision import models

    from moext import CheckpointError
    from moext.modeling.backbone import Backbone

    path = tmp_path / "resnet18.safetensors"
    save_file({k: v.contiguous() for k, v in models.resnet18(weights=None).state_dict().items()}, str(path))
    Backbone("resnet18", str(path))  # the right file loads (its fc head is ignored)
    with pytest.raises(CheckpointError, match=r"backbone weights .*resnet18.safetensors do not fit mobilenet_v3_small: \d+ missing"):
        Backbone("mobilenet_v3_small", str(path))


def test_apex_reconstructor_every_row_of_table2():
    r = ApexReconstructor(1024, 224).eval()
    z = torch.randn(1, 1024)[:, :, None, None]  # (B, 1024, 1, 1): Concat(M, T_o)
    shapes = []
    with torch.no_grad():
        for stage in r.stages:
            z = stage(z)
            shapes.append(tuple(z.shape[1:]))
    assert shapes == ApexReconstructor.ROWS
    assert shapes[0] == (512, 8, 8) and shapes[1] == (512, 7, 7)
    assert [s[1] for s in shapes[2:6]] == [14, 28, 56, 112]
    assert shapes[-1] == (3, 224, 224)
    with torch.no_grad():
        out = r(torch.randn(2, 512), torch.randn(2, 512))
    assert out.shape == (2, 3, 224, 224)


@pytest.mark.parametrize("arch", ["paper", "unet"])
def test_classifier_has_no_texture_branch_and_outputs_logits(tiny_cfg, arch):
    tiny_cfg = dataclasses.replace(tiny_cfg, arch=arch)
    clf = MoExtClassifier(tiny_cfg)
    assert clf.separator.texture_branch is None
    assert not any("texture" in k or "reconstructor" in k for k in clf.state_dict())
    x = torch.randn(3, 3, 64, 64)
    assert clf(x, x).shape == (3, 3)
    clf.eval()
    with torch.no_grad():
        f = clf.forward_features(x)
        assert f.shape == ((3, tiny_cfg.feature_dim) if arch == "paper" else (3, tiny_cfg.branch_channels, 16, 16))
        torch.testing.assert_close(clf(x, x + 0.5), clf.forward_head(f, clf.forward_features(x + 0.5)))


@pytest.mark.parametrize("arch", ["paper", "unet"])
@pytest.mark.parametrize("use_motion_extractor", [True, False])
def test_every_parameter_gets_a_gradient_from_total_loss(tiny_cfg, use_motion_extractor, arch):
    cfg = dataclasses.replace(tiny_cfg, use_motion_extractor=use_motion_extractor, arch=arch)
    model = MoExtPretrain(cfg)
    x_o = torch.randn(2, 3, 3, 64, 64)
    x_a = x_o + 0.3 * torch.randn_like(x_o)
    losses = pretraining_loss(model, x_o, x_a)
    losses.total.backward()
    missing = [n for n, p in model.named_parameters() if p.grad is None or p.grad.abs().sum() == 0]
    assert not missing, f"parameters without gradient: {missing}"
    assert torch.isfinite(losses.total)


@pytest.mark.parametrize("arch", ["paper", "unet"])
def test_classifier_every_parameter_gets_a_gradient(tiny_cfg, arch):
    clf = MoExtClassifier(dataclasses.replace(tiny_cfg, arch=arch))
    x = torch.randn(4, 3, 64, 64)
    loss = torch.nn.functional.cross_entropy(clf(x, x + 0.1), torch.tensor([0, 1, 2, 0]))
    loss.backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in clf.parameters())


def test_config_rejects_mismatched_class_names():
    with pytest.raises(ValueError, match="class_names"):
        ModelConfig(num_classes=5, class_names=["a", "b"])


def test_config_rejects_a_branch_pool_onnx_cannot_export():
    with pytest.raises(ValueError, match="branch_pool must divide"):
        ModelConfig(arch="paper", image_size=128, branch_pool=3)
    assert ModelConfig(arch="paper", image_size=128, branch_pool=4).branch_pool == 4
    with pytest.raises(ValueError, match="branch_pool must divide the motion map's side image_size/map_stride"):
        ModelConfig(image_size=128, map_stride=4, branch_pool=3)
    assert ModelConfig(image_size=128, map_stride=4, branch_pool=8).branch_pool == 8
    with pytest.raises(ValueError, match="arch='vit'; choose one of unet, paper"):
        ModelConfig(arch="vit")


def test_checkpoints_written_before_arch_existed_load_as_the_paper_arch(tmp_path, tiny_cfg):
    import json

    from moext import load_checkpoint, save_checkpoint

    path = save_checkpoint(MoExtClassifier(dataclasses.replace(tiny_cfg, arch="paper")), tmp_path / "old.safetensors")
    meta = json.loads(path.with_suffix(".json").read_text())
    del meta["config"]["arch"], meta["config"]["map_stride"]  # as written before the field existed
    path.with_suffix(".json").write_text(json.dumps(meta))
    model, _ = load_checkpoint(path)
    assert model.cfg.arch == "paper"
