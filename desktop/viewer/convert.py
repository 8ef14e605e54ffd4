"""numpy -> QImage conversions. Called on the GUI thread only (QImage is cheap to build
from a buffer; the heavy numpy work happens in workers)."""

from __future__ import annotations

import numpy as np
from PySide6.QtGui import QImage, QPixmap


def gray_qimage(u8: np.ndarray) -> QImage:
    """HxW uint8 -> Grayscale8 QImage (owns its memory)."""
    a = np.ascontiguousarray(u8, dtype=np.uint8)
    h, w = a.shape
    return QImage(a.data, w, h, a.strides[0], QImage.Format.Format_Grayscale8).copy()


def rgb_qimage(rgb: np.ndarray) -> QImage:
    a = np.ascontiguousarray(rgb, dtype=np.uint8)
    h, w, _ = a.shape
    return QImage(a.data, w, h, a.strides[0], QImage.Format.Format_RGB888).copy()


def rgba_qimage(rgba: np.ndarray) -> QImage:
    a = np.ascontiguousarray(rgba, dtype=np.uint8)
    h, w, _ = a.shape
    return QImage(a.data, w, h, a.strides[0], QImage.Format.Format_RGBA8888).copy()


def gray_pixmap(u8: np.ndarray) -> QPixmap:
    return QPixmap.fromImage(gray_qimage(u8))


def qimage_array(img: QImage) -> np.ndarray:
    """A QImage as an HxWx4 uint8 array (RGBA), for tests and benchmarks."""
    img = img.convertToFormat(QImage.Format.Format_RGBA8888)
    ptr = img.constBits()
    arr = np.frombuffer(ptr, np.uint8, count=img.sizeInBytes()).reshape(img.height(), img.bytesPerLine())
    return arr[:, : img.width() * 4].reshape(img.height(), img.width(), 4).copy()
