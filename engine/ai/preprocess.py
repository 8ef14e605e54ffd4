"""The only place that turns display pixels into a model input, driven by the model card.

Steps, in DESIGN.md's order: crop (to the lung field plus a margin, when the card's
``preprocessing.crop`` is ``"lungs"``) -> intensity normalisation (``"clahe"`` or
``"equalize"``) -> resize (the card's policy) -> normalise (mean/std). Training runs the
same ``model_input`` on every image, so a model sees the same input in training and in use.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import cv2
import numpy as np

from .card import DEFAULT_CROP_MARGIN, ModelCard

Box = tuple[int, int, int, int]  # (top, left, height, width) in image pixels

CLAHE_CLIP = 2.0  # OpenCV's clip limit (multiples of the mean histogram bin)
CLAHE_GRID = 8  # tiles per side, whatever the image size, so a 224-px and a 2,000-px image get the same regions
NO_LUNGS_NOTE = "no lung field was found; the model saw the whole image"


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
    return ((gray[None, :, :] - mean) / std).astype(np.float32, copy=False)  # float32 already: no copy


def card_preprocessing(card: ModelCard) -> dict[str, Any]:
    """The card's ``preprocessing`` settings with defaults filled in (a card written before
    the field existed means no crop and no intensity normalisation)."""
    raw = card.preprocessing  # validated and defaulted by engine.ai.card
    return {"crop": str(raw.get("crop", "none") or "none"),
            "crop_margin": float(raw.get("crop_margin", DEFAULT_CROP_MARGIN)),
            "intensity": str(raw.get("intensity", "none") or "none"), "lung_model": raw.get("lung_model")}


def margin_box(box: Box, image_hw: tuple[int, int], margin: float) -> Box:
    """``box`` grown by ``margin`` (a fraction of its own height and width) on every side,
    clipped to the image."""
    H, W = image_hw
    top, left, bh, bw = (int(v) for v in box)
    dy, dx = round(margin * bh), round(margin * bw)
    t, lft = max(0, top - dy), max(0, left - dx)
    b, r = min(H, top + bh + dy), min(W, left + bw + dx)
    return t, lft, max(0, b - t), max(0, r - lft)


def lung_crop_box(lungs: object | None, image_hw: tuple[int, int], margin: float) -> Box | None:
    """The crop for a lung field (``engine.ai.lungs.LungField``: ``.box`` in image pixels), or
    None when no usable lung field was found (then the whole image is used)."""
    box = getattr(lungs, "box", None) if lungs is not None else None
    if box is None:
        return None
    try:
        top, left, bh, bw = (int(v) for v in box)
    except (TypeError, ValueError):
        return None
    if bh < 2 or bw < 2:
        return None
    out = margin_box((top, left, bh, bw), image_hw, margin)
    return out if out[2] >= 2 and out[3] >= 2 else None


def normalize_intensity(gray: np.ndarray, method: str) -> np.ndarray:
    """[0, 1] HxW -> [0, 1] float32 after ``"clahe"`` (contrast-limited adaptive histogram
    equalisation), ``"equalize"`` (global histogram equalisation) or ``"none"``."""
    if method == "none":
        return gray.astype(np.float32, copy=False)
    u8 = to_u8(gray)
    if method == "equalize":
        out = cv2.equalizeHist(u8)
    elif method == "clahe":
        h, w = u8.shape
        tiles = (max(1, min(CLAHE_GRID, w // 8)), max(1, min(CLAHE_GRID, h // 8)))
        out = cv2.createCLAHE(clipLimit=CLAHE_CLIP, tileGridSize=tiles).apply(u8)
    else:
        raise ValueError(f"unknown intensity normalisation {method!r}; expected none, clahe or equalize")
    return out.astype(np.float32) / 255.0


@dataclass(frozen=True)
class ModelInput:
    """One image's model input and the image region it shows."""

    x: np.ndarray  # float32 [3, H, W]
    box: Box  # (top, left, height, width) in image pixels: the region the model saw
    cropped: bool = False  # True when the model saw a lung crop, not the whole image
    notes: tuple[str, ...] = ()


def model_gray(pixels: np.ndarray, card: ModelCard, lungs: object | None = None) -> tuple[np.ndarray, Box, tuple[str, ...]]:
    """Crop, resize, then intensity normalisation: [0, 1] gray at the model's input size, the
    box it came from, and notes (e.g. no lung field found). Training caches this."""
    pp = card_preprocessing(card)
    h, w = pixels.shape[:2]
    box: Box = (0, 0, int(h), int(w))
    notes: tuple[str, ...] = ()
    img = pixels
    if pp["crop"] == "lungs":
        crop = lung_crop_box(lungs, (h, w), pp["crop_margin"])
        if crop is None:
            notes = (NO_LUNGS_NOTE,)
        else:
            box = crop
            top, left, bh, bw = crop
            img = pixels[top : top + bh, left : left + bw]
    # resize first, then the intensity step at the input size: training runs it on 224 px images
    # (``training.recipes.recipe_v2.make_view``), and equalising a 2,000 px film before resizing it gives a
    # different histogram (up to 32 grey levels apart on a 512 px JSRT film)
    img = resize_gray(np.ascontiguousarray(img, np.float32), card.input_size, card.resize)
    return normalize_intensity(img, pp["intensity"]), box, notes


def model_input(pixels: np.ndarray, card: ModelCard, lungs: object | None = None) -> ModelInput:
    """The card's preprocessing on display-pipeline pixels ([0, 1], HxW). ``lungs`` (an
    ``engine.ai.lungs.LungField``) is used when the card crops to the lung field."""
    gray, box, notes = model_gray(pixels, card, lungs)
    h, w = pixels.shape[:2]
    return ModelInput(x=normalize(to_8bit_steps(gray), card), box=box, cropped=box != (0, 0, int(h), int(w)), notes=notes)


def to_u8(gray: np.ndarray) -> np.ndarray:
    """[0, 1] gray -> uint8 (rounded): the one conversion the engine and training share."""
    return np.clip(gray * 255.0 + 0.5, 0, 255).astype(np.uint8)


def to_8bit_steps(gray: np.ndarray) -> np.ndarray:
    """Round model-size gray ([0, 1]) to the 256 levels of an 8-bit image. Every training image
    reaches the network as 8-bit values at the input size (``training.recipes.recipe_v2.make_view``), so
    a 12-bit DICOM or a large PNG, resized here in float, would otherwise give the network finer
    steps than it ever saw; on 92 JSRT films without a nodule that alone moved 2.0.0 from 14% to
    25% called normal. An image already 8-bit at the input size is unchanged."""
    return to_u8(gray).astype(np.float32) / np.float32(255.0)


def preprocess(pixels: np.ndarray, card: ModelCard, lungs: object | None = None) -> np.ndarray:
    """Display-pipeline pixels ([0, 1], HxW) -> one model input [3, H, W]."""
    return model_input(pixels, card, lungs).x
