"""Site adaptation (``engine.adapt``, ``radlens-adapt``): the head numerics on small synthetic data,
the weights, then the real bundled model adapted to a site of real films from ../shared/data
(cxr-extdev): the new file, its card, its graph, the refusals and both CLIs."""

from __future__ import annotations

import csv
import os
import shutil
from pathlib import Path

import numpy as np
import pytest

import engine
from engine.adapt import MIN_FILMS, AdaptError, adapt_site
from engine.adapt.cli import main as adapt_main
from engine.adapt.export import base_head
from engine.adapt.fit import prior_of, weights
from engine.adapt.head import BIAS_STRENGTH, Head, _objective, fit_head, fit_temperature, lbfgs, softmax, youden_points
from engine.adapt.site import read_site
from engine.ai.model import sha256_file
from engine.batch.cli import main as batch_main
from engine.batch.report import read_report

REPO = Path(__file__).resolve().parents[2]
MODEL = REPO / "resources" / "models" / "radlens-cxr4.onnx"
EXTDEV = REPO.parent / "shared" / "data" / "cxr-extdev"
SITE_SOURCE = "chestxray-com-normal"


# ------------------------------------------------------------------ head numerics (numpy only)

def _problem(seed: int = 0, n: int = 80, c: int = 3, d: int = 5) -> tuple[np.ndarray, np.ndarray, np.ndarray, Head]:
    """Features, labels drawn from a 'true' head, positive weights summing to 1, and a base head
    that is not the true one (so the fit has somewhere to go)."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, d))
    true = Head(rng.normal(size=(c, d)), rng.normal(size=c))
    p = softmax(true.logits(x))
    y = np.array([rng.choice(c, p=pi) for pi in p])
    w = rng.uniform(0.5, 2.0, n)
    base = Head(0.3 * rng.normal(size=(c, d)), 0.3 * rng.normal(size=c))
    return x, y, w / w.sum(), base


def test_objective_gradient_matches_finite_differences() -> None:
    x, y, w, base = _problem()
    fg = _objective(x, y, w, base, 0.1)
    theta = np.random.default_rng(1).normal(size=base.weight.size + base.bias.size)
    _, grad = fg(theta)
    eps = 1e-6
    numeric = np.array([(fg(theta + eps * e)[0] - fg(theta - eps * e)[0]) / (2 * eps) for e in np.eye(len(theta))])
    np.testing.assert_allclose(grad, numeric, rtol=1e-5, atol=1e-8)


def test_fit_head_reaches_the_gradient_descent_optimum() -> None:
    x, y, w, base = _problem()
    strength = 0.1
    fg = _objective(x, y, w, base, strength)
    theta0 = np.concatenate([base.weight.ravel(), base.bias])
    # plain gradient descent with a step below 1/L (softmax CE Hessian <= 1/2 sum w ||[x, 1]||^2)
    step = 1.0 / (0.5 * float(w @ ((x * x).sum(1) + 1.0)) + strength)
    theta = theta0.copy()
    for _ in range(20_000):
        theta -= step * fg(theta)[1]
    assert float(np.abs(fg(theta)[1]).max()) < 1e-9  # gradient descent really converged
    fitted = fit_head(x, y, w, base, strength)
    got = np.concatenate([fitted.weight.ravel(), fitted.bias])
    np.testing.assert_allclose(got, theta, atol=1e-5)
    assert fg(got)[0] <= fg(theta)[0] + 1e-10
    # the L-BFGS itself: far fewer evaluations than plain gradient descent, the same minimum
    argmin, iterations = lbfgs(fg, theta0)
    assert iterations < 300
    np.testing.assert_allclose(argmin, theta, atol=1e-5)


def test_huge_strength_keeps_the_base_weights() -> None:
    x, y, w, base = _problem()
    fitted = fit_head(x, y, w, base, 1e6)
    np.testing.assert_allclose(fitted.weight, base.weight, atol=1e-5)
    # the bias has its own, fixed, small pull (BIAS_STRENGTH): it is free to follow the class balance
    assert BIAS_STRENGTH < 1e-3
    moderate = fit_head(x, y, w, base, 0.1)
    assert float(np.abs(moderate.weight - base.weight).max()) > 0.05  # a normal strength does move the weights


@pytest.mark.parametrize("t_true", [0.5, 2.0])
def test_fit_temperature_recovers_the_sampling_temperature(t_true: float) -> None:
    rng = np.random.default_rng(3)
    z = rng.normal(0.0, 3.0, size=(20_000, 4))
    p = softmax(z, t_true)
    y = (p.cumsum(1) > rng.uniform(size=(len(z), 1))).argmax(1)  # y ~ softmax(z / T)
    t = fit_temperature(z, y, np.ones(len(y)))
    assert abs(t - t_true) / t_true < 0.05, t


def test_youden_points_one_threshold_per_class_present() -> None:
    labels = ("normal", "covid", "pneumonia")
    # normal positives score 0.9/0.8/0.7, negatives 0.3/0.2: the best threshold is the lowest positive
    probs = np.array([[0.9, 0.1, 0.0], [0.8, 0.2, 0.0], [0.7, 0.3, 0.0], [0.3, 0.7, 0.0], [0.2, 0.8, 0.0]])
    y = np.array([0, 0, 0, 1, 1])
    ops = youden_points(probs, y, np.ones(5), labels)
    assert set(ops) == {"normal", "covid"}  # no pneumonia film: no threshold for it
    assert ops["normal"] == pytest.approx(0.7) and ops["covid"] == pytest.approx(0.7)
    assert all(0.0 <= v <= 1.0 for v in ops.values())
    assert youden_points(probs, np.zeros(5, np.int64), np.ones(5), labels) == {}  # one class only: no negatives


# ------------------------------------------------------------------ weights

def test_weights_keep_the_prior_and_the_site_share() -> None:
    prior = np.array([0.4, 0.3, 0.2, 0.1])
    ref_y = np.array([0] * 7 + [1] * 4 + [2] * 5 + [3] * 3)
    ref_src = np.array(["a"] * 5 + ["b"] * 2 + ["c"] * 4 + ["d"] * 3 + ["e"] * 2 + ["f"] * 3)
    site_y = np.array([0] * 6 + [1] * 3)
    share = 0.75
    wr, ws = weights(ref_y, ref_src, site_y, prior, share)
    assert wr.shape == ref_y.shape and ws.shape == site_y.shape and (wr > 0).all() and (ws > 0).all()
    assert wr.sum() + ws.sum() == pytest.approx(1.0)
    for c, pc in enumerate(prior):
        assert wr[ref_y == c].sum() + ws[site_y == c].sum() == pytest.approx(pc)
    for c in (0, 1):  # classes with site films: the site holds share of the class's weight, evenly
        assert ws[site_y == c].sum() == pytest.approx(share * prior[c])
        assert np.allclose(ws[site_y == c], ws[site_y == c][0])
    for c in (2, 3):  # no site films: the reference alone
        assert wr[ref_y == c].sum() == pytest.approx(prior[c])
    # within the reference, each source of a class weighs the same whatever its row count
    assert wr[ref_src == "a"].sum() == pytest.approx(wr[ref_src == "b"].sum())
    assert wr[ref_src == "d"].sum() == pytest.approx(wr[ref_src == "e"].sum())
    assert prior_of({}, ("a", "b", "c", "d")).tolist() == [0.25] * 4  # no prior on the card: uniform


# ------------------------------------------------------------------ real model, real films

@pytest.fixture(scope="module")
def films() -> dict[str, list[Path]]:
    """cxr-extdev films by source, in manifest order."""
    manifest = EXTDEV / "manifest.csv"
    if not manifest.is_file():
        pytest.skip(f"shared test data not found at {EXTDEV} (clone ../shared beside the repository)")
    out: dict[str, list[Path]] = {}
    with open(manifest, newline="", encoding="utf-8") as f:
        for row in csv.DictReader(f):
            out.setdefault(row["source"], []).append(EXTDEV / row["file"])
    return out


@pytest.fixture(scope="module")
def base() -> engine.Classifier:
    if not MODEL.is_file():
        pytest.skip(f"bundled model not found at {MODEL}")
    return engine.Classifier(MODEL, device="cpu")


def _site(root: Path, label_files: dict[str, list[Path]]) -> Path:
    for label, paths in label_files.items():
        (root / label).mkdir(parents=True, exist_ok=True)
        for p in paths:
            os.symlink(p, root / label / p.name)
    return root


@pytest.fixture(scope="module")
def normals_site(tmp_path_factory: pytest.TempPathFactory, films: dict[str, list[Path]]) -> Path:
    """50 normals of one site, normal/ only."""
    return _site(tmp_path_factory.mktemp("adapt") / "site", {"normal": films[SITE_SOURCE][:50]})


@pytest.fixture(scope="module")
def adapted(tmp_path_factory: pytest.TempPathFactory, normals_site: Path, base: engine.Classifier):
    out = tmp_path_factory.mktemp("adapted") / "adapted.onnx"
    before = (sha256_file(MODEL), MODEL.stat().st_mtime_ns, MODEL.stat().st_size)
    assert not out.exists()
    result = adapt_site(normals_site, base, out, site_name="Test Hospital")
    return result, before


@pytest.fixture
def test_films(films: dict[str, list[Path]]) -> list[Path]:
    """Films the site never saw: other normals of its source and films of the other classes."""
    return films[SITE_SOURCE][60:62] + films["hannover-mhh"][:2] + films["tbx11k-tb"][:1] + films["cohen-pneumonia"][:1]


def test_adapt_writes_a_new_model_and_leaves_the_base_untouched(adapted, base: engine.Classifier) -> None:
    result, before = adapted
    assert result.output.is_file() and result.output.suffix == ".onnx"
    assert (sha256_file(MODEL), MODEL.stat().st_mtime_ns, MODEL.stat().st_size) == before
    assert base.sha256 == before[0]
    clf = engine.Classifier(result.output, device="cpu")
    card = clf.card
    assert clf.sha256 != base.sha256 and clf.has_features and clf.has_ood
    parent = {"name": base.card.name, "version": base.card.version, "sha256": base.sha256}
    assert card.parent == parent and card.site_adaptation["parent"] == parent
    assert card.name != base.card.name and card.name.startswith(base.card.name)
    assert card.labels == base.card.labels and card.preprocessing == base.card.preprocessing
    site = card.site_adaptation["site"]
    assert site["name"] == "Test Hospital"
    assert site["counts"] == {"normal": 50, "covid": 0, "pneumonia": 0, "tuberculosis": 0}
    assert result.site.counts(card.labels) == site["counts"]
    for lab in ("covid", "pneumonia", "tuberculosis"):
        assert any(f"sensitivity for {lab} at this site is not measured" in w for w in result.warnings), lab
    assert card.site_adaptation["warnings"] == result.warnings
    assert not any("no normal films" in w for w in result.warnings)
    assert card.temperature == pytest.approx(result.fitted.temperature, rel=1e-5)
    assert set(card.operating_points) == set(card.labels)
    figs = card.site_adaptation["figures"]
    assert figs["site_cross_validated"]["per_class"]["normal"]["n"] == 50
    assert set(figs["site_cross_validated"]["per_class"]) == {"normal"}
    assert figs["reference_after"]["n"] == figs["reference_before"]["n"] > 0
    assert "Research use only" in card.intended_use and "Test Hospital" in card.intended_use
    # its own figures, not the parent's: the parent's are kept apart, under site_adaptation.parent_figures
    assert card.test_metrics["accuracy"] == figs["reference_after"]["accuracy"]
    assert card.test_metrics != base.card.test_metrics and "not measured" in card.out_of_source_metrics["note"]
    assert card.site_adaptation["parent_figures"]["test_metrics"] == base.card.test_metrics
    # temperature and operating points are fitted on held-out logits (reference validation films and the site's
    # out-of-fold logits), so the adapted model stays calibrated on the reference hold-out
    assert figs["calibration"]["rows"] == {"reference_validation": 800, "site_out_of_fold": 50}
    assert figs["reference_after"]["ece"] <= 0.05
    assert card.extra["cam_scale"] > 0 and "median ratio" in card.extra["cam_scale_rule"]


def test_adapt_never_overwrites_without_being_told(adapted, normals_site: Path, base: engine.Classifier) -> None:
    result, _ = adapted
    sha = sha256_file(result.output)
    with pytest.raises(AdaptError, match="exists"):
        adapt_site(normals_site, base, result.output)
    assert sha256_file(result.output) == sha


def test_adapted_graph_follows_the_new_head(adapted, base: engine.Classifier, test_films: list[Path]) -> None:
    result, _ = adapted
    clf = engine.Classifier(result.output, device="cpu")
    x = np.stack([engine.prepare(engine.load_image(f), clf).x for f in test_films])
    x_base = np.stack([engine.prepare(engine.load_image(f), base).x for f in test_films])
    assert np.array_equal(x, x_base)  # same preprocessing card
    new, old = clf.run(x, features=True), base.run(x, features=True)
    head = base_head(result.output)
    assert head.weight.shape == (4, new.features.shape[1])
    np.testing.assert_allclose(new.logits, head.logits(new.features), atol=1e-3)
    np.testing.assert_allclose(head.weight, result.fitted.head.weight, atol=1e-6)  # float32 of the fitted head
    assert not np.allclose(head.weight, base_head(MODEL).weight, atol=1e-4)  # the head did move
    np.testing.assert_allclose(new.probs, softmax(new.logits, clf.card.temperature), atol=1e-5)
    # the backbone, the features and the OOD score are the parent's; logits and heatmaps are not
    assert np.array_equal(new.features, old.features)
    assert np.array_equal(new.ood, old.ood)
    assert not np.allclose(new.logits, old.logits, atol=1e-3)
    assert new.cam.shape == old.cam.shape and not np.allclose(new.cam, old.cam, atol=1e-6)


def test_refusals_write_nothing(tmp_path: Path, films: dict[str, list[Path]], normals_site: Path,
                                base: engine.Classifier) -> None:
    sha = sha256_file(MODEL)
    out = tmp_path / "out.onnx"
    few = _site(tmp_path / "few", {"normal": films[SITE_SOURCE][:5]})
    with pytest.raises(AdaptError, match=r"too few films: normal/ has 5"):
        adapt_site(few, base, out)
    unknown = _site(tmp_path / "unknown", {"normal": films[SITE_SOURCE][:20], "xyz": films[SITE_SOURCE][20:30]})
    with pytest.raises(AdaptError, match="xyz"):
        adapt_site(unknown, base, out)
    assert not out.exists()
    with pytest.raises(AdaptError, match="must be a new file"):
        adapt_site(normals_site, base, MODEL)
    link = tmp_path / "link.onnx"
    link.symlink_to(MODEL)  # the base model under another name is still the base model
    with pytest.raises(AdaptError, match="must be a new file"):
        adapt_site(normals_site, base, link)
    with pytest.raises(AdaptError, match=r"\.onnx"):
        adapt_site(normals_site, base, tmp_path / "out.txt")
    with pytest.raises(AdaptError, match="does not exist"):
        adapt_site(normals_site, base, tmp_path / "nowhere" / "out.onnx")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["few", "link.onnx", "unknown"]
    assert sha256_file(MODEL) == sha


def test_unreadable_and_duplicate_films_are_left_out_and_counted(tmp_path: Path, films: dict[str, list[Path]],
                                                                base: engine.Classifier) -> None:
    normals = films[SITE_SOURCE][100 : 100 + MIN_FILMS]
    site = tmp_path / "site"
    (site / "normal").mkdir(parents=True)
    (site / "covid").mkdir()
    for p in normals:
        shutil.copy(p, site / "normal" / p.name)
    (site / "normal" / "notes.png").write_text("not an image, only a text file named .png\n")
    shutil.copy(normals[0], site / "normal" / "copy-of-first.jpg")  # the same film twice
    twice = films[SITE_SOURCE][150]  # the same film under two labels: every copy is left out
    shutil.copy(twice, site / "normal" / twice.name)
    shutil.copy(twice, site / "covid" / twice.name)
    got = read_site(site, base)  # what adapt_site reads (the fit itself is covered above)
    assert got.left_out == {"unreadable": 1, "duplicate": 1, "in two label folders": 2}
    reasons = dict(got.left_out_files)
    assert "notes.png" in reasons[os.path.join("normal", "notes.png")]
    assert "duplicate" in reasons[os.path.join("normal", "copy-of-first.jpg")]
    assert got.counts(base.labels) == {"normal": MIN_FILMS, "covid": 0, "pneumonia": 0, "tuberculosis": 0}
    assert got.found == {"normal": MIN_FILMS + 3, "covid": 1}
    assert len(got.files) == MIN_FILMS and os.path.join("normal", "copy-of-first.jpg") not in got.files
    assert got.features.shape == (MIN_FILMS, 1280) and got.base_logits.shape == (MIN_FILMS, 4)
    assert got.features.dtype == np.float32 and (got.label == 0).all()


# ------------------------------------------------------------------ radlens-adapt, then radlens-batch with its model

def test_cli_adapt_then_batch_with_the_adapted_model(tmp_path: Path, normals_site: Path, films: dict[str, list[Path]],
                                                    test_films: list[Path], capsys: pytest.CaptureFixture[str]) -> None:
    if not MODEL.is_file():
        pytest.skip(f"bundled model not found at {MODEL}")
    out = tmp_path / "site-model.onnx"
    code = adapt_main([str(normals_site), "-o", str(out), "--model", str(MODEL), "--name", "CLI site",
                       "--device", "cpu", "--folds", "2"])  # 2 folds: quicker than the default 5
    captured = capsys.readouterr()
    assert code == 0, captured.err
    assert out.is_file()
    s = captured.out
    assert "cross-validated" in s and "Research use only" in s
    assert "2-fold cross-validated" in s and "folds=2" in s
    assert "Parent: radlens-cxr4" in s and "Site: CLI site (normal 50 films used)" in s
    assert "sensitivity for tuberculosis at this site is not measured" in s
    assert f"Wrote {out}" in s
    adapted = engine.Classifier(out, device="cpu")
    assert adapted.card.parent["sha256"] == sha256_file(MODEL)

    # a folder too small: exit 2, nothing written
    few = _site(tmp_path / "few", {"normal": films[SITE_SOURCE][:5]})
    assert adapt_main([str(few), "-o", str(tmp_path / "few.onnx"), "--model", str(MODEL), "--device", "cpu"]) == 2
    assert "too few films" in capsys.readouterr().err
    assert not (tmp_path / "few.onnx").exists()

    # -o exists without --force: exit 2, the file is left as it was
    sha = sha256_file(out)
    assert adapt_main([str(normals_site), "-o", str(out), "--model", str(MODEL), "--device", "cpu"]) == 2
    assert "--force" in capsys.readouterr().err
    assert sha256_file(out) == sha

    # radlens-batch with the adapted model: the report names it
    folder = tmp_path / "batch"
    folder.mkdir()
    for i, p in enumerate(test_films):
        shutil.copy(p, folder / f"{i}-{p.name}")
    report = tmp_path / "report.csv"
    code = batch_main([str(folder), "-o", str(report), "--model", str(out), "--device", "cpu", "--no-progress"])
    assert code == 0, capsys.readouterr().err
    meta, table = read_report(report)
    assert len(table) == len(test_films)
    assert {r["model_name"] for r in table} == {adapted.card.name}
    assert {r["model_sha256"] for r in table} == {adapted.sha256}
    assert meta["model"]["name"] == adapted.card.name != "radlens-cxr4"
