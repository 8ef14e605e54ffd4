"""Sampling balanced by class, and by source within each class.

Each class gets the same share of an epoch; within a class, source ``s`` with ``n_s``
images gets a share proportional to ``n_s ** (1 - alpha)``: alpha 0 samples images of a
class uniformly (big sources dominate, as with plain class weights), alpha 1 gives every
source of a class the same share (a 67-image source repeated 30 times), alpha 0.5 is
between (shares by the square root of the source size).
"""

from __future__ import annotations

from collections import Counter

import numpy as np


def sample_weights(y: np.ndarray, sources: list[str], alpha: float = 0.5) -> np.ndarray:
    """Per-sample probabilities (sum 1) for drawing an epoch."""
    y = np.asarray(y)
    n = len(y)
    if n == 0:
        return np.zeros(0)
    groups = [f"{int(c)}\x00{s}" for c, s in zip(y, sources, strict=True)]
    size = Counter(groups)
    w = np.empty(n, np.float64)
    classes = sorted(set(int(c) for c in y))
    for c in classes:
        members = [g for g in size if g.startswith(f"{c}\x00")]
        shares = {g: size[g] ** (1.0 - alpha) for g in members}
        total = sum(shares.values())
        for i in np.flatnonzero(y == c):
            g = groups[i]
            w[i] = (shares[g] / total) / size[g] / len(classes)
    return w / w.sum()


def epoch_indices(weights: np.ndarray, n: int, rng: np.random.Generator) -> np.ndarray:
    """``n`` draws with replacement by ``weights``."""
    return rng.choice(len(weights), size=n, replace=True, p=weights)


def group_weights(y: np.ndarray, sources: list[str]) -> np.ndarray:
    """Weights (mean 1) that give every class/source group the same total (for metrics on a
    validation split that mixes sources of very different sizes)."""
    groups = [f"{int(c)}\x00{s}" for c, s in zip(np.asarray(y), sources, strict=True)]
    size = Counter(groups)
    w = np.array([1.0 / size[g] for g in groups])
    return w * len(w) / w.sum()
