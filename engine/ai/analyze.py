"""``analyze(path, classifier) -> Prediction``: one file through the whole pipeline."""

from __future__ import annotations

import os

from ..io.fileio import DEFAULT_MAX_PIXELS
from ..io.load import load_image
from .model import Classifier
from .pipeline import classify
from .prediction import Prediction

__all__ = ["Prediction", "analyze"]


def analyze(path: str | os.PathLike[str], classifier: Classifier, max_pixels: int = DEFAULT_MAX_PIXELS) -> Prediction:
    """Load one file and run the engine's per-image job on it (``engine.ai.pipeline.classify``).
    Raises a typed RadLensError on bad input."""
    return classify(load_image(path, max_pixels=max_pixels), classifier)
