"""Metrics against values worked out by hand (the arithmetic is in the comments)."""

from __future__ import annotations

import itertools
import warnings

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from training.evaluation.metrics import (  # noqa: E402
    confusion_matrix,
    evaluate,
    expected_calibration_error,
    fit_temperature,
    nll,
    operating_points,
    precision_recall_f1,
    roc_auc,
    softmax,
)


def test_confusion_matrix_and_precision_recall_f1() -> None:
    y_true = np.array([0, 0, 1, 2, 2, 2])
    y_pred = np.array([0, 1, 1, 2, 0, 2])
    cm = confusion_matrix(y_true, y_pred, 3)
    # rows true, columns predicted
    assert cm.tolist() == [[1, 1, 0], [0, 1, 0], [1, 0, 2]]
    p, r, f = precision_recall_f1(cm)
    # precision = diag / column sums [2, 2, 2]; recall = diag / row sums [2, 1, 3]
    np.testing.assert_allclose(p, [1 / 2, 1 / 2, 2 / 2])
    np.testing.assert_allclose(r, [1 / 2, 1 / 1, 2 / 3])
    # F1 = 2PR / (P + R): 0.5; 2*.5*1/1.5 = 2/3; 2*1*(2/3)/(5/3) = 0.8
    np.testing.assert_allclose(f, [0.5, 2 / 3, 0.8])


def test_zero_division_gives_zero_without_warnings() -> None:
    # class 1 is never predicted (precision 0/0), class 2 neither true nor predicted (everything 0/0)
    cm = confusion_matrix(np.array([0, 0, 1]), np.array([0, 0, 0]), 3)
    assert cm.tolist() == [[2, 0, 0], [1, 0, 0], [0, 0, 0]]
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with np.errstate(all="raise"):
            p, r, f = precision_recall_f1(cm)
    # class 0: P = 2/3, R = 2/2, F1 = 2*(2/3)*1/(5/3) = 0.8
    np.testing.assert_allclose(p, [2 / 3, 0, 0])
    np.testing.assert_allclose(r, [1, 0, 0])
    np.testing.assert_allclose(f, [0.8, 0, 0])


def _auc_pairwise(y: np.ndarray, s: np.ndarray) -> float:
    pos, neg = s[y == 1], s[y == 0]
    wins = sum(1.0 if a > b else 0.5 if a == b else 0.0 for a, b in itertools.product(pos, neg))
    return wins / (len(pos) * len(neg))


def test_auc_with_ties_by_hand() -> None:
    y = np.array([1, 0, 1, 0, 1, 0])
    s = np.array([0.9, 0.9, 0.5, 0.3, 0.3, 0.1])
    # positives 0.9, 0.5, 0.3 against negatives 0.9, 0.3, 0.1 (a tie counts half):
    # 0.9: 0.5 + 1 + 1 = 2.5; 0.5: 0 + 1 + 1 = 2; 0.3: 0 + 0.5 + 1 = 1.5  ->  6 / 9
    assert roc_auc(y, s) == pytest.approx(2 / 3)
    assert roc_auc(y, -s) == pytest.approx(1 - 2 / 3)
    assert roc_auc(np.array([1, 1, 0, 0]), np.array([0.8, 0.7, 0.2, 0.1])) == 1.0
    assert roc_auc(np.array([1, 0]), np.array([0.4, 0.4])) == 0.5
    assert np.isnan(roc_auc(np.array([1, 1, 1]), np.array([0.1, 0.2, 0.3])))


def test_auc_matches_brute_force_pairwise_count() -> None:
    rng = np.random.default_rng(0)
    for n in (7, 40, 101):
        y = rng.integers(0, 2, n)
        y[:2] = [0, 1]
        s = rng.integers(0, 6, n) / 5.0  # few distinct values: many ties
        assert roc_auc(y, s) == pytest.approx(_auc_pairwise(y, s), abs=1e-12)


def test_ece_by_hand() -> None:
    probs = np.array([[0.95, 0.05], [0.85, 0.15], [0.25, 0.75], [0.55, 0.45]])
    y = np.array([0, 1, 1, 1])
    # confidence .95 .85 .75 .55, predicted 0 0 1 0 -> correct 1 0 1 0. Five bins of width 0.2:
    # (0.8, 1]: {.95 right, .85 wrong}: |0.5 - 0.9| * 2/4 = 0.2
    # (0.6, 0.8]: {.75 right}: |1 - 0.75| * 1/4 = 0.0625
    # (0.4, 0.6]: {.55 wrong}: |0 - 0.55| * 1/4 = 0.1375            -> ECE 0.4
    assert expected_calibration_error(probs, y, bins=5) == pytest.approx(0.4)
    # perfectly confident and right: 0
    assert expected_calibration_error(np.array([[1.0, 0.0], [0.0, 1.0]]), np.array([0, 1])) == 0.0


