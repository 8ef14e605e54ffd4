"""One rule for image files: training lists what the engine would list (``looks_like_image``)
and leaves out, counted, the files the engine refuses to load, instead of aborting the run."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")
cv2 = pytest.importorskip("cv2")

from engine.ai.card import ModelCard  # noqa: E402
from engine.io.fileio import looks_like_image  # noqa: E402
from training.data.data import decode_samples, load_all, load_samples  # noqa: E402

CLASSES = ("healthy", "sick")
PER_CLASS = 8


def _dataset(root: Path) -> Path:
    """root/<class>/*.png (synthetic, class told apart by brightness) plus files that are not images."""
    rng = np.random.default_rng(0)
    for c, name in enumerate(CLASSES):
        (root / name).mkdir(parents=True)
        for i in range(PER_CLASS):
            img = np.clip(rng.normal(80 + 90 * c, 25, (48, 40)), 0, 255).astype(np.uint8)
            cv2.imwrite(str(root / name / f"{name}_{i}.png"), img)
    (root / "sick" / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"\x00" * 40)  # a truncated PNG
    (root / "healthy" / "notes.txt").write_text("not an image")  # not listed at all
    (root / "healthy" / "scan.bmp").write_bytes(b"BM" + b"\x00" * 60)  # the engine does not read .bmp
    (root / "healthy" / ".DS_Store").write_bytes(b"\x00\x00\x00\x01Bud1")  # hidden: not listed
    return root


def test_class_folders_follow_the_engine_rule_and_skip_unreadable(tmp_path: Path) -> None:
    root = _dataset(tmp_path / "data")
    samples, labels = load_samples(root)
    assert labels == list(CLASSES)
    files = {Path(s.file).name for s in samples}
    assert "broken.png" in files  # named like an image: listed, the content decides
    assert not {"notes.txt", "scan.bmp", ".DS_Store"} & files
    assert all(looks_like_image(s.file) for s in samples)
    assert len(samples) == 2 * PER_CLASS + 1

    imgs, kept, skipped = decode_samples(samples, (32, 32))
    assert imgs.shape == (2 * PER_CLASS, 32, 32) and imgs.dtype == np.uint8
    assert [s.file for s in kept] == [s.file for s in samples if not s.file.endswith("broken.png")]
    assert len(skipped) == 1 and skipped[0].file.endswith("broken.png") and "broken.png" in skipped[0].reason
    # load_all stays strict (evaluation must not silently drop files)
    from engine.errors import RadLensError

    with pytest.raises(RadLensError):
        load_all(samples, (32, 32))
    empty, none_kept, all_skipped = decode_samples([s for s in samples if s.file.endswith("broken.png")], (32, 32))
    assert empty.shape == (0, 32, 32) and none_kept == [] and len(all_skipped) == 1


def test_training_run_skips_and_counts_unreadable_files(tmp_path: Path) -> None:
    """A broken file in a class folder: the run finishes, split.csv leaves it out, and the count is
    printed, in metrics.json and in the card's training_data."""
    pytest.importorskip("onnx")
    from engine.ai.model import Classifier
    from training.cli import main
    from training.data.data import SPLITS, read_split

    root = _dataset(tmp_path / "data")
    config = tmp_path / "tiny.yaml"
    config.write_text("name: tiny-folders\nversion: 0.0.1\nclasses: null\n"
                      "input: {size: [64, 64]}\n"
                      "model: {arch: resnet18, pretrained: false, freeze_layers: 0, dropout: 0.0}\n"
                      "split: {fractions: [0.5, 0.25, 0.25], seed: 1}\n"
                      "train: {epochs: 1, batch_size: 8, max_steps: 1, lr: 1e-3, warmup_epochs: 0, aug_views: 1}\n"
                      "card: {training_data: {summary: synthetic test images, confounders: [none, synthetic]}}\n")
    out = tmp_path / "run"
    assert main(["train", str(config), "--data", str(root), "--out", str(out)]) == 0
    splits = read_split(out / "split.csv", root)
    listed = [s.file for split in SPLITS for s in splits[split]]
    assert len(listed) == 2 * PER_CLASS and not any(f.endswith("broken.png") for f in listed)
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["skipped_unreadable"] == 1
    result = json.loads((out / "train_result.json").read_text())
    assert result["skipped_unreadable"] == 1 and result["skipped_files"][0]["file"].endswith("broken.png")
    card: ModelCard = Classifier(out / "tiny-folders.onnx", device="cpu").card
    assert card.training_data["skipped_unreadable"] == 1
    assert card.preprocessing == {"crop": "none", "intensity": "none"}
