"""Grad-CAM maps from the model's ``cam`` output: heatmaps at image size and overlays."""

from __future__ import annotations

import cv2
import numpy as np

from .preprocess import letterbox_box


def heatmap(cam: np.ndarray, class_index: int, image_hw: tuple[int, int], input_hw: tuple[int, int],
            resize: str = "stretch") -> np.ndarray:
    """The class's CAM ([C, h, w] for one image) as float32 [0, 1] at image size (H, W)."""
    m = np.maximum(cam[class_index].astype(np.float32), 0.0)
    peak = float(m.max())
    m = m / peak if peak > 0 else np.zeros_like(m)
    H, W = image_hw
    if resize == "letterbox":
        # CAM covers the model input; crop the part that holds the image, then scale.
        ih, iw = input_hw
        up = cv2.resize(m, (iw, ih), interpolation=cv2.INTER_LINEAR)
        top, left, nh, nw = letterbox_box(image_hw, input_hw)
        m = up[top : top + nh, left : left + nw]
    out = cv2.resize(m, (W, H), interpolation=cv2.INTER_CUBIC)
    return np.clip(out, 0.0, 1.0).astype(np.float32)


def colorize(heat: np.ndarray) -> np.ndarray:
    """[0, 1] heatmap -> uint8 RGB (turbo colour map)."""
    u8 = np.clip(heat * 255.0 + 0.5, 0, 255).astype(np.uint8)
    return cv2.cvtColor(cv2.applyColorMap(u8, cv2.COLORMAP_TURBO), cv2.COLOR_BGR2RGB)


def overlay(gray: np.ndarray, heat: np.ndarray, opacity: float = 0.4) -> np.ndarray:
    """Blend a [0, 1] grayscale image with a [0, 1] heatmap -> uint8 RGB, same size.

    Opacity scales with the heat so cold regions stay the plain radiograph."""
    if gray.shape != heat.shape:
        raise ValueError(f"image {gray.shape} and heatmap {heat.shape} differ in size")
    base = np.repeat(np.clip(gray, 0, 1)[:, :, None] * 255.0, 3, axis=2)
    alpha = (float(np.clip(opacity, 0, 1)) * np.clip(heat, 0, 1))[:, :, None]
    out = base * (1.0 - alpha) + colorize(heat).astype(np.float32) * alpha
    return np.clip(out + 0.5, 0, 255).astype(np.uint8)
