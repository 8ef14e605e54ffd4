"""End-to-end smoke runs in CI time: train -> export -> verify -> engine -> evaluate.

``cxr4`` on 64 real images (16 per class, 1 epoch, 2 augmented views, cached frozen trunk),
and ResNet-18 trained end to end (on-the-fly augmentation) for 2 steps on a class-folder
dataset. Each run happens once per module; the tests read what it left behind.
"""

from __future__ import annotations

import csv
import json
import shutil
from collections import Counter
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("onnx")

import engine  # noqa: E402
from engine.ai.card import ModelCard  # noqa: E402
from training.cli import main  # noqa: E402
from training.data.data import SPLITS, data_root, read_split  # noqa: E402
from training.export.export import ExportVerificationError, verify_export, write_card  # noqa: E402
from training.recipes.models import build_model  # noqa: E402

CXR = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "cxr"
ARTIFACTS = ("split.csv", "checkpoint.pt", "metrics.json", "confusion.png", "loss.png", "accuracy.png",
             "config.json", "train_result.json")


def _need_data() -> None:
    if not (CXR / "manifest.csv").exists():
        pytest.skip(f"shared chest X-ray data not found at {CXR}")


@pytest.fixture(scope="module")
def cxr4_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    _need_data()
    out = tmp_path_factory.mktemp("cxr4-smoke")
    rc = main(["train", "cxr4", "--data", str(CXR), "--out", str(out),
               "--set", "max_per_class=16", "--set", "train.epochs=1", "--set", "train.aug_views=2"])
    assert rc == 0
    return out


@pytest.fixture(scope="module")
def cxr4_metrics(cxr4_run: Path) -> dict:
    return json.loads((cxr4_run / "metrics.json").read_text())


