"""Preprocessing driven by the model card, and the card's own validation."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from tinymodel import tiny_card

from engine.ai.card import DECISION_RULE, DECISION_RULE_MARGIN, ModelCard
from engine.ai.preprocess import letterbox_box, preprocess, resize_gray, to_8bit_steps
from engine.errors import ModelError
from engine.io import load_image


@pytest.fixture
def card() -> ModelCard:
    return ModelCard.from_dict(tiny_card(size=64))


def test_shape_dtype_and_normalisation(card: ModelCard) -> None:
    x = preprocess(np.full((300, 200), 0.75, np.float32), card)
    assert x.shape == (3, 64, 64) and x.dtype == np.float32
    np.testing.assert_allclose(x, (round(0.75 * 255) / 255 - 0.5) / 0.25, atol=1e-6)  # on 8-bit steps, as in training


def test_per_channel_mean_std() -> None:
    card = ModelCard.from_dict(tiny_card(size=32, mean=[0.485, 0.456, 0.406], std=[0.229, 0.224, 0.225]))
    x = preprocess(np.full((32, 32), 0.5, np.float32), card)
    for c, (m, s) in enumerate(zip(card.mean, card.std, strict=True)):
        np.testing.assert_allclose(x[c], (128 / 255 - m) / s, atol=1e-5)  # 0.5 on 8-bit steps


def test_real_image_matches_manual_resize(card: ModelCard, cxr_samples: dict[str, list[Path]]) -> None:
    import cv2

    im = load_image(cxr_samples["tuberculosis"][0])
    x = preprocess(im.pixels, card)
    ref = cv2.resize(im.pixels, (64, 64), interpolation=cv2.INTER_AREA)
    np.testing.assert_allclose(x[0], (to_8bit_steps(ref) - 0.5) / 0.25, atol=1e-5)
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


# ------------------------------------------------------------------ preprocessing, decision rule, ood

LUNG_MODEL = {"name": "radlens-lungs", "sha256": "ab" * 32}


def test_new_fields_default_so_older_cards_load_unchanged() -> None:
    card = ModelCard.from_dict(tiny_card())
    assert card.preprocessing == {"crop": "none", "intensity": "none"}
    assert card.decision_rule == DECISION_RULE
    assert card.ood is None and card.out_of_source_metrics == {}
    assert not {"preprocessing", "decision_rule", "ood", "out_of_source_metrics"} & set(card.extra)
    assert "ood" not in card.to_dict()


def test_shipped_model_card_still_loads() -> None:
    import onnx

    path = Path(__file__).resolve().parents[2] / "resources" / "models" / "radlens-cxr4.onnx"
    if not path.exists():
        pytest.skip("shipped model not present")
    meta = {p.key: p.value for p in onnx.load(str(path), load_external_data=False).metadata_props}
    card = ModelCard.from_json(meta["radlens.card"])
    assert card.name == "radlens-cxr4"
    if card.version == "1.0.0":  # written before the preprocessing field existed: the defaults
        assert card.preprocessing == {"crop": "none", "intensity": "none"} and card.ood is None
    else:  # 2.0.0 on: preprocessing, the decision rule and out-of-source figures per source are in the card
        assert card.preprocessing["crop"] in ("none", "lungs") and card.decision_rule
        assert set(card.out_of_source_metrics["per_source"]) >= {"chestxray-com-normal", "hannover-mhh", "cohen-pneumonia"}
    assert ModelCard.from_json(card.to_json()) == card


def test_new_fields_round_trip() -> None:
    d = tiny_card() | {
        "preprocessing": {"crop": "lungs", "intensity": "clahe", "lung_model": LUNG_MODEL | {"sha256": "AB" * 32}},
        "decision_rule": DECISION_RULE_MARGIN, "ood": {"method": "mahalanobis", "threshold": 3, "output": "ood"},
        "out_of_source_metrics": {"nih": {"auc": 0.8}},
    }
    card = ModelCard.from_dict(d)
    assert card.preprocessing == {"crop": "lungs", "intensity": "clahe", "crop_margin": 0.1, "lung_model": LUNG_MODEL}
    assert card.decision_rule == DECISION_RULE_MARGIN
    with pytest.raises(ModelError, match="decision_rule"):  # a rule the engine would not apply as written
        ModelCard.from_dict(tiny_card() | {"decision_rule": "flags only"})
    assert card.ood == {"method": "mahalanobis", "threshold": 3.0, "output": "ood"}
    assert card.out_of_source_metrics == {"nih": {"auc": 0.8}}
    assert ModelCard.from_json(card.to_json()) == card
    assert ModelCard.from_dict(tiny_card() | {"preprocessing": {"intensity": "equalize", "crop_margin": 0}}).preprocessing \
        == {"crop": "none", "intensity": "equalize", "crop_margin": 0.0}


@pytest.mark.parametrize("change, fragment", [
    ({"preprocessing": ["lungs"]}, "preprocessing must be a JSON object"),
    ({"preprocessing": {"crop": "heart"}}, "preprocessing.crop 'heart' unknown"),
    ({"preprocessing": {"intensity": "gamma"}}, "preprocessing.intensity 'gamma' unknown"),
    ({"preprocessing": {"crop": "lungs"}}, "crop 'lungs' needs preprocessing.lung_model"),
    ({"preprocessing": {"crop": "lungs", "lung_model": LUNG_MODEL, "crop_margin": -0.1}}, "crop_margin must be"),
    ({"preprocessing": {"crop_margin": True}}, "crop_margin must be"),
    ({"preprocessing": {"crop": "lungs", "lung_model": "lungs.onnx"}}, "preprocessing.lung_model must be"),
    ({"preprocessing": {"crop": "lungs", "lung_model": {"sha256": "ab" * 32}}}, "lung_model.name"),
    ({"preprocessing": {"crop": "lungs", "lung_model": {"name": "x", "sha256": "abc"}}}, "lung_model.sha256"),
    ({"preprocessing": {"resize": "letterbox"}}, "preprocessing has unknown key"),
    ({"decision_rule": ["top"]}, "decision_rule must be text"),
    ({"ood": "energy"}, "ood must be a JSON object"),
    ({"ood": {"threshold": 1.0, "output": "ood"}}, "ood.method"),
    ({"ood": {"method": "energy", "threshold": "high", "output": "ood"}}, "ood.threshold"),
    ({"ood": {"method": "energy", "threshold": 1.0}}, "ood.output must be 'ood'"),
    ({"out_of_source_metrics": [0.8]}, "out_of_source_metrics must be a JSON object"),
])
def test_new_field_refusals_name_the_field(change: dict, fragment: str) -> None:
    with pytest.raises(ModelError, match=fragment):
        ModelCard.from_dict(tiny_card() | change)
    with pytest.raises(ModelError, match=fragment):
        ModelCard.from_json(json.dumps(tiny_card() | change))


def test_margin_rule_one_coherent_call() -> None:
    """3.0's rule: the call is the flagged disease furthest above its operating point (relative), else
    normal; a normal call never carries a flag, whatever the probabilities."""
    from engine.ai.prediction import decide

    labels = ("normal", "covid", "pneumonia", "tuberculosis")
    ops = {"normal": 0.5, "covid": 0.6, "pneumonia": 0.2, "tuberculosis": 0.1}
    rule = DECISION_RULE_MARGIN
    # 2.1.0's incoherence: normal on top while diseases are flagged -> now the call is a disease
    assert decide(labels, np.array([0.388, 0.30, 0.17, 0.142]), ops) == ("normal", ("tuberculosis",))
    call, flags = decide(labels, np.array([0.388, 0.30, 0.17, 0.142]), ops, rule)
    assert call == "tuberculosis" and flags == ("tuberculosis",)
    # relative margin: pneumonia (0.5-0.2)/0.8 = 0.375 beats covid (0.7-0.6)/0.4 = 0.25 though covid is higher
    assert decide(labels, np.array([0.0, 0.7, 0.5, 0.0]), ops, rule) == ("pneumonia", ("covid", "pneumonia"))
    # nothing flagged: normal, no flag, even when normal is not the most probable class
    assert decide(labels, np.array([0.3, 0.55, 0.1, 0.05]), ops, rule) == ("normal", ())
    rng = np.random.default_rng(0)
    for p in rng.dirichlet(np.ones(4), size=500):
        call, flags = decide(labels, p, ops, rule)
        assert (call == "normal") == (flags == ()) and "normal" not in flags
        assert call == "normal" or call in flags


def test_coherent_rule_keeps_the_top_call_and_never_flags_a_normal_call() -> None:
    """3.0.0's rule: the call is the most probable class; a normal call carries no flag; a disease call
    lists the diseases at or above their operating points."""
    from engine.ai.card import DECISION_RULE_COHERENT
    from engine.ai.prediction import decide

    labels = ("normal", "covid", "pneumonia", "tuberculosis")
    ops = {"covid": 0.2, "pneumonia": 0.2, "tuberculosis": 0.1}
    rule = DECISION_RULE_COHERENT
    assert decide(labels, np.array([0.388, 0.30, 0.17, 0.142]), ops, rule) == ("normal", ())
    assert decide(labels, np.array([0.1, 0.5, 0.25, 0.15]), ops, rule) == ("covid", ("covid", "pneumonia", "tuberculosis"))
    assert decide(labels, np.array([0.3, 0.35, 0.3, 0.05]), {"covid": 0.4, "pneumonia": 0.2}, rule) == ("covid", ("pneumonia",))
    rng = np.random.default_rng(1)
    for p in rng.dirichlet(np.ones(4), size=500):
        call, flags = decide(labels, p, ops, rule)
        assert call == labels[int(np.argmax(p))]
        assert "normal" not in flags and (call != "normal" or flags == ())
    card = ModelCard.from_dict(tiny_card() | {"decision_rule": rule})
    assert card.decision_rule == rule
