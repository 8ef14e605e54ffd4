"""The card's preprocessing: lung crop with margin, the box the model saw, intensity
normalisation, and the Grad-CAM drawn back in full-image coordinates."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import pytest
from tinymodel import tiny_card

from engine.ai.cam import heatmap
from engine.ai.card import ModelCard
from engine.ai.preprocess import (
    NO_LUNGS_NOTE,
    card_preprocessing,
    margin_box,
    model_input,
    normalize_intensity,
    preprocess,
    resize_gray,
    to_8bit_steps,
)
from engine.io import load_image

LUNG_MODEL = {"name": "radlens-lungseg", "sha256": "0" * 64}


@dataclass(frozen=True)
class Lungs:
    box: tuple[int, int, int, int] | None


def card_with(size: int = 64, **pp) -> ModelCard:
    if pp.get("crop") == "lungs":
        pp.setdefault("lung_model", LUNG_MODEL)
    return ModelCard.from_dict(tiny_card(size=size, preprocessing=pp))


@pytest.fixture
def radiograph(cxr_samples: dict[str, list[Path]]) -> np.ndarray:
    return load_image(cxr_samples["normal"][0]).pixels


def test_default_card_sees_the_whole_image(radiograph: np.ndarray) -> None:
    card = ModelCard.from_dict(tiny_card(size=64))
    assert card_preprocessing(card)["crop"] == "none"
    mi = model_input(radiograph, card)
    assert mi.box == (0, 0, *radiograph.shape) and not mi.cropped and mi.notes == ()
    np.testing.assert_array_equal(mi.x, preprocess(radiograph, card))


def test_margin_box_grows_and_clips() -> None:
    assert margin_box((50, 40, 100, 80), (300, 300), 0.1) == (40, 32, 120, 96)
    assert margin_box((5, 10, 100, 80), (110, 85), 0.1) == (0, 2, 110, 83)


def test_lung_crop_is_what_the_model_sees(radiograph: np.ndarray) -> None:
    card = card_with(crop="lungs", crop_margin=0.1)
    lungs = Lungs((40, 30, 120, 160))
    mi = model_input(radiograph, card, lungs)
    assert mi.box == (28, 14, 144, 192) and mi.cropped and mi.notes == ()
    top, left, h, w = mi.box
    ref = cv2.resize(radiograph[top : top + h, left : left + w], (64, 64), interpolation=cv2.INTER_AREA)
    np.testing.assert_allclose(mi.x[0], (to_8bit_steps(ref) - 0.5) / 0.25, atol=1e-5)
    # the same image without the crop is a different input
    assert not np.allclose(mi.x, model_input(radiograph, card_with()).x)


@pytest.mark.parametrize("lungs", [None, Lungs(None), Lungs((10, 10, 0, 0))])
def test_no_lung_field_falls_back_to_the_whole_image(radiograph: np.ndarray, lungs: Lungs | None) -> None:
    card = card_with(crop="lungs")
    mi = model_input(radiograph, card, lungs)
    assert mi.box == (0, 0, *radiograph.shape) and not mi.cropped
    assert mi.notes == (NO_LUNGS_NOTE,)
    np.testing.assert_allclose(mi.x, preprocess(radiograph, ModelCard.from_dict(tiny_card(size=64))), atol=1e-6)


def test_clahe_and_equalize_normalise_contrast(radiograph: np.ndarray) -> None:
    # the same radiograph through a washed-out tone curve: equalisation brings the two closer
    washed = 0.3 + 0.4 * radiograph
    for method in ("clahe", "equalize"):
        a, b = normalize_intensity(radiograph, method), normalize_intensity(washed, method)
        assert a.dtype == np.float32 and a.shape == radiograph.shape and 0.0 <= a.min() and a.max() <= 1.0
        assert b.std() > 1.25 * washed.std()  # the washed-out film gets its contrast back
    # a global histogram equalisation ignores a monotone tone curve (up to 8-bit quantisation)
    a, b = normalize_intensity(radiograph, "equalize"), normalize_intensity(washed, "equalize")
    assert np.abs(a - b).mean() < 0.2 * np.abs(radiograph - washed).mean()
    eq = normalize_intensity(washed, "equalize")
    assert eq.min() == 0.0 and eq.max() == 1.0  # the full range is used again
    card = card_with(intensity="clahe")
    x = model_input(radiograph, card).x
    at_size = normalize_intensity(resize_gray(radiograph, (64, 64), "stretch"), "clahe")  # resized, then CLAHE
    np.testing.assert_allclose(x, preprocess(at_size, ModelCard.from_dict(tiny_card(size=64))), atol=1e-6)
    with pytest.raises(ValueError, match="unknown intensity"):
        normalize_intensity(radiograph, "gamma")


def test_cam_is_drawn_inside_the_crop_box() -> None:
    image_hw, box = (400, 300), (100, 50, 200, 160)
    cam = np.zeros((2, 7, 7), np.float32)
    cam[1, 0, 0] = 1.0  # evidence in the top-left corner of what the model saw
    heat = heatmap(cam, 1, image_hw, (224, 224), "stretch", box=box)
    assert heat.shape == image_hw and heat.dtype == np.float32
    top, left, h, w = box
    assert not heat[:top].any() and not heat[top + h :].any()
    assert not heat[:, :left].any() and not heat[:, left + w :].any()
    py, px = np.unravel_index(int(np.argmax(heat)), heat.shape)
    assert top <= py < top + h // 7 and left <= px < left + w // 7
    # the whole-image box is the plain heatmap
    np.testing.assert_array_equal(heatmap(cam, 1, image_hw, (224, 224), box=(0, 0, *image_hw)),
                                  heatmap(cam, 1, image_hw, (224, 224)))


def test_cam_box_scales_to_a_smaller_overlay() -> None:
    cam = np.zeros((1, 7, 7), np.float32)
    cam[0, 6, 6] = 1.0  # bottom-right corner
    heat = heatmap(cam, 0, (200, 150), (224, 224), box=(100, 50, 200, 160), box_image_hw=(400, 300))
    assert heat.shape == (200, 150)
    assert not heat[:50].any() and not heat[:, :25].any()
    py, px = np.unravel_index(int(np.argmax(heat)), heat.shape)
    assert py >= 50 + 100 - 100 // 7 - 1 and px >= 25 + 80 - 80 // 7 - 1


def test_cam_box_with_letterbox() -> None:
    cam = np.ones((1, 7, 7), np.float32)
    heat = heatmap(cam, 0, (400, 300), (224, 224), "letterbox", box=(100, 50, 100, 200))
    assert heat[100:200, 50:250].min() > 0.99 and heat.sum() == pytest.approx(heat[100:200, 50:250].sum())
