"""Recipe v2 parts: the v2 split, source-balanced sampling, scanner augmentation, per-image
feature store and views (the cheap, deterministic pieces; the training run itself is not
run in tests)."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from engine.io import load_image  # noqa: E402
from training.data.data import SPLITS, load_samples, read_split  # noqa: E402
from training.data.sampling import epoch_indices, group_weights, sample_weights  # noqa: E402
from training.data.scanner_aug import scanner_augment  # noqa: E402
from training.data.split_v2 import V1_SPLIT, v2_split  # noqa: E402

CXR = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "cxr"
LABELS = ["normal", "covid", "pneumonia", "tuberculosis"]


@pytest.fixture(scope="module")
def splits() -> dict:
    if not CXR.exists() or not V1_SPLIT.exists():
        pytest.skip("shared data or the 1.0.0 split not found")
    return v2_split(CXR, LABELS, V1_SPLIT, seed=42)


def test_v2_split_keeps_old_rows_and_never_straddles(splits: dict) -> None:
    old = read_split(V1_SPLIT, CXR)
    new_where = {s.file: name for name in SPLITS for s in splits[name]}
    old_files = {s.file: name for name in SPLITS for s in old[name]}
    if any(s.source in ("nih-pneumonia", "nih-nofinding", "cohen-covid") for items in old.values() for s in items):
        pytest.skip("resources/models split is already the v2 split")
    assert all(new_where[f] == name for f, name in old_files.items())  # 1.0.0's test stays test
    samples, _ = load_samples(CXR, LABELS)
    assert len(new_where) == len(samples)  # every pool row is somewhere, once
    keys = {}
    for name in SPLITS:
        for s in splits[name]:
            assert keys.setdefault(s.key, name) == name, f"{s.key} straddles splits"
    # the new sources reach every split, roughly 70/15/15 by image
    for src in ("nih-pneumonia", "nih-nofinding", "cohen-covid"):
        n = Counter(name for name in SPLITS for s in splits[name] if s.source == src)
        assert n["val"] > 0 and n["test"] > 0 and 0.55 < n["train"] / sum(n.values()) < 0.85


def test_v2_split_is_reproducible(splits: dict) -> None:
    again = v2_split(CXR, LABELS, V1_SPLIT, seed=42)
    assert all([s.file for s in again[n]] == [s.file for s in splits[n]] for n in SPLITS)


def test_source_balanced_weights() -> None:
    y = np.array([0] * 900 + [0] * 100 + [1] * 50)
    src = ["big"] * 900 + ["small"] * 100 + ["only"] * 50
    w = sample_weights(y, src, alpha=1.0)
    assert w.sum() == pytest.approx(1.0)
    assert w[:900].sum() == pytest.approx(0.25) and w[900:1000].sum() == pytest.approx(0.25)  # sources equal
    assert w[1000:].sum() == pytest.approx(0.5)  # classes equal
    w0 = sample_weights(y, src, alpha=0.0)
    assert w0[:900].sum() == pytest.approx(0.45)  # within class by size
    ws = sample_weights(y, src, alpha=0.5)
    assert ws[:900].sum() / ws[900:1000].sum() == pytest.approx(3.0)  # sqrt(900) / sqrt(100)
    draws = epoch_indices(ws, 20000, np.random.default_rng(0))
    assert abs((draws >= 1000).mean() - 0.5) < 0.02
    gw = group_weights(y, src)
    assert gw[:900].sum() == pytest.approx(gw[900:1000].sum()) and gw.mean() == pytest.approx(1.0)


def test_scanner_augment_is_a_plausible_radiograph(cxr_samples: dict[str, list[Path]]) -> None:
    img = load_image(cxr_samples["normal"][0]).pixels
    outs = [scanner_augment(img, np.random.default_rng(i)) for i in range(20)]
    for o in outs:
        assert o.shape == img.shape and o.dtype == np.float32 and 0.0 <= o.min() and o.max() <= 1.0
        assert np.corrcoef(o.ravel(), img.ravel())[0, 1] > 0.7  # same anatomy, no flips or shifts
    assert np.std([o.mean() for o in outs]) > 0.02  # the tone varies between views
    np.testing.assert_array_equal(scanner_augment(img, np.random.default_rng(3)), outs[3])  # seeded


def test_views_are_per_image_deterministic_and_follow_the_card(cxr_samples: dict[str, list[Path]], tmp_path: Path,
                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    from training.recipes import recipe_v2

    paths = [str(p) for p in cxr_samples["covid"][:3]]
    imgs = np.stack([np.clip(load_image(p).pixels * 255 + 0.5, 0, 255).astype(np.uint8) for p in paths])
    card = recipe_v2.recipe_card({**recipe_v2.DEFAULT_RC, "preprocessing": {"crop": "none", "intensity": "clahe"}})
    a = recipe_v2.make_view(imgs, None, card, "scanner", 7, paths)
    b = recipe_v2.make_view(imgs[1:], None, card, "scanner", 7, paths[1:])
    np.testing.assert_array_equal(a[1:], b)  # an image's view does not depend on its neighbours
    clean = recipe_v2.make_view(imgs, None, card, "scanner", None, paths)
    from engine.ai.preprocess import model_gray

    ref, _, _ = model_gray(imgs[0].astype(np.float32) / 255.0, card)
    np.testing.assert_array_equal(clean[0], np.clip(ref * 255 + 0.5, 0, 255).astype(np.uint8))

    monkeypatch.setattr(recipe_v2, "CACHE", tmp_path)
    store = recipe_v2.FeatureStore("k")
    feats = np.arange(3 * 4, dtype=np.float16).reshape(3, 4)
    store.add(paths[:2], feats[:2])
    assert store.missing(paths) == [2]
    store.add(paths[2:], feats[2:])
    np.testing.assert_array_equal(recipe_v2.FeatureStore("k").get(paths[::-1]), feats[::-1])
