"""Lung segmentation training in CI time: 8 real images, 1 epoch at 64 px -> ONNX with its
card -> checked against torch -> evaluated through engine.ai.lungs; plus the augmentation keeps
image and mask aligned."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("onnx")

from engine.ai.lungs import LungSegmenter  # noqa: E402
from training.seg.cli import main  # noqa: E402
from training.seg.data import DEFAULT_DATA, SegAugment, augment_pair, read_cases  # noqa: E402
from training.seg.train import pick  # noqa: E402

pytestmark = pytest.mark.skipif(not (DEFAULT_DATA / "manifest.csv").exists(), reason="../shared/data/lungseg not found")


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("lungseg")
    args = ["train", "--out", str(out / "run"), "--install", str(out / "installed"), "--set", "epochs=1", "--set", "limit=8",
            "--set", "limit_test=4", "--set", "size=64", "--set", "batch=4", "--set", "pretrained=false", "--set", "cache_dir=",
            "--plausibility-per-group", "0"]
    assert main(args) == 0
    return out


def test_artifacts_and_card(run: Path) -> None:
    for name in ("checkpoint.pt", "train_log.jsonl", "config.json", "metrics.json", "radlens-lungseg.onnx"):
        assert (run / "run" / name).is_file(), name
    for name in ("radlens-lungseg.onnx", "radlens-lungseg.metrics.json", "radlens-lungseg.card.json"):
        assert (run / "installed" / name).is_file(), name
    metrics = json.loads((run / "run" / "metrics.json").read_text())
    assert metrics["train"]["cases"] == 8 and set(metrics["train"]["per_source"]) == {"jsrt-scr", "openist"}
    assert metrics["export_check"]["max_abs_diff"] < 1e-4
    assert metrics["test"]["per_source"]["all"]["n"] == 4
    seg = LungSegmenter(run / "run" / "radlens-lungseg.onnx", device="cpu")
    card = seg.card.raw
    assert card["input_size"] == [64, 64] and card["test_metrics"]["per_source"]["all"]["n"] == 4
    assert "Research use only" in card["intended_use"] and "JSRT" in card["intended_use"]
    assert "redistribution" in json.dumps(card["training_data"]["sources"]).lower()
    assert seg.segment(np.zeros((100, 80), np.float32)).mask.shape == (100, 80)


def test_folds_are_disjoint_and_limit_spreads_sources() -> None:
    cases = read_cases()
    train, test = pick(cases, ["fold1"], 0), pick(cases, ["fold2"], 0)
    assert not {c.image for c in train} & {c.image for c in test}
    assert {c.source for c in pick(cases, ["fold1"], 4)} == {"jsrt-scr", "openist"}


def test_augmentation_moves_image_and_mask_together() -> None:
    rng = np.random.default_rng(0)
    mask = np.zeros((64, 64), np.float32)
    mask[16:48, 10:30] = 1.0
    plain = SegAugment(gamma=(1, 1), contrast=(1, 1), brightness=0.0, blur_p=0, sharpen_p=0, noise_p=0, border_p=0)
    moved = 0
    for _ in range(10):
        img, msk = augment_pair(mask.copy(), mask.copy(), rng, plain)  # the image IS the mask
        inside = msk > 0.5
        assert inside.sum() > 100 and img[inside].mean() > 0.95  # the lung stays where the mask says
        assert img.dtype == np.float32 and 0.0 <= img.min() and img.max() <= 1.0
        moved += not np.array_equal(inside, mask > 0.5)
    assert moved == 10
    img, msk = augment_pair(mask.copy(), mask.copy(), rng)
    assert img.shape == msk.shape == (64, 64)
