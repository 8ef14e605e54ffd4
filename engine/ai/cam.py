"""Grad-CAM maps from the model's ``cam`` output: heatmaps at image size and overlays.

The scale. A raw Grad-CAM map is in arbitrary units; scaling each class's map to its own
peak makes a class at 1% probability look as hot as the call, and a blank image hot all
over. ``heatmap(..., scale=s)`` divides by one number ``s`` instead, so an intensity means
the same for every class (and, with the model's scale, every image):

- the model's scale, ``cam_scale`` in the card (written at training time: the 99th
  percentile of the top class's CAM peak over validation images): 1.0 = as strong as the
  strongest evidence on validation images;
- without one, the image's scale: the peak of the top class's map, shared by all classes.

A class whose map peaks under ``NEGLIGIBLE_EVIDENCE`` of the scale has no evidence worth
drawing: its map is all zeros. ``scale=None`` keeps the old per-class normalisation.

Drawing. The colour is the turbo map of the heat; how much of it covers the film is
``heat_alpha``, one alpha ramp used on screen, in the PNG and PDF exports and in the DICOM
heatmap capture: transparent up to ``ALPHA_FLOOR`` of the scale (low evidence leaves the film
untouched, as Grad-CAM viewers draw it, instead of tinting it blue and dimming it; a weak map
gets a lower floor, half its peak, so it still shows where it is strongest), rising to the
heat itself at ``ALPHA_FULL`` and following it above (the chosen opacity at the top of the scale;
a class with less evidence is fainter, never stretched).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np

from .preprocess import letterbox_box

NEGLIGIBLE_EVIDENCE = 0.05  # a map peaking under this fraction of the scale is "no evidence"
ALPHA_FLOOR = 0.25  # heat at or under this fraction of the scale is drawn fully transparent
ALPHA_FULL = 0.65  # from here up the alpha is the evidence itself (x opacity), as before the ramp
WEAK_FLOOR_SHARE = 0.5  # a weak map's floor: this share of its own peak (see heat_alpha)
MODEL_SCALE = "model"
IMAGE_SCALE = "image"


@dataclass(frozen=True)
class CamScale:
    """The number a class's CAM is divided by, and where it comes from."""

    value: float  # CAM units shown as intensity 1.0
    kind: str  # MODEL_SCALE (the card's cam_scale) or IMAGE_SCALE (this image's top-class peak)

    @property
    def fixed(self) -> bool:
        return self.kind == MODEL_SCALE

    def describe(self) -> str:
        """What the colour scale means, for the legend."""
        if self.fixed:
            return "Fixed scale for this model: 1.0 (red) = strong evidence on validation images."
        return "Relative to this image's strongest class (the model card has no fixed scale)."


def card_cam_scale(card: object) -> float | None:
    """The model-wide CAM scale from a model card (attribute or ``extra["cam_scale"]``), or None."""
    value = getattr(card, "cam_scale", None)
    if value is None:
        extra = getattr(card, "extra", None)
        value = extra.get("cam_scale") if isinstance(extra, dict) else None
    try:
        v = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return None
    return v if math.isfinite(v) and v > 0 else None


def cam_scale(cam: np.ndarray, top_index: int, model_scale: float | None = None) -> CamScale:
    """The scale for one image's maps ([C, h, w]): the model's when it has one, else the
    peak of the top class's map (shared by all classes)."""
    if model_scale is not None and math.isfinite(model_scale) and model_scale > 0:
        return CamScale(float(model_scale), MODEL_SCALE)
    return CamScale(_peak(cam, top_index), IMAGE_SCALE)


def evidence(cam: np.ndarray, class_index: int, scale: float) -> float:
    """The peak of a class's map as a fraction of ``scale`` (0 when the scale is 0)."""
    return _peak(cam, class_index) / scale if scale > 0 else 0.0


def negligible(cam: np.ndarray, class_index: int, scale: float) -> bool:
    return evidence(cam, class_index, scale) < NEGLIGIBLE_EVIDENCE


def _peak(cam: np.ndarray, class_index: int) -> float:
    peak = float(np.max(cam[class_index])) if cam[class_index].size else 0.0
    return peak if math.isfinite(peak) and peak > 0 else 0.0


