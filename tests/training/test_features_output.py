"""The ``features`` output (``training.export.features.add_features_output``) and the shipped reference set.

The bundled model's ``features`` output is stripped from a copy and added back: ``logits``,
``probs``, ``cam`` and ``ood`` stay bit-identical on real prepared radiographs, and ``features`` is
the pooled tensor that feeds the linear head. Then the reference set beside the bundled model:
it loads through the engine, holds fit and hold-out rows of every label, is float16 on disk and is
the file the card names."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest

onnx = pytest.importorskip("onnx")

import engine  # noqa: E402
from engine.adapt.reference import load_reference  # noqa: E402
from engine.ai.model import sha256_file  # noqa: E402
from training.export.features import add_features_output, pooled_tensor  # noqa: E402

REPO = Path(__file__).resolve().parents[2]
MODEL = REPO / "resources" / "models" / "radlens-cxr4.onnx"
EXTDEV = REPO.parent / "shared" / "data" / "cxr-extdev"
OUTPUTS = ("logits", "probs", "cam", "ood")


@pytest.fixture(scope="module")
def base() -> engine.Classifier:
    if not MODEL.is_file():
        pytest.skip(f"bundled model not found at {MODEL}")
    return engine.Classifier(MODEL, device="cpu")


@pytest.fixture(scope="module")
def inputs(base: engine.Classifier) -> np.ndarray:
    """Two real films of each label, through the engine's per-image path."""
    manifest = EXTDEV / "manifest.csv"
    if not manifest.is_file():
        pytest.skip(f"shared test data not found at {EXTDEV} (clone ../shared beside the repository)")
    picked: dict[str, list[Path]] = {}
    with open(manifest, newline="", encoding="utf-8") as f:
        for row in csv.DictReader(f):
            lst = picked.setdefault(row["label"], [])
            if len(lst) < 2:
                lst.append(EXTDEV / row["file"])
    files = [p for lab in sorted(picked) for p in picked[lab]]
    assert len(files) == 8
    return np.stack([engine.prepare(engine.load_image(p), base).x for p in files])


def _strip(model: onnx.ModelProto) -> onnx.ModelProto:
    """The model without its ``features`` output and the Identity node that makes it."""
    g = model.graph
    out = next(o for o in g.output if o.name == "features")
    g.output.remove(out)
    node = next(n for n in g.node if "features" in n.output)
    assert node.op_type == "Identity"
    g.node.remove(node)
    onnx.checker.check_model(model)
    return model


@pytest.fixture(scope="module")
def models(tmp_path_factory: pytest.TempPathFactory, base: engine.Classifier) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("features")
    stripped = _strip(onnx.load(str(MODEL)))
    assert not any(o.name == "features" for o in stripped.graph.output)
    onnx.save(stripped, str(root / "stripped.onnx"))
    readded = onnx.load(str(root / "stripped.onnx"))
    assert add_features_output(readded) is True
    assert add_features_output(readded) is False  # once: a model with the output is left alone
    assert sum(o.name == "features" for o in readded.graph.output) == 1
    onnx.save(readded, str(root / "readded.onnx"))
    # the pooled tensor itself as a graph output, to compare 'features' with
    pooled = onnx.load(str(root / "stripped.onnx"))
    name = pooled_tensor(pooled)
    pooled.graph.output.append(onnx.helper.make_tensor_value_info(name, onnx.TensorProto.FLOAT, None))
    onnx.save(pooled, str(root / "pooled.onnx"))
    return {"stripped": root / "stripped.onnx", "readded": root / "readded.onnx", "pooled": root / "pooled.onnx",
            "pooled_name": name}


def test_pooled_tensor_is_the_input_of_the_head(base: engine.Classifier) -> None:
    model = onnx.load(str(MODEL))
    gemm = next(n for n in model.graph.node if "logits" in n.output)
    assert pooled_tensor(model) == gemm.input[0]
    assert add_features_output(model) is False  # the bundled model already has it


def test_readded_features_leave_every_other_output_bit_identical(models: dict, inputs: np.ndarray) -> None:
    stripped = engine.Classifier(models["stripped"], device="cpu")
    readded = engine.Classifier(models["readded"], device="cpu")
    assert not stripped.has_features and readded.has_features
    a = stripped.run(inputs)
    for b in (readded.run(inputs), readded.run(inputs, features=True)):
        for name in OUTPUTS:
            assert np.array_equal(getattr(a, name), getattr(b, name)), name
    with pytest.raises(engine.ModelError, match="no 'features' output"):
        stripped.run(inputs, features=True)


def test_features_are_the_pooled_tensor(models: dict, inputs: np.ndarray, base: engine.Classifier) -> None:
    import onnxruntime as ort

    readded = engine.Classifier(models["readded"], device="cpu")
    out = readded.run(inputs, features=True)
    assert out.features.shape == (len(inputs), 1280) and out.features.dtype == np.float32
    declared = next(o for o in readded.session.get_outputs() if o.name == "features")
    assert declared.shape[1] == 1280
    sess = ort.InferenceSession(str(models["pooled"]), providers=["CPUExecutionProvider"])
    (pooled,) = sess.run([models["pooled_name"]], {"image": inputs})
    assert np.array_equal(out.features, pooled.reshape(len(inputs), -1))
    # the head applied to the features gives the logits
    from engine.adapt.export import base_head

    head = base_head(models["readded"])
    np.testing.assert_allclose(out.logits, head.logits(out.features), atol=1e-4)
    # and the bundled model's own features output is the same
    assert np.array_equal(base.run(inputs, features=True).features, out.features)


def test_shipped_reference_set(base: engine.Classifier) -> None:
    spec = base.card.reference_set
    assert spec is not None and spec["file"] == "radlens-cxr4.reference.npz"
    path = MODEL.with_name(spec["file"])
    assert sha256_file(path) == spec["sha256"]
    ref = load_reference(base)
    assert ref.path.resolve() == path.resolve()
    assert ref.labels == base.labels
    assert ref.features.shape == (spec["rows"], spec["dim"]) == (len(ref.label), 1280)
    assert {(p, base.labels[c]) for p, c in zip(ref.part, ref.label, strict=True)} == {
        (p, lab) for p in ("fit", "calib", "holdout") for lab in base.labels}
    for part in ("fit", "calib", "holdout"):
        _, y, _ = ref.select(part)
        assert {lab: int((y == i).sum()) for i, lab in enumerate(base.labels)} == spec["counts"][part]
    with np.load(path, allow_pickle=False) as z:
        assert z["features"].dtype == np.float16
        assert z["probe"].shape == (2, 1280)
    assert np.isfinite(ref.features).all()
