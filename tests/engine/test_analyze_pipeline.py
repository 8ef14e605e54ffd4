"""``analyze(path, classifier) -> Prediction`` on real radiographs and DICOM."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest

from engine.ai.analyze import Prediction, analyze
from engine.ai.preprocess import preprocess
from engine.errors import UnsupportedImageError
from engine.io import load_image


def test_analyze_real_radiograph(classifier, cxr_samples: dict[str, list[Path]]) -> None:
    path = cxr_samples["normal"][2]
    pred = analyze(path, classifier)
    assert isinstance(pred, Prediction) and pred.path == str(path)
    out = classifier.run(preprocess(load_image(path).pixels, classifier.card)[None])
    np.testing.assert_allclose(pred.probs, out.probs[0], atol=1e-6)
    np.testing.assert_allclose(pred.logits, out.logits[0], atol=1e-6)
    assert pred.cam.shape == (4, 16, 16)
    assert pred.labels == classifier.labels and pred.top_label == pred.labels[int(np.argmax(pred.probs))]
    assert pred.top_prob == pytest.approx(float(pred.probs.max()))
    ranked = pred.ranked()
    assert [p for _, p in ranked] == sorted((p for _, p in ranked), reverse=True) and ranked[0][0] == pred.top_label
    assert pred.above_operating_point() == [lab for lab, p in zip(pred.labels, pred.probs, strict=True) if p >= 0.5]
    assert (pred.model_name, pred.model_version, pred.model_sha256) == ("tiny-test-cnn", "0.0.1", classifier.sha256)
    h = pred.heatmap()
    assert h.shape == (224, 224) and 0.0 <= float(h.min()) and float(h.max()) <= 1.0


def test_prediction_is_frozen(classifier, cxr_samples: dict[str, list[Path]]) -> None:
    pred = analyze(cxr_samples["covid"][1], classifier)
    with pytest.raises(dataclasses.FrozenInstanceError):
        pred.path = "elsewhere"  # type: ignore[misc]


def test_analyze_large_dicom_heatmap_at_image_size(classifier, dicom_dir: Path) -> None:
    pred = analyze(dicom_dir / "RG1_J2KI.dcm", classifier)
    assert pred.image.shape == (1955, 1841)
    assert pred.heatmap(class_index=3).shape == (1955, 1841)
    assert np.isclose(float(pred.probs.sum()), 1.0, atol=1e-5)


def test_analyze_bad_file_raises_typed_error(classifier, undecodable_dicom: Path) -> None:
    with pytest.raises(UnsupportedImageError, match=r"unsupported compression: JPEG Extended .*1\.2\.840\.10008\.1\.2\.4\.51"):
        analyze(undecodable_dicom, classifier)
