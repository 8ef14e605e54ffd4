"""The numerics of site adaptation, numpy only: a weighted multinomial logistic head regularised
toward the base head, its temperature and its operating points.

Objective (``fit_head``), with sample weights ``w`` summing to 1::

    sum_i w_i * CE(softmax(W x_i + b), y_i) + strength / 2 * ||W - W0||^2 + 1e-4 / 2 * ||b - b0||^2

The penalty pulls the weights toward the base head (W0, b0), not toward zero: with few site
films the head moves only as far as the films demand. Minimised with L-BFGS from the base head.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

BIAS_STRENGTH = 1e-4


@dataclass(frozen=True)
class Head:
    weight: np.ndarray  # [C, D] float64
    bias: np.ndarray  # [C] float64

    def logits(self, x: np.ndarray) -> np.ndarray:
        return np.asarray(x, np.float64) @ self.weight.T + self.bias


def softmax(z: np.ndarray, temperature: float = 1.0) -> np.ndarray:
    z = np.asarray(z, np.float64) / temperature
    z = z - z.max(1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(1, keepdims=True)


def _objective(x: np.ndarray, y: np.ndarray, w: np.ndarray, base: Head, strength: float
               ) -> Callable[[np.ndarray], tuple[float, np.ndarray]]:
    c, d = base.weight.shape
    onehot = np.eye(c)[y]
    w0, b0 = base.weight.ravel(), base.bias

    def fg(theta: np.ndarray) -> tuple[float, np.ndarray]:
        weight, bias = theta[: c * d].reshape(c, d), theta[c * d :]
        z = x @ weight.T + bias
        z -= z.max(1, keepdims=True)
        lse = np.log(np.exp(z).sum(1))
        p = np.exp(z - lse[:, None])
        loss = float(w @ (lse - (z * onehot).sum(1)))
        r = (p - onehot) * w[:, None]  # [N, C]
        dw, db = theta[: c * d] - w0, bias - b0
        loss += 0.5 * strength * float(dw @ dw) + 0.5 * BIAS_STRENGTH * float(db @ db)
        grad = np.concatenate([(r.T @ x).ravel() + strength * dw, r.sum(0) + BIAS_STRENGTH * db])
        return loss, grad

    return fg


def lbfgs(fg: Callable[[np.ndarray], tuple[float, np.ndarray]], x0: np.ndarray, max_iter: int = 300,
          memory: int = 10, gtol: float = 1e-7) -> tuple[np.ndarray, int]:
    """Minimise a smooth function (value and gradient) with L-BFGS and an Armijo backtracking line
    search; (argmin, iterations)."""
    x = x0.copy()
    f, g = fg(x)
    hist: list[tuple[np.ndarray, np.ndarray, float]] = []
    it = 0
    for it in range(1, max_iter + 1):  # noqa: B007 - the count is returned
        q = g.copy()
        alphas = []
        for s, yv, rho in reversed(hist):
            a = rho * float(s @ q)
            q -= a * yv
            alphas.append(a)
        if hist:
            s, yv, _ = hist[-1]
            q *= float(s @ yv) / float(yv @ yv)
        else:
            q /= max(1.0, float(np.linalg.norm(g)))
        for (s, yv, rho), a in zip(hist, reversed(alphas), strict=True):
            q += s * (a - rho * float(yv @ q))
        d = -q
        slope = float(g @ d)
        if slope >= 0:  # not a descent direction: restart from the gradient
            hist.clear()
            d, slope = -g, -float(g @ g)
        t = 1.0
        while True:
            xn = x + t * d
            fn, gn = fg(xn)
            if fn <= f + 1e-4 * t * slope or t < 1e-12:
                break
            t *= 0.5
        s, yv = xn - x, gn - g
        sy = float(s @ yv)
        if sy > 1e-12:
            hist.append((s, yv, 1.0 / sy))
            del hist[:-memory]
        converged = abs(f - fn) <= 1e-10 * max(1.0, abs(f)) or float(np.abs(gn).max()) < gtol
        x, f, g = xn, fn, gn
        if converged:
            break
    return x, it


def fit_head(x: np.ndarray, y: np.ndarray, w: np.ndarray, base: Head, strength: float, max_iter: int = 300) -> Head:
    """The head minimising the weighted cross-entropy plus the pull toward ``base`` (see the module)."""
    c, d = base.weight.shape
    w = np.asarray(w, np.float64)
    w = w / w.sum()
    theta0 = np.concatenate([base.weight.ravel(), base.bias]).astype(np.float64)
    theta, _ = lbfgs(_objective(np.asarray(x, np.float64), np.asarray(y), w, base, strength), theta0, max_iter)
    return Head(theta[: c * d].reshape(c, d), theta[c * d :])


def fit_temperature(z: np.ndarray, y: np.ndarray, w: np.ndarray) -> float:
    """The temperature minimising the weighted negative log-likelihood of held-out logits
    (a grid over log T from 0.25 to 8, refined once)."""
    w = np.asarray(w, np.float64) / np.sum(w)

    def nll(t: float) -> float:
        p = softmax(z, t)[np.arange(len(y)), y]
        return float(-(w @ np.log(np.maximum(p, 1e-12))))

    grid = np.exp(np.linspace(np.log(0.25), np.log(8.0), 61))
    best = grid[int(np.argmin([nll(t) for t in grid]))]
    fine = best * np.exp(np.linspace(-0.06, 0.06, 25))
    return float(fine[int(np.argmin([nll(t) for t in fine]))])


def youden_points(probs: np.ndarray, y: np.ndarray, w: np.ndarray, labels: tuple[str, ...]) -> dict[str, float]:
    """Per class, the probability threshold maximising weighted Youden's J (sensitivity + specificity
    - 1), one class against the rest, as the base models' operating points are chosen."""
    w = np.asarray(w, np.float64)
    out = {}
    for c, lab in enumerate(labels):
        pos = y == c
        if not pos.any() or pos.all():
            continue
        s = probs[:, c]
        order = np.argsort(-s, kind="stable")
        tp = np.cumsum(np.where(pos[order], w[order], 0.0)) / w[pos].sum()
        fp = np.cumsum(np.where(~pos[order], w[order], 0.0)) / w[~pos].sum()
        j = tp - fp
        last_of_tie = np.r_[s[order][1:] != s[order][:-1], True]  # a threshold takes every tied score
        k = int(np.argmax(np.where(last_of_tie, j, -np.inf)))
        out[lab] = round(float(s[order][k]), 6)
    return out


def ece(probs: np.ndarray, y: np.ndarray, bins: int = 15) -> float:
    """Expected calibration error of the top-class probability (equal-width bins)."""
    conf, pred = probs.max(1), probs.argmax(1)
    edges = np.linspace(0.0, 1.0, bins + 1)
    total = 0.0
    for lo, hi in zip(edges[:-1], edges[1:], strict=True):
        m = (conf > lo) & (conf <= hi)
        if m.any():
            total += m.mean() * abs(float((pred[m] == y[m]).mean()) - float(conf[m].mean()))
    return float(total)
