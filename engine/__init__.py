"""RadLens engine: Qt-free, torch-free core (loading, DICOM display, ONNX inference, batch).

Research use only, not for diagnosis.
"""

from .ai.analyze import analyze
from .ai.card import DISCLAIMER, ModelCard
from .ai.model import Classifier, default_model_path
from .ai.pipeline import Prepared, classify, conclude, prepare
from .ai.prediction import DECISION_RULE, Prediction, decide
from .errors import (
    AnalysisError,
    CorruptImageError,
    ImageLoadError,
    ImageTooLargeError,
    ModelError,
    RadLensError,
    UnsupportedImageError,
)
from .io import load_image
from .io.image import Identifiers, ImageMeta, LoadedImage, Window

__version__ = "0.1.0"

__all__ = [
    "DECISION_RULE", "AnalysisError", "Prepared", "classify", "conclude", "decide", "prepare",
    "DISCLAIMER", "Classifier", "CorruptImageError", "Identifiers", "ImageLoadError", "ImageMeta",
    "ImageTooLargeError", "LoadedImage", "ModelCard", "ModelError", "Prediction", "RadLensError",
    "UnsupportedImageError", "Window", "analyze", "default_model_path", "load_image",
]
