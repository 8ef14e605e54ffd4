"""The model contract: refusals that name the mismatch, provider selection and its
fallback note, SHA-256, output semantics, thread safety."""

from __future__ import annotations

import hashlib
import json
import threading
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import helper
from tinymodel import LABELS, build_tiny_model, tiny_card

from engine.ai.model import Classifier, default_model_path
from engine.errors import ModelError


def _refused(path: Path, **kwargs) -> str:
    with pytest.raises(ModelError) as info:
        Classifier(path, **kwargs)
    return str(info.value)


def test_loads_and_describes(classifier: Classifier, tiny_model_path: Path) -> None:
    assert classifier.labels == LABELS
    assert classifier.card.name == "tiny-test-cnn" and classifier.card.input_size == (64, 64)
    assert classifier.sha256 == hashlib.sha256(tiny_model_path.read_bytes()).hexdigest()
    assert classifier.describe() == {"model_name": "tiny-test-cnn", "model_version": "0.0.1",
                                     "model_sha256": classifier.sha256}


def test_missing_card(tmp_path: Path) -> None:
    msg = _refused(build_tiny_model(tmp_path / "nocard.onnx", card={}))
    assert "no model card" in msg and "radlens.card" in msg


def test_wrong_input_name(tmp_path: Path) -> None:
    msg = _refused(build_tiny_model(tmp_path / "input.onnx", input_name="pixels"))
    assert "input named 'image'" in msg and "pixels" in msg


def test_missing_cam_output(tmp_path: Path) -> None:
    msg = _refused(build_tiny_model(tmp_path / "nocam.onnx", output_names=("logits", "probs", "heatmap")))
    assert "missing output(s) ['cam']" in msg


def test_missing_probs_output(tmp_path: Path) -> None:
    msg = _refused(build_tiny_model(tmp_path / "noprobs.onnx", output_names=("logits", "softmax", "cam")))
    assert "['probs']" in msg


def test_label_count_mismatch(tmp_path: Path) -> None:
    card = tiny_card(labels=("normal", "covid", "pneumonia"))
    msg = _refused(build_tiny_model(tmp_path / "labels.onnx", labels=LABELS, card=card))
    assert "4 classes" in msg and "3 labels" in msg and "pneumonia" in msg


def test_input_size_mismatch(tmp_path: Path) -> None:
    msg = _refused(build_tiny_model(tmp_path / "size.onnx", size=64, card=tiny_card(size=32)))
    assert "64x64" in msg and "input_size 32x32" in msg


def test_card_missing_fields(tmp_path: Path) -> None:
    msg = _refused(build_tiny_model(tmp_path / "partial.onnx", card={"name": "x", "version": "1"}))
    assert "missing required field(s)" in msg and "labels" in msg


@pytest.mark.parametrize("field", ["temperature", "operating_points", "training_data", "test_metrics",
                                   "intended_use", "created", "resize"])
def test_card_without_a_contract_field_is_refused(tmp_path: Path, field: str) -> None:
    """DESIGN.md's card lists these; a model that does not say how it was calibrated, what it
    was trained and tested on, or what it is for is not shown as if it did."""
    card = tiny_card()
    del card[field]
    msg = _refused(build_tiny_model(tmp_path / f"no-{field}.onnx", card=card))
    assert "missing required field(s)" in msg and field in msg


def test_card_not_json(tmp_path: Path, tiny_model_path: Path) -> None:
    model = onnx.load(str(tiny_model_path))
    del model.metadata_props[:]
    helper.set_model_props(model, {"radlens.card": "{not json"})
    path = tmp_path / "badjson.onnx"
    onnx.save(model, str(path))
    assert "not valid JSON" in _refused(path)


def test_not_an_onnx_file(tmp_path: Path) -> None:
    path = tmp_path / "model.onnx"
    path.write_text("this is not a model")
    msg = _refused(path)
    assert "model.onnx is not a loadable ONNX model" in msg and "Choose" in msg


def test_missing_file(tmp_path: Path) -> None:
    assert "model file not found" in _refused(tmp_path / "absent.onnx")


def test_unknown_device(tiny_model_path: Path) -> None:
    assert "device must be one of" in _refused(tiny_model_path, device="tpu")


def test_default_model_path_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("RADLENS_MODEL", str(tmp_path / "m.onnx"))
    assert default_model_path() == tmp_path / "m.onnx"
    monkeypatch.delenv("RADLENS_MODEL")
    assert default_model_path().parent.name == "models" and default_model_path().suffix == ".onnx"


