"""Grayscale display functions: VOI windowing (DICOM PS3.3 C.11.2.1.2) to [0, 1]."""

from __future__ import annotations

import numpy as np

from .image import Window


def apply_window(values: np.ndarray, window: Window, invert: bool = False) -> np.ndarray:
    """Map modality values through a VOI window to float32 [0, 1] (1 = white)."""
    c, w = float(window.center), float(window.width)
    x = values.astype(np.float32, copy=False)
    fn = (window.function or "LINEAR").upper()
    if fn == "SIGMOID":
        w = max(w, 1e-6)
        out = 1.0 / (1.0 + np.exp(-4.0 * (x - c) / w))
    elif fn == "LINEAR_EXACT":
        w = max(w, 1e-6)
        out = (x - (c - w / 2.0)) / w
    else:  # LINEAR: width >= 1, offsets of 0.5 and 1 per the standard
        w = max(w, 1.0)
        if w == 1.0:
            out = (x >= c - 0.5).astype(np.float32)
        else:
            out = ((x - (c - 0.5)) / (w - 1.0)) + 0.5
    out = np.clip(out, 0.0, 1.0).astype(np.float32, copy=False)
    return 1.0 - out if invert else out


def full_range_window(values: np.ndarray, lo: float | None = None, hi: float | None = None) -> Window:
    """A LINEAR_EXACT window spanning [lo, hi] (default: the data's min and max)."""
    lo = float(np.min(values)) if lo is None else float(lo)
    hi = float(np.max(values)) if hi is None else float(hi)
    if hi <= lo:
        hi = lo + 1.0
    return Window(center=(lo + hi) / 2.0, width=hi - lo, function="LINEAR_EXACT", name="Full range")


def percentile_window(values: np.ndarray, low: float = 0.5, high: float = 99.5) -> Window:
    lo, hi = np.percentile(values, [low, high])
    return full_range_window(values, float(lo), float(hi))
