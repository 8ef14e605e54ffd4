"""Window/level for the viewer, Qt-free (built in workers, rendered on the GUI thread).

Interactive window/level works on the modality values (``LoadedImage.values``), never on
the already-windowed pixels, so a narrow window keeps the file's full precision. The
values are quantised once per image (in a worker) to a uint16 index over their own
[min, max]; each window change then costs one 65,536-entry lookup table and one gather,
a few milliseconds even for a 4-megapixel radiograph.

Presets. "DICOM default" is the file's own display (VOI LUT or window, MONOCHROME1
inversion): exactly what the model sees. "Full range" spans the data's min..max. HU
presets (lung -600/1500 and so on) only mean something for CT; projection radiographs
have no calibrated units, so "Lung", "Mediastinum" and "Bone" are defined on the image's
own distribution of displayed brightness (percentiles of the values, taken from the
dark end as it is displayed, so MONOCHROME1 files behave like MONOCHROME2 ones):

- Lung: brightness percentiles 5..60. The dark lung fields get the whole grey scale;
  mediastinum, bone and the diaphragm saturate to white. Shows vessels and subtle
  opacities in aerated lung.
- Mediastinum: 30..99.5. Lungs go dark; the heart, mediastinum, retrocardiac and
  subdiaphragmatic regions get the contrast (lines, tubes, retrocardiac opacities).
- Bone: 55..99.9, for the brightest structures (ribs, clavicles, spine).

Percentiles leave out pixels at the exact minimum or maximum value (collimator shadows,
burnt-out background, saturated labels) so large empty borders do not shift the windows.
Windows are LINEAR_EXACT so a preset maps exactly its percentile range to black..white.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np

from engine import LoadedImage, Prediction, Window
from engine.ai.cam import CamScale, cam_scale, colorize, evidence, heat_alpha, heatmap, overlay
from engine.io.display import apply_window

LEVELS = 65536
DEFAULT_PRESET = "DICOM default"
# name -> brightness percentile range (low, high), dark end first as displayed
PERCENTILE_PRESETS: dict[str, tuple[float, float]] = {
    "Lung": (5.0, 60.0),
    "Mediastinum": (30.0, 99.5),
    "Bone": (55.0, 99.9),
}
BUILTIN_PRESETS = (DEFAULT_PRESET, "Full range", *PERCENTILE_PRESETS)
PRESET_HELP = {
    DEFAULT_PRESET: "The file's own display (VOI LUT or window, MONOCHROME1 inverted): what the model sees",
    "Full range": "Every stored value from black to white",
    "Lung": "Darker range: the lung fields get the grey scale (brightness percentiles 5-60)",
    "Mediastinum": "Brighter range: heart, mediastinum, retrocardiac area (percentiles 30-99.5)",
    "Bone": "Brightest range: ribs, clavicles, spine (percentiles 55-99.9)",
}
THUMB_SIZE = 96
OVERLAY_MAX = 512  # heatmaps are built at most this size and scaled by the view


@dataclass(frozen=True)
class DisplaySource:
    """What the GUI needs to draw one image at any window, built in a worker."""

    index: np.ndarray  # uint16 HxW: values quantised over [lo, hi]
    lo: float
    hi: float
    default_u8: np.ndarray  # uint8 HxW: the file's own display (image.pixels)
    inverted: bool  # MONOCHROME1: high values display dark
    default_window: Window  # the window the file's default display corresponds to
    presets: tuple[tuple[str, Window | None], ...]  # (name, window); None = file default

    @property
    def shape(self) -> tuple[int, int]:
        return self.index.shape[0], self.index.shape[1]

    def preset(self, name: str) -> Window | None:
        for n, w in self.presets:
            if n == name:
                return w
        raise KeyError(name)


def to_u8(pixels: np.ndarray) -> np.ndarray:
    """[0, 1] float -> uint8 (rounded)."""
    return np.clip(pixels * 255.0 + 0.5, 0, 255).astype(np.uint8)


def _sample(values: np.ndarray, target: int = 300_000) -> np.ndarray:
    """A strided sample of the values without the pixels at the exact min or max."""
    step = max(1, int(math.sqrt(values.size / target)))
    s = values[::step, ::step].ravel()
    lo, hi = s.min(), s.max()
    inner = s[(s > lo) & (s < hi)]
    return inner if inner.size >= 0.05 * s.size else s


def percentile_preset(values_sample: np.ndarray, low: float, high: float, inverted: bool, name: str) -> Window:
    """A LINEAR_EXACT window over brightness percentiles [low, high] as displayed."""
    if inverted:  # displayed brightness decreases with the value
        low, high = 100.0 - high, 100.0 - low
    lo, hi = (float(v) for v in np.percentile(values_sample, [low, high]))
    if hi <= lo:
        hi = lo + 1.0
    return Window(center=(lo + hi) / 2.0, width=hi - lo, function="LINEAR_EXACT", name=name)


def make_display_source(image: LoadedImage) -> DisplaySource:
    values = image.values
    lo, hi = float(np.min(values)), float(np.max(values))
    span = hi - lo if hi > lo else 1.0
    scaled = (values - np.float32(lo)) * np.float32((LEVELS - 1) / span)
    np.rint(scaled, out=scaled)
    np.clip(scaled, 0, LEVELS - 1, out=scaled)
    index = scaled.astype(np.uint16)
    sample = _sample(values)
    inverted = bool(image.meta.inverted)
    full = Window(center=(lo + hi) / 2.0, width=max(hi - lo, 1e-6), function="LINEAR_EXACT", name="Full range")
    presets: list[tuple[str, Window | None]] = [(DEFAULT_PRESET, None), ("Full range", full)]
    for name, (a, b) in PERCENTILE_PRESETS.items():
        presets.append((name, percentile_preset(sample, a, b, inverted, name)))
    for i, w in enumerate(image.meta.windows[1:], start=2):  # extra windows stored in the file
        presets.append((f"File: {w.name or f'window {i}'}", w))
    default = image.meta.default_window
    if default is None or image.meta.voi_source == "voi_lut":
        # a VOI LUT has no centre/width; start interactive changes from a robust window
        default = default or percentile_preset(sample, 0.5, 99.5, inverted, "Default")
    return DisplaySource(
        index=index, lo=lo, hi=lo + span, default_u8=to_u8(image.pixels), inverted=inverted,
        default_window=default, presets=tuple(presets),
    )


def window_lut(src: DisplaySource, window: Window, invert: bool) -> np.ndarray:
    levels = np.linspace(src.lo, src.hi, LEVELS, dtype=np.float64).astype(np.float32)
    return to_u8(apply_window(levels, window, invert=src.inverted != invert))


def render(src: DisplaySource, window: Window | None, invert: bool = False) -> np.ndarray:
    """uint8 HxW for a window (None = the file's default display), optionally inverted."""
    if window is None:
        return 255 - src.default_u8 if invert else src.default_u8
    return np.take(window_lut(src, window, invert), src.index)


def drag_window(start: Window, dx: float, dy: float, src: DisplaySource, viewport: tuple[int, int]) -> Window:
    """Right-drag: horizontal changes the width, vertical the level (centre).

    Dragging across the whole view changes the width or level by the image's value range;
    right = wider (less contrast), down = higher level (darker for MONOCHROME2)."""
    span = src.hi - src.lo
    w_px, h_px = max(viewport[0], 1), max(viewport[1], 1)
    width = max(start.width + dx * span / w_px, span / 1000.0, 1e-6)
    sign = -1.0 if src.inverted else 1.0
    center = start.center + sign * dy * span / h_px
    return Window(center=center, width=width, function="LINEAR_EXACT" if start.function != "SIGMOID" else "SIGMOID",
                  name="Custom")


def thumbnail(pixels: np.ndarray, size: int = THUMB_SIZE) -> np.ndarray:
    """uint8 thumbnail of the default display, longest side ``size``."""
    h, w = pixels.shape
    s = size / max(h, w)
    th, tw = max(1, round(h * s)), max(1, round(w * s))
    return to_u8(cv2.resize(pixels, (tw, th), interpolation=cv2.INTER_AREA))


def overlay_size(image_hw: tuple[int, int], limit: int = OVERLAY_MAX) -> tuple[int, int]:
    h, w = image_hw
    s = min(1.0, limit / max(h, w))
    return max(1, round(h * s)), max(1, round(w * s))


def heat_rgba(cam: np.ndarray, class_index: int, image_hw: tuple[int, int], input_hw: tuple[int, int],
              resize: str, box: tuple[int, int, int, int] | None = None, *, scale: float | None = None) -> np.ndarray:
    """Grad-CAM of one class as RGBA (turbo colours, alpha = ``engine.ai.cam.heat_alpha``) at
    overlay size.
    ``box``: the image region (top, left, height, width, image pixels) the model saw.
    ``scale``: CAM units drawn as full heat, shared by all classes (``engine.ai.cam``); a class
    with negligible evidence is fully transparent. None: the class's own peak.

    Drawn over the image with the overlay opacity, this is ``engine.ai.cam.overlay``:
    out = gray * (1 - opacity * a) + turbo(heat) * opacity * a, a = heat_alpha(heat): the film
    is untouched where the evidence is low (transparent up to ``ALPHA_FLOOR`` of the scale)."""
    size = overlay_size(image_hw)
    if box is not None:
        sy, sx = size[0] / image_hw[0], size[1] / image_hw[1]
        top, left = int(round(box[0] * sy)), int(round(box[1] * sx))
        box = (top, left, max(1, min(size[0] - top, int(round(box[2] * sy)))),
               max(1, min(size[1] - left, int(round(box[3] * sx)))))
    heat = heatmap(cam, class_index, size, input_hw, resize, box=box, scale=scale)
    rgba = np.empty((*heat.shape, 4), np.uint8)
    rgba[:, :, :3] = colorize(heat)
    rgba[:, :, 3] = to_u8(heat_alpha(heat))
    return rgba


@dataclass(frozen=True)
class ClassHeatmaps:
    """Every class's overlay of one prediction on one scale, and each class's evidence."""

    rgba: tuple[np.ndarray, ...]  # per class, at overlay size (transparent where evidence is negligible)
    scale: CamScale
    evidence: tuple[float, ...]  # per class: the map's peak as a fraction of the scale


def class_heatmaps(pred: Prediction, model_scale: float | None = None) -> ClassHeatmaps:
    """All classes' overlays on one scale: the model's ``cam_scale`` when the card has one,
    else the peak of the top class's map (``engine.ai.cam.cam_scale``)."""
    sc = cam_scale(pred.cam, pred.top_index, model_scale)
    rgba = tuple(heat_rgba(pred.cam, i, pred.image.shape, pred.input_size, pred.resize, pred.box, scale=sc.value)
                 for i in range(len(pred.labels)))
    return ClassHeatmaps(rgba, sc, tuple(evidence(pred.cam, i, sc.value) for i in range(len(pred.labels))))


LEGEND_GREY = 0.5  # the film the legend's colours are drawn over


def legend_rgb(width: int = 256, height: int = 12) -> np.ndarray:
    """The colour scale as drawn over a mid-grey film at full opacity: grey (transparent) at the
    low end, as the overlay leaves low evidence, then the turbo colours."""
    ramp = np.tile(np.linspace(0.0, 1.0, width, dtype=np.float32), (height, 1))
    return overlay(np.full(ramp.shape, LEGEND_GREY, np.float32), ramp, 1.0)


def lung_contours(mask: np.ndarray, min_points: int = 3) -> list[np.ndarray]:
    """Outlines of a bool HxW lung mask as float32 [N, 2] (x, y) polygons in image pixels,
    on pixel edges' centres; holes included. Simplified to within half a pixel."""
    m = np.ascontiguousarray(mask, dtype=np.uint8)
    if m.ndim != 2 or not m.any():
        return []
    contours, _ = cv2.findContours(m, cv2.RETR_LIST, cv2.CHAIN_APPROX_SIMPLE)
    out = []
    for c in contours:
        c = cv2.approxPolyDP(c, 0.5, True)
        if len(c) >= min_points:
            out.append(c.reshape(-1, 2).astype(np.float32) + 0.5)  # pixel centres
    return out
