"""The stages of the DICOM display pipeline (DESIGN.md), one stage per function in
pydicom's style (the array, then the dataset), each a no-op when its module is absent:

    colour (PALETTE COLOR, RGB -> grey) -> finite pixels -> Modality LUT -> VOI
    -> presentation (MONOCHROME1 inversion)

What happens to values that would give NaN (never passed on):

* Float pixel data (FloatPixelData, DoubleFloatPixelData) with NaN or infinite pixels:
  NaN and -inf are shown as the lowest finite value, +inf as the highest, with a note;
  pixel data with no finite value at all is refused (``CorruptImageError``).
* Rescale Slope/Intercept whose output leaves the float32 range (slope 1e308; slope 0
  with intercept 1e308): refused with ``CorruptImageError`` naming the element. The
  modality values would mean nothing, and the file's window is in their units, so
  showing the stored values instead would mislead the reader and the model.
* Window Center/Width that is not finite, beyond the float32 range, or of width <= 0:
  that window is ignored with a note (the next window, else the full range). A LINEAR
  window narrower than 1 is applied as LINEAR_EXACT with a note (LINEAR raises the width
  to 1, a threshold: an image with values well under 1 came out solid white).
* A Modality or VOI LUT Sequence item with an empty or missing LUTDescriptor or LUTData:
  ignored with a note (``dicom_header.read_lut``), the next rule of its stage applies.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pydicom
from pydicom.dataset import Dataset

from ..errors import CorruptImageError, UnsupportedImageError
from .dicom_header import bad_header, float_value, read_lut, short
from .display import apply_window, full_range_window
from .image import Window

F32_MAX = float(np.finfo(np.float32).max)


def _list(value: object) -> list:
    return list(value) if isinstance(value, (list, tuple, pydicom.multival.MultiValue)) else [value]


def apply_palette_color(arr: np.ndarray, ds: Dataset, path: Path, notes: list[str]) -> np.ndarray:
    """PALETTE COLOR: palette indices -> RGB with pydicom's ``apply_color_lut``."""
    if str(ds.get("PhotometricInterpretation", "")).upper() != "PALETTE COLOR" or arr.ndim != 2:
        return arr
    try:
        rgb = pydicom.pixels.apply_color_lut(arr, ds)
    except Exception as e:  # noqa: BLE001 - pydicom raises several types for a bad palette
        raise CorruptImageError(
            f"{path.name}: the PALETTE COLOR lookup tables cannot be applied ({type(e).__name__}: "
            f"{short(str(e))}). The file is damaged; re-export it from the source system."
        ) from None
    notes.append("PALETTE COLOR: palette applied")
    return rgb


def to_grey(arr: np.ndarray, ds: Dataset, path: Path, notes: list[str]) -> np.ndarray:
    """Colour (RGB; YBR already converted by pydicom's ``as_rgb``) -> one grey channel."""
    if arr.ndim == 3 and arr.shape[2] in (3, 4):
        import cv2

        photometric = str(ds.get("PhotometricInterpretation", "")).upper()
        arr = cv2.cvtColor(np.ascontiguousarray(arr[:, :, :3], dtype=np.float32), cv2.COLOR_RGB2GRAY)
        notes.append(f"colour ({photometric}) converted to grayscale")
    elif arr.ndim != 2:
        raise UnsupportedImageError(f"{path.name}: unexpected pixel array shape {arr.shape}.")
    return arr


def finite_pixels(arr: np.ndarray, ds: Dataset, path: Path, notes: list[str]) -> np.ndarray:
    """Float pixel data: NaN and -inf become the lowest finite value, +inf the highest."""
    if arr.dtype.kind != "f":
        return arr
    finite = np.isfinite(arr)
    if finite.all():
        return arr
    if not finite.any():
        raise CorruptImageError(
            f"{path.name}: the float pixel data holds no finite value (NaN or infinity only). "
            "The file is damaged; re-export it from the source system."
        )
    lo, hi = arr[finite].min(), arr[finite].max()
    bad = int(finite.size - np.count_nonzero(finite))
    out = np.where(np.isposinf(arr), hi, np.where(finite, arr, lo)).astype(arr.dtype)
    notes.append(f"{bad} pixel(s) of the float pixel data are NaN or infinite: shown as the lowest "
                 "(NaN, -inf) or highest (+inf) finite value")
    return out


def apply_modality(arr: np.ndarray, ds: Dataset, path: Path, notes: list[str]) -> np.ndarray:
    """Modality LUT stage: the Modality LUT Sequence, else Rescale Slope/Intercept (both
    present, as pydicom's ``apply_modality_lut`` requires), else the stored values.
    Returns finite float32 values."""
    lut = read_lut(path, ds, "ModalityLUTSequence", notes)
    if lut is not None:
        return lut.lookup(arr).astype(np.float32)
    if "RescaleSlope" in ds and "RescaleIntercept" in ds:
        slope = float_value(path, ds, "RescaleSlope", 1.0)
        intercept = float_value(path, ds, "RescaleIntercept", 0.0)
        with np.errstate(over="ignore", invalid="ignore"):
            values = arr.astype(np.float64) * slope + intercept
        if not _in_float32(values):
            keyword = "RescaleIntercept" if abs(intercept) > F32_MAX else "RescaleSlope"
            raise bad_header(path, keyword, ds.get(keyword),
                             f"with RescaleSlope {short(str(ds.get('RescaleSlope')))} and RescaleIntercept "
                             f"{short(str(ds.get('RescaleIntercept')))} the pixel values leave the float32 range")
        return values.astype(np.float32)
    if arr.dtype.kind == "f" and not _in_float32(arr):
        raise CorruptImageError(
            f"{path.name}: the float pixel data holds values beyond the float32 range "
            f"(up to {float(np.max(np.abs(arr))):.3g}). The file is damaged; re-export it from the source system."
        )
    return arr.astype(np.float32)


