"""The per-image job, once: a loaded image to a ``Prediction``.

Every caller runs these steps in this order: ``analyze()``, the batch generator (the
CLI and the desktop batch window), and both desktop workers. DESIGN.md's order:

    load (the caller: ``load_image`` or a process pool running it)
    -> lung field (the classifier's segmentation model, when its card names one)
    -> model input (crop, intensity normalisation, resize, normalise: the card's preprocessing)
    -> ``classifier.run`` (logits, probs, cam)
    -> checks (no verdict on a non-finite output)
    -> decision (one call + flags, by the rule in the card)
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

from .errors import AnalysisError
from .image import LoadedImage
from .model import Classifier
from .prediction import Prediction, decide
from .preprocess import model_input

Box = tuple[int, int, int, int]  # top, left, height, width in image pixels


@dataclass(frozen=True)
class Prepared:
    """One image ready for the model: its input tensor and what produced it."""

    image: LoadedImage
    x: np.ndarray  # float32 [3, H, W], the model's input for this image
    box: Box  # the image region the model saw (the whole image unless cropped)
    lungs: object | None = None  # engine.lungs.LungField when a segmenter ran
    notes: tuple[str, ...] = ()


def lung_field(image: LoadedImage, classifier: Classifier) -> object | None:
    """The lung field of the image, from the segmentation model the classifier's card
    names (None when it names none)."""
    segmenter = getattr(classifier, "segmenter", None)
    if segmenter is None:
        return None
    return segmenter.segment(image.pixels)


def prepare(image: LoadedImage, classifier: Classifier) -> Prepared:
    """Every step before the model: lung field, then the card's preprocessing."""
    lungs = lung_field(image, classifier)
    mi = model_input(image.pixels, classifier.card, lungs)
    if not np.all(np.isfinite(mi.x)):  # the loader guarantees finite pixels; this guards the chain
        raise AnalysisError(f"{_name(image)}: the image gives non-finite model input; it was not analysed.")
    return Prepared(image=image, x=mi.x, box=mi.box, lungs=lungs, notes=tuple(mi.notes))


def conclude(prep: Prepared, classifier: Classifier, logits: np.ndarray, probs: np.ndarray,
             cam: np.ndarray) -> Prediction:
    """Every step after the model for one image: output checks, the decision, the Prediction."""
    if not (np.all(np.isfinite(probs)) and np.all(np.isfinite(logits))):
        raise AnalysisError(
            f"{_name(prep.image)}: the model gave non-finite probabilities (NaN or infinity) for this image, "
            "so no verdict is given. Check the image; if it looks normal, report it with the model name."
        )
    card = classifier.card
    call, flags = decide(card.labels, probs, card.operating_points)
    return Prediction(
        path=prep.image.meta.path, image=prep.image, labels=card.labels,
        probs=np.asarray(probs, np.float32), logits=np.asarray(logits, np.float32),
        cam=np.nan_to_num(np.asarray(cam, np.float32)),
        call=call, flags=flags,
        model_name=card.name, model_version=card.version, model_sha256=classifier.sha256,
        operating_points=dict(card.operating_points), input_size=card.input_size, resize=card.resize,
        box=prep.box, lungs=prep.lungs, notes=prep.notes,
    )


def classify(image: LoadedImage, classifier: Classifier) -> Prediction:
    """The per-image job on a loaded image: prepare, run the model, conclude."""
    prep = prepare(image, classifier)
    out = classifier.run(prep.x[None])
    return conclude(prep, classifier, out.logits[0], out.probs[0], out.cam[0])


def _name(image: LoadedImage) -> str:
    from .fileio import printable

    return printable(image.meta.path.replace("\\", "/").rsplit("/", 1)[-1])
