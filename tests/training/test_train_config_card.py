"""Configs (by name, by path, dotted overrides) and the model card that goes into the .onnx."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from engine.ai.card import DECISION_RULE, ModelCard  # noqa: E402
from engine.errors import ModelError  # noqa: E402
from training.cli import build_card, check_card_config, main  # noqa: E402
from training.config import CONFIG_DIR, DEFAULTS, load_config  # noqa: E402
from training.evaluation.metrics import evaluate  # noqa: E402

LABELS = ["normal", "covid", "pneumonia", "tuberculosis"]


def test_every_shipped_config_loads() -> None:
    names = sorted(p.stem for p in CONFIG_DIR.glob("*.yaml"))
    assert {"covid", "cxr3", "cxr4", "pneumonia"} <= set(names)
    for name in names:
        cfg = load_config(name)
        assert cfg["name"] and cfg["version"]
        assert cfg["card"]["training_data"]["confounders"]
        assert set(DEFAULTS) <= set(cfg)


def test_cxr4_defaults() -> None:
    cfg = load_config("cxr4")
    assert cfg["classes"] == LABELS
    assert cfg["model"]["arch"] == "efficientnet_lite0"
    assert cfg["split"] == {"fractions": [0.7, 0.15, 0.15], "seed": 42, "file": None}
    assert cfg["train"]["epochs"] == 8 and cfg["train"]["optimizer"] == "adamw"
    assert cfg["train"]["max_steps"] == 0  # filled in from DEFAULTS


def test_load_by_path_and_overrides_are_yaml_typed(tmp_path: Path) -> None:
    path = tmp_path / "mine.yaml"
    path.write_text("name: fundus\nclasses: null\nmodel: {arch: resnet18}\ntrain: {epochs: 3}\n")
    cfg = load_config(str(path), ["train.epochs=1", "train.lr=3e-4", "model.pretrained=false", "max_per_class=16",
                                  "input.size=[192, 160]", "classes={a: [x, y], b: [z]}", "split.seed=7",
                                  "card.training_data.summary=two words", "name=other"])
    assert cfg["train"]["epochs"] == 1 and isinstance(cfg["train"]["epochs"], int)
    assert cfg["train"]["lr"] == pytest.approx(3e-4) and isinstance(cfg["train"]["lr"], float)
    assert cfg["model"] == {**DEFAULTS["model"], "arch": "resnet18", "pretrained": False}
    assert cfg["max_per_class"] == 16
    assert cfg["input"]["size"] == [192, 160]
    assert cfg["classes"] == {"a": ["x", "y"], "b": ["z"]}
    assert cfg["split"]["seed"] == 7 and cfg["split"]["fractions"] == [0.7, 0.15, 0.15]
    assert cfg["card"]["training_data"]["summary"] == "two words"
    assert cfg["name"] == "other"
    assert cfg["train"]["batch_size"] == DEFAULTS["train"]["batch_size"]  # untouched defaults survive the merge
    assert DEFAULTS["train"]["epochs"] == 8  # and DEFAULTS itself is not modified


def test_config_errors_say_what_to_do(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError) as e:
        load_config("cxr5")
    assert "'cxr5' not found" in str(e.value) and "cxr4" in str(e.value)
    with pytest.raises(ValueError, match="key=value"):
        load_config("cxr4", ["train.epochs"])
    with pytest.raises(ValueError, match="unknown setting 'train.epoch'"):
        load_config("cxr4", ["train.epoch=1"])
    with pytest.raises(ValueError, match="not a section"):
        load_config("cxr4", ["name.x=1"])
    (tmp_path / "list.yaml").write_text("- a\n- b\n")
    with pytest.raises(ValueError, match="mapping"):
        load_config(str(tmp_path / "list.yaml"))


def _result(labels: list[str]) -> dict:
    counts = {"train": {lab: 70 for lab in labels}, "val": {lab: 15 for lab in labels}, "test": {lab: 15 for lab in labels}}
    return {"labels": labels, "counts": counts, "temperature": 1.2345678, "best_epoch": 3,
            "operating_points": {lab: 0.3 + 0.1 * i for i, lab in enumerate(labels)},
            "val": {"accuracy": 0.9, "macro_f1": 0.89}}


def _test_metrics(labels: list[str]) -> dict:
    rng = np.random.default_rng(0)
    y = np.arange(60) % len(labels)
    logits = rng.normal(0, 1, (60, len(labels))) + 3 * np.eye(len(labels))[y]
    return evaluate(logits, y, labels, 1.2345678)


def test_card_has_every_contract_field_and_the_engine_accepts_it() -> None:
    cfg = load_config("cxr4")
    test = _test_metrics(LABELS)
    built = build_card(cfg, _result(LABELS), test)
    assert isinstance(built, ModelCard)  # made through the engine's schema
    card = built.to_dict()
    # DESIGN.md: name, version, labels, input size, mean/std, resize policy, temperature, per-class
    # operating points, training data summary, test metrics, intended use, creation date
    assert card["name"] == "radlens-cxr4" and card["version"] == "1.0.0"
    assert card["labels"] == LABELS
    assert card["input_size"] == [224, 224]
    assert card["mean"] == [0.5, 0.5, 0.5] and card["std"] == [0.5, 0.5, 0.5]
    assert card["resize"] == "stretch"
    assert card["temperature"] == 1.2345678  # exactly the graph's temperature, not rounded
    assert set(card["operating_points"]) == set(LABELS)
    td = card["training_data"]
    assert "15,535" in td["summary"]
    assert any("pediatric" in c for c in td["confounders"]) and any("COVID" in c for c in td["confounders"])
    assert td["split_counts"]["test"] == {lab: 15 for lab in LABELS}
    assert td["split"]["seed"] == 42
    tm = card["test_metrics"]
    assert tm["accuracy"] == round(test["accuracy"], 4) and tm["n"] == 60
    for key in ("macro_f1", "macro_auc_ovr", "ece_before_temperature", "ece_after_temperature"):
        assert isinstance(tm[key], float)
    assert set(tm["per_class"]) == set(LABELS) and "recall" in tm["per_class"]["covid"]
    assert "research use only" in card["intended_use"].lower()
    assert "not for diagnosis" in card["intended_use"].lower()
    assert card["created"] == dt.date.today().isoformat()

    parsed = ModelCard.from_json(json.dumps(card, sort_keys=True))  # as stored in metadata_props
    assert parsed == ModelCard.from_dict(card) == built
    assert parsed.labels == tuple(LABELS)
    assert parsed.input_size == (224, 224)
    assert parsed.temperature == card["temperature"]
    assert parsed.operating_points == card["operating_points"]
    assert parsed.test_metrics["accuracy"] == tm["accuracy"]
    assert parsed.architecture == "efficientnet_lite0"


def test_card_defaults_for_a_bare_folder_config(tmp_path: Path) -> None:
    path = tmp_path / "fundus.yaml"
    path.write_text("name: fundus\nclasses: null\ncard: {intended_use: Sorting fundus photographs for teaching.}\n")
    cfg = load_config(str(path))
    labels = ["dr", "healthy"]
    card = build_card(cfg, _result(labels), None).to_dict()
    # the disclaimer is always there, even when a config forgets it
    assert card["intended_use"].lower().startswith("research use only")
    assert "fundus photographs" in card["intended_use"]
    assert card["training_data"]["summary"]  # made from the split counts: dr 100, healthy 100
    assert "dr 100" in card["training_data"]["summary"] and "healthy 100" in card["training_data"]["summary"]
    assert card["training_data"]["confounders"]
    assert card["test_metrics"] == {}
    ModelCard.from_dict(card)


def test_card_carries_the_new_schema_fields() -> None:
    cfg = load_config("cxr4")
    card = build_card(cfg, _result(LABELS) | {"skipped_unreadable": 3}, None)
    # training resizes only, so the card says so; the decision rule is the engine's default
    assert card.preprocessing == {"crop": "none", "intensity": "none"}
    assert card.decision_rule == DECISION_RULE
    assert card.ood is None and card.out_of_source_metrics == {}
    assert card.training_data["skipped_unreadable"] == 3
    d = card.to_dict()
    assert "ood" not in d and d["preprocessing"] == {"crop": "none", "intensity": "none"}
    assert ModelCard.from_json(card.to_json()) == card
    # a run that did not record skips (an old train_result.json) claims nothing about them
    assert "skipped_unreadable" not in build_card(cfg, _result(LABELS), None).training_data


@pytest.mark.parametrize("override, fragment", [
    ("input.resize=crop", "resize policy 'crop' unknown"),
    ("input.std=[0.5, 0, 0.5]", "std values must be positive"),
    ("input.size=[0, 224]", "input_size"),
    ("name={a: b}", "name must be text"),
    ("card.decision_rule=[1]", "decision_rule must be text"),
])
def test_a_config_whose_card_the_engine_would_refuse_fails_before_training(override: str, fragment: str) -> None:
    cfg = load_config("cxr4", [override])
    with pytest.raises(ModelError, match=fragment):
        build_card(cfg, _result(LABELS), None)
    with pytest.raises(ModelError, match=fragment):
        check_card_config(cfg)


def test_train_command_reports_a_bad_card_without_training(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    out = tmp_path / "run"
    assert main(["train", "cxr4", "--out", str(out), "--set", "input.resize=crop"]) == 1
    err = capsys.readouterr().err
    assert "resize policy 'crop' unknown" in err and "Traceback" not in err
    assert not (out / "checkpoint.pt").exists()  # refused before any training


def test_write_card_validates_and_leaves_the_model_untouched(tmp_path: Path) -> None:
    import onnx
    from tinymodel import build_tiny_model, tiny_card

    from training.export.export import write_card

    path = build_tiny_model(tmp_path / "m.onnx")
    before = path.read_bytes()
    for bad, fragment in (({**tiny_card(), "temperature": 0}, "temperature must be positive"),
                          ({k: v for k, v in tiny_card().items() if k != "labels"}, "missing required field"),
                          ({**tiny_card(), "preprocessing": {"crop": "lungs"}}, "needs preprocessing.lung_model")):
        with pytest.raises(ModelError, match=fragment):
            write_card(path, bad)
        assert path.read_bytes() == before
    card = ModelCard.from_dict(tiny_card())
    write_card(path, card)
    stored = {p.key: p.value for p in onnx.load(str(path)).metadata_props}["radlens.card"]
    assert ModelCard.from_json(stored) == card


def test_export_refuses_a_bad_card_before_writing_anything(tmp_path: Path) -> None:
    from training.export.export import export_onnx
    from training.recipes.models import build_model

    net = build_model("resnet18", 2, pretrained=False)
    path = tmp_path / "out" / "model.onnx"
    card = build_card(load_config("cxr4"), _result(["a", "b"]), None).to_dict() | {"mean": [0.5, 0.5]}
    with pytest.raises(ModelError, match="mean must have 3 numbers"):
        export_onnx(net, 1.0, card, path, (64, 64))
    assert not path.exists()