def _in_float32(values: np.ndarray) -> bool:
    peak = float(np.max(np.abs(values))) if values.size else 0.0
    return peak <= F32_MAX  # False for inf and NaN as well


def read_windows(ds: Dataset, notes: list[str]) -> tuple[Window, ...]:
    """The usable Window Center/Width pairs with their VOI LUT Function. A pair that is
    unreadable, not finite, beyond the float32 range or of width <= 0 is left out with a
    note; a LINEAR width under 1 becomes LINEAR_EXACT, with a note."""
    if "WindowCenter" not in ds or "WindowWidth" not in ds:
        return ()
    centers, widths = _list(ds.WindowCenter), _list(ds.WindowWidth)
    expls = _list(ds.get("WindowCenterWidthExplanation", ""))
    fn = str(ds.get("VOILUTFunction", "LINEAR") or "LINEAR").upper()
    out = []
    for i, (cc, ww) in enumerate(zip(centers, widths, strict=False)):
        name = str(expls[i]) if i < len(expls) and expls[i] else f"DICOM {i + 1}"
        label = f"Window Center/Width {short(str(cc))}/{short(str(ww))} ({name})"
        try:
            c, w = float(cc), float(ww)
        except (TypeError, ValueError):
            notes.append(f"{label} unreadable: ignored")
            continue
        if not (math.isfinite(c) and math.isfinite(w) and abs(c) <= F32_MAX and w <= F32_MAX):
            notes.append(f"{label} is not a usable window (not a finite number in the float32 range): ignored")
            continue
        if w <= 0:
            notes.append(f"{label} has a width of zero or less: ignored")
            continue
        function = fn
        if fn == "LINEAR" and w < 1:
            function = "LINEAR_EXACT"
            notes.append(f"{label}: LINEAR width below 1 applied as LINEAR_EXACT")
        out.append(Window(c, w, function, name))
    return tuple(out)


def apply_voi(values: np.ndarray, ds: Dataset, path: Path, notes: list[str],
              windows: tuple[Window, ...] | None = None) -> tuple[np.ndarray, Window | None, str]:
    """VOI stage: the VOI LUT Sequence, else the first usable window (``read_windows``;
    pass ``windows`` when already read), else the full range of ``values``.
    Returns (pixels in [0, 1], the window shown or None, "voi_lut" | "window" | "full_range")."""
    if windows is None:
        windows = read_windows(ds, notes)
    lut = read_lut(path, ds, "VOILUTSequence", notes)
    if lut is not None:
        # The VOI LUT maps the modality LUT's output (integer indices); PS3.3 C.11.2.1.1
        top = max(float(2**lut.bits - 1), float(np.max(lut.data)))
        pixels = np.clip(lut.lookup(values).astype(np.float32) / top, 0.0, 1.0)
        return pixels, (windows[0] if windows else None), "voi_lut"
    if windows and window_fits(values, windows[0], ds, notes):
        return apply_window(values, windows[0]), windows[0], "window"
    window = full_range_window(values)
    return apply_window(values, window), window, "full_range"


MIN_INSIDE = 0.01  # a window with fewer of the pixels inside it than this shows a blank film


def window_fits(values: np.ndarray, window: Window, ds: Dataset, notes: list[str]) -> bool:
    """False, with a note, when the header's window misses the pixel values: under MIN_INSIDE of
    them fall inside it while the values themselves vary (the image would show as all white or all
    black and be refused as blank). The full range is shown instead, as other viewers show such a
    file; the header's windows stay in the window list. The usual cause is a JPEG 2000 codestream
    whose signedness disagrees with Pixel Representation (values offset by half the range)."""
    v = values[:: max(1, values.shape[0] // 256), :: max(1, values.shape[1] // 256)] if values.ndim >= 2 else values
    lo, hi = float(np.min(v)), float(np.max(v))
    if hi <= lo:
        return True
    inside = float(np.mean((v >= window.center - window.width / 2) & (v <= window.center + window.width / 2)))
    if inside >= MIN_INSIDE:
        return True
    why = ""
    ts = str(getattr(getattr(ds, "file_meta", None), "TransferSyntaxUID", "") or "")
    bits = int(ds.get("BitsStored", 16) or 16)
    if ts.startswith("1.2.840.10008.1.2.4.9") and int(ds.get("PixelRepresentation", 0) or 0) == 0 \
            and lo >= 2 ** (bits - 1) - 2 ** (bits - 6):
        why = (" (the values sit in the upper half of the range: likely a JPEG 2000 codestream whose signedness "
               "disagrees with Pixel Representation)")
    notes.append(f"Window Center/Width {window.center:g}/{window.width:g} does not fit the pixel values "
                 f"({lo:g} to {hi:g}; {inside:.1%} of them inside it){why}: the full range is shown. The header's "
                 "window is still in the window list.")
    return False


def apply_presentation_inversion(pixels: np.ndarray, ds: Dataset) -> tuple[np.ndarray, bool]:
    """MONOCHROME1: the lowest value is white, so invert. Returns (pixels, inverted)."""
    if str(ds.get("PhotometricInterpretation", "MONOCHROME2")).upper() != "MONOCHROME1":
        return pixels, False
    return 1.0 - pixels, True
