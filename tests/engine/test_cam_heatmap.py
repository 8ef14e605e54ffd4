"""Grad-CAM heatmaps at image size in [0, 1] and overlays."""

from __future__ import annotations

import numpy as np
import pytest

from engine.ai.cam import (
    IMAGE_SCALE,
    MODEL_SCALE,
    NEGLIGIBLE_EVIDENCE,
    cam_scale,
    card_cam_scale,
    colorize,
    evidence,
    heatmap,
    negligible,
    overlay,
)


def _hot_cam(rows: slice, cols: slice, c: int = 4, h: int = 16) -> np.ndarray:
    cam = np.zeros((c, h, h), np.float32)
    cam[1, rows, cols] = 3.0
    return cam


def test_heatmap_at_image_size_in_unit_range() -> None:
    cam = np.random.default_rng(0).standard_normal((4, 16, 16)).astype(np.float32) * 5
    for hw in [(224, 224), (1955, 1841), (100, 300)]:
        h = heatmap(cam, 2, hw, (64, 64))
        assert h.shape == hw and h.dtype == np.float32
        assert float(h.min()) >= 0.0 and float(h.max()) <= 1.0
        assert float(h.max()) > 0.95  # normalised by the class peak


def test_heatmap_follows_the_hot_region() -> None:
    h = heatmap(_hot_cam(slice(0, 4), slice(0, 4)), 1, (400, 400), (64, 64))
    assert float(h[:80, :80].mean()) > 0.5 and float(h[200:, 200:].max()) < 0.05


def test_heatmap_of_a_class_is_that_class() -> None:
    cam = _hot_cam(slice(0, 4), slice(0, 4))
    assert float(heatmap(cam, 0, (64, 64), (64, 64)).max()) == 0.0  # class 0 has no activation
    assert float(heatmap(cam, 1, (64, 64), (64, 64)).max()) > 0.9


def test_zero_or_negative_cam_gives_zeros() -> None:
    cam = -np.ones((4, 16, 16), np.float32)
    h = heatmap(cam, 0, (50, 60), (64, 64))
    assert h.shape == (50, 60) and not h.any()


def test_letterbox_crops_the_padding() -> None:
    # A 100x200 image letterboxed into 64x64 fills input rows 16..47; CAM rows 0..3 lie in
    # the top padding, so after cropping they must not colour the image.
    cam = _hot_cam(slice(0, 3), slice(0, 16))
    letter = heatmap(cam, 1, (100, 200), (64, 64), resize="letterbox")
    stretch = heatmap(cam, 1, (100, 200), (64, 64), resize="stretch")
    assert letter.shape == stretch.shape == (100, 200)
    assert float(letter.mean()) < 0.05
    assert float(stretch[:15].mean()) > 0.5  # stretched, the same map covers the top of the image


def test_overlay_shape_dtype_and_blend() -> None:
    rng = np.random.default_rng(1)
    gray = rng.random((120, 90)).astype(np.float32)
    heat = rng.random((120, 90)).astype(np.float32)
    out = overlay(gray, heat, opacity=0.5)
    assert out.shape == (120, 90, 3) and out.dtype == np.uint8
    plain = np.repeat(np.round(gray * 255)[:, :, None], 3, axis=2)
    np.testing.assert_allclose(overlay(gray, heat, opacity=0.0), plain, atol=1)  # no overlay
    np.testing.assert_allclose(overlay(gray, np.zeros_like(heat), opacity=1.0), plain, atol=1)  # cold = plain
    hot = np.ones_like(heat)
    np.testing.assert_array_equal(overlay(gray, hot, opacity=1.0), colorize(hot))  # full heat, full opacity


def test_overlay_rejects_mismatched_sizes() -> None:
    with pytest.raises(ValueError, match="differ in size"):
        overlay(np.zeros((10, 10), np.float32), np.zeros((10, 11), np.float32))