@pytest.fixture(scope="module")
def resnet_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """ResNet-18 from scratch, nothing frozen, on a class-folder copy of 3 x 8 real images."""
    _need_data()
    base = tmp_path_factory.mktemp("resnet")
    root = base / "data"
    with open(CXR / "manifest.csv", newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    taken: Counter = Counter()
    for r in rows:
        lab = {"normal": "healthy", "tuberculosis": "tb", "covid": "covid"}.get(r["label"])
        if lab and taken[lab] < 8:
            (root / lab).mkdir(parents=True, exist_ok=True)
            shutil.copy2(CXR / r["file"], root / lab / Path(r["file"]).name)
            taken[lab] += 1
    config = base / "folders-resnet18.yaml"
    config.write_text("name: folders-resnet18\nversion: 0.0.1\nclasses: null\n"
                      "model: {arch: resnet18, pretrained: false, freeze_layers: 0, dropout: 0.0}\n"
                      "split: {fractions: [0.5, 0.25, 0.25], seed: 1}\n"
                      "train: {epochs: 1, batch_size: 6, max_steps: 2, lr: 1e-3, warmup_epochs: 0}\n")
    out = base / "run"
    assert main(["train", str(config), "--data", str(root), "--out", str(out)]) == 0
    return out


def _net(run: Path):  # noqa: ANN202
    ck = torch.load(run / "checkpoint.pt", map_location="cpu", weights_only=False)
    net = build_model(ck["config"]["model"]["arch"], len(ck["labels"]), pretrained=False)
    net.load_state_dict(ck["state_dict"])
    return net.eval(), ck


# ------------------------------------------------------------------ cxr4 smoke run

def test_cxr4_run_writes_every_artifact(cxr4_run: Path, cxr4_metrics: dict) -> None:
    for name in (*ARTIFACTS, "radlens-cxr4.onnx"):
        assert (cxr4_run / name).is_file() and (cxr4_run / name).stat().st_size > 0, name
    for png in ("confusion.png", "loss.png", "accuracy.png"):
        assert (cxr4_run / png).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert cxr4_metrics["split_counts"]["train"] == {"normal": 12, "covid": 12, "pneumonia": 12, "tuberculosis": 12}
    assert sum(sum(c.values()) for c in cxr4_metrics["split_counts"].values()) == 64
    assert cxr4_metrics["config"]["train"]["aug_views"] == 2
    assert len(cxr4_metrics["history"]) == 1 and cxr4_metrics["history"][0]["images_per_s"] > 0
    assert cxr4_metrics["test"]["n"] == sum(cxr4_metrics["split_counts"]["test"].values())


def test_cxr4_split_file_is_honest(cxr4_run: Path) -> None:
    splits = read_split(cxr4_run / "split.csv", CXR)
    owner: dict[str, str] = {}
    for split in SPLITS:
        assert splits[split], split
        for s in splits[split]:
            assert owner.setdefault(s.key, split) == split
            assert Path(s.path).is_file()


def test_cxr4_export_verification_passed(cxr4_run: Path, cxr4_metrics: dict) -> None:
    v = cxr4_metrics["export_verification"]
    assert v["n_images"] >= 8
    assert v["max_abs_prob_diff"] <= 1e-4
    assert set(v["cam_correlation"]) == {"normal", "covid", "pneumonia", "tuberculosis"}
    assert all(c >= 0.99 for c in v["cam_correlation"].values())
    assert v["cam_max_rel_diff"] <= 1e-3  # equal value by value, not only correlated
    assert v["engine_accepts"] is True
    assert v["card_temperature_prob_diff"] <= 1e-4
    assert v["sha256"] == cxr4_metrics["sha256"] == engine.ai.model.sha256_file(cxr4_run / "radlens-cxr4.onnx")


def test_engine_runs_the_exported_model(cxr4_run: Path, cxr4_metrics: dict) -> None:
    clf = engine.Classifier(cxr4_run / "radlens-cxr4.onnx", device="cpu")
    assert clf.labels == ("normal", "covid", "pneumonia", "tuberculosis")
    card: ModelCard = clf.card
    assert card.name == "radlens-cxr4" and card.input_size == (224, 224)
    assert card.temperature == pytest.approx(cxr4_metrics["temperature"], rel=1e-12)
    assert card.test_metrics["accuracy"] == round(cxr4_metrics["test"]["accuracy"], 4)
    assert set(card.operating_points) == set(clf.labels)
    assert "research use only" in card.intended_use.lower()
    assert card.training_data["confounders"]
    image = read_split(cxr4_run / "split.csv", CXR)["test"][0].path
    pred = engine.analyze(image, clf)
    assert pred.probs.shape == (4,)
    assert float(pred.probs.sum()) == pytest.approx(1.0, abs=1e-5)
    assert np.all(pred.probs >= 0)
    assert pred.cam.shape[0] == 4 and pred.cam.ndim == 3
    assert pred.model_sha256 == cxr4_metrics["sha256"]
    heat = pred.heatmap()
    assert heat.shape == pred.image.shape and 0.0 <= heat.min() <= heat.max() <= 1.0


def test_evaluate_command_reproduces_test_accuracy(cxr4_run: Path, cxr4_metrics: dict, tmp_path: Path) -> None:
    out = tmp_path / "eval.json"
    assert main(["evaluate", str(cxr4_run / "radlens-cxr4.onnx"), "--data", str(CXR / "manifest.csv"),
                 "--split-file", str(cxr4_run / "split.csv"), "--split", "test", "-o", str(out)]) == 0
    m = json.loads(out.read_text())
    assert m["n"] == cxr4_metrics["test"]["n"]
    assert m["accuracy"] == cxr4_metrics["test"]["accuracy"]
    assert m["confusion_matrix"] == cxr4_metrics["test"]["confusion_matrix"]
    assert m["model"]["sha256"] == cxr4_metrics["sha256"]


def test_evaluate_checkpoint_agrees_with_the_onnx(cxr4_run: Path, cxr4_metrics: dict, tmp_path: Path) -> None:
    out = tmp_path / "eval.json"
    assert main(["evaluate", str(cxr4_run / "checkpoint.pt"), "--data", str(CXR),
                 "--split-file", str(cxr4_run / "split.csv"), "-o", str(out)]) == 0
    m = json.loads(out.read_text())
    assert m["n"] == cxr4_metrics["test"]["n"]
    assert m["accuracy"] == cxr4_metrics["test"]["accuracy"]
    assert m["temperature"] == cxr4_metrics["temperature"]


def test_evaluate_any_manifest_with_a_config_class_selection(cxr4_run: Path, tmp_path: Path) -> None:
    with open(CXR / "manifest.csv", newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    want = {("covid", ""): 3, ("normal", ""): 3, ("pneumonia", "virus"): 2, ("pneumonia", "bacteria"): 2}
    picked = []
    for r in rows:
        k = (r["label"], r["subtype"])
        if want.get(k, 0) > 0:
            want[k] -= 1
            picked.append({**r, "file": str(CXR / r["file"])})  # absolute paths: the manifest lives elsewhere
    manifest = tmp_path / "other.csv"
    with open(manifest, "w", newline="", encoding="utf-8") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(picked)
    model = str(cxr4_run / "radlens-cxr4.onnx")
    assert main(["evaluate", model, "--data", str(manifest), "-o", str(tmp_path / "all.json")]) == 0
    m = json.loads((tmp_path / "all.json").read_text())
    assert (m["n"], m["skipped_unknown_label"]) == (10, 0)
    # cxr3 keeps covid, normal and viral pneumonia; the 4-class model does not know "viral_pneumonia"
    assert main(["evaluate", model, "--data", str(manifest), "--config", "cxr3", "-o", str(tmp_path / "c3.json")]) == 0
    m = json.loads((tmp_path / "c3.json").read_text())
    assert (m["n"], m["skipped_unknown_label"]) == (6, 2)
    assert m["per_class"]["pneumonia"]["support"] == 0


def test_export_command_and_install(cxr4_run: Path, cxr4_metrics: dict, tmp_path: Path) -> None:
    from training.cli import install

    out = tmp_path / "again.onnx"
    assert main(["export", str(cxr4_run / "checkpoint.pt"), "-o", str(out)]) == 0
    clf = engine.Classifier(out, device="cpu")
    assert clf.labels == ("normal", "covid", "pneumonia", "tuberculosis")
    assert clf.card.test_metrics["accuracy"] == round(cxr4_metrics["test"]["accuracy"], 4)  # from metrics.json
    assert clf.card.temperature == cxr4_metrics["temperature"]
    dest = tmp_path / "models"
    install(cxr4_run, "radlens-cxr4", dest)
    for suffix in ("onnx", "metrics.json", "confusion.png", "loss.png", "accuracy.png", "split.csv"):
        assert (dest / f"radlens-cxr4.{suffix}").is_file(), suffix


def test_a_written_split_reproduces(cxr4_run: Path, tmp_path: Path) -> None:
    """split.file reuses a run's split (here with --data naming the manifest file itself)."""
    out = tmp_path / "again"
    assert main(["train", "cxr4", "--data", str(CXR / "manifest.csv"), "--out", str(out),
                 "--set", f"split.file={cxr4_run / 'split.csv'}", "--set", "train.max_steps=1",
                 "--set", "train.aug_views=1"]) == 0
    assert (out / "split.csv").read_text() == (cxr4_run / "split.csv").read_text()
    assert json.loads((out / "metrics.json").read_text())["export_verification"]["max_abs_prob_diff"] <= 1e-4


# ------------------------------------------------------------------ verification fails loudly

@pytest.fixture(scope="module")
def check_images(cxr4_run: Path) -> np.ndarray:
    from training.cli import _images_for_check

    cfg = json.loads((cxr4_run / "config.json").read_text())
    splits = read_split(cxr4_run / "split.csv", data_root(CXR))
    return _images_for_check(splits["test"], cfg, n=4)


def _copy(cxr4_run: Path, tmp_path: Path) -> Path:
    dest = tmp_path / "model.onnx"
    shutil.copy2(cxr4_run / "radlens-cxr4.onnx", dest)
    return dest


def test_verify_passes_on_the_shipped_model(cxr4_run: Path, check_images: np.ndarray) -> None:
    net, ck = _net(cxr4_run)
    report = verify_export(cxr4_run / "radlens-cxr4.onnx", net, ck["temperature"], check_images, ck["labels"])
    assert report["max_abs_prob_diff"] <= 1e-4


def test_verify_fails_on_a_wrong_temperature(cxr4_run: Path, check_images: np.ndarray) -> None:
    net, ck = _net(cxr4_run)
    with pytest.raises(ExportVerificationError, match="probabilities differ"):
        verify_export(cxr4_run / "radlens-cxr4.onnx", net, ck["temperature"] * 3.0, check_images, ck["labels"])


def _perturb(path: Path, name_or_shape, fn) -> None:  # noqa: ANN001
    import onnx
    from onnx import numpy_helper

    model = onnx.load(str(path))
    for init in model.graph.initializer:
        if init.name == name_or_shape or list(init.dims) == name_or_shape:
            init.CopyFrom(numpy_helper.from_array(fn(numpy_helper.to_array(init)), init.name))
            break
    else:
        raise AssertionError(f"no initializer {name_or_shape} in the exported graph")
    onnx.save(model, str(path))


def test_verify_fails_on_a_perturbed_classifier(cxr4_run: Path, check_images: np.ndarray, tmp_path: Path) -> None:
    net, ck = _net(cxr4_run)
    path = _copy(cxr4_run, tmp_path)
    _perturb(path, "net.fc.bias", lambda b: b + np.array([2.0, 0, 0, 0], np.float32))
    with pytest.raises(ExportVerificationError, match="onnxruntime vs torch probabilities differ"):
        verify_export(path, net, ck["temperature"], check_images, ck["labels"])


def test_verify_fails_on_a_perturbed_cam(cxr4_run: Path, check_images: np.ndarray, tmp_path: Path) -> None:
    net, ck = _net(cxr4_run)
    path = _copy(cxr4_run, tmp_path)
    # the 1x1 convolution that makes the in-graph CAM: [C, K, 1, 1]; negate it
    _perturb(path, [4, net.fc.in_features, 1, 1], lambda w: -w)
    with pytest.raises(ExportVerificationError, match="CAM vs autograd Grad-CAM") as e:
        verify_export(path, net, ck["temperature"], check_images, ck["labels"])
    assert "probabilities differ" not in str(e.value)  # the probabilities are untouched


def test_verify_fails_on_a_scaled_cam_that_correlation_alone_would_pass(cxr4_run: Path, check_images: np.ndarray,
                                                                        tmp_path: Path) -> None:
    net, ck = _net(cxr4_run)
    path = _copy(cxr4_run, tmp_path)
    _perturb(path, [4, net.fc.in_features, 1, 1], lambda w: 2 * w)  # CAM x2: correlation stays 1.0
    with pytest.raises(ExportVerificationError, match="CAM differs from autograd Grad-CAM by") as e:
        verify_export(path, net, ck["temperature"], check_images, ck["labels"])
    assert "correlation below" not in str(e.value)


def test_verify_fails_when_the_card_disagrees(cxr4_run: Path, check_images: np.ndarray, tmp_path: Path) -> None:
    import onnx

    net, ck = _net(cxr4_run)
    path = _copy(cxr4_run, tmp_path)
    card = json.loads({p.key: p.value for p in onnx.load(str(path)).metadata_props}["radlens.card"])
    write_card(path, {**card, "temperature": card["temperature"] * 2})
    with pytest.raises(ExportVerificationError, match="card temperature"):
        verify_export(path, net, ck["temperature"], check_images, ck["labels"])
    write_card(path, {**card, "labels": ["a", "b", "c", "d", "e"], "operating_points": {}})
    with pytest.raises(ExportVerificationError, match="engine refuses"):
        verify_export(path, net, ck["temperature"], check_images, ck["labels"])
    write_card(path, {**card, "labels": ["covid", "normal", "pneumonia", "tuberculosis"]})
    with pytest.raises(ExportVerificationError, match="engine reads labels"):
        verify_export(path, net, ck["temperature"], check_images, ck["labels"])


# ------------------------------------------------------------------ ResNet-18, end to end, class folders

def test_resnet18_on_the_fly_run_exports_and_verifies(resnet_run: Path) -> None:
    for name in (*ARTIFACTS, "folders-resnet18.onnx"):
        assert (resnet_run / name).is_file(), name
    m = json.loads((resnet_run / "metrics.json").read_text())
    assert m["config"]["model"]["freeze_layers"] == 0 and m["config"]["model"]["arch"] == "resnet18"
    assert m["timing"]["cache_s"] < 1.0  # nothing frozen: no feature cache, augmentation on the fly
    v = m["export_verification"]
    assert v["max_abs_prob_diff"] <= 1e-4
    assert set(v["cam_correlation"]) == {"covid", "healthy", "tb"}
    assert all(c >= 0.99 for c in v["cam_correlation"].values())
    _, ck = _net(resnet_run)
    assert ck["labels"] == ["covid", "healthy", "tb"]
    clf = engine.Classifier(resnet_run / "folders-resnet18.onnx", device="cpu")
    assert clf.card.architecture == "resnet18"
    assert "research use only" in clf.card.intended_use.lower()
    assert clf.card.training_data["summary"]  # made from the split counts
    pred = engine.analyze(next((resnet_run.parent / "data" / "tb").glob("*.jpg")), clf)
    assert float(pred.probs.sum()) == pytest.approx(1.0, abs=1e-5)


def test_exported_cam_has_fixed_height_and_width(cxr4_run: Path) -> None:
    import onnx

    graph = onnx.load(str(cxr4_run / "radlens-cxr4.onnx")).graph
    dims = {o.name: o.type.tensor_type.shape.dim for o in graph.output}
    assert dims["cam"][0].dim_param == "N" and dims["cam"][1].dim_value == 4
    assert [d.dim_value for d in dims["cam"][2:]] == [7, 7]  # 224 px / stride 32
    assert all(d.dim_param == "N" for d in (dims["logits"][0], dims["probs"][0]))


def test_card_says_what_the_split_key_was(cxr4_run: Path, resnet_run: Path) -> None:
    from engine.ai.model import Classifier

    manifest = Classifier(cxr4_run / "radlens-cxr4.onnx", device="cpu").card.training_data["split"]
    by_key = manifest["images_by_key"]
    assert by_key["file"] == 0 and by_key["subject"] + by_key["group"] == 64  # every manifest row has one
    assert "file by file" not in manifest["by"]
    folders = Classifier(resnet_run / "folders-resnet18.onnx", device="cpu").card.training_data["split"]
    assert folders["images_by_key"] == {"subject": 0, "group": 0, "file": 24}  # class folders: no patient ids
    assert "file by file" in folders["by"] and "straddle" in folders["by"]
