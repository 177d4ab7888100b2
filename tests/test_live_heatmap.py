"""The live overlay's heat-map inset (`realtime.heatmap.LiveHeatmap` + `Overlay(heatmap=...)`).

Crops are drawn cartoon faces (synthetic, for tests only); the MIACNet is tiny and untrained,
so the maps say nothing about faces, only that the plumbing computes and draws them.
"""

from __future__ import annotations

import cv2
import numpy as np
import pytest
import torch

from moext import MA2MIPretrain, MIACNet, MIACNetConfig, ModelConfig, MoExtClassifier, save_checkpoint
from realtime.buffer import BufferedFrame, RollingBuffer
from realtime.events import Event, FrameResult
from realtime.heatmap import HeatmapUnavailable, LiveHeatmap
from realtime.overlay import Overlay

NAMES = ["negative", "positive", "surprise"]
H, W = 360, 640


def tiny(**kw) -> MIACNetConfig:
    # resnet18 at 64 px (2x2 feature map): its BatchNorm keeps an untrained net's eval-mode
    # features alive, so the maps are not empty (see tests/test_explain.py)
    base = dict(backbone="resnet18", image_size=64, action_channels=8, position_channels=8,
                fusion_channels=8, latent_channels=4, latent_width=8, num_classes=3,
                class_names=NAMES)
    base.update(kw)
    return MIACNetConfig(**base)


@pytest.fixture(scope="module")
def miacnet_ck(tmp_path_factory):
    torch.manual_seed(0)
    return save_checkpoint(MIACNet(tiny()), tmp_path_factory.mktemp("ck") / "miacnet.safetensors")


def face(mouth_dy: int = 0, brow_dy: int = 0) -> np.ndarray:
    """A 224x224 BGR cartoon face; the mouth and the brows can be moved (the 'patch')."""
    img = np.full((224, 224, 3), 40, np.uint8)
    cv2.ellipse(img, (112, 116), (78, 100), 0, 0, 360, (150, 180, 220), -1)
    for x in (80, 144):
        cv2.circle(img, (x, 96), 9, (40, 40, 40), -1)
        cv2.line(img, (x - 16, 74 + brow_dy), (x + 16, 74 + brow_dy), (30, 50, 80), 5)
    cv2.ellipse(img, (112, 164 + mouth_dy), (28, 9), 0, 0, 360, (60, 60, 170), -1)
    return img


def make_buffer() -> RollingBuffer:
    """Frames 0..39 at 30 fps; 5 and 10 are the first event's onset and apex (mouth moved),
    25 and 28 the second's (brows raised); every other frame is the neutral face."""
    crops = {10: face(mouth_dy=18), 28: face(brow_dy=-14)}
    buf = RollingBuffer(max_ms=10_000)
    for i in range(40):
        buf.append(BufferedFrame(i, 1000.0 * i / 30, np.zeros((478, 2), np.float32),
                                 crop=crops.get(i, face())))
    return buf


def event(onset: int, apex: int, offset: int, label: str = "positive") -> Event:
    ms = lambda i: 1000.0 * i / 30  # noqa: E731
    return Event(ms(onset), ms(apex), ms(offset), "micro", label,
                 {n: 1.0 / 3 for n in NAMES}, 1.5, "mouth", onset, apex, offset)


def results(events_at: dict[int, Event], n: int = 40):
    for i in range(n):
        yield FrameResult(i, 1000.0 * i / 30, True, box=(200, 60, 440, 300), motion=0.3,
                          state="quiet", probabilities={n_: 1.0 / 3 for n_ in NAMES},
                          events=[events_at[i]] if i in events_at else [])


def frame() -> np.ndarray:
    return np.full((H, W, 3), 90, np.uint8)


