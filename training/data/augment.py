"""Radiograph augmentation on [0, 1] grayscale images at model input size.

Applied after the shared engine preprocessing (load + resize) and before normalisation:
small rotation and scale, translation, brightness/contrast/gamma, mild blur or noise.
No flips: a left-right flip turns a normal heart position into dextrocardia.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np


@dataclass(frozen=True)
class AugmentConfig:
    rotate_deg: float = 7.0
    scale: tuple[float, float] = (0.92, 1.10)
    translate: float = 0.06  # fraction of the size
    brightness: float = 0.08
    contrast: tuple[float, float] = (0.85, 1.15)
    gamma: tuple[float, float] = (0.8, 1.25)
    blur_p: float = 0.2
    noise_p: float = 0.2
    noise_std: float = 0.02


def augment(img: np.ndarray, rng: np.random.Generator, cfg: AugmentConfig = AugmentConfig()) -> np.ndarray:
    """One random augmentation of a float32 [0, 1] HxW image."""
    h, w = img.shape
    angle = rng.uniform(-cfg.rotate_deg, cfg.rotate_deg)
    scale = rng.uniform(*cfg.scale)
    m = cv2.getRotationMatrix2D((w / 2.0, h / 2.0), angle, scale)
    m[0, 2] += rng.uniform(-cfg.translate, cfg.translate) * w
    m[1, 2] += rng.uniform(-cfg.translate, cfg.translate) * h
    out = cv2.warpAffine(img.astype(np.float32), m, (w, h), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT, borderValue=0.0)
    out = np.clip(out, 0.0, 1.0) ** rng.uniform(*cfg.gamma)
    mean = float(out.mean())
    out = (out - mean) * rng.uniform(*cfg.contrast) + mean + rng.uniform(-cfg.brightness, cfg.brightness)
    if rng.random() < cfg.blur_p:
        out = cv2.GaussianBlur(out, (3, 3), rng.uniform(0.3, 0.9))
    if rng.random() < cfg.noise_p:
        out = out + rng.normal(0.0, cfg.noise_std, out.shape).astype(np.float32)
    return np.clip(out, 0.0, 1.0).astype(np.float32)


# Field of view: zoomed-in crops (down to about 70% of the field) and zoomed-out films with
# borders, shifted, so how tightly a collection crops its films (published figures, teaching
# files: mostly one class in the pool) cannot tell the class. The photometric part is v1's.
FOV_AUGMENT = AugmentConfig(rotate_deg=8.0, scale=(0.78, 1.45), translate=0.10)

