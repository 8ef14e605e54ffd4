"""Logit adjustment inside the exported classifier: the probabilities move exactly as
softmax(z / T + log(K pi)) says, and Grad-CAM and the out-of-distribution score do not move.
The real bundled model and a real radiograph; no training."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("onnx")

from engine import Classifier, load_image, prepare  # noqa: E402
from training.evaluation.metrics import softmax  # noqa: E402
from training.export.prior_adjust import adjust_bias, train_prior  # noqa: E402

REPO = Path(__file__).resolve().parents[2]
MODEL = REPO / "resources" / "models" / "radlens-cxr4.onnx"
GOLDEN = REPO / "resources" / "golden" / "golden.png"


def test_bias_shift_moves_probabilities_as_logit_adjustment_and_nothing_else(tmp_path: Path) -> None:
    if not MODEL.exists() or not GOLDEN.exists():
        pytest.skip("bundled model or golden image missing")
    copy = tmp_path / "m.onnx"
    shutil.copy2(MODEL, copy)
    before = Classifier(copy)
    x = prepare(load_image(GOLDEN), before).x[None]
    out0 = before.run(x)
    T = float(before.card.temperature)
    pi = np.array([0.4, 0.19, 0.24, 0.17])
    shift = T * np.log(4 * pi)
    adjust_bias(copy, shift)
    out1 = Classifier(copy).run(x)
    np.testing.assert_allclose(out1.logits, out0.logits + shift, atol=1e-4)
    np.testing.assert_allclose(out1.probs, softmax(out0.logits / T + np.log(4 * pi), 1.0), atol=1e-5)
    np.testing.assert_array_equal(out1.cam, out0.cam)
    if getattr(out0, "ood", None) is not None:
        np.testing.assert_array_equal(out1.ood, out0.ood)


def test_training_prior_comes_from_the_split_files_train_rows() -> None:
    split = MODEL.with_suffix(".split.csv")
    if not split.exists() or not (REPO.parent / "shared" / "data" / "cxr").exists():
        pytest.skip("split file or shared data missing")
    pi = train_prior(split, ["normal", "covid", "pneumonia", "tuberculosis"])
    assert pi.shape == (4,) and abs(pi.sum() - 1) < 1e-9
    assert pi.argmax() == 0 and (pi > 0.1).all()  # normal is the commonest training class