def test_colorize_turbo_ends() -> None:
    c = colorize(np.array([[0.0, 1.0]], np.float32))
    assert c.shape == (1, 2, 3) and c.dtype == np.uint8
    assert c[0, 0, 2] > c[0, 0, 0]  # cold end is blue-ish
    assert c[0, 1, 0] > c[0, 1, 2]  # hot end is red-ish


# -- one scale for every class (engine.ai.cam's module notes) ---------------------------------------
def _two_class_cam(strong: float = 3.0, weak: float = 0.05) -> np.ndarray:
    cam = np.zeros((4, 16, 16), np.float32)
    cam[1, 0:4, 0:4] = strong  # the top class: clear evidence
    cam[2, 8:12, 8:12] = weak  # a class at about 1.7% of it: negligible
    cam[3, 8:12, 8:12] = strong / 2  # half as strong
    return cam


def test_shared_scale_keeps_classes_comparable() -> None:
    cam = _two_class_cam()
    # the old per-class normalisation draws the negligible class as a full-intensity blob
    assert float(heatmap(cam, 2, (64, 64), (64, 64)).max()) > 0.95
    sc = cam_scale(cam, top_index=1)
    assert sc.kind == IMAGE_SCALE and sc.value == pytest.approx(3.0) and not sc.fixed
    top = heatmap(cam, 1, (64, 64), (64, 64), scale=sc.value)
    half = heatmap(cam, 3, (64, 64), (64, 64), scale=sc.value)
    assert float(top.max()) > 0.95
    assert float(half.max()) == pytest.approx(0.5, abs=0.05)  # half the evidence, half the intensity
    # negligible evidence: no map at all, not a blob
    assert evidence(cam, 2, sc.value) < NEGLIGIBLE_EVIDENCE and negligible(cam, 2, sc.value)
    assert not heatmap(cam, 2, (64, 64), (64, 64), scale=sc.value).any()
    assert not heatmap(cam, 0, (64, 64), (64, 64), scale=sc.value).any()  # no activation at all


def test_model_scale_is_the_same_for_every_image() -> None:
    sc = cam_scale(_two_class_cam(), top_index=1, model_scale=6.0)
    assert sc.kind == MODEL_SCALE and sc.fixed and sc.value == 6.0
    assert "fixed scale for this model" in sc.describe().lower()
    # an image whose strongest evidence is a tenth of the model's scale stays faint, not red
    faint = _two_class_cam(strong=0.6)
    h = heatmap(faint, 1, (64, 64), (64, 64), scale=sc.value)
    assert float(h.max()) == pytest.approx(0.1, abs=0.02)
    # evidence beyond the scale saturates at 1
    assert float(heatmap(_two_class_cam(strong=60.0), 1, (64, 64), (64, 64), scale=sc.value).max()) == 1.0
    # the image scale is said to be relative
    assert "relative to this image" in cam_scale(faint, 1).describe().lower()


def test_scale_applies_inside_a_crop_box_and_zero_scale_draws_nothing() -> None:
    cam = _two_class_cam()
    boxed = heatmap(cam, 3, (200, 150), (64, 64), box=(50, 25, 100, 100), scale=3.0)
    assert float(boxed.max()) == pytest.approx(0.5, abs=0.05) and not boxed[:50].any()
    negative = -np.ones((4, 16, 16), np.float32)
    sc = cam_scale(negative, 0)
    assert sc.value == 0.0
    assert not heatmap(negative, 0, (32, 32), (64, 64), scale=sc.value).any()


def test_card_cam_scale() -> None:
    from types import SimpleNamespace

    assert card_cam_scale(SimpleNamespace(extra={"cam_scale": 4.5})) == 4.5
    assert card_cam_scale(SimpleNamespace(cam_scale=2.0, extra={})) == 2.0
    for bad in (None, 0, -1.0, "x", float("nan"), float("inf")):
        assert card_cam_scale(SimpleNamespace(extra={"cam_scale": bad})) is None
    assert card_cam_scale(SimpleNamespace(extra={})) is None
    assert card_cam_scale(None) is None
