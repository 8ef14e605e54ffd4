"""Grayscale display functions: VOI windowing (DICOM PS3.3 C.11.2.1.2) to [0, 1]."""

from __future__ import annotations

import numpy as np

from .image import Window

_F32_SAFE = 1e38  # below float32's largest value (3.4e38)


def _ramp(x: np.ndarray, lo: float, k: float) -> np.ndarray:
    """(x - lo) * k, in float32 when ``lo`` and ``k`` are float32 numbers (always, for a
    window the loader accepted), else in float64. For finite ``x`` the result has no NaN:
    an overflow gives +-inf, which clipping to [0, 1] maps to the right end."""
    dt = np.float32 if abs(lo) <= _F32_SAFE and abs(k) <= _F32_SAFE else np.float64
    with np.errstate(over="ignore", invalid="ignore"):
        out = np.subtract(x, dt(lo), dtype=dt)
        out *= dt(k)
    return out


def apply_window(values: np.ndarray, window: Window, invert: bool = False) -> np.ndarray:
    """Map modality values through a VOI window to float32 [0, 1] (1 = white).

    LINEAR follows the standard (offsets of 0.5 and 1; width 1 is a threshold). A LINEAR
    width below 1 (seen on images whose rescale gives values well under 1) is applied
    as LINEAR_EXACT instead of being raised to 1, which made such images a threshold."""
    c, w = float(window.center), float(window.width)
    x = np.asarray(values)
    fn = (window.function or "LINEAR").upper()
    if fn == "LINEAR" and 0.0 < w < 1.0:
        fn = "LINEAR_EXACT"
    if fn == "SIGMOID":
        t = _ramp(x, c, -4.0 / max(w, 1e-6))
        with np.errstate(over="ignore"):
            np.exp(t, out=t)  # inf far below the center: 1 / (1 + inf) = 0
        t += 1.0
        out = np.reciprocal(t, out=t)
    elif fn == "LINEAR_EXACT":
        w = max(w, 1e-6)
        out = _ramp(x, c - w / 2.0, 1.0 / w)
    else:  # LINEAR: width >= 1, offsets of 0.5 and 1 per the standard
        w = max(w, 1.0)
        if w == 1.0:
            out = (x >= c - 0.5).astype(np.float32)
        else:
            out = _ramp(x, c - 0.5, 1.0 / (w - 1.0))
            out += 0.5
    out = np.clip(out, 0.0, 1.0, out=out).astype(np.float32, copy=False)
    return 1.0 - out if invert else out


def full_range_window(values: np.ndarray, lo: float | None = None, hi: float | None = None) -> Window:
    """A LINEAR_EXACT window spanning [lo, hi] (default: the data's min and max)."""
    lo = float(np.min(values)) if lo is None else float(lo)
    hi = float(np.max(values)) if hi is None else float(hi)
    if hi <= lo:
        hi = lo + max(1.0, abs(lo) * 1e-6)  # a flat image; + 1.0 alone is lost on a huge value
    return Window(center=(lo + hi) / 2.0, width=hi - lo, function="LINEAR_EXACT", name="Full range")


def percentile_window(values: np.ndarray, low: float = 0.5, high: float = 99.5) -> Window:
    lo, hi = np.percentile(values, [low, high])
    return full_range_window(values, float(lo), float(hi))


def colourfulness(rgb: np.ndarray) -> float:
    """Mean HSV saturation ((max - min) / max over the colour channels) of the pixels that are
    not near-black, of an HxWx3 image: 0 for a grey image stored as colour (JPEG chroma noise
    gives about 0.01-0.03), 0.3-0.7 for a photograph, also one that is mostly black (a night
    sky). Measured on a subsample of about 256 px a side, so it costs well under a millisecond."""
    if rgb.ndim != 3 or rgb.shape[2] < 3:
        return 0.0
    step = max(1, max(rgb.shape[:2]) // 256)
    x = rgb[::step, ::step, :3].astype(np.float32)
    hi, lo = x.max(axis=2), x.min(axis=2)
    top = float(hi.max())
    lit = hi > 0.1 * (float(np.iinfo(rgb.dtype).max) if rgb.dtype.kind in "ui" else max(top, 1e-6))
    if not np.any(lit):
        return 0.0
    return float(np.mean((hi[lit] - lo[lit]) / hi[lit]))