def test_inset_is_drawn_exactly_in_its_corner(miacnet_ck):
    ev = event(5, 10, 14)
    heat = LiveHeatmap(miacnet_ck, method="gradcam")
    plain = Overlay(NAMES, threshold=1.0)
    with_heat = Overlay(NAMES, threshold=1.0, heatmap=heat, buffer=make_buffer())
    img = frame()
    for r in results({14: ev}, n=15):
        a, b = plain.draw(img, r), with_heat.draw(img, r)
    assert img.max() == 90 and img.min() == 90  # the input frame is left alone
    x0, y0, x1, y1 = with_heat.inset_rect(W, H)
    assert (x1 - x0, x1, y0) == (128, W - 8, 8)  # 128 px, top-right
    diff = (a != b).any(axis=2)
    outside = diff.copy()
    outside[y0:y1, x0:x1] = False
    assert not outside.any(), "the heat map changed pixels outside its inset"
    assert diff[y0:y1, x0:x1].mean() > 0.9  # the inset is not the plain frame

    hm = heat.last
    assert hm is not None and hm.event is ev and hm.method == "gradcam"
    assert hm.class_name in NAMES and hm.peak > 0 and hm.heat.shape == (64, 64)
    assert hm.heat.max() == pytest.approx(1.0)
    assert hm.image.shape == (224, 224, 3) and hm.image.dtype == np.uint8
    # the picture is the apex crop with the colour map blended in, scaled to the inset
    side = x1 - x0
    want = cv2.resize(hm.image, (side, side), interpolation=cv2.INTER_AREA)
    np.testing.assert_array_equal(b[y0 + 1:y0 + side - 1, x0 + 1:x1 - 1], want[1:-1, 1:-1])
    assert not np.array_equal(hm.image, make_buffer().get(10).crop)
    # the caption band under it carries text (method, class, time)
    band = b[y0 + side + 1:y1 - 1, x0 + 1:x1 - 1]
    assert (band > 100).any() and (band == 32).any()


def test_one_heat_map_per_event_and_it_stays_until_the_next(miacnet_ck, monkeypatch):
    import moext.explain

    calls = []
    real = moext.explain.explain_crops

    def spy(model, onset, apex, **kw):
        calls.append((onset.copy(), apex.copy()))
        return real(model, onset, apex, **kw)

    monkeypatch.setattr(moext.explain, "explain_crops", spy)
    buf = make_buffer()
    ev1, ev2 = event(5, 10, 14), event(25, 28, 31, label="surprise")
    ov = Overlay(NAMES, threshold=1.0, heatmap=LiveHeatmap(miacnet_ck), buffer=buf)
    x0, y0, x1, y1 = ov.inset_rect(W, H)
    insets = {}
    for r in results({14: ev1, 31: ev2}):
        out = ov.draw(frame(), r)
        insets[r.index] = out[y0:y1, x0:x1].copy()
        assert len(calls) == (0 if r.index < 14 else 1 if r.index < 31 else 2), r.index
    assert not (insets[13] != 90).any()  # no event yet: no inset
    # frames without an event keep showing the first event's map, unchanged
    for i in range(15, 31):
        np.testing.assert_array_equal(insets[i], insets[14])
    # the second event replaces it (other crops, other caption)
    assert not np.array_equal(insets[31], insets[14])
    np.testing.assert_array_equal(insets[39], insets[31])
    # each map came from its own event's onset and apex crops
    np.testing.assert_array_equal(calls[0][0], buf.get(5).crop)
    np.testing.assert_array_equal(calls[0][1], buf.get(10).crop)
    np.testing.assert_array_equal(calls[1][1], buf.get(28).crop)
    assert ov.heatmap.computed == 2 and ov.heatmap.last.event is ev2


def test_event_without_crops_keeps_the_previous_map(miacnet_ck):
    heat = LiveHeatmap(miacnet_ck, method="magnitude")
    buf = make_buffer()
    first = heat.on_events([event(5, 10, 14)], buf)
    assert first is not None and first.method == "magnitude" and heat.computed == 1
    # crops not kept (RecognizerConfig.keep_crops=False) or the buffer was cleared
    bare = RollingBuffer()
    bare.append(BufferedFrame(50, 2000.0, np.zeros((478, 2), np.float32)))
    assert heat.on_events([event(48, 50, 52)], bare) is first
    assert heat.on_events([], buf) is first
    assert (heat.computed, heat.skipped) == (1, 1)


