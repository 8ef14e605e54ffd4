"""Load PNG, JPEG and DICOM files into a ``LoadedImage`` (display pipeline applied).

The format is detected from the content, never from the extension alone: DICOM files
named by UID with no extension are common, and files do get misnamed. Whatever the
loader, the image returned has finite float32 ``pixels`` in [0, 1] and finite ``values``
(``_checked``): NaN never leaves this module.
"""

from __future__ import annotations

import os
import struct
from pathlib import Path

import cv2
import numpy as np

from ..errors import CorruptImageError, ImageLoadError, UnsupportedImageError
from .display import apply_window, colourfulness, full_range_window
from .fileio import DEFAULT_MAX_PIXELS, PNG_SIGNATURE, check_pixels, read_bytes, sniff_format
from .image import ImageMeta, LoadedImage


def load_image(path: str | os.PathLike[str], max_pixels: int = DEFAULT_MAX_PIXELS, tags: bool = True) -> LoadedImage:
    """Load a PNG, JPEG or DICOM image. Raises a typed ``ImageLoadError`` on bad input.
    ``tags=False`` skips a DICOM file's tag rows (for the tag viewer; a batch never shows them)."""
    path = Path(path)
    if path.is_dir():
        raise ImageLoadError(f"{path.name}: is a folder, not an image. Open it as a folder instead.")
    data = read_bytes(path)
    if not data:
        raise CorruptImageError(f"{path.name}: the file is empty (0 bytes). Re-export or re-copy it.")
    kind = sniff_format(data[:132])
    if kind == "png" or kind == "jpeg":
        return _checked(_load_raster(path, data, kind, max_pixels))
    if kind in ("dicom", "dicom-raw"):
        from .dicom import load_dicom  # pydicom import is deferred until a DICOM is seen

        return _checked(load_dicom(path, data, force=(kind == "dicom-raw"), max_pixels=max_pixels, tags=tags))
    raise UnsupportedImageError(
        f"{path.name}: not a PNG, JPEG or DICOM file (unrecognised content"
        f"{', despite its ' + path.suffix + ' extension' if path.suffix else ''}). "
        "Open a chest radiograph in one of those formats."
    )


def _checked(image: LoadedImage) -> LoadedImage:
    """The last guard of every loader: finite float32 ``pixels`` in [0, 1] of the image's
    shape and finite ``values``, else a typed error (never NaN to the model or the view)."""
    p, v = image.pixels, image.values
    ok = (
        isinstance(p, np.ndarray) and p.dtype == np.float32 and p.ndim == 2 and p.size > 0
        and isinstance(v, np.ndarray) and v.shape == p.shape
        and float(p.min()) >= 0.0 and float(p.max()) <= 1.0  # False for NaN, and inf is out of range
        and bool(np.isfinite(v).all())
    )
    if not ok:
        raise CorruptImageError(
            f"{Path(image.meta.path).name}: the image could not be displayed: after the display pipeline its "
            "values are not finite numbers in range (NaN, infinity, or pixels outside 0..1). The file is "
            "damaged or uses values RadLens cannot display; re-export it from the source system."
        )
    return image


def _raster_size(data: bytes, kind: str) -> tuple[int, int] | None:
    """(width, height) from the PNG IHDR or the JPEG SOF marker, without decoding."""
    if kind == "png":
        if len(data) < 24 or data[12:16] != b"IHDR":
            return None
        return struct.unpack(">II", data[16:24])
    i = 2
    while i + 9 < len(data):
        if data[i] != 0xFF:
            i += 1
            continue
        marker = data[i + 1]
        if marker in (0xD8, 0x01) or 0xD0 <= marker <= 0xD7 or marker == 0xFF:
            i += 1 if marker == 0xFF else 2
            continue
        (length,) = struct.unpack(">H", data[i + 2 : i + 4])
        if 0xC0 <= marker <= 0xCF and marker not in (0xC4, 0xC8, 0xCC):
            h, w = struct.unpack(">HH", data[i + 5 : i + 9])
            return w, h
        i += 2 + length
    return None


def _png_complete(data: bytes) -> bool:
    """True when the chunks run whole from the signature to IEND (bytes after IEND, such
    as padding, are allowed; a file cut anywhere before IEND's end is not)."""
    i, n = len(PNG_SIGNATURE), len(data)
    while i + 8 <= n:
        (length,) = struct.unpack(">I", data[i : i + 4])
        end = i + 12 + length  # length, type, data, CRC
        if end > n:
            return False
        if data[i + 4 : i + 8] == b"IEND":
            return True
        i = end
    return False