def test_cpu_device_has_no_note(tiny_model_path: Path) -> None:
    c = Classifier(tiny_model_path, device="cpu")
    assert c.provider == "CPUExecutionProvider" and c.device_label == "CPU" and c.provider_note == ""


def test_auto_reports_the_provider_really_in_use(classifier: Classifier) -> None:
    assert classifier.provider == classifier.session.get_providers()[0]
    if classifier.provider == "CPUExecutionProvider" and "CUDAExecutionProvider" in ort.get_available_providers():
        # a CUDA build without a usable GPU/CUDA runtime (this machine): it says why
        assert "using the CPU" in classifier.provider_note
    elif classifier.provider == "CUDAExecutionProvider":
        assert classifier.device_label == "CUDA (GPU)" and classifier.provider_note == ""


def test_fallback_when_build_has_no_cuda(tiny_model_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(ort, "get_available_providers", lambda: ["CPUExecutionProvider"])
    c = Classifier(tiny_model_path, device="cuda")
    assert c.provider == "CPUExecutionProvider"
    assert c.provider_note == "CUDA is not available in this onnxruntime build; using the CPU."


def test_fallback_when_cuda_fails_to_start(tiny_model_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    real = ort.InferenceSession

    def session(path, opts=None, providers=None, **kw):  # noqa: ANN001, ANN003
        if providers and "CUDAExecutionProvider" in providers:
            raise RuntimeError("CUDA failure 100: no CUDA-capable device is detected")
        return real(path, opts, providers=providers, **kw)

    monkeypatch.setattr(ort, "get_available_providers", lambda: ["CUDAExecutionProvider", "CPUExecutionProvider"])
    monkeypatch.setattr(ort, "InferenceSession", session)
    c = Classifier(tiny_model_path, device="auto")
    assert c.provider == "CPUExecutionProvider"
    assert c.provider_note.startswith("CUDA failed to start (CUDA failure 100") and "using the CPU" in c.provider_note


def _inputs(n: int, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal((n, 3, 64, 64)).astype(np.float32)


def test_outputs_follow_the_contract(classifier: Classifier) -> None:
    out = classifier.run(_inputs(5, 1))
    assert out.logits.shape == (5, 4) and out.probs.shape == (5, 4) and out.cam.shape == (5, 4, 16, 16)
    np.testing.assert_allclose(out.probs.sum(axis=1), 1.0, atol=1e-5)
    z = out.logits / classifier.card.temperature  # softmax after temperature scaling
    ref = np.exp(z - z.max(axis=1, keepdims=True))
    np.testing.assert_allclose(out.probs, ref / ref.sum(axis=1, keepdims=True), atol=1e-5)
    assert float(out.cam.min()) >= 0.0


def test_batch_dimension_is_dynamic(classifier: Classifier) -> None:
    x = _inputs(5, 2)
    batch = classifier.run(x)
    for i in range(5):
        one = classifier.run(x[i : i + 1])
        np.testing.assert_allclose(one.probs[0], batch.probs[i], atol=1e-5)
        np.testing.assert_allclose(one.cam[0], batch.cam[i], atol=1e-4)


def test_run_rejects_wrong_rank(classifier: Classifier) -> None:
    with pytest.raises(ValueError, match=r"\[N, 3, H, W\]"):
        classifier.run(np.zeros((3, 64, 64), np.float32))


def test_thread_safety(classifier: Classifier) -> None:
    inputs = [_inputs(3, seed) for seed in range(8)]
    expected = [classifier.run(x).probs for x in inputs]
    results: dict[tuple[int, int], np.ndarray] = {}
    errors: list[BaseException] = []
    start = threading.Barrier(4)

    def work(t: int) -> None:
        try:
            start.wait()
            for rep in range(10):
                k = (t + rep) % len(inputs)
                results[(t, rep)] = classifier.run(inputs[k]).probs
        except BaseException as e:  # noqa: BLE001
            errors.append(e)

    threads = [threading.Thread(target=work, args=(t,)) for t in range(4)]
    for th in threads:
        th.start()
    for th in threads:
        th.join(30)
    assert not errors and len(results) == 40
    for (t, rep), probs in results.items():
        np.testing.assert_allclose(probs, expected[(t + rep) % len(inputs)], atol=1e-6)


def test_card_travels_with_the_model(classifier: Classifier) -> None:
    meta = classifier.session.get_modelmeta().custom_metadata_map
    card = json.loads(meta["radlens.card"])
    assert tuple(card["labels"]) == classifier.labels
    assert classifier.card.temperature == card["temperature"] == 1.5
    assert classifier.card.operating_points == {lab: 0.5 for lab in LABELS}
