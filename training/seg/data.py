"""The lung-mask set (../shared/data/lungseg): manifest, folds, cached arrays, augmentation.

Images go through the engine's own loader and resize (``engine.io.load_image``,
``engine.ai.preprocess.resize_gray``), so the network sees what ``engine.ai.lungs`` will give it.
"""

from __future__ import annotations

import csv
import hashlib
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from engine.ai.preprocess import resize_gray
from engine.io import load_image

REPO_ROOT = Path(__file__).resolve().parents[2]
DEFAULT_DATA = REPO_ROOT.parent / "shared" / "data" / "lungseg"


@dataclass(frozen=True)
class Case:
    image: str  # absolute paths
    mask: str
    source: str
    case: str
    fold: str


def read_cases(data: Path = DEFAULT_DATA) -> list[Case]:
    data = Path(data)
    with open(data / "manifest.csv", newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    return [Case(str(data / r["image"]), str(data / r["mask_lungs"]), r["source"], r["case"], r["split_hint"]) for r in rows]


def load_mask(path: str) -> np.ndarray:
    m = cv2.imread(path, cv2.IMREAD_GRAYSCALE)
    if m is None:
        raise FileNotFoundError(path)
    return m >= 128


def _one(case: Case, size: int) -> tuple[np.ndarray, np.ndarray]:
    img = resize_gray(load_image(case.image).pixels, (size, size), "stretch")
    mask = cv2.resize(load_mask(case.mask).astype(np.float32), (size, size), interpolation=cv2.INTER_AREA)
    return (np.clip(img * 255.0 + 0.5, 0, 255).astype(np.uint8), np.clip(mask * 255.0 + 0.5, 0, 255).astype(np.uint8))


def load_arrays(cases: list[Case], size: int, cache_dir: Path | None = None) -> tuple[np.ndarray, np.ndarray]:
    """uint8 images [N, S, S] and soft masks [N, S, S] (255 = lung), cached as .npz."""
    key = hashlib.sha1(("|".join(c.image for c in cases) + f"|{size}").encode()).hexdigest()[:12]
    cache = Path(cache_dir) / f"lungseg-{size}-{key}.npz" if cache_dir else None
    if cache and cache.exists():
        z = np.load(cache)
        return z["images"], z["masks"]
    with ThreadPoolExecutor(4) as pool:
        pairs = list(pool.map(lambda c: _one(c, size), cases))
    images = np.stack([p[0] for p in pairs]) if pairs else np.zeros((0, size, size), np.uint8)
    masks = np.stack([p[1] for p in pairs]) if pairs else np.zeros((0, size, size), np.uint8)
    if cache:
        cache.parent.mkdir(parents=True, exist_ok=True)
        np.savez(cache, images=images, masks=masks)
    return images, masks


# ---------------------------------------------------------------- augmentation

@dataclass(frozen=True)
class SegAugment:
    """Geometry (shared by image and mask) and appearance (image only), wide enough for other
    scanners, pediatric and AP portable films: zoomed-out views with borders, tilt, aspect
    changes; gamma/contrast/brightness, blur, noise, edge enhancement. No left-right flip
    (the masks hold both lungs, but a flipped chest is not a chest the viewer will see)."""

    rotate_deg: float = 10.0
    scale: tuple[float, float] = (0.72, 1.15)
    aspect: float = 0.12
    translate: float = 0.08
    gamma: tuple[float, float] = (0.6, 1.6)
    contrast: tuple[float, float] = (0.65, 1.3)
    brightness: float = 0.10
    blur_p: float = 0.25
    sharpen_p: float = 0.25
    noise_p: float = 0.3
    noise_std: tuple[float, float] = (0.005, 0.04)
    border_p: float = 0.2


def augment_pair(img: np.ndarray, mask: np.ndarray, rng: np.random.Generator,
                 cfg: SegAugment = SegAugment()) -> tuple[np.ndarray, np.ndarray]:
    """float32 [0, 1] image and mask (S x S) -> one random view of both."""
    h, w = img.shape
    s = rng.uniform(*cfg.scale)
    a = np.exp(rng.uniform(-cfg.aspect, cfg.aspect))
    m = cv2.getRotationMatrix2D((w / 2.0, h / 2.0), rng.uniform(-cfg.rotate_deg, cfg.rotate_deg), 1.0)
    m[:, :2] = m[:, :2] @ np.diag([s * a, s / a])
    m[:, 2] = np.array([w / 2.0, h / 2.0]) - m[:, :2] @ np.array([w / 2.0, h / 2.0])
    m[0, 2] += rng.uniform(-cfg.translate, cfg.translate) * w
    m[1, 2] += rng.uniform(-cfg.translate, cfg.translate) * h
    fill = float(rng.choice([0.0, 0.0, float(np.median(img)), 1.0]))
    if fill == 0.0 and rng.random() < 0.5:  # the border mode is chosen first: one warp
        out = cv2.warpAffine(img, m, (w, h), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT_101)
    else:
        out = cv2.warpAffine(img, m, (w, h), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT, borderValue=fill)
    msk = cv2.warpAffine(mask, m, (w, h), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT, borderValue=0.0)
    out = np.clip(out, 0.0, 1.0) ** rng.uniform(*cfg.gamma)
    mean = float(out.mean())
    out = (out - mean) * rng.uniform(*cfg.contrast) + mean + rng.uniform(-cfg.brightness, cfg.brightness)
    if rng.random() < cfg.blur_p:
        out = cv2.GaussianBlur(out, (0, 0), rng.uniform(0.5, 1.6))
    elif rng.random() < cfg.sharpen_p:
        soft = cv2.GaussianBlur(out, (0, 0), rng.uniform(1.0, 4.0))
        out = out + rng.uniform(0.3, 1.2) * (out - soft)
    if rng.random() < cfg.noise_p:
        out = out + rng.normal(0.0, rng.uniform(*cfg.noise_std), out.shape).astype(np.float32)
    if rng.random() < cfg.border_p:  # collimation edges / burnt-in bands
        side, k = int(rng.integers(4)), int(rng.integers(2, max(3, h // 10)))
        val = float(rng.choice([0.0, 1.0]))
        band = [np.s_[:k], np.s_[-k:], np.s_[:, :k], np.s_[:, -k:]][side]
        out[band] = val
        msk[band] = 0.0  # lung hidden behind a band is not visible lung
    return np.clip(out, 0.0, 1.0).astype(np.float32), np.clip(msk, 0.0, 1.0).astype(np.float32)
