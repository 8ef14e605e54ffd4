"""How two images side by side follow each other, Qt-free.

Zoom is linked relative to each image's fit-to-window scale and pan by the centre of the
view in image fractions, so a prior of another size shows the same anatomy at the same
size. Window/level is linked relative to each image's own default window (projection
radiographs have no calibrated units, so one image's numbers mean nothing for another's):
a named preset (Lung, Bone, ...) is applied by name, each image on its own statistics;
"DICOM default" follows as default; a custom window keeps its offset and width in units of
the default window's width.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from engine import Window

from .windowing import DisplaySource


@dataclass(frozen=True)
class ViewPlace:
    """Where a view looks: zoom relative to its fit scale, the centre in image fractions."""

    rel_zoom: float
    cx: float
    cy: float
    fitted: bool


def fit_scale(view_wh: tuple[float, float], image_wh: tuple[float, float]) -> float:
    """The scale at which the whole image fits the view (1.0 for an empty one)."""
    (vw, vh), (iw, ih) = view_wh, image_wh
    if iw <= 0 or ih <= 0 or vw <= 0 or vh <= 0:
        return 1.0
    return min(vw / iw, vh / ih)


def place_of(scale: float, centre: tuple[float, float], view_wh: tuple[float, float],
             image_wh: tuple[float, float]) -> ViewPlace:
    fit = fit_scale(view_wh, image_wh)
    rel = scale / fit if fit > 0 else 1.0
    iw, ih = image_wh
    cx = centre[0] / iw if iw else 0.5
    cy = centre[1] / ih if ih else 0.5
    return ViewPlace(rel, cx, cy, math.isclose(rel, 1.0, rel_tol=1e-3))


def scale_for(place: ViewPlace, view_wh: tuple[float, float], image_wh: tuple[float, float]) -> float:
    return place.rel_zoom * fit_scale(view_wh, image_wh)


def centre_for(place: ViewPlace, image_wh: tuple[float, float]) -> tuple[float, float]:
    return place.cx * image_wh[0], place.cy * image_wh[1]


def preset_name(src: DisplaySource, window: Window | None) -> str | None:
    """The name of the built-in or file preset ``window`` is (None: a custom window)."""
    for name, w in src.presets:
        if w == window:
            return name
    return None


def map_window(window: Window | None, src: DisplaySource, dst: DisplaySource) -> Window | None:
    """``window`` of the image ``src``, as the same choice for the image ``dst`` (None: the
    file's default display)."""
    if window is None:
        return None
    name = preset_name(src, window)
    if name is not None:
        try:
            return dst.preset(name)
        except KeyError:
            pass  # e.g. a window stored in one file only: carried over as a custom window
    a, b = src.default_window, dst.default_window
    ratio = b.width / a.width if a.width > 0 else 1.0
    centre = b.center + (window.center - a.center) * ratio
    return Window(centre, max(window.width * ratio, 1e-6), window.function, "Custom")


def same_window(a: Window | None, b: Window | None, span: float) -> bool:
    """Equal up to a tiny fraction of the value range (mapping there and back rounds)."""
    if a is None or b is None:
        return a is b
    tol = max(abs(span), 1.0) * 1e-6
    return abs(a.center - b.center) <= tol and abs(a.width - b.width) <= tol
