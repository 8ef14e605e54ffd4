"""``adapt_site``: a site folder and a base model to a NEW adapted model file and its figures.

Site folder -> films through the per-image path (``site``) -> the reference set (``reference``)
-> k-fold cross-validated head, temperature and operating points (``fit``) -> the adapted ONNX
with a card that names its parent, the site, the counts, the figures and the parameters
(``export``). The base model's file is only read.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from ..ai.card import ModelCard
from ..ai.model import Classifier
from .errors import AdaptError
from .export import adapted_model, base_head, call_cam_peaks, save_model, set_card
from .fit import AdaptOptions, Fitted, adapt_features, prior_of
from .reference import load_reference
from .site import Cancelled, SiteFilms, read_site

__all__ = ["MIN_FILMS", "MIN_PER_CLASS", "AdaptError", "AdaptOptions", "AdaptResult", "Cancelled", "adapt_site"]

# A class's films are split over the k folds of the cross-validation: with fewer than 10, a fold holds
# one film or none and the site figure moves in steps of 10 points or more; 20 in all keeps the
# folds' fits from resting on a handful of films. 50 films of one class (only normal/) pass.
MIN_PER_CLASS = 10
MIN_FILMS = 20

Progress = Callable[[str, int, int], None]  # (stage, done, total)


@dataclass
class AdaptResult:
    output: Path
    card: ModelCard
    site: SiteFilms
    fitted: Fitted
    warnings: list[str] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def figures(self) -> dict:
        return self.fitted.figures


def slug(name: str) -> str:
    s = re.sub(r"[^A-Za-z0-9._-]+", "-", name.strip()).strip("-.")
    return s[:40] or "site"


def _check_counts(films: SiteFilms, labels: tuple[str, ...]) -> None:
    counts = films.counts(labels)
    left = "; ".join(f"{v} {k}" for k, v in films.left_out.items())
    left = f" ({left} left out)" if left else ""
    small = {lab: n for lab, n in counts.items() if 0 < n < MIN_PER_CLASS}
    if small:
        raise AdaptError("too few films: " + ", ".join(f"{lab}/ has {n}" for lab, n in small.items())
                         + f" usable film(s){left}. A class needs at least {MIN_PER_CLASS} (its films are split over "
                         "the cross-validation folds); add films or remove that folder.")
    total = sum(counts.values())
    if total < MIN_FILMS:
        raise AdaptError(f"too few films: {total} usable{left}; site adaptation needs at least {MIN_FILMS} confirmed "
                         "films (50 or more of the site's commonest class is better).")


def missing_warnings(counts: dict[str, int], labels: tuple[str, ...], normal: str = "normal") -> list[str]:
    out = []
    for lab in labels:
        if counts.get(lab, 0) == 0:
            what = "specificity" if lab == normal else "sensitivity"
            out.append(f"no {lab} films: {what} for {lab} at this site is not measured.")
    return out


def _drop_warnings(figs: dict) -> list[str]:
    out = []
    before, after = figs["reference_before"], figs["reference_after"]
    if before["accuracy"] is not None and after["accuracy"] < before["accuracy"] - 0.01:
        out.append(f"accuracy on the reference hold-out fell from {before['accuracy']:.3f} to {after['accuracy']:.3f}: "
                   "the site's films pull the head away from the training sources. Check the site labels.")
    for lab, b in before["per_class"].items():
        a = after["per_class"].get(lab, b)
        if a["rate"] < b["rate"] - 0.05:
            out.append(f"{lab} recall on the reference hold-out fell from {b['rate']:.3f} to {a['rate']:.3f}.")
    if after["ece"] is not None and after["ece"] > max(0.05, before["ece"] + 0.02):
        out.append(f"calibration on the reference hold-out is worse (ECE {before['ece']:.3f} -> {after['ece']:.3f}): "
                   "read the probabilities with care.")
    return out


def build_card(parent: Classifier, site_name: str, films: SiteFilms, fitted: Fitted, opts: AdaptOptions,
               warnings: list[str], reference_rows: dict[str, int] | None = None) -> ModelCard:
    """The adapted model's card: the parent's contract (labels, input, preprocessing, OOD, lung model),
    with ITS OWN figures (the parent's are kept under site_adaptation.parent_figures) and the site."""
    d = json.loads(parent.card.to_json())
    figs = fitted.figures
    d["test_metrics"] = {
        "what": "the adapted model on the reference hold-out: test-split films of the parent's training sources, "
                "never fitted on",
        "accuracy": figs["reference_after"]["accuracy"], "ece": figs["reference_after"]["ece"],
        "n": figs["reference_after"]["n"],
        "per_class": {lab: {"recall": v["rate"], "n": v["n"]} for lab, v in figs["reference_after"]["per_class"].items()},
        "site_cross_validated": figs["site_cross_validated"]["per_class"],
    }
    d["out_of_source_metrics"] = {"note": "not measured for the adapted model: it was fitted on this site's films; "
                                          "the parent's figures are in site_adaptation.parent_figures"}
    extra = d.get("extra") or {}
    for key in ("validation", "temperature_fit", "cam_scale_fit"):  # the parent's fits; its card keeps them
        extra.pop(key, None)
    d["extra"] = extra
    labels = parent.labels
    date = time.strftime("%Y-%m-%d")
    s = slug(site_name)
    d["name"] = f"{parent.card.name}-{s}"
    d["version"] = f"{parent.card.version}+site.{time.strftime('%Y%m%d')}"
    d["created"] = date
    d["temperature"] = round(float(fitted.temperature), 6)
    d["operating_points"] = fitted.operating_points
    d["site_adaptation"] = {
        "parent": {"name": parent.card.name, "version": parent.card.version, "sha256": parent.sha256},
        "site": {"name": site_name, "date": date, "counts": films.counts(labels), "left_out": films.left_out},
        "method": "linear head refitted (weighted multinomial logistic regression, L2 pull toward the parent's head) "
                  "on the parent's reference training features plus the site's films; temperature and operating "
                  "points (Youden's J) refitted on the reference validation films and the site's k-fold out-of-fold "
                  "logits; backbone, lung model and OOD score unchanged",
        "parameters": {**asdict(opts), "reference_rows": reference_rows or {}},
        "parent_figures": {"test_metrics": parent.card.test_metrics,
                           "out_of_source_metrics": parent.card.out_of_source_metrics},
        "figures": fitted.figures,
        "warnings": warnings,
    }
    d["intended_use"] = (parent.card.intended_use.rstrip(". ") + f". Adapted to the site '{site_name}' from "
                         f"{sum(films.counts(labels).values())} of its films: its figures are the site's own "
                         "cross-validated ones and were not measured on any other hospital.")
    return ModelCard.from_dict(d)


def _rescale_cam(card: ModelCard, model, films: SiteFilms, parent: Classifier) -> ModelCard:  # noqa: ANN001
    """The adapted head's Grad-CAM is on another scale than the parent's: keep "1.0 = as strong as on
    the parent's validation images" by scaling the parent's ``cam_scale`` with the median ratio of the
    call's CAM peak (adapted / parent) on the site's films."""
    from ..ai.cam import card_cam_scale

    scale = card_cam_scale(parent.card)
    if scale is None or films.cam_inputs is None:
        return card
    new = call_cam_peaks(model, films.cam_inputs)
    ok = films.cam_peaks > 1e-6
    if not ok.any():
        return card
    ratio = float(np.median(new[ok] / films.cam_peaks[ok]))
    d = card.to_dict()
    d.setdefault("extra", {})
    d["extra"]["cam_scale"] = round(scale * ratio, 6)
    d["extra"]["cam_scale_rule"] = (f"the parent's cam_scale x the median ratio ({ratio:.3f}) of the call's CAM peak, "
                                    f"adapted over parent, on {int(ok.sum())} of the site's films")
    return ModelCard.from_dict(d)


def adapt_site(site: str | Path, classifier: Classifier, output: str | Path, site_name: str | None = None,
               options: AdaptOptions | None = None, progress: Progress | None = None,
               cancel: Callable[[], bool] | None = None, overwrite: bool = False) -> AdaptResult:
    """Adapt ``classifier`` to the films under ``site`` and write the new model to ``output``.
    Raises AdaptError (bad folder, too few films, bad options, an existing ``output`` without
    ``overwrite``), ModelError (no features output or reference set) or Cancelled; the base model
    file is never written."""
    t0 = time.time()
    opts = options or AdaptOptions()
    opts.check()
    site, output = Path(site), Path(output)
    if output.resolve() == classifier.path.resolve():
        raise AdaptError(f"the adapted model must be a new file; {output.name} is the base model itself. Choose "
                         "another output name.")
    if output.exists() and not overwrite:
        raise AdaptError(f"{output} exists; choose a new file name (or allow overwriting it).")
    if output.suffix.lower() != ".onnx":
        raise AdaptError(f"the adapted model is an .onnx file; got {output.name}.")
    if not output.parent.is_dir():
        raise AdaptError(f"the output folder {output.parent} does not exist.")
    ref = load_reference(classifier)  # before the films: a model without one fails at once
    base_head(classifier.path)  # and one whose head cannot be refitted (or without the onnx package)
    labels = classifier.labels
    films = read_site(site, classifier, (lambda d, n: progress("films", d, n)) if progress else None, cancel)
    _check_counts(films, labels)
    if cancel is not None and cancel():
        raise Cancelled("site adaptation cancelled; nothing was written.")
    base = base_head(classifier.path)
    fitted = adapt_features(ref, base, float(classifier.card.temperature), prior_of(classifier.card.extra, labels),
                            films.features, films.label, films.base_logits, opts,
                            (lambda d, n: progress("fit", d, n)) if progress else None)
    if cancel is not None and cancel():
        raise Cancelled("site adaptation cancelled; nothing was written.")
    warnings = missing_warnings(films.counts(labels), labels) + _drop_warnings(fitted.figures)
    rows = {part: int((ref.part == part).sum()) for part in ("fit", "calib", "holdout")}
    card = build_card(classifier, site_name or site.name, films, fitted, opts, warnings, rows)
    model = adapted_model(classifier.path, fitted.head, fitted.temperature, card)
    card = _rescale_cam(card, model, films, classifier)
    set_card(model, card)
    save_model(model, output)
    return AdaptResult(output=output, card=card, site=films, fitted=fitted, warnings=warnings,
                       seconds=round(time.time() - t0, 2))