def test_a_checkpoint_without_an_action_branch_is_refused_in_one_line(tmp_path):
    cfg = ModelConfig(backbone="mobilenet_v3_small", branch_channels=8, feature_dim=8,
                      projection_dim=8, image_size=64)
    ck = save_checkpoint(MoExtClassifier(cfg), tmp_path / "moext.safetensors")
    with pytest.raises(ValueError) as e:
        LiveHeatmap(ck)
    msg = str(e.value)
    assert isinstance(e.value, HeatmapUnavailable) and "\n" not in msg
    assert str(ck) in msg and "moext-classifier" in msg
    assert "MIACNet" in msg and "moext-train finetune --model miacnet" in msg

    with pytest.raises(HeatmapUnavailable, match="missing.safetensors"):
        LiveHeatmap(tmp_path / "missing.safetensors")
    pre = save_checkpoint(MA2MIPretrain(tiny()), tmp_path / "pre.safetensors")
    with pytest.raises(HeatmapUnavailable, match="magnitude"):
        LiveHeatmap(pre, method="gradcam")
    with pytest.raises(HeatmapUnavailable, match="choose one of"):
        LiveHeatmap(pre, method="saliency")
    magnitude = LiveHeatmap(pre, method="magnitude").on_events([event(5, 10, 14)], make_buffer())
    assert magnitude.class_name is None  # no head: a map, but no class


def test_overlay_needs_the_buffer_with_a_heat_map(miacnet_ck):
    with pytest.raises(ValueError, match="buffer"):
        Overlay(NAMES, heatmap=LiveHeatmap(miacnet_ck))
    # a frame too small for a 128 px inset gets a smaller one, a tiny frame none
    ov = Overlay(NAMES, heatmap=LiveHeatmap(miacnet_ck), buffer=make_buffer())
    x0, y0, x1, y1 = ov.inset_rect(240, 180)
    assert x1 - x0 == 80 and x1 == 232
    assert ov.inset_rect(80, 60) is None
    out = None
    for r in results({14: event(5, 10, 14)}, n=15):
        out = ov.draw(np.zeros((60, 80, 3), np.uint8), r)
    assert out.shape == (60 + ov.strip_h, 80, 3)


def test_buffered_features_skip_the_backbone_and_give_the_same_map(miacnet_ck):
    from moext.preprocess import crops_to_tensor

    heat = LiveHeatmap(miacnet_ck, method="gradcam")
    model = heat.model
    buf = make_buffer()
    with torch.no_grad():  # what the torch backend stores with every buffered frame
        for item in buf:
            item.features = model.forward_features(crops_to_tensor(item.crop, 64))[0].numpy()
    passes = []
    crops_only = LiveHeatmap(miacnet_ck, use_buffered_features=False)
    hooks = [m.backbone.register_forward_hook(lambda *a: passes.append(1))
             for m in (model, crops_only.model)]
    try:
        fast = heat.on_events([event(5, 10, 14)], buf)
        assert passes == [] and heat.from_features == 1  # no backbone pass at all
        slow = crops_only.on_events([event(5, 10, 14)], buf)
        assert len(passes) == 2 and crops_only.from_features == 0  # onset + apex
        assert fast.class_name == slow.class_name and fast.peak == pytest.approx(slow.peak, rel=1e-4)
        np.testing.assert_allclose(fast.heat, slow.heat, atol=1e-4)
        assert np.abs(fast.image.astype(int) - slow.image).max() <= 1
        # features of another shape (another network's) are not used: the crops are
        passes.clear()
        buf.get(10).features = np.zeros((8, 2, 2), np.float32)
        again = heat.on_events([event(5, 10, 14)], buf)
        assert len(passes) == 2 and heat.from_features == 1 and heat.computed == 2
        np.testing.assert_allclose(again.heat, slow.heat, atol=1e-4)
    finally:
        for h in hooks:
            h.remove()


def test_caption_names_method_class_time_and_an_empty_map(miacnet_ck):
    from realtime.overlay import inset_caption

    hm = LiveHeatmap(miacnet_ck).on_events([event(5, 10, 14)], make_buffer())
    assert inset_caption(hm) == [f"gradcam {hm.class_name}", "micro at 0.33s"]
    hm.peak = 0.0
    assert inset_caption(hm)[1] == "micro at 0.33s: no response"
