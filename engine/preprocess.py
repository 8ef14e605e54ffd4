"""The only place that resizes and normalises images for the model, driven by the card."""

from __future__ import annotations

import cv2
import numpy as np

from .card import ModelCard


def resize_gray(pixels: np.ndarray, size: tuple[int, int], policy: str = "stretch") -> np.ndarray:
    """Resize a [0, 1] grayscale image to (height, width) by the card's policy."""
    h, w = size
    src_h, src_w = pixels.shape[:2]
    interp = cv2.INTER_AREA if src_h > h or src_w > w else cv2.INTER_LINEAR
    if policy == "letterbox":
        scale = min(h / src_h, w / src_w)
        nh, nw = max(1, round(src_h * scale)), max(1, round(src_w * scale))
        out = np.zeros((h, w), np.float32)
        top, left = (h - nh) // 2, (w - nw) // 2
        out[top : top + nh, left : left + nw] = cv2.resize(pixels, (nw, nh), interpolation=interp)
        return out
    if (src_h, src_w) == (h, w):
        return pixels.astype(np.float32, copy=False)
    return cv2.resize(pixels, (w, h), interpolation=interp)


def letterbox_box(image_hw: tuple[int, int], size: tuple[int, int]) -> tuple[int, int, int, int]:
    """(top, left, height, width) of the image inside a letterboxed model input."""
    h, w = size
    scale = min(h / image_hw[0], w / image_hw[1])
    nh, nw = max(1, round(image_hw[0] * scale)), max(1, round(image_hw[1] * scale))
    return (h - nh) // 2, (w - nw) // 2, nh, nw


def normalize(gray: np.ndarray, card: ModelCard) -> np.ndarray:
    """[0, 1] HxW -> float32 [3, H, W] normalised with the card's mean/std."""
    mean = np.asarray(card.mean, np.float32)[:, None, None]
    std = np.asarray(card.std, np.float32)[:, None, None]
    return ((gray[None, :, :] - mean) / std).astype(np.float32)


def preprocess(pixels: np.ndarray, card: ModelCard) -> np.ndarray:
    """Display-pipeline pixels ([0, 1], HxW) -> one model input [3, H, W]."""
    return normalize(resize_gray(pixels, card.input_size, card.resize), card)
