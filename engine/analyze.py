"""``analyze(path, classifier) -> Prediction``: one file through the whole pipeline."""

from __future__ import annotations

import os
from dataclasses import dataclass

import numpy as np

from .cam import heatmap
from .image import LoadedImage
from .io import DEFAULT_MAX_PIXELS, load_image
from .model import Classifier
from .preprocess import preprocess


@dataclass(frozen=True)
class Prediction:
    path: str
    image: LoadedImage
    labels: tuple[str, ...]
    probs: np.ndarray  # [C], calibrated (temperature-scaled) softmax
    logits: np.ndarray  # [C]
    cam: np.ndarray  # [C, h, w], raw Grad-CAM maps at the model's last conv layer
    model_name: str
    model_version: str
    model_sha256: str
    operating_points: dict[str, float]
    input_size: tuple[int, int]
    resize: str

    @property
    def top_index(self) -> int:
        return int(np.argmax(self.probs))

    @property
    def top_label(self) -> str:
        return self.labels[self.top_index]

    @property
    def top_prob(self) -> float:
        return float(self.probs[self.top_index])

    def ranked(self) -> list[tuple[str, float]]:
        order = np.argsort(-self.probs)
        return [(self.labels[i], float(self.probs[i])) for i in order]

    def above_operating_point(self) -> list[str]:
        """Labels whose probability reaches the class's operating point."""
        return [lab for lab, p in zip(self.labels, self.probs, strict=True) if lab in self.operating_points and p >= self.operating_points[lab]]

    def heatmap(self, class_index: int | None = None) -> np.ndarray:
        """Grad-CAM of a class (top class by default) at image size, in [0, 1]."""
        idx = self.top_index if class_index is None else class_index
        return heatmap(self.cam, idx, self.image.shape, self.input_size, self.resize)


def make_prediction(image: LoadedImage, classifier: Classifier, probs: np.ndarray, logits: np.ndarray,
                    cam: np.ndarray) -> Prediction:
    card = classifier.card
    return Prediction(
        path=image.meta.path, image=image, labels=card.labels, probs=probs, logits=logits, cam=cam,
        model_name=card.name, model_version=card.version, model_sha256=classifier.sha256,
        operating_points=dict(card.operating_points), input_size=card.input_size, resize=card.resize,
    )


def analyze(path: str | os.PathLike[str], classifier: Classifier, max_pixels: int = DEFAULT_MAX_PIXELS) -> Prediction:
    """Load, preprocess and classify one file. Raises a typed RadLensError on bad input."""
    image = load_image(path, max_pixels=max_pixels)
    x = preprocess(image.pixels, classifier.card)[None]
    out = classifier.run(x)
    return make_prediction(image, classifier, out.probs[0], out.logits[0], out.cam[0])