def _jpeg_scan_start(data: bytes) -> int | None:
    """Offset of the first Start Of Scan marker of the main image, walking the marker
    segments by their lengths (so a thumbnail inside APP1 is skipped), or None."""
    i = 2
    while i + 4 <= len(data):
        if data[i] != 0xFF:
            i += 1
            continue
        marker = data[i + 1]
        if marker == 0xDA:
            return i
        if marker == 0xD9:
            return None
        if marker in (0xD8, 0x01, 0xFF) or 0xD0 <= marker <= 0xD7:
            i += 1 if marker == 0xFF else 2
            continue
        (length,) = struct.unpack(">H", data[i + 2 : i + 4])
        i += 2 + length
    return None


def _jpeg_complete(data: bytes) -> bool:
    """True when an End Of Image marker follows the main image's first scan. Inside
    entropy-coded data a 0xFF byte is always followed by 0x00 or a restart marker, so
    FF D9 after the first SOS is the real end, wherever it is (trailing padding is fine)."""
    sos = _jpeg_scan_start(data)
    return sos is not None and data.find(b"\xff\xd9", sos + 2) >= 0


def _load_raster(path: Path, data: bytes, kind: str, max_pixels: int) -> LoadedImage:
    name = path.name
    label = kind.upper()
    size = _raster_size(data, kind)
    if size is None:
        raise CorruptImageError(f"{name}: damaged {label} header. Re-export or re-copy the file.")
    check_pixels(name, size[0], size[1], 1, max_pixels)
    if kind == "png" and not _png_complete(data):
        raise CorruptImageError(f"{name}: truncated PNG (no end marker). Re-copy the file; it was cut short.")
    if kind == "jpeg" and not _jpeg_complete(data):
        raise CorruptImageError(f"{name}: truncated JPEG (no end-of-image marker). Re-copy the file; it was cut short.")
    try:
        arr = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_UNCHANGED)
    except (KeyboardInterrupt, SystemExit):
        raise
    except BaseException as e:  # noqa: BLE001 - a native decoder's failure, whatever its type
        raise CorruptImageError(
            f"{name}: the {label} decoder failed on the image data ({type(e).__name__}: "
            f"{(str(e).strip().splitlines() or [''])[0][:200]}). The file is damaged; re-export or re-copy it."
        ) from None
    if arr is None:
        raise CorruptImageError(f"{name}: the {label} data could not be decoded; the file is damaged.")
    notes: list[str] = []
    if path.suffix.lower() not in {".png", ".jpg", ".jpeg", ".jpe", ""}:
        notes.append(f"content is {label} despite the {path.suffix} extension")
    chroma = 0.0
    if arr.ndim == 3:
        if arr.shape[2] == 4:
            alpha = arr[:, :, 3:4].astype(np.float32) / float(np.iinfo(arr.dtype).max)
            arr = (arr[:, :, :3].astype(np.float32) * alpha).astype(arr.dtype)
            notes.append("alpha channel composited over black")
        if arr.shape[2] == 1:
            arr = arr[:, :, 0]
        else:
            chroma = colourfulness(arr)
            if not (np.array_equal(arr[:, :, 0], arr[:, :, 1]) and np.array_equal(arr[:, :, 1], arr[:, :, 2])):
                notes.append("colour image converted to grayscale")
            arr = cv2.cvtColor(np.ascontiguousarray(arr[:, :, :3]), cv2.COLOR_BGR2GRAY)
    values = arr.astype(np.float32)
    if arr.dtype == np.uint8:
        bits, window = 8, full_range_window(values, 0.0, 255.0)
    else:
        bits = 16
        window = full_range_window(values)  # 16-bit files rarely use the whole range
        notes.append("16-bit image displayed over its own min-max range")
    pixels = apply_window(values, window)
    meta = ImageMeta(
        path=str(path), format=kind, width=int(arr.shape[1]), height=int(arr.shape[0]),
        photometric="MONOCHROME2", bits_stored=bits, default_window=window, windows=(window,),
        voi_source="full_range", notes=tuple(notes), colourfulness=chroma,
    )
    lo, hi = (0.0, 255.0) if bits == 8 else (0.0, 65535.0)
    return LoadedImage(pixels=pixels, values=values, meta=meta, value_range=(lo, hi))
