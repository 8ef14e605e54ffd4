"""Scope check 2: the frontal/lateral head in the bundled model's graph. Lateral chest films are refused with
"looks like a lateral view"; frontal films stay in scope when flipped, rotated or cropped."""

from __future__ import annotations

import csv
from dataclasses import replace
from pathlib import Path

import cv2
import numpy as np
import pytest

from engine import Classifier, analyze, default_model_path, load_image
from engine.ai.pipeline import classify
from engine.ai.scope import IN_SCOPE, LATERAL_REASON, OTHER_PART_REASON, verdict

DATA = Path(__file__).resolve().parents[2].parent / "shared" / "data"


@pytest.fixture(scope="module")
def model() -> Classifier:
    clf = Classifier(default_model_path(), device="cpu")
    if not clf.card.view_check:
        pytest.skip("the bundled model has no view check")
    return clf


def _laterals() -> list[Path]:
    man = DATA / "ood-dev" / "manifest.csv"
    if not man.is_file():
        pytest.skip(f"ood-dev not found at {man}")
    with open(man, newline="", encoding="utf-8") as f:
        return [DATA / "ood-dev" / r["file"] for r in csv.DictReader(f) if r["kind"] == "lateral-chest"]


def test_lateral_films_are_refused_as_lateral_views(model: Classifier) -> None:
    films = _laterals()
    assert len(films) == 25
    preds = [analyze(f, model) for f in films]
    assert all(not p.in_scope and p.call == "" and p.flags == () for p in preds)
    assert sum(p.scope.kind == "lateral" for p in preds) == 25
    assert preds[0].scope.reason == LATERAL_REASON and "lateral view" in LATERAL_REASON
    # the card states the held-out (leave-one-group-out) figure, not this in-sample one
    figs = model.card.view_check["figures"]
    assert figs["cv_lateral_flagged"] >= 0.95 and figs["test_frontals_flagged"] <= 0.01
    assert figs["cv_knees_flagged"] >= 0.99


def test_knees_are_named_another_body_part_not_a_lateral(model: Classifier) -> None:
    man = DATA / "ood-dev" / "manifest.csv"
    with open(man, newline="", encoding="utf-8") as f:
        knees = [DATA / "ood-dev" / r["file"] for r in csv.DictReader(f) if r["kind"] == "knee"][:40]
    preds = [analyze(f, model) for f in knees]
    assert all(not p.in_scope for p in preds)
    kinds = {p.scope.kind for p in preds}
    assert "lateral" not in kinds, kinds
    assert sum(p.scope.reason == OTHER_PART_REASON for p in preds) >= 38


def _variants(px: np.ndarray) -> dict[str, np.ndarray]:
    h, w = px.shape
    out = {"flip": np.ascontiguousarray(px[:, ::-1])}
    for a in (-12, 8):
        m = cv2.getRotationMatrix2D((w / 2, h / 2), a, 1.0)
        out[f"rot{a}"] = cv2.warpAffine(px, m, (w, h), borderMode=cv2.BORDER_REPLICATE)
    out["crop"] = np.ascontiguousarray(px[int(h * 0.1): int(h * 0.9), int(w * 0.05): int(w * 0.95)])
    return out


def test_edited_frontal_films_are_not_called_lateral(model: Classifier) -> None:
    ext = DATA / "cxr-extdev"
    if not (ext / "manifest.csv").is_file():
        pytest.skip("cxr-extdev not found")
    with open(ext / "manifest.csv", newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    films = [ext / r["file"] for src in ("chestxray-com-normal", "hannover-mhh", "tbx11k-tb")
             for r in [x for x in rows if x["source"] == src][:6]]
    lateral_kinds = []
    for f in films:
        im = load_image(f)
        for name, px in _variants(im.pixels).items():
            p = classify(replace(im, pixels=px.astype(np.float32)), model)
            if p.scope.kind == "lateral":
                lateral_kinds.append((f.name, name))
    assert lateral_kinds == []


def test_verdict_puts_the_view_before_the_lung_field() -> None:
    class NoLungs:
        plausible = False
        reason = "a lung field is too small (0.5% of the image)"
        area_fraction = 0.005

    def v(frontal: float, lateral: float, other: float) -> dict[str, float]:
        return {"frontal": frontal, "lateral": lateral, "other": other}

    lateral = verdict(IN_SCOPE, NoLungs(), 0.5, 3.0, views=v(0.02, 0.97, 0.01), view_threshold=0.5)
    assert lateral.kind == "lateral" and lateral.reason == LATERAL_REASON
    other = verdict(IN_SCOPE, NoLungs(), 0.5, 3.0, views=v(0.1, 0.3, 0.6), view_threshold=0.5)
    assert other.kind == "body_part" and other.reason == OTHER_PART_REASON
    assert verdict(IN_SCOPE, None, 0.5, 3.0, views=v(0.8, 0.15, 0.05), view_threshold=0.5).in_scope
    assert not verdict(IN_SCOPE, None, 0.5, 3.0, views=v(float("nan"), 0.0, 0.0), view_threshold=0.5).in_scope
    lungs = verdict(IN_SCOPE, NoLungs(), 0.5, 3.0, views=v(0.9, 0.05, 0.05), view_threshold=0.5)
    assert lungs.kind == "lungs" and lungs.reason.startswith("not a frontal chest radiograph")
    assert verdict(IN_SCOPE, None, 0.5, 3.0, views=v(0.0, 1.0, 0.0), view_threshold=None).in_scope  # no check
