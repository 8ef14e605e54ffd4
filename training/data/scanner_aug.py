"""Augmentation that mimics other scanners and other image pipelines.

Applied to the raw (display-pipeline) image BEFORE the card's preprocessing (crop,
intensity normalisation), because that is where another hospital's film differs: its
tone curve (gamma), window (contrast, brightness), sharpness (blur, edge enhancement),
noise, JPEG compression and resolution (downscaled and scaled back up).
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np


@dataclass(frozen=True)
class ScannerAugConfig:
    gamma: tuple[float, float] = (0.6, 1.6)  # log-uniform
    window_lo: tuple[float, float] = (0.0, 0.12)  # input level mapped to black
    window_hi: tuple[float, float] = (0.85, 1.0)  # input level mapped to white
    window_p: float = 0.5
    lift: tuple[float, float] = (0.0, 0.1)  # output black level raised (washed-out films)
    lift_p: float = 0.3
    blur_p: float = 0.3
    blur_sigma: tuple[float, float] = (0.4, 1.5)
    sharpen_p: float = 0.2
    sharpen_amount: tuple[float, float] = (0.3, 1.2)
    noise_p: float = 0.3
    noise_std: tuple[float, float] = (0.005, 0.035)
    rescale_p: float = 0.5
    rescale: tuple[float, float] = (0.25, 0.8)  # fraction of the size it is brought down to
    jpeg_p: float = 0.5
    jpeg_quality: tuple[int, int] = (25, 90)


def scanner_augment(img: np.ndarray, rng: np.random.Generator, cfg: ScannerAugConfig = ScannerAugConfig()) -> np.ndarray:
    """One random scanner look for a float32 [0, 1] HxW image (same size out)."""
    out = np.clip(img.astype(np.float32), 0.0, 1.0)
    h, w = out.shape
    out = out ** float(np.exp(rng.uniform(np.log(cfg.gamma[0]), np.log(cfg.gamma[1]))))
    if rng.random() < cfg.window_p:
        lo, hi = rng.uniform(*cfg.window_lo), rng.uniform(*cfg.window_hi)
        out = np.clip((out - lo) / max(hi - lo, 1e-3), 0.0, 1.0)
    if rng.random() < cfg.lift_p:
        lift = rng.uniform(*cfg.lift)
        out = lift + (1.0 - lift) * out
    if rng.random() < cfg.blur_p:
        out = cv2.GaussianBlur(out, (0, 0), rng.uniform(*cfg.blur_sigma))
    elif rng.random() < cfg.sharpen_p:
        soft = cv2.GaussianBlur(out, (0, 0), 1.5)
        out = np.clip(out + rng.uniform(*cfg.sharpen_amount) * (out - soft), 0.0, 1.0)
    if rng.random() < cfg.rescale_p:
        f = rng.uniform(*cfg.rescale)
        small = cv2.resize(out, (max(8, round(w * f)), max(8, round(h * f))), interpolation=cv2.INTER_AREA)
        out = cv2.resize(small, (w, h), interpolation=cv2.INTER_LINEAR if rng.random() < 0.5 else cv2.INTER_CUBIC)
    if rng.random() < cfg.noise_p:
        out = out + rng.normal(0.0, rng.uniform(*cfg.noise_std), out.shape).astype(np.float32)
    out = np.clip(out, 0.0, 1.0)
    if rng.random() < cfg.jpeg_p:
        q = int(rng.integers(cfg.jpeg_quality[0], cfg.jpeg_quality[1] + 1))
        ok, buf = cv2.imencode(".jpg", np.clip(out * 255.0 + 0.5, 0, 255).astype(np.uint8), [cv2.IMWRITE_JPEG_QUALITY, q])
        if ok:
            out = cv2.imdecode(buf, cv2.IMREAD_GRAYSCALE).astype(np.float32) / 255.0
    return out.astype(np.float32)


def figure_marks(img: np.ndarray, rng: np.random.Generator, p: float = 0.4) -> np.ndarray:
    """With probability ``p``, what a published figure adds to a radiograph: letters or
    numbers, an arrow, a border or a tighter crop. Every class gets them, so they stop
    telling the class (published figures are mostly COVID-19 in the pool)."""
    if rng.random() >= p:
        return img
    out = np.clip(img * 255.0 + 0.5, 0, 255).astype(np.uint8)  # OpenCV draws text on 8-bit images
    h, w = out.shape
    for _ in range(int(rng.integers(1, 4))):
        kind = rng.integers(0, 4)
        color = int(rng.choice([0, 255]))
        if kind == 0:  # letters
            text = "".join(rng.choice(list("ABCDLRabcd123"), size=int(rng.integers(1, 4))))
            org = (int(rng.integers(0, w - 20)), int(rng.integers(15, h)))
            cv2.putText(out, text, org, cv2.FONT_HERSHEY_SIMPLEX, float(rng.uniform(0.3, 0.9)), color,
                        int(rng.integers(1, 3)), cv2.LINE_AA)
        elif kind == 1:  # arrow
            x0, y0 = int(rng.integers(0, w)), int(rng.integers(0, h))
            ang, length = rng.uniform(0, 2 * np.pi), rng.uniform(0.08, 0.2) * w
            x1, y1 = int(x0 + length * np.cos(ang)), int(y0 + length * np.sin(ang))
            cv2.arrowedLine(out, (x0, y0), (x1, y1), color, int(rng.integers(1, 3)), cv2.LINE_AA, tipLength=0.3)
        elif kind == 2:  # border
            b = int(rng.integers(2, max(3, h // 16)))
            out[:b], out[-b:], out[:, :b], out[:, -b:] = color, color, color, color
        else:  # tighter crop, stretched back (figures crop to the finding)
            f = rng.uniform(0.75, 0.95)
            ch, cw = int(h * f), int(w * f)
            t, lft = int(rng.integers(0, h - ch + 1)), int(rng.integers(0, w - cw + 1))
            out = cv2.resize(out[t : t + ch, lft : lft + cw], (w, h), interpolation=cv2.INTER_LINEAR)
    return out.astype(np.float32) / 255.0


# texture only (blur or sharpening, down-and-up scaling, noise, JPEG quality 25-90), no tone curve:
# aimed at "compression and resampling artefacts tell the class" (recipe ``aug: "texture"``)
TEXTURE_ONLY = ScannerAugConfig(gamma=(1.0, 1.0), window_p=0.0, lift_p=0.0)

