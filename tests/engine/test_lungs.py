"""The lung model: the shipped ONNX on real radiographs (PNG/JPEG pool image, a JPEG 2000
DICOM), a knee that is no chest, the plausibility rule on generated maps, contract
refusals that name the mismatch, and the classifier's reference to its lung model."""

from __future__ import annotations

import csv
import hashlib
import json
import threading
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper
from tinymodel import build_tiny_model, tiny_card

from engine.ai.lungs import LungSegmenter, default_lungseg_path, lung_field, segmenter_for
from engine.ai.model import Classifier
from engine.errors import ModelError
from engine.io import load_image

DATA = Path(__file__).resolve().parents[2].parent / "shared" / "data"


@pytest.fixture(scope="module")
def seg() -> LungSegmenter:
    assert default_lungseg_path().is_file(), "resources/models/radlens-lungseg.onnx must ship"
    return LungSegmenter(device="cpu")


def _need(path: Path) -> Path:
    if not path.exists():
        pytest.skip(f"shared test data not found at {path}")
    return path


def _first(manifest: Path, **match: str) -> list[Path]:
    with open(_need(manifest), newline="", encoding="utf-8") as f:
        rows = [r for r in csv.DictReader(f) if all(r[k] == v for k, v in match.items())]
    return [manifest.parent / r["file"] for r in rows]


def _assert_two_lungs(field, shape: tuple[int, int]) -> None:  # noqa: ANN001
    h, w = shape
    assert field.mask.shape == shape and field.mask.dtype == bool
    assert field.plausible, field.reason
    assert field.n_components >= 2
    assert 0.12 < field.area_fraction < 0.6
    assert field.right_fraction > 0.04 and field.left_fraction > 0.04
    assert 0.5 < field.right_fraction / field.left_fraction < 2.0
    top, left, bh, bw = field.box
    assert 0 <= top < h / 3 and 0 <= left < w / 3 and bw > 0.5 * w and bh > 0.35 * h
    assert top + bh <= h and left + bw <= w
    cy, cx = np.argwhere(field.mask).mean(0)
    assert 0.25 * w < cx < 0.75 * w and 0.2 * h < cy < 0.75 * h
    assert abs(field.mask.mean() - field.area_fraction) < 0.03  # the full-size mask agrees with the stats
    assert field.confidence > 0.9


def test_card_and_contract(seg: LungSegmenter) -> None:
    c = seg.card
    assert c.name == "radlens-lungseg" and c.version == "1.0.0" and c.kind == "segmentation" and c.labels == ("lungs",)
    assert "research use only" in c.intended_use.lower() and "JSRT" in c.intended_use
    assert seg.channels == 1 and len(c.mean) == 1
    per_source = c.test_metrics["per_source"]
    assert per_source["jsrt-scr"]["dice_mean"] >= 0.95 and per_source["openist"]["dice_mean"] >= 0.95
    assert default_lungseg_path().stat().st_size <= 10 * 1024 * 1024
    assert seg.describe()["lung_model_sha256"] == hashlib.sha256(default_lungseg_path().read_bytes()).hexdigest()


def test_pool_radiographs_have_two_lung_fields(seg: LungSegmenter) -> None:
    manifest = DATA / "cxr" / "manifest.csv"
    paths = _first(manifest, label="normal", source="covid19-radiography-db")[:2]
    paths += _first(manifest, label="normal", source="kermany-2018-train")[:1]  # pediatric
    for path in paths:
        img = load_image(path)
        _assert_two_lungs(seg.segment(img.pixels), img.shape)


def test_dicom_jpeg2000_chest(seg: LungSegmenter) -> None:
    img = load_image(_need(DATA / "dicom" / "RG1_J2KI.dcm"))
    field = seg.segment(img.pixels)
    _assert_two_lungs(field, img.shape)


def test_non_square_input_keeps_image_size(seg: LungSegmenter) -> None:
    img = load_image(_need(DATA / "lungseg" / "images" / "jsrt-scr_JPCLN002.png")).pixels
    wide = np.ascontiguousarray(img[64:448])  # 384 x 512: a different aspect, stretched in and out
    field = seg.segment(wide)
    assert field.mask.shape == wide.shape
    _assert_two_lungs(field, wide.shape)


def test_knees_are_not_pairs_of_lungs(seg: LungSegmenter) -> None:
    knees = _first(DATA / "ood-dev" / "manifest.csv", kind="knee")[:40]
    fields = [seg.segment(load_image(path).pixels) for path in knees]
    assert not fields[0].plausible and fields[0].reason
    assert sum(f.plausible for f in fields) <= 2  # about 2% of the 400 knees pass (the card's figures)
    assert np.median([f.confidence for f in fields]) < 0.86  # chests: above 0.9 (_assert_two_lungs)


