"""Grad-CAM maps from the model's ``cam`` output: heatmaps at image size and overlays."""

from __future__ import annotations

import cv2
import numpy as np

from .preprocess import letterbox_box


def heatmap(cam: np.ndarray, class_index: int, image_hw: tuple[int, int], input_hw: tuple[int, int],
            resize: str = "stretch", box: tuple[int, int, int, int] | None = None,
            box_image_hw: tuple[int, int] | None = None) -> np.ndarray:
    """The class's CAM ([C, h, w] for one image) as float32 [0, 1] at image size (H, W).

    ``box`` (top, left, height, width): the image region the model saw when it was given a
    crop; the map is drawn there, in full-image coordinates, and is zero outside it.
    ``box_image_hw``: the size of the image the box refers to, when the heatmap is wanted at
    another size (an overlay built smaller than the image); the box is scaled to ``image_hw``."""
    H, W = image_hw
    if box is not None and box_image_hw is not None and tuple(box_image_hw) != (H, W):
        sy, sx = H / box_image_hw[0], W / box_image_hw[1]
        t, lf, bh, bw = (float(v) for v in box)
        top, left = min(H - 1, int(round(t * sy))), min(W - 1, int(round(lf * sx)))
        box = (top, left, max(1, min(H - top, int(round(bh * sy)))), max(1, min(W - left, int(round(bw * sx)))))
    if box is not None and tuple(box) != (0, 0, H, W):
        top, left, bh, bw = (int(v) for v in box)
        inner = heatmap(cam, class_index, (bh, bw), input_hw, resize)
        out = np.zeros((H, W), np.float32)
        out[top : top + bh, left : left + bw] = inner
        return out
    m = np.maximum(cam[class_index].astype(np.float32), 0.0)
    peak = float(m.max())
    m = m / peak if peak > 0 else np.zeros_like(m)
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
