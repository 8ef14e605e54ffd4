"""Load PNG, JPEG and DICOM files into a ``LoadedImage`` (display pipeline applied).

The format is detected from the content, never from the extension alone: DICOM files
named by UID with no extension are common, and files do get misnamed.
"""

from __future__ import annotations

import os
import stat
import struct
from pathlib import Path

import cv2
import numpy as np

from .display import apply_window, full_range_window
from .errors import CorruptImageError, ImageLoadError, ImageTooLargeError, UnsupportedImageError
from .image import ImageMeta, LoadedImage

DEFAULT_MAX_PIXELS = 100_000_000  # 100 MP: ten times a large chest radiograph
MAX_FILE_BYTES = 2 * 2**30  # 2 GiB: far above any single radiograph, below exhausting memory

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def sniff_format(head: bytes) -> str | None:
    """Return "png", "jpeg", "dicom" or "dicom-raw" (no preamble) from the first bytes."""
    if head.startswith(PNG_SIGNATURE):
        return "png"
    if head.startswith(b"\xff\xd8\xff"):
        return "jpeg"
    if len(head) >= 132 and head[128:132] == b"DICM":
        return "dicom"
    if len(head) >= 8:
        group, element = struct.unpack("<HH", head[:4])
        # A dataset written without preamble starts with a low group (0002, 0008, ...)
        # and its first element number; both little- and big-endian groups seen.
        if group in (0x0002, 0x0008, 0x0800) and element < 0x0100:
            return "dicom-raw"
    return None


def _kind_of(mode: int) -> str:
    if stat.S_ISFIFO(mode):
        return "a named pipe (FIFO)"
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return "a device"
    if stat.S_ISSOCK(mode):
        return "a socket"
    return "not a regular file"


def _open_nonblocking(file: str, flags: int) -> int:
    # O_NONBLOCK: opening a FIFO with no writer returns at once instead of waiting forever;
    # it changes nothing for a regular file.
    return os.open(file, flags | getattr(os, "O_NONBLOCK", 0))


def _read_bytes(path: Path, max_bytes: int | None = None) -> bytes:
    """The whole file, which must be a regular file of at most ``max_bytes`` bytes
    (default ``MAX_FILE_BYTES``). The size is checked on the open file, before reading."""
    limit = MAX_FILE_BYTES if max_bytes is None else max_bytes
    try:
        with open(path, "rb", opener=_open_nonblocking) as f:
            st = os.fstat(f.fileno())
            if stat.S_ISDIR(st.st_mode):
                raise IsADirectoryError(path)
            if not stat.S_ISREG(st.st_mode):
                raise ImageLoadError(
                    f"{path.name}: not a regular file ({_kind_of(st.st_mode)}), so it cannot hold an image. "
                    "Open an image file instead."
                )
            if st.st_size > limit:
                raise ImageTooLargeError(
                    f"{path.name}: the file is {st.st_size / 2**30:.1f} GiB, over the limit of "
                    f"{limit / 2**30:.1f} GiB for one image. Check that it is a single radiograph; "
                    "downsample or split it first."
                )
            data = f.read(limit + 1)
    except FileNotFoundError:
        if os.path.islink(path):
            raise ImageLoadError(
                f"{path.name}: is a link to a file that does not exist ({link_target(path)}). "
                "Fix or remove the link."
            ) from None
        raise ImageLoadError(f"{path.name}: file not found. Check the path and try again.") from None
    except IsADirectoryError:
        raise ImageLoadError(f"{path.name}: is a folder, not an image. Open it as a folder instead.") from None
    except PermissionError:
        raise ImageLoadError(
            f"{path.name}: permission denied. Ask for read access to the file or copy it somewhere readable."
        ) from None
    except OSError as e:
        raise ImageLoadError(f"{path.name}: cannot be read ({e.strerror or e}).") from None
    if len(data) > limit:  # the file grew while it was read
        raise ImageTooLargeError(
            f"{path.name}: the file is over the limit of {limit / 2**30:.1f} GiB for one image. "
            "Check that it is a single radiograph; downsample or split it first."
        )
    return data