def heatmap(cam: np.ndarray, class_index: int, image_hw: tuple[int, int], input_hw: tuple[int, int],
            resize: str = "stretch", box: tuple[int, int, int, int] | None = None,
            box_image_hw: tuple[int, int] | None = None, *, scale: float | None = None) -> np.ndarray:
    """The class's CAM ([C, h, w] for one image) as float32 [0, 1] at image size (H, W).

    ``scale``: CAM units shown as 1.0 (see the module notes; ``cam_scale``); the map is zero
    when the class's evidence is negligible. None: each class scaled to its own peak.
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
        inner = heatmap(cam, class_index, (bh, bw), input_hw, resize, scale=scale)
        out = np.zeros((H, W), np.float32)
        out[top : top + bh, left : left + bw] = inner
        return out
    m = np.maximum(cam[class_index].astype(np.float32), 0.0)
    if scale is None:
        peak = float(m.max())
        m = m / peak if peak > 0 else np.zeros_like(m)
    elif not (math.isfinite(scale) and scale > 0) or negligible(cam, class_index, scale):
        return np.zeros((H, W), np.float32)
    else:
        m = np.minimum(m / np.float32(scale), 1.0)
    if resize == "letterbox":
        # CAM covers the model input; crop the part that holds the image, then scale.
        ih, iw = input_hw
        up = cv2.resize(m, (iw, ih), interpolation=cv2.INTER_LINEAR)
        top, left, nh, nw = letterbox_box(image_hw, input_hw)
        m = up[top : top + nh, left : left + nw]
    out = cv2.resize(m, (W, H), interpolation=cv2.INTER_CUBIC)
    # cubic interpolation overshoots at steep edges: never above the map's own peak, so on a
    # shared scale a class at half the evidence stays at half the intensity
    hi = 1.0 if scale is None else (float(m.max()) if m.size else 0.0)
    return np.clip(out, 0.0, hi).astype(np.float32)


def colorize(heat: np.ndarray) -> np.ndarray:
    """[0, 1] heatmap -> uint8 RGB (turbo colour map)."""
    u8 = np.clip(heat * 255.0 + 0.5, 0, 255).astype(np.uint8)
    return cv2.cvtColor(cv2.applyColorMap(u8, cv2.COLORMAP_TURBO), cv2.COLOR_BGR2RGB)


def heat_alpha(heat: np.ndarray, opacity: float = 1.0) -> np.ndarray:
    """The overlay's per-pixel alpha for one class's [0, 1] heatmap, float32 in [0, ``opacity``]:
    0 (the film unchanged) up to the floor, rising linearly to ``opacity`` x ``ALPHA_FULL`` at
    ``ALPHA_FULL``, and ``opacity`` x heat above it (never more than the evidence: full opacity only
    at the top of the scale). The floor is ``ALPHA_FLOOR`` of the scale, or, for a weak map peaking under twice
    that, ``WEAK_FLOOR_SHARE`` of its own peak, so a map with some evidence (not negligible:
    the viewer says "no evidence" for those) still shows, faintly, where it is strongest.
    The one ramp every drawing of a heatmap uses (``overlay``; the viewer's RGBA layer)."""
    h = np.nan_to_num(np.asarray(heat, np.float32))
    peak = float(h.max()) if h.size else 0.0
    floor = np.float32(min(ALPHA_FLOOR, WEAK_FLOOR_SHARE * max(peak, 0.0)))
    ramp = np.clip((h - floor) / (np.float32(ALPHA_FULL) - floor), 0.0, 1.0)
    # never more than the evidence itself: a class with less evidence is drawn fainter, never
    # stretched to full opacity (the shared scale's promise); above ALPHA_FULL the alpha is the heat
    ramp = np.minimum(ramp, np.clip(h, 0.0, 1.0))
    return (np.float32(np.clip(opacity, 0.0, 1.0)) * ramp).astype(np.float32)


def overlay(gray: np.ndarray, heat: np.ndarray, opacity: float = 0.4) -> np.ndarray:
    """Blend a [0, 1] grayscale image with a [0, 1] heatmap -> uint8 RGB, same size.

    Opacity follows ``heat_alpha``: low-evidence regions stay the plain radiograph."""
    if gray.shape != heat.shape:
        raise ValueError(f"image {gray.shape} and heatmap {heat.shape} differ in size")
    base = np.repeat(np.clip(gray, 0, 1)[:, :, None] * 255.0, 3, axis=2)
    alpha = heat_alpha(heat, float(opacity))[:, :, None]
    out = base * (1.0 - alpha) + colorize(heat).astype(np.float32) * alpha
    return np.clip(out + 0.5, 0, 255).astype(np.uint8)
