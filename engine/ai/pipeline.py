"""The per-image job, once: a loaded image to a ``Prediction``.

Every caller runs these steps in this order: ``analyze()``, the batch generator (the
CLI and the desktop batch window), and both desktop workers. DESIGN.md's order:

    load (the caller: ``load_image`` or a process pool running it)
    -> scope evidence from the header and pixel statistics (``engine.ai.scope``)
    -> lung field (the lung model the card names, else the bundled one, for the scope check)
    -> model input (crop, intensity normalisation, resize, normalise: the card's preprocessing)
    -> ``classifier.run`` (logits, probs, cam, ood, view)
    -> checks (no verdict on a non-finite output)
    -> scope verdict (header, pixels, the view probabilities, lung field, OOD score: each against the card)
    -> decision (one call + flags by the rule in the card; none out of scope)
    -> ``Prediction``

``prepare`` is the part before the model (it runs in the batch's decode threads) and
``conclude`` the part after it; ``classify`` chains them around one ``classifier.run``.
A batch stacks many prepared inputs into one ``classifier.run`` and concludes each row
with the same function, so a file gets bit-identical probabilities whichever caller ran it
(at one batch size: onnxruntime may order floating point sums differently per batch size).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..errors import AnalysisError
from ..io.image import LoadedImage
from .model import Classifier
from .prediction import Prediction, decide
from .preprocess import model_input
from .scope import IN_SCOPE, Scope, header_and_pixels, verdict

Box = tuple[int, int, int, int]  # top, left, height, width in image pixels


@dataclass(frozen=True)
class Prepared:
    """One image ready for the model: its input tensor and what produced it."""

    image: LoadedImage
    x: np.ndarray  # float32 [3, H, W], the model's input for this image
    box: Box  # the image region the model saw (the whole image unless cropped)
    lungs: object | None = None  # engine.ai.lungs.LungField when a segmenter ran
    notes: tuple[str, ...] = ()
    scope: Scope = IN_SCOPE  # the evidence before the model (header, pixel statistics); set by prepare


def lung_field(image: LoadedImage, classifier: Classifier) -> object | None:
    """The lung field of the image, from the lung model the classifier's card names, else the
    bundled one (the scope check uses it); None without any."""
    segmenter = getattr(classifier, "lung_segmenter", None)
    if segmenter is None:
        return None
    return segmenter.segment(image.pixels)


COMPUTE = object()  # prepare(..., lungs=COMPUTE): run the lung-field step here


def lung_fields(images: list[LoadedImage], classifier: Classifier) -> list[object | None]:
    """The lung fields of several images in one batched run of the lung model (the batch
    generator's way of running the lung-field step); None for each without a lung model."""
    segmenter = getattr(classifier, "lung_segmenter", None)
    if segmenter is None or not images:
        return [None] * len(images)
    return list(segmenter.segment_many([im.pixels for im in images]))


def prepare(image: LoadedImage, classifier: Classifier, lungs: object = COMPUTE) -> Prepared:
    """Every step before the model: scope evidence, lung field, then the card's preprocessing.
    ``lungs``: the image's lung field when the caller already ran that step (``lung_fields``)."""
    before = header_and_pixels(image)
    if lungs is COMPUTE:
        lungs = lung_field(image, classifier)
    mi = model_input(image.pixels, classifier.card, lungs)
    if not np.all(np.isfinite(mi.x)):  # the loader guarantees finite pixels; this guards the chain
        raise AnalysisError(f"{_name(image)}: the image gives non-finite model input; it was not analysed.")
    return Prepared(image=image, x=mi.x, box=mi.box, lungs=lungs, notes=tuple(mi.notes), scope=before)


def conclude(prep: Prepared, classifier: Classifier, logits: np.ndarray, probs: np.ndarray,
             cam: np.ndarray, ood: float | None = None, view: np.ndarray | None = None) -> Prediction:
    """Every step after the model for one image: output checks, the scope verdict, the
    decision (no call out of scope), the Prediction."""
    if not (np.all(np.isfinite(probs)) and np.all(np.isfinite(logits))):
        raise AnalysisError(
            f"{_name(prep.image)}: the model gave non-finite probabilities (NaN or infinity) for this image, "
            "so no verdict is given. Check the image; if it looks normal, report it with the model name."
        )
    card = classifier.card
    threshold = (card.ood or {}).get("threshold")
    vc = card.view_check or {}
    views = dict(zip(vc["classes"], np.asarray(view, np.float64).tolist(), strict=True)) if vc and view is not None \
        else None
    scope = verdict(prep.scope, prep.lungs,
                    None if ood is None else float(ood), None if threshold is None else float(threshold),
                    views=views, view_threshold=vc.get("threshold"), trust_frontal=vc.get("trust_frontal"))
    call, flags = (decide(card.labels, probs, card.operating_points, card.decision_rule) if scope.in_scope
                   else ("", ()))
    return Prediction(
        path=prep.image.meta.path, image=prep.image, labels=card.labels,
        probs=np.asarray(probs, np.float32), logits=np.asarray(logits, np.float32),
        cam=np.nan_to_num(np.asarray(cam, np.float32)),
        call=call, flags=flags,
        model_name=card.name, model_version=card.version, model_sha256=classifier.sha256,
        operating_points=dict(card.operating_points), input_size=card.input_size, resize=card.resize,
        box=prep.box, lungs=prep.lungs, notes=prep.notes, scope=scope, decision_rule=card.decision_rule,
    )


def classify(image: LoadedImage, classifier: Classifier) -> Prediction:
    """The per-image job on a loaded image: prepare, run the model, conclude."""
    prep = prepare(image, classifier)
    out = classifier.run(prep.x[None])
    return conclude(prep, classifier, out.logits[0], out.probs[0], out.cam[0], ood_of(out, 0), view_of(out, 0))


def ood_of(out: object, i: int) -> float | None:
    """The i-th image's OOD score from ``Classifier.run``'s outputs (None without one)."""
    ood = getattr(out, "ood", None)
    return None if ood is None else float(ood[i])


def view_of(out: object, i: int) -> np.ndarray | None:
    """The i-th image's view probabilities from ``Classifier.run``'s outputs (None without them)."""
    view = getattr(out, "view", None)
    return None if view is None else np.asarray(view[i])


def _name(image: LoadedImage) -> str:
    from ..io.fileio import printable

    return printable(image.meta.path.replace("\\", "/").rsplit("/", 1)[-1])
