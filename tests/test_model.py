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
    cfg = ModelConfig(backbone=backbone, branch_channels=32, feature_dim=512)
    sep = FeatureSeparator(cfg).eval()
    with torch.no_grad():
        s, t = sep(torch.randn(2, 3, 224, 224))
        g = sep.backbone(torch.randn(1, 3, 224, 224))
    assert s.shape == t.shape == (2, 512)
    assert g.shape == (1, BACKBONES[backbone][1], 7, 7)


def test_motion_extractor_shape_and_eq2():
    e = MotionExtractor(16)
    s_o, s_a = torch.randn(4, 16), torch.randn(4, 16)
    assert e(s_o, s_a).shape == (4, 16)
    # eq. 2 uses |S_a - S_o|, so swapping the order of dS changes only via the S_a concat
    torch.testing.assert_close(e.c1((s_a - s_o).abs()), e.c1((s_o - s_a).abs()))


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


def test_classifier_has_no_texture_branch_and_outputs_logits(tiny_cfg):
    clf = MoExtClassifier(tiny_cfg)
    assert clf.separator.texture_branch is None
    assert not any("texture" in k or "reconstructor" in k for k in clf.state_dict())
    x = torch.randn(3, 3, 64, 64)
    assert clf(x, x).shape == (3, 3)
    clf.eval()
    with torch.no_grad():
        f = clf.forward_features(x)
        assert f.shape == (3, tiny_cfg.feature_dim)
        torch.testing.assert_close(clf(x, x + 0.5), clf.forward_head(f, clf.forward_features(x + 0.5)))


@pytest.mark.parametrize("use_motion_extractor", [True, False])
def test_every_parameter_gets_a_gradient_from_total_loss(tiny_cfg, use_motion_extractor):
    cfg = dataclasses.replace(tiny_cfg, use_motion_extractor=use_motion_extractor)
    model = MoExtPretrain(cfg)
    x_o = torch.randn(2, 3, 3, 64, 64)
    x_a = x_o + 0.3 * torch.randn_like(x_o)
    losses = pretraining_loss(model, x_o, x_a)
    losses.total.backward()
    missing = [n for n, p in model.named_parameters() if p.grad is None or p.grad.abs().sum() == 0]
    assert not missing, f"parameters without gradient: {missing}"
    assert torch.isfinite(losses.total)


def test_classifier_every_parameter_gets_a_gradient(tiny_cfg):
    clf = MoExtClassifier(tiny_cfg)
    x = torch.randn(4, 3, 64, 64)
    loss = torch.nn.functional.cross_entropy(clf(x, x + 0.1), torch.tensor([0, 1, 2, 0]))
    loss.backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in clf.parameters())


def test_config_rejects_mismatched_class_names():
    with pytest.raises(ValueError, match="class_names"):
        ModelConfig(num_classes=5, class_names=["a", "b"])


def test_config_rejects_a_branch_pool_onnx_cannot_export():
    with pytest.raises(ValueError, match="branch_pool must divide"):
        ModelConfig(image_size=128, branch_pool=3)
    assert ModelConfig(image_size=128, branch_pool=4).branch_pool == 4
