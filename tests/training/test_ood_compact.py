"""The in-graph OOD score with its precision matrix stored in half precision: the bundled model
computes sqrt(min_c (f - mu_c) P (f - mu_c) / K) from its float16 P, and ``compact_precision``
turns a float32 graph into that one. Real model, real radiographs and knees."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

onnx = pytest.importorskip("onnx")
from onnx import numpy_helper  # noqa: E402

from training.export.ood import PRECISION_F16, FeatureExtractor, compact_precision, scores  # noqa: E402

REPO = Path(__file__).resolve().parents[2]
MODEL = REPO / "resources" / "models" / "radlens-cxr4.onnx"
DATA = REPO.parent / "shared" / "data"


@pytest.fixture(scope="module")
def files() -> list[Path]:
    cxr = sorted((DATA / "cxr" / "images").rglob("*.jpg"))[:: 997][:6]
    knees = sorted((DATA / "ood-dev").rglob("*.png"))[:3] + sorted((DATA / "ood-dev").rglob("*.jpg"))[:3]
    if not MODEL.exists() or len(cxr) < 3 or not knees:
        pytest.skip("bundled model or shared data missing")
    return cxr + knees


def _inits(model: onnx.ModelProto) -> dict[str, np.ndarray]:
    return {i.name: numpy_helper.to_array(i) for i in model.graph.initializer if i.name.startswith("ood_")}


def test_bundled_score_is_the_documented_formula_from_a_half_precision_matrix(files: list[Path]) -> None:
    model = onnx.load(str(MODEL))
    inits = _inits(model)
    assert inits[PRECISION_F16].dtype == np.float16 and "ood_precision" not in inits
    assert MODEL.stat().st_size < 20_000_000  # the size limit, with the OOD score inside
    fx = FeatureExtractor(MODEL)
    feats, kept, _ = fx.run(files)
    want = scores(feats, inits["ood_means"][0].astype(np.float64), inits[PRECISION_F16].astype(np.float64))
    got = np.concatenate([fx.clf.run(np.stack(fx.inputs([Path(k)])[0])).ood for k in kept])
    np.testing.assert_allclose(got, want, rtol=1e-4)
    assert got.max() > 1.0  # the knees are far from every class mean


def test_compact_precision_turns_a_float32_graph_into_the_shipped_one(files: list[Path], tmp_path: Path) -> None:
    model = onnx.load(str(MODEL))
    g = model.graph
    half = next(i for i in g.initializer if i.name == PRECISION_F16)
    p32 = numpy_helper.to_array(half).astype(np.float32)
    g.initializer.remove(half)
    g.initializer.append(numpy_helper.from_array(p32, "ood_precision"))
    cast = next(n for n in g.node if n.op_type == "Cast" and n.input[0] == PRECISION_F16)
    g.node.remove(cast)
    f32 = tmp_path / "f32.onnx"
    onnx.save(model, str(f32))
    assert compact_precision(model) and not compact_precision(model)  # once; a compact model is left alone
    compacted = tmp_path / "f16.onnx"
    onnx.save(model, str(compacted))
    assert compacted.stat().st_size < f32.stat().st_size - 3_000_000
    shutil.copy2(compacted, tmp_path / "copy.onnx")
    from engine import Classifier

    a, b = Classifier(f32), Classifier(tmp_path / "copy.onnx")
    x = np.stack(FeatureExtractor(MODEL).inputs(files)[0])
    ra, rb = a.run(x), b.run(x)
    np.testing.assert_array_equal(ra.probs, rb.probs)
    np.testing.assert_allclose(ra.ood, rb.ood, rtol=1e-6)  # P was already float16-exact: no further loss