def test_softmax_and_nll() -> None:
    logits = np.array([[0.0, np.log(3.0)], [2.0, 2.0]])
    np.testing.assert_allclose(softmax(logits), [[0.25, 0.75], [0.5, 0.5]])
    np.testing.assert_allclose(softmax(logits * 2, temperature=2.0), softmax(logits))
    # -(log .75 + log .5) / 2
    assert nll(softmax(logits), np.array([1, 0])) == pytest.approx(-(np.log(0.75) + np.log(0.5)) / 2)


@pytest.mark.parametrize("true_t", [0.5, 2.5])
def test_temperature_fit_recovers_known_temperature(true_t: float) -> None:
    rng = np.random.default_rng(1)
    z = rng.normal(0, 2.0, (20000, 4))  # a calibrated model's logits
    p = softmax(z)
    y = (p.cumsum(1) > rng.random((len(z), 1))).argmax(1)  # labels drawn from the calibrated probabilities
    logits = z * true_t  # the same model, mis-scaled by true_t
    t = fit_temperature(logits, y)
    assert t == pytest.approx(true_t, rel=0.05)
    assert nll(softmax(logits, t), y) <= nll(softmax(logits, true_t), y) + 1e-9
    assert expected_calibration_error(softmax(logits, t), y) < 0.02
    assert expected_calibration_error(softmax(logits), y) > 0.05


def test_operating_points_maximise_youden_j_by_hand() -> None:
    p0 = np.array([0.9, 0.8, 0.4, 0.3, 0.5, 0.1])
    probs = np.stack([p0, [0.1, 0.2, 0.6, 0.7, 0.5, 0.9]], 1)  # literal values: 1 - 0.8 is not 0.2 in floats
    y = np.array([0, 0, 0, 1, 1, 1])
    # class 0, positives .9 .8 .4, negatives .3 .5 .1. J = sens + spec - 1 at t (p >= t is positive):
    # t=.1: 1+0-1=0; .3: 1+1/3-1=.33; .4: 1+2/3-1=.67; .5: 2/3+1-1=.67 (not better); .8: .67; .9: .33 -> 0.4
    # class 1, positives .7 .5 .9, negatives .1 .2 .6: t=.2: 1+1/3-1=.33; .5: 1+2/3-1=.67;
    # .6: 2/3+2/3-1=.33; .7: 2/3+1-1=.67 (not better); .9: .33 -> 0.5
    ops = operating_points(probs, y, ["a", "b"])
    assert ops == {"a": pytest.approx(0.4), "b": pytest.approx(0.5)}
    # a class with no positives in the data keeps the neutral 0.5
    ops = operating_points(np.array([[0.7, 0.2, 0.1], [0.6, 0.3, 0.1]]), np.array([0, 1]), ["a", "b", "c"])
    assert ops["c"] == 0.5


def test_evaluate_bundles_the_metrics() -> None:
    logits = np.log(np.array([[0.8, 0.1, 0.1], [0.2, 0.7, 0.1], [0.1, 0.2, 0.7], [0.5, 0.4, 0.1]]))
    y = np.array([0, 1, 2, 1])
    m = evaluate(logits, y, ["a", "b", "c"], temperature=1.0)
    assert m["n"] == 4
    assert m["accuracy"] == 0.75
    assert m["confusion_matrix"] == [[1, 0, 0], [1, 1, 0], [0, 0, 1]]
    # P = [1/2, 1, 1], R = [1, 1/2, 1], F1 = [2/3, 2/3, 1]
    assert m["macro_f1"] == pytest.approx((2 / 3 + 2 / 3 + 1) / 3)
    assert m["per_class"]["b"] == {"precision": 1.0, "recall": 0.5, "f1": pytest.approx(2 / 3), "support": 2,
                                   "auc_ovr": 1.0}
    assert m["ece_before_temperature"] == m["ece_after_temperature"]
    m2 = evaluate(logits, y, ["a", "b", "c"], temperature=2.0)
    assert m2["accuracy"] == m["accuracy"]  # temperature never changes the decision
    assert m2["ece_after_temperature"] != m["ece_after_temperature"]
