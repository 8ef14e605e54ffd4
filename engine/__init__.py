"""RadLens engine: Qt-free, torch-free core (loading, DICOM display, ONNX inference, batch).

Research use only, not for diagnosis.
"""

from .analyze import Prediction, analyze
from .card import DISCLAIMER, ModelCard
from .errors import (
    CorruptImageError,
    ImageLoadError,
    ImageTooLargeError,
    ModelError,
    RadLensError,
    UnsupportedImageError,
)
from .image import Identifiers, ImageMeta, LoadedImage, Window
from .io import load_image
from .model import Classifier, default_model_path

__version__ = "0.1.0"

__all__ = [
    "DISCLAIMER", "Classifier", "CorruptImageError", "Identifiers", "ImageLoadError", "ImageMeta",
    "ImageTooLargeError", "LoadedImage", "ModelCard", "ModelError", "Prediction", "RadLensError",
    "UnsupportedImageError", "Window", "analyze", "default_model_path", "load_image",
]