def printable(text: str) -> str:
    """Make a file name from the file system safe to print and to write as UTF-8.

    Names that are not valid UTF-8 arrive as lone surrogates (``os.fsdecode``); they
    are shown as ``\\xNN`` escapes instead of crashing a print or a CSV write."""
    try:
        text.encode("utf-8")
        return text
    except UnicodeEncodeError:
        return text.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")


def link_target(path: Path) -> str:
    """Where a symbolic link points, printable."""
    try:
        return printable(os.readlink(path))
    except OSError:
        return "unknown target"


def load_image(path: str | os.PathLike[str], max_pixels: int = DEFAULT_MAX_PIXELS) -> LoadedImage:
    """Load a PNG, JPEG or DICOM image. Raises a typed ``ImageLoadError`` on bad input."""
    path = Path(path)
    if path.is_dir():
        raise ImageLoadError(f"{path.name}: is a folder, not an image. Open it as a folder instead.")
    data = _read_bytes(path)
    if not data:
        raise CorruptImageError(f"{path.name}: the file is empty (0 bytes). Re-export or re-copy it.")
    kind = sniff_format(data[:132])
    if kind == "png" or kind == "jpeg":
        return _load_raster(path, data, kind, max_pixels)
    if kind in ("dicom", "dicom-raw"):
        from .dicom import load_dicom  # pydicom import is deferred until a DICOM is seen

        return load_dicom(path, data, force=(kind == "dicom-raw"), max_pixels=max_pixels)
    raise UnsupportedImageError(
        f"{path.name}: not a PNG, JPEG or DICOM file (unrecognised content"
        f"{', despite its ' + path.suffix + ' extension' if path.suffix else ''}). "
        "Open a chest radiograph in one of those formats."
    )


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


def _check_pixels(name: str, width: int, height: int, frames: int, max_pixels: int) -> None:
    if width <= 0 or height <= 0:
        raise CorruptImageError(f"{name}: the header gives an empty image ({width}x{height}).")
    if width * height * max(frames, 1) > max_pixels:
        raise ImageTooLargeError(
            f"{name}: {width}x{height}{f'x{frames} frames' if frames > 1 else ''} pixels exceeds the "
            f"limit of {max_pixels:,} pixels (possible decompression bomb). Downsample the image first."
        )


def _load_raster(path: Path, data: bytes, kind: str, max_pixels: int) -> LoadedImage:
    name = path.name
    label = kind.upper()
    size = _raster_size(data, kind)
    if size is None:
        raise CorruptImageError(f"{name}: damaged {label} header. Re-export or re-copy the file.")
    _check_pixels(name, size[0], size[1], 1, max_pixels)
    if kind == "png" and not _png_complete(data):
        raise CorruptImageError(f"{name}: truncated PNG (no end marker). Re-copy the file; it was cut short.")
    if kind == "jpeg" and not _jpeg_complete(data):
        raise CorruptImageError(f"{name}: truncated JPEG (no end-of-image marker). Re-copy the file; it was cut short.")
    arr = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_UNCHANGED)
    if arr is None:
        raise CorruptImageError(f"{name}: the {label} data could not be decoded; the file is damaged.")
    notes: list[str] = []
    if path.suffix.lower() not in {".png", ".jpg", ".jpeg", ".jpe", ""}:
        notes.append(f"content is {label} despite the {path.suffix} extension")
    if arr.ndim == 3:
        if arr.shape[2] == 4:
            alpha = arr[:, :, 3:4].astype(np.float32) / float(np.iinfo(arr.dtype).max)
            arr = (arr[:, :, :3].astype(np.float32) * alpha).astype(arr.dtype)
            notes.append("alpha channel composited over black")
        if arr.shape[2] == 1:
            arr = arr[:, :, 0]
        else:
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
        voi_source="full_range", notes=tuple(notes),
    )
    lo, hi = (0.0, 255.0) if bits == 8 else (0.0, 65535.0)
    return LoadedImage(pixels=pixels, values=values, meta=meta, value_range=(lo, hi))