def test_blank_images_are_not_chests(seg: LungSegmenter) -> None:
    for value in (0.0, 0.5, 1.0):  # black reads as air to the model: a blob, but never two lung fields
        field = seg.segment(np.full((300, 200), value, np.float32))
        assert not field.plausible and field.reason and field.mask.shape == (300, 200)
        assert field.box is None or all(isinstance(v, int) for v in field.box)


def test_run_is_thread_safe(seg: LungSegmenter) -> None:
    img = load_image(_need(DATA / "lungseg" / "images" / "jsrt-scr_JPCLN002.png")).pixels
    want = seg.segment(img).mask
    results, errors = [], []

    def work() -> None:
        try:
            for _ in range(3):
                results.append(np.array_equal(seg.segment(img).mask, want))
        except Exception as e:  # noqa: BLE001
            errors.append(e)

    threads = [threading.Thread(target=work) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors and len(results) == 12 and all(results)


# ---------------------------------------------------------------- the rule on generated maps

def _ellipses(centres: list[tuple[float, float, float, float]], size: int = 96) -> np.ndarray:
    yy, xx = np.mgrid[:size, :size] / size
    prob = np.zeros((size, size), np.float32)
    for cy, cx, ry, rx in centres:
        prob[((yy - cy) / ry) ** 2 + ((xx - cx) / rx) ** 2 <= 1.0] = 0.97
    return prob


def test_rule_two_fields_side_by_side() -> None:
    prob = _ellipses([(0.45, 0.3, 0.25, 0.12), (0.45, 0.7, 0.25, 0.11)])
    prob[5, 5] = 0.99  # a speck is dropped
    field = lung_field(prob, (480, 640))
    assert field.plausible and field.n_components == 2 and field.mask.shape == (480, 640)
    assert field.right_fraction > field.left_fraction  # the image-left field is the patient's right lung
    top, left, h, w = field.box
    assert abs(top - 0.2 * 480) <= 8 and abs(left - 0.18 * 640) <= 10 and abs(w - 0.63 * 640) <= 14
    assert not field.mask[:20, :20].any()


def test_rule_touching_lungs_are_split_at_the_neck() -> None:
    prob = _ellipses([(0.5, 0.3, 0.3, 0.14), (0.5, 0.7, 0.3, 0.14)])
    prob[18:24, 25:75] = 0.97  # the apices touch above the mediastinum (small children)
    field = lung_field(prob, (400, 400))
    assert field.n_components == 1 and field.plausible, field.reason
    assert abs(field.right_fraction - field.left_fraction) < 0.01


@pytest.mark.parametrize(("centres", "reason"), [
    ([(0.45, 0.5, 0.25, 0.15)], "only one"),
    ([(0.45, 0.3, 0.25, 0.12), (0.45, 0.7, 0.07, 0.03)], "too small"),
    ([(0.2, 0.3, 0.12, 0.12), (0.8, 0.7, 0.12, 0.12)], "side by side"),
    ([(0.3, 0.5, 0.12, 0.3), (0.7, 0.5, 0.12, 0.3)], "either side"),
])
def test_rule_implausible(centres: list, reason: str) -> None:
    field = lung_field(_ellipses(centres), (200, 200))
    assert not field.plausible and reason in field.reason


# ---------------------------------------------------------------- contract refusals

def seg_card(**overrides: object) -> dict:
    card = {"name": "radlens-lungseg", "version": "0.0.1", "kind": "segmentation", "labels": ["lungs"],
            "input_size": [32, 32], "mean": [0.0], "std": [1.0], "threshold": 0.5,
            "intended_use": "Research use only, not for diagnosis. Test fixture."}
    card.update(overrides)
    return card


def tiny_seg(path: Path, card: dict | None = None, output: str = "mask", input_name: str = "image",
             channels: int = 1, size: int = 32) -> Path:
    w = numpy_helper.from_array(np.full((1, channels, 3, 3), 0.1, np.float32), "w")
    nodes = [helper.make_node("Conv", [input_name, "w"], ["z"], pads=[1, 1, 1, 1]), helper.make_node("Sigmoid", ["z"], [output])]
    graph = helper.make_graph(nodes, "tiny_seg",
                              [helper.make_tensor_value_info(input_name, TensorProto.FLOAT, ["N", channels, size, size])],
                              [helper.make_tensor_value_info(output, TensorProto.FLOAT, ["N", 1, size, size])], [w])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    if card is not None:
        helper.set_model_props(model, {"radlens.card": json.dumps(card)})
    onnx.save(model, str(path))
    return path


def _refused(path: Path) -> str:
    with pytest.raises(ModelError) as info:
        LungSegmenter(path, device="cpu")
    return str(info.value)


def test_tiny_model_satisfies_contract(tmp_path: Path) -> None:
    seg = LungSegmenter(tiny_seg(tmp_path / "ok.onnx", seg_card()), device="cpu")
    assert seg.run(seg.preprocess(np.ones((50, 70), np.float32))[None]).shape == (1, 1, 32, 32)
    assert seg.segment(np.ones((50, 70), np.float32)).mask.shape == (50, 70)
    three = LungSegmenter(tiny_seg(tmp_path / "rgb.onnx", seg_card(mean=[0.5] * 3, std=[0.2] * 3), channels=3), device="cpu")
    assert three.preprocess(np.ones((40, 40), np.float32)).shape == (3, 32, 32)


@pytest.mark.parametrize(("kwargs", "needle"), [
    ({"output": "probs"}, "no output 'mask'"),
    ({"input_name": "pixels"}, "input named 'image'"),
    ({"channels": 2}, "1 or 3"),
    ({"size": 48}, "input_size"),
    ({"card": None}, "no model card"),
    ({"card": seg_card(kind="classification")}, "kind"),
    ({"card": seg_card(labels=["left", "right"])}, "labels"),
    ({"card": seg_card(threshold=1.5)}, "threshold"),
    ({"card": {k: v for k, v in seg_card().items() if k != "intended_use"}}, "intended_use"),
    ({"card": seg_card(mean=[0.1, 0.2], std=[1.0, 1.0])}, "mean"),
])
def test_contract_refusals_name_the_mismatch(tmp_path: Path, kwargs: dict, needle: str) -> None:
    kwargs = dict(kwargs)
    card = kwargs.pop("card", seg_card())
    assert needle in _refused(tiny_seg(tmp_path / "bad.onnx", card, **kwargs))


def test_missing_file_and_garbage(tmp_path: Path) -> None:
    assert "not found" in _refused(tmp_path / "nope.onnx")
    (tmp_path / "junk.onnx").write_bytes(b"not onnx")
    assert "not a loadable ONNX model" in _refused(tmp_path / "junk.onnx")


# ---------------------------------------------------------------- the classifier's reference

def test_classifier_without_reference_has_no_segmenter(classifier: Classifier) -> None:
    assert classifier.segmenter is None


def test_classifier_loads_and_verifies_its_lung_model(tmp_path: Path) -> None:
    sha = hashlib.sha256(default_lungseg_path().read_bytes()).hexdigest()
    ok = build_tiny_model(tmp_path / "cls.onnx", card=tiny_card(preprocessing={"lung_model": {"name": "radlens-lungseg", "sha256": sha}}))
    clf = Classifier(ok, device="cpu")
    assert isinstance(clf.segmenter, LungSegmenter) and clf.segmenter.sha256 == sha
    bad = build_tiny_model(tmp_path / "bad.onnx", card=tiny_card(preprocessing={"lung_model": {"name": "radlens-lungseg", "sha256": "0" * 64}}))
    with pytest.raises(ModelError, match="SHA-256"):
        Classifier(bad, device="cpu")
    missing = build_tiny_model(tmp_path / "missing.onnx", card=tiny_card(preprocessing={"lung_model": {"name": "no-such-lungs", "sha256": sha}}))
    with pytest.raises(ModelError, match="no-such-lungs.onnx"):
        Classifier(missing, device="cpu")


def test_segmenter_beside_the_classifier_wins(tmp_path: Path) -> None:
    local = tiny_seg(tmp_path / "my-lungs.onnx", seg_card(name="my-lungs"))

    class Card:  # a card whose preprocessing is an attribute (a later card schema)
        preprocessing = {"lung_model": {"name": "my-lungs", "sha256": hashlib.sha256(local.read_bytes()).hexdigest()}}

    seg = segmenter_for(Card(), tmp_path / "cls.onnx", device="cpu")
    assert seg is not None and seg.path == local
    renamed = tiny_seg(tmp_path / "other.onnx", seg_card(name="something-else"))

    class Wrong:
        preprocessing = {"lung_model": {"name": "other"}}

    with pytest.raises(ModelError, match="something-else"):
        segmenter_for(Wrong(), renamed.parent / "cls.onnx", device="cpu")
