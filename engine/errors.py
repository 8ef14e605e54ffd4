"""Typed errors. Every message says what happened and what to do next."""

from __future__ import annotations


class RadLensError(Exception):
    """Base class of every error the engine raises on purpose."""


class ImageLoadError(RadLensError):
    """The file could not be turned into an image."""


class UnsupportedImageError(ImageLoadError):
    """The file is valid but uses something RadLens cannot decode (format, codec, no pixels)."""


class CorruptImageError(ImageLoadError):
    """The file is damaged: truncated, empty or internally inconsistent."""


class ImageTooLargeError(ImageLoadError):
    """The image exceeds the pixel limit (protection against decompression bombs)."""


class ModelError(RadLensError):
    """A model file cannot be used: missing, unreadable, or breaking the model contract."""


class AnalysisError(RadLensError):
    """An image loaded but could not be analysed (non-finite model input or output, model failure)."""
