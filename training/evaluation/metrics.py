"""Evaluation metrics in numpy: accuracy, per-class P/R/F1, confusion, one-vs-rest AUC, ECE."""

from __future__ import annotations

import numpy as np


def softmax(logits: np.ndarray, temperature: float = 1.0) -> np.ndarray:
    z = logits / temperature
    z = z - z.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


def confusion_matrix(y_true: np.ndarray, y_pred: np.ndarray, n: int) -> np.ndarray:
    """Rows: true class, columns: predicted class."""
    cm = np.zeros((n, n), dtype=np.int64)
    np.add.at(cm, (np.asarray(y_true), np.asarray(y_pred)), 1)
    return cm


def precision_recall_f1(cm: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    tp = np.diag(cm).astype(np.float64)
    pred = cm.sum(axis=0).astype(np.float64)
    true = cm.sum(axis=1).astype(np.float64)
    precision = np.divide(tp, pred, out=np.zeros_like(tp), where=pred > 0)
    recall = np.divide(tp, true, out=np.zeros_like(tp), where=true > 0)
    denom = precision + recall
    f1 = np.divide(2 * precision * recall, denom, out=np.zeros_like(tp), where=denom > 0)
    return precision, recall, f1


def roc_auc(y_binary: np.ndarray, score: np.ndarray) -> float:
    """Area under the ROC curve (Mann-Whitney U, ties counted half). NaN if one class is absent."""
    y = np.asarray(y_binary).astype(bool)
    n_pos, n_neg = int(y.sum()), int((~y).sum())
    if n_pos == 0 or n_neg == 0:
        return float("nan")
    order = np.argsort(score, kind="mergesort")
    s = np.asarray(score)[order]
    ranks = np.empty(len(s), dtype=np.float64)
    i = 0
    while i < len(s):  # average ranks over ties
        j = i
        while j + 1 < len(s) and s[j + 1] == s[i]:
            j += 1
        ranks[i : j + 1] = (i + j) / 2.0 + 1.0
        i = j + 1
    r = np.empty_like(ranks)
    r[order] = ranks
    return float((r[y].sum() - n_pos * (n_pos + 1) / 2.0) / (n_pos * n_neg))


def expected_calibration_error(probs: np.ndarray, y_true: np.ndarray, bins: int = 15) -> float:
    """Top-label ECE with equal-width confidence bins."""
    conf = probs.max(axis=1)
    correct = (probs.argmax(axis=1) == y_true).astype(np.float64)
    edges = np.linspace(0.0, 1.0, bins + 1)
    ece = 0.0
    for lo, hi in zip(edges[:-1], edges[1:], strict=True):
        m = (conf > lo) & (conf <= hi)
        if m.any():
            ece += m.mean() * abs(correct[m].mean() - conf[m].mean())
    return float(ece)


def nll(probs: np.ndarray, y_true: np.ndarray) -> float:
    return float(-np.mean(np.log(np.clip(probs[np.arange(len(y_true)), y_true], 1e-12, 1.0))))


def evaluate(logits: np.ndarray, y_true: np.ndarray, labels: list[str], temperature: float = 1.0) -> dict:
    """Every metric the model card and metrics.json carry."""
    y_true = np.asarray(y_true)
    n = len(labels)
    probs_raw = softmax(logits, 1.0)
    probs = softmax(logits, temperature)
    pred = probs.argmax(axis=1)
    cm = confusion_matrix(y_true, pred, n)
    p, r, f = precision_recall_f1(cm)
    aucs = {lab: roc_auc(y_true == i, probs[:, i]) for i, lab in enumerate(labels)}
    return {
        "n": int(len(y_true)),
        "accuracy": float((pred == y_true).mean()),
        "macro_f1": float(f.mean()),
        "per_class": {lab: {"precision": float(p[i]), "recall": float(r[i]), "f1": float(f[i]),
                            "support": int(cm[i].sum()), "auc_ovr": aucs[lab]} for i, lab in enumerate(labels)},
        "macro_auc_ovr": float(np.nanmean(list(aucs.values()))) if any(np.isfinite(v) for v in aucs.values()) else None,
        "confusion_matrix": cm.tolist(),
        "ece_before_temperature": expected_calibration_error(probs_raw, y_true),
        "ece_after_temperature": expected_calibration_error(probs, y_true),
        "nll_before_temperature": nll(probs_raw, y_true),
        "nll_after_temperature": nll(probs, y_true),
        "temperature": float(temperature),
    }


def fit_temperature(logits: np.ndarray, y_true: np.ndarray) -> float:
    """Temperature minimising validation NLL (golden-section search on log T)."""
    lo, hi = np.log(0.05), np.log(20.0)
    g = (np.sqrt(5) - 1) / 2
    f = lambda lt: nll(softmax(logits, float(np.exp(lt))), y_true)  # noqa: E731
    a, b = lo + (1 - g) * (hi - lo), lo + g * (hi - lo)
    fa, fb = f(a), f(b)
    for _ in range(80):
        if fa < fb:
            hi, b, fb = b, a, fa
            a = lo + (1 - g) * (hi - lo)
            fa = f(a)
        else:
            lo, a, fa = a, b, fb
            b = lo + g * (hi - lo)
            fb = f(b)
    return float(np.exp((lo + hi) / 2))


def operating_points(probs: np.ndarray, y_true: np.ndarray, labels: list[str]) -> dict[str, float]:
    """Per class, the probability threshold maximising Youden's J (sensitivity + specificity - 1)
    one-vs-rest on the data given (validation)."""
    out = {}
    for i, lab in enumerate(labels):
        pos = y_true == i
        if pos.all() or not pos.any():
            out[lab] = 0.5
            continue
        best_j, best_t = -1.0, 0.5
        for t in np.unique(np.round(probs[:, i], 4)):
            sens = float((probs[pos, i] >= t).mean())
            spec = float((probs[~pos, i] < t).mean())
            if sens + spec - 1 > best_j:
                best_j, best_t = sens + spec - 1, float(t)
        out[lab] = round(best_t, 4)
    return out
