"""Preprocessing driven by the model card, and the card's own validation."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from tinymodel import tiny_card

from engine.card import ModelCard
from engine.errors import ModelError
from engine.io import load_image
from engine.preprocess import letterbox_box, preprocess, resize_gray


@pytest.fixture
def card() -> ModelCard:
    return ModelCard.from_dict(tiny_card(size=64))


def test_shape_dtype_and_normalisation(card: ModelCard) -> None:
    x = preprocess(np.full((300, 200), 0.75, np.float32), card)
    assert x.shape == (3, 64, 64) and x.dtype == np.float32
    np.testing.assert_allclose(x, (0.75 - 0.5) / 0.25, atol=1e-6)


def test_per_channel_mean_std() -> None:
    card = ModelCard.from_dict(tiny_card(size=32, mean=[0.485, 0.456, 0.406], std=[0.229, 0.224, 0.225]))
    x = preprocess(np.full((32, 32), 0.5, np.float32), card)
    for c, (m, s) in enumerate(zip(card.mean, card.std, strict=True)):
        np.testing.assert_allclose(x[c], (0.5 - m) / s, atol=1e-5)


def test_real_image_matches_manual_resize(card: ModelCard, cxr_samples: dict[str, list[Path]]) -> None:
    import cv2

    im = load_image(cxr_samples["tuberculosis"][0])
    x = preprocess(im.pixels, card)
    ref = cv2.resize(im.pixels, (64, 64), interpolation=cv2.INTER_AREA)
    np.testing.assert_allclose(x[0], (ref - 0.5) / 0.25, atol=1e-5)
    np.testing.assert_array_equal(x[0], x[1])  # gray replicated to 3 channels
    assert abs(float(ref.mean()) - float(im.pixels.mean())) < 0.01  # area resampling keeps brightness


def test_stretch_fills_the_input() -> None:
    out = resize_gray(np.ones((100, 300), np.float32), (64, 64), "stretch")
    assert out.shape == (64, 64)
    np.testing.assert_allclose(out, 1.0, atol=1e-5)


def test_letterbox_keeps_aspect_and_pads_black(card: ModelCard) -> None:
    img = np.ones((100, 200), np.float32)  # twice as wide as tall
    out = resize_gray(img, (64, 64), "letterbox")
    top, left, nh, nw = letterbox_box((100, 200), (64, 64))
    assert (top, left, nh, nw) == (16, 0, 32, 64)
    np.testing.assert_allclose(out[top : top + nh, left : left + nw], 1.0, atol=1e-5)
    assert not out[:top].any() and not out[top + nh :].any()
    x = preprocess(img, replace(card, resize="letterbox"))
    np.testing.assert_allclose(x[:, 0, 0], (0.0 - 0.5) / 0.25)  # padding is black before normalisation


def test_same_size_is_untouched() -> None:
    img = np.random.default_rng(0).random((64, 64)).astype(np.float32)
    np.testing.assert_array_equal(resize_gray(img, (64, 64)), img)


def test_card_json_round_trip() -> None:
    card = ModelCard.from_dict(tiny_card(labels=("a", "b"), size=48))
    again = ModelCard.from_json(card.to_json())
    assert again == card and again.input_size == (48, 48) and again.labels == ("a", "b")


@pytest.mark.parametrize("change, fragment", [
    ({"labels": ["only"]}, "at least two distinct"),
    ({"labels": ["a", "a"]}, "at least two distinct"),
    ({"input_size": [0, 64]}, "input_size"),
    ({"mean": [0.5, 0.5]}, "mean must have 3"),
    ({"std": [0.2, 0.0, 0.2]}, "std values must be positive"),
    ({"resize": "crop"}, "resize policy 'crop' unknown"),
    ({"temperature": 0}, "temperature must be positive"),
    ({"operating_points": {"unknown": 0.5}}, "unknown label"),
])
def test_card_refusals(change: dict, fragment: str) -> None:
    with pytest.raises(ModelError, match=fragment):
        ModelCard.from_dict(tiny_card() | change)


def test_card_square_size_and_extra_fields() -> None:
    card = ModelCard.from_json(json.dumps(tiny_card() | {"input_size": 96, "calibration": {"ece": 0.02}}))
    assert card.input_size == (96, 96) and card.extra["calibration"] == {"ece": 0.02}


@pytest.mark.parametrize("change, fragment", [
    ({"temperature": "hot"}, "temperature"),
    ({"temperature": True}, "temperature"),
    ({"temperature": None}, "temperature"),
    ({"operating_points": {"normal": "high"}}, "operating_points"),
    ({"operating_points": {"normal": 1.5}}, "operating_points"),
    ({"operating_points": ["normal"]}, "operating_points"),
    ({"mean": 5}, "mean must have 3"),
    ({"mean": "abc"}, "mean must have 3"),
    ({"std": ["a", "b", "c"]}, "std must have 3"),
    ({"std": [0.2, True, 0.2]}, "std must have 3"),
    ({"labels": "ab"}, "labels must be a list"),
    ({"labels": ["a", 2]}, "labels must be a list"),
    ({"labels": ["a", ""]}, "labels must be a list"),
    ({"input_size": True}, "input_size"),
    ({"input_size": "64"}, "input_size"),
    ({"input_size": [64.0, 64]}, "input_size"),
    ({"resize": ["stretch"]}, "resize policy"),
    ({"name": {"en": "x"}}, "name must be text"),
    ({"version": None}, "version must be text"),
    ({"training_data": ["a"]}, "training_data must be a JSON object"),
    ({"extra": [1, 2]}, "extra must be a JSON object"),
])
def test_malformed_card_fields_are_model_errors(change: dict, fragment: str) -> None:
    """Wrong types give a ModelError naming the field (before: ValueError, TypeError,
    AttributeError, or silently accepted: labels 'ab' as two labels, input_size true as 1x1)."""
    with pytest.raises(ModelError, match=fragment):
        ModelCard.from_dict(tiny_card() | change)
    with pytest.raises(ModelError, match=fragment):
        ModelCard.from_json(json.dumps(tiny_card() | change))


def test_card_accepts_numbers_written_as_json_numbers() -> None:
    card = ModelCard.from_dict(tiny_card() | {"version": 2, "temperature": 1, "operating_points": {"normal": 0}})
    assert card.version == "2" and card.temperature == 1.0 and card.operating_points == {"normal": 0.0}
