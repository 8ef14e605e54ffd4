"""Window/level and overlay maths used by the viewer (no widgets)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from desktop.core.windowing import drag_window, heat_rgba, make_display_source, render, thumbnail, to_u8
from engine import Window, load_image
from engine.ai.cam import overlay
from engine.io.display import apply_window


@pytest.mark.parametrize("name", ["CR-MONO1-10-chest.dcm", "RG1_J2KI.dcm", "nccid_nih_dx.dcm"])
def test_render_matches_engine_windowing(dicom_dir: Path, name: str) -> None:
    im = load_image(dicom_dir / name)
    src = make_display_source(im)
    assert np.array_equal(render(src, None), to_u8(im.pixels))  # the default is what the model sees
    w = Window(center=float(np.median(im.values)), width=float(np.ptp(im.values)) / 3, function="LINEAR_EXACT")
    ref = to_u8(apply_window(im.values, w, invert=im.meta.inverted))
    assert np.abs(render(src, w).astype(int) - ref).max() <= 1  # 16-bit quantisation of the LUT index
    assert np.array_equal(render(src, w, invert=True), 255 - render(src, w))


@pytest.mark.parametrize("name", ["CR-MONO1-10-chest.dcm", "nccid_nih_dx.dcm"])  # MONOCHROME1 and 2
def test_percentile_presets_mean_the_same_on_both_polarities(dicom_dir: Path, name: str) -> None:
    im = load_image(dicom_dir / name)
    src = make_display_source(im)
    lung = render(src, src.preset("Lung"))
    # brightness percentiles 5..60 as displayed: ~40% of the body saturates white, ~5% black
    assert 0.3 < (lung == 255).mean() < 0.5
    assert (lung == 0).mean() < 0.12
    bone = render(src, src.preset("Bone"))
    assert (bone == 0).mean() > 0.4  # everything but the brightest half goes black


def test_drag_window() -> None:
    im_values = np.linspace(0, 1000, 100, dtype=np.float32).reshape(10, 10)
    from engine.io.image import ImageMeta, LoadedImage

    meta = ImageMeta(path="x", format="png", width=10, height=10)
    src = make_display_source(LoadedImage(im_values / 1000, im_values, meta))
    start = Window(500, 200)
    w = drag_window(start, 100, -50, src, (1000, 500))
    assert w.width == pytest.approx(300) and w.center == pytest.approx(400)
    assert drag_window(start, -10000, 0, src, (1000, 500)).width > 0


def test_overlay_layer_composites_like_engine_overlay(cxr_samples) -> None:
    rng = np.random.default_rng(0)
    im = load_image(cxr_samples["covid"][0])
    cam = rng.random((4, 7, 7)).astype(np.float32)
    rgba = heat_rgba(cam, 2, im.shape, (64, 64), "stretch")
    assert rgba.shape == (*im.shape, 4)  # 224 px image: overlay at full size
    opacity = 0.6
    a = rgba[:, :, 3:4].astype(np.float32) / 255.0 * opacity
    gray = np.repeat(im.pixels[:, :, None] * 255.0, 3, axis=2)
    drawn = gray * (1 - a) + rgba[:, :, :3].astype(np.float32) * a
    from engine.ai.cam import heatmap

    ref = overlay(im.pixels, heatmap(cam, 2, im.shape, (64, 64)), opacity)
    assert np.abs(drawn - ref).max() <= 2.0


def test_thumbnail_and_big_overlay_sizes(dicom_dir: Path) -> None:
    im = load_image(dicom_dir / "RG1_J2KI.dcm")
    t = thumbnail(im.pixels)
    assert max(t.shape) == 96 and t.dtype == np.uint8
    rgba = heat_rgba(np.ones((4, 7, 7), np.float32), 0, im.shape, (64, 64), "stretch")
    assert max(rgba.shape[:2]) == 512  # scaled up by the view, not computed at 3.6 MP
