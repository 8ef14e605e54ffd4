"""Recipe levers added for 2.x: an extra normal source (JSRT films without a nodule) in the
pool's format, the intra-label cross-source mix (LISA) and the class-conditional source
adversary. Real data from ../shared; no training run."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from PIL import Image  # noqa: E402

from training.data.data import SPLITS, load_all, read_split, write_split  # noqa: E402
from training.data.extra_sources import add_extra, extra_samples, is_extra, pool_format  # noqa: E402
from training.recipes import recipe_v2  # noqa: E402

DATA = Path(__file__).resolve().parents[2].parent / "shared" / "data"
CXR = DATA / "cxr"


@pytest.fixture(scope="module")
def jsrt() -> list:
    if not (DATA / "lungseg" / "manifest.csv").exists():
        pytest.skip("shared lungseg data not found")
    return extra_samples("jsrt-nonodule", CXR)


def test_jsrt_normals_are_the_films_without_a_nodule(jsrt: list) -> None:
    assert 90 <= len(jsrt) <= 93
    assert all("JPCNN" in s.file and s.label == "normal" and s.source == "jsrt-nonodule" for s in jsrt)
    assert all(Path(s.path).is_file() for s in jsrt)
    assert len({s.key for s in jsrt}) == len(jsrt)


def test_extra_split_is_reproducible_never_straddles_and_round_trips(jsrt: list, tmp_path: Path) -> None:
    base = {s: [] for s in SPLITS}
    a = add_extra(base, ["jsrt-nonodule"], CXR, 42)
    b = add_extra(base, ["jsrt-nonodule"], CXR, 42)
    assert a == b
    sizes = {s: len(a[s]) for s in SPLITS}
    assert sum(sizes.values()) == len(jsrt) and sizes["train"] > sizes["val"] > 0 and sizes["test"] > 0
    keys = [{x.key for x in a[s]} for s in SPLITS]
    assert not (keys[0] & keys[1]) and not (keys[0] & keys[2]) and not (keys[1] & keys[2])
    write_split(a, tmp_path / "split.csv")  # names relative to the pool folder resolve back to the files
    back = read_split(tmp_path / "split.csv", CXR)
    assert [Path(x.path).resolve() for x in back["test"]] == [Path(x.path).resolve() for x in a["test"]]
    assert all(Path(x.path).is_file() for x in back["train"])
    again = add_extra(a, ["jsrt-nonodule"], CXR, 42)  # a split that already has them gains nothing twice
    assert {s: len(again[s]) for s in SPLITS} == sizes


def test_extra_images_reach_training_in_the_pool_format(jsrt: list) -> None:
    imgs = load_all(jsrt[:2], (224, 224), workers=1)
    assert imgs.shape == (2, 224, 224) and imgs.dtype == np.uint8 and is_extra(jsrt[0])
    buf = io.BytesIO()
    Image.fromarray(imgs[0], "L").save(buf, "JPEG", quality=88)
    again = np.asarray(Image.open(buf).convert("L"), np.int16)
    assert np.abs(again - imgs[0]).mean() < 1.0  # already a quality-88 JPEG: a second round trip barely moves it
    raw = np.asarray(Image.open(jsrt[0].path).convert("L").resize((224, 224)), np.uint8)
    assert np.abs(pool_format(raw).astype(np.int16) - raw).max() > 0


def test_intra_label_mix_only_mixes_a_class_with_its_other_sources() -> None:
    y = np.array([0, 0, 0, 1, 1, 2])
    src = ["a", "a", "b", "c", "c", "d"]
    feats = np.arange(6, dtype=np.float32)[:, None, None, None] * np.ones((6, 2, 1, 1), np.float32)
    mix = recipe_v2._intra_label_mix(y, src)
    rng = np.random.default_rng(0)
    idx = np.array([0, 2, 3, 5])
    out = mix(feats[idx], idx, rng, lambda t: feats[t])
    v = out[:, 0, 0, 0]
    assert 0.0 < v[0] < 2.0 and v[0] != 0.0  # class 0, source a: mixed with image 2 (source b)
    assert 0.0 < v[1] < 2.0  # class 0, source b: mixed with image 0 or 1 (source a)
    assert v[2] == 3.0 and v[3] == 5.0  # one source in classes 1 and 2: unchanged
    np.testing.assert_array_equal(feats[idx][:, 0, 0, 0], [0, 2, 3, 5])  # input not modified


def test_source_adversary_reverses_its_gradient_and_ignores_one_source_classes() -> None:
    y = np.array([0, 0, 1, 1])
    src = ["a", "b", "c", "c"]
    from training.recipes.adversary import SourceAdversary

    adv = SourceAdversary(y, src, 8)
    assert adv.groups == ["0/a", "0/b", "1/c"]
    torch.manual_seed(0)
    pooled = torch.randn(4, 8, requires_grad=True)
    loss = adv.loss(pooled, np.arange(4), 1.0)
    loss.backward()
    g_rev = pooled.grad.clone()
    pooled.grad = None
    z = adv.head(pooled)  # the same loss without the reversal
    z = z.masked_fill(~adv.allowed[torch.arange(4)], -1e4)
    torch.nn.functional.cross_entropy(z, adv.target, weight=adv.weight).backward()
    torch.testing.assert_close(g_rev, -pooled.grad)
    assert float(torch.linalg.vector_norm(g_rev[2:])) < 1e-6  # class 1 has one source: nothing to remove
    assert float(torch.linalg.vector_norm(g_rev[:2])) > 0


def test_jsrt_is_a_second_out_of_source_normal_set_only_for_models_that_never_saw_it(jsrt: list, tmp_path: Path) -> None:
    from training.evaluation.evaluate_ext import other_normals

    installed = Path(__file__).resolve().parents[2] / "resources" / "models" / "radlens-cxr4.split.csv"
    films, why = other_normals(CXR, installed)
    assert len(films) == len(jsrt) and "never in this model's training" in why
    with_jsrt = add_extra({s: [] for s in SPLITS}, ["jsrt-nonodule"], CXR, 42)
    write_split(with_jsrt, tmp_path / "split.csv")
    films, why = other_normals(CXR, tmp_path / "split.csv")
    assert films == [] and "in-source" in why


def test_engine_input_of_a_large_film_equals_the_training_input(jsrt: list) -> None:
    """Train/serve parity on a 512 px film: the engine rounds to 8-bit steps as training does."""
    import json

    from engine import Classifier, load_image, prepare
    from training.data.data import Sample
    from training.recipes.train import normalize_batch

    model = Path(__file__).resolve().parents[2] / "resources" / "models" / "radlens-cxr4.onnx"
    if not model.exists():
        pytest.skip("bundled model missing")
    clf = Classifier(model)
    film = jsrt[0]
    assert load_image(film.path).pixels.shape == (512, 512)
    x = prepare(load_image(film.path), clf).x
    steps = (x[0] * np.asarray(clf.card.std)[0] + np.asarray(clf.card.mean)[0]) * 255.0
    np.testing.assert_allclose(steps, np.round(steps), atol=1e-3)  # 8-bit levels only
    rc = {**recipe_v2.DEFAULT_RC, "preprocessing": json.loads(clf.card.to_json()).get("preprocessing") or {}}
    plain = Sample(film.path, film.file, film.label, film.key, "engine-parity")  # not an extra source: no JPEG step
    u8 = load_all([plain], tuple(clf.card.input_size), workers=1)
    view = recipe_v2.make_view(u8, None, recipe_v2.recipe_card(rc), "v1", None)
    np.testing.assert_allclose(normalize_batch(view, rc["mean"], rc["std"])[0], x, atol=1e-6)
