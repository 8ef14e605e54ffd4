"""Site adaptation on features: weights, k-fold cross-validation, the final head, its temperature
and operating points, and the figures before and after. No images here: ``run`` reads the site
and ``training`` experiments call ``adapt_features`` on cached features.

Weights (each class's total is the training prior the base model's probabilities assume, so the
refit head keeps that prior): within a class with site films, the site's films share
``site_share`` of the class's weight and the reference films the rest; a class without site films
is the reference's alone. Within the reference, each source of a class weighs the same.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from .errors import AdaptError
from .head import Head, ece, fit_head, fit_temperature, softmax, youden_points
from .reference import Reference

DEFAULT_SITE_SHARE = 0.75
DEFAULT_STRENGTH = 0.03
DEFAULT_FOLDS = 5
DEFAULT_SEED = 0


@dataclass(frozen=True)
class AdaptOptions:
    site_share: float = DEFAULT_SITE_SHARE  # the site films' share of each class's weight (classes it has)
    strength: float = DEFAULT_STRENGTH  # the pull toward the base head (L2 on W - W0)
    folds: int = DEFAULT_FOLDS  # k of the k-fold cross-validation
    seed: int = DEFAULT_SEED  # fold assignment

    def check(self) -> None:
        if not 0.0 < self.site_share < 1.0:
            raise AdaptError(f"--site-share must be between 0 and 1 (exclusive), got {self.site_share}.")
        if not self.strength > 0:
            raise AdaptError(f"--strength must be positive, got {self.strength}.")
        if not 2 <= self.folds <= 20:
            raise AdaptError(f"--folds must be between 2 and 20, got {self.folds}.")


@dataclass
class Fitted:
    head: Head
    temperature: float
    operating_points: dict[str, float]
    figures: dict = field(default_factory=dict)


def prior_of(card_extra: dict, labels: tuple[str, ...]) -> np.ndarray:
    """The class prior the base model's probabilities assume: the prior adjustment's, else uniform."""
    prior = ((card_extra or {}).get("prior_adjustment") or {}).get("prior") or {}
    p = np.array([float(prior.get(lab, 0.0)) for lab in labels])
    if not (p > 0).all():
        p = np.ones(len(labels))
    return p / p.sum()


def weights(ref_y: np.ndarray, ref_src: np.ndarray, site_y: np.ndarray, prior: np.ndarray, site_share: float
            ) -> tuple[np.ndarray, np.ndarray]:
    """(reference row weights, site row weights), summing to 1 together (see the module)."""
    wr, ws = np.zeros(len(ref_y)), np.zeros(len(site_y))
    for c, pc in enumerate(prior):
        has_site = bool((site_y == c).any())
        share = site_share if has_site else 0.0
        if has_site:
            ws[site_y == c] = pc * share / (site_y == c).sum()
        m = ref_y == c
        srcs = np.unique(ref_src[m])
        for s in srcs:
            ms = m & (ref_src == s)
            wr[ms] = pc * (1.0 - share) / len(srcs) / ms.sum()
    total = wr.sum() + ws.sum()
    return wr / total, ws / total


def stratified_folds(y: np.ndarray, k: int, seed: int) -> np.ndarray:
    """A fold id per row, each class dealt round-robin over the folds in a seeded order."""
    rng = np.random.default_rng(seed)
    fold = np.zeros(len(y), np.int64)
    offset = 0
    for c in np.unique(y):
        idx = np.flatnonzero(y == c)
        rng.shuffle(idx)
        fold[idx] = (np.arange(len(idx)) + offset) % k
        offset += len(idx)
    return fold


def _rate(calls: np.ndarray, y: np.ndarray, labels: tuple[str, ...]) -> dict[str, dict]:
    out = {}
    for c, lab in enumerate(labels):
        m = y == c
        if m.any():
            n, k = int(m.sum()), int((calls[m] == c).sum())
            out[lab] = {"n": n, "correct": k, "rate": round(k / n, 4)}
    return out


def holdout_figures(logits: np.ndarray, y: np.ndarray, src: np.ndarray, labels: tuple[str, ...],
                    temperature: float) -> dict:
    calls = logits.argmax(1)
    return {"n": len(y), "accuracy": round(float((calls == y).mean()), 4) if len(y) else None,
            "per_class": _rate(calls, y, labels),
            "per_source": {s: round(float((calls[src == s] == y[src == s]).mean()), 4) for s in sorted(set(src))},
            "ece": round(ece(softmax(logits, temperature), y), 4) if len(y) else None}


def adapt_features(ref: Reference, base: Head, base_temperature: float, prior: np.ndarray, site_x: np.ndarray,
                   site_y: np.ndarray, site_base_logits: np.ndarray | None, opts: AdaptOptions,
                   progress=None) -> Fitted:  # noqa: ANN001 - progress(step, steps)
    """k-fold cross-validate over the site's films (every fold refits on all reference ``fit`` rows and
    the other folds' site films), fit the final head, then its temperature and operating points on
    held-out logits: the reference ``calib`` rows (validation films the backbone never trained on)
    and the site's out-of-fold logits, weighted as in the fit."""
    from threadpoolctl import threadpool_limits

    labels = ref.labels
    rx, ry, rsrc = ref.select("fit")
    cx, cy, csrc = ref.select("calib")
    hx, hy, hsrc = ref.select("holdout")
    wr, ws = weights(ry, rsrc, site_y, prior, opts.site_share)
    x = np.concatenate([rx, site_x]).astype(np.float64)
    y = np.concatenate([ry, site_y])
    w = np.concatenate([wr, ws])
    n_ref = len(ry)
    fold = stratified_folds(site_y, opts.folds, opts.seed)
    oof = np.zeros((len(site_y), len(labels)))
    steps = opts.folds + 1
    # one BLAS thread: on 2 cores a second one makes these small products slower and erratic (2-60 ms each)
    with threadpool_limits(1, user_api="blas"):
        for k in range(opts.folds):
            keep = np.concatenate([np.ones(n_ref, bool), fold != k])
            head = fit_head(x[keep], y[keep], w[keep], base, opts.strength)
            oof[fold == k] = head.logits(site_x[fold == k])
            if progress is not None:
                progress(k + 1, steps)
        head = fit_head(x, y, w, base, opts.strength)
    if progress is not None:
        progress(steps, steps)
    wc, wso = weights(cy, csrc, site_y, prior, opts.site_share)
    cal_z = np.concatenate([head.logits(cx), oof])
    cal_y = np.concatenate([cy, site_y])
    cal_w = np.concatenate([wc, wso])
    temperature = fit_temperature(cal_z, cal_y, cal_w)
    ops = youden_points(softmax(cal_z, temperature), cal_y, cal_w, labels)
    before_logits = site_base_logits if site_base_logits is not None else base.logits(site_x)
    figures = {
        "site_cross_validated": {"folds": opts.folds, "seed": opts.seed, "per_class": _rate(oof.argmax(1), site_y, labels)},
        "site_before": {"per_class": _rate(np.asarray(before_logits).argmax(1), site_y, labels)},
        "reference_before": holdout_figures(base.logits(hx), hy, hsrc, labels, base_temperature),
        "reference_after": holdout_figures(head.logits(hx), hy, hsrc, labels, temperature),
        "calibration": {"rows": {"reference_validation": len(cy), "site_out_of_fold": len(site_y)},
                        "temperature": round(temperature, 4), "parent_temperature": round(base_temperature, 4)},
    }
    return Fitted(head=head, temperature=temperature, operating_points=ops, figures=figures)
