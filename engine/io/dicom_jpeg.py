"""The second JPEG decoder (DESIGN.md, "DICOM display pipeline"): imagecodecs' libjpeg-turbo
for the JPEG (ISO 10918) frames that pydicom's plugins refuse, so that RadLens opens what
DCMTK's ``dcmdjpeg`` opens: 12-bit JPEG Extended whose scan header pylibjpeg-libjpeg
rejects (e.g. Se != 63), and spectral selection and full progression (.53, .55), for
which pydicom has no decoder at all.

Only the first frame is decoded (the engine shows frame 1). Before decoding, the frame's
marker segments are walked: libjpeg-turbo fills the rest of a cut-short image with grey
and says so only in a warning that imagecodecs drops, so a frame that ends before its
end-of-image marker is refused here as truncated (as DCMTK refuses it). The frame header
must agree with the DICOM header (rows, columns, samples per pixel, Bits Stored <= JPEG
precision <= Bits Allocated): a mismatch is ``CorruptImageError``. A frame the decoder
refuses raises ``FallbackRefused``; ``engine.io.dicom`` turns it into the usual
``UnsupportedImageError`` naming the transfer syntax and both decoders' reasons.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
from pydicom.dataset import Dataset

from ..errors import CorruptImageError
from .dicom_header import int_value

# JPEG (ISO 10918) syntaxes DCMTK's dcmdjpeg decodes: baseline, extended, spectral selection,
# full progression, lossless (process 14) and lossless SV1.
FALLBACK_SYNTAXES = frozenset({
    "1.2.840.10008.1.2.4.50", "1.2.840.10008.1.2.4.51", "1.2.840.10008.1.2.4.53",
    "1.2.840.10008.1.2.4.55", "1.2.840.10008.1.2.4.57", "1.2.840.10008.1.2.4.70",
})
_PROCESS = {0xC0: "baseline", 0xC1: "extended sequential", 0xC2: "progressive", 0xC3: "lossless"}


class FallbackRefused(Exception):
    """The second decoder could not decode the frame (or is not installed)."""


class _Stream(Exception):
    """Why a JPEG stream is refused before decoding; ``kind``: "truncated", "damaged" or
    "unsupported" (hierarchical JPEG: valid, but neither libjpeg-turbo nor DCMTK decodes it)."""

    def __init__(self, reason: str, kind: str) -> None:
        super().__init__(reason)
        self.kind = kind
        self.truncated = kind == "truncated"


@dataclass(frozen=True)
class JpegFrame:
    """A JPEG frame header (SOF) and how many scans follow it."""

    marker: int
    precision: int
    rows: int
    columns: int
    components: int
    scans: int

    @property
    def process(self) -> str:
        return _PROCESS.get(self.marker, f"SOF 0x{self.marker:02X}")


def _be16(data: bytes, i: int) -> int:
    return (data[i] << 8) | data[i + 1]


def walk_jpeg(data: bytes) -> JpegFrame:
    """The frame header of a JPEG stream whose segments and scans run whole from the
    start-of-image to the end-of-image marker; ``_Stream`` when they do not."""
    n = len(data)
    if data[:2] != b"\xff\xd8":
        raise _Stream("it does not start with a JPEG start-of-image marker", "damaged")
    i, frame, scans = 2, None, 0
    while True:
        j = data.find(b"\xff", i)  # extraneous bytes before a marker: skipped, as libjpeg does
        while 0 <= j < n - 1 and data[j + 1] == 0xFF:  # fill bytes
            j += 1
        if j < 0 or j >= n - 1:
            raise _Stream("it ends before the end-of-image marker", "truncated")
        marker, i = data[j + 1], j + 2
        if marker == 0xD9:
            break
        if marker == 0x01 or 0xD0 <= marker <= 0xD7:  # standalone markers
            continue
        if marker == 0xD8:
            raise _Stream("a second start-of-image marker inside the frame", "damaged")
        if i + 2 > n:
            raise _Stream("it ends inside a marker segment", "truncated")
        end = i + _be16(data, i)
        if end < i + 2:
            raise _Stream(f"a marker segment (0xFF{marker:02X}) with a length under 2", "damaged")
        if end > n:
            raise _Stream("it ends inside a marker segment", "truncated")
        if 0xC0 <= marker <= 0xCF and marker not in (0xC4, 0xC8, 0xCC):
            if frame is not None:
                raise _Stream("hierarchical JPEG (more than one frame header)", "unsupported")
            if end - i < 8 or end - i < 8 + 3 * data[i + 7]:
                raise _Stream("a frame header too short for its components", "damaged")
            frame = (marker, data[i + 2], _be16(data, i + 3), _be16(data, i + 5), data[i + 7])
        elif marker == 0xDA:
            if frame is None:
                raise _Stream("a scan before the frame header", "damaged")
            scans += 1
            i = end
            while True:  # entropy-coded data: up to the first marker that is not FF00 or a restart
                k = data.find(b"\xff", i)
                if k < 0 or k >= n - 1:
                    raise _Stream(f"it ends inside the compressed data of scan {scans}", "truncated")
                if data[k + 1] == 0x00 or 0xD0 <= data[k + 1] <= 0xD7:
                    i = k + 2
                    continue
                i = k
                break
            continue
        i = end
    if frame is None or scans == 0:
        raise _Stream("no frame header" if frame is None else "no scan", "damaged")
    return JpegFrame(*frame, scans=scans)


def first_frame(ds: Dataset, frames: int) -> bytes:
    """The encoded bytes of frame 1 (all its fragments)."""
    from pydicom.encaps import get_frame

    extended = None
    if "ExtendedOffsetTable" in ds and "ExtendedOffsetTableLengths" in ds:
        extended = (ds.ExtendedOffsetTable, ds.ExtendedOffsetTableLengths)
    return get_frame(ds.PixelData, 0, number_of_frames=frames, extended_offsets=extended)


def _refuse_truncated(path: Path, e: _Stream) -> CorruptImageError:
    return CorruptImageError(f"{path.name}: the JPEG data of frame 1 is truncated ({e}). "
                             "Re-copy the file; it was cut short.")


def check_complete(path: Path, ds: Dataset, frames: int) -> None:
    """Refuse a frame 1 that pydicom's plugins decoded although it ends before its
    end-of-image marker (pylibjpeg-libjpeg fills the missing rows; DCMTK refuses such a
    frame). Other oddities are left to the decoder that accepted the frame."""
    try:
        walk_jpeg(first_frame(ds, frames))
    except _Stream as e:
        if e.truncated:
            raise _refuse_truncated(path, e) from None
    except Exception:  # noqa: BLE001 - the frame decoded; an encapsulation oddity is not ours to judge
        pass


def _check_header(path: Path, ds: Dataset, jpeg: JpegFrame, rows: int, cols: int) -> tuple[int, int, int]:
    """(samples per pixel, bits stored, pixel representation), once the frame header agrees
    with the DICOM header."""
    spp = int_value(path, ds, "SamplesPerPixel", 1, minimum=1)
    allocated = int_value(path, ds, "BitsAllocated", 8 if jpeg.precision <= 8 else 16, minimum=1)
    stored = int_value(path, ds, "BitsStored", jpeg.precision, minimum=1)
    signed = int_value(path, ds, "PixelRepresentation", 0, minimum=0)
    problems = []
    if (jpeg.rows, jpeg.columns) != (rows, cols):
        problems.append(f"it is {jpeg.columns}x{jpeg.rows}, the header says {cols}x{rows}")
    if jpeg.components != spp:
        problems.append(f"it has {jpeg.components} component(s), Samples per Pixel is {spp}")
    if not stored <= jpeg.precision <= allocated:
        problems.append(f"its samples are {jpeg.precision}-bit, but Bits Stored is {stored} and Bits Allocated "
                        f"{allocated} (Bits Stored <= precision <= Bits Allocated is required)")
    if problems:
        raise CorruptImageError(
            f"{path.name}: the JPEG data of frame 1 does not match the DICOM header ({'; '.join(problems)}). "
            "The file is damaged or was written by a faulty encoder; re-export it from the source system."
        )
    return spp, stored, signed


def decode_first_frame(path: Path, ds: Dataset, frames: int, rows: int, cols: int) -> tuple[np.ndarray, str]:
    """Frame 1 decoded with imagecodecs (RGB for colour, as pydicom's ``as_rgb`` gives it) and
    a note saying so. Raises ``CorruptImageError`` for a truncated or damaged frame or one
    that contradicts the header, ``FallbackRefused`` when the decoder refuses it."""
    try:
        import imagecodecs
    except ImportError:
        raise FallbackRefused("imagecodecs is not installed (pip install imagecodecs)") from None
    try:
        data = first_frame(ds, frames)
    except Exception as e:  # noqa: BLE001 - pydicom raises several types for bad encapsulation
        raise FallbackRefused(f"the encapsulated frame could not be read ({e})") from None
    try:
        jpeg = walk_jpeg(data)
    except _Stream as e:
        if e.truncated:
            raise _refuse_truncated(path, e) from None
        if e.kind == "unsupported":
            raise FallbackRefused(str(e)) from None
        raise CorruptImageError(f"{path.name}: the JPEG data of frame 1 is damaged ({e}). "
                                "Re-export or re-copy the file.") from None
    spp, stored, signed = _check_header(path, ds, jpeg, rows, cols)
    try:
        # no colour transform in the decoder: the DICOM header, not the JPEG markers, says what
        # the components are (YBR is converted below, as pydicom does for as_rgb)
        arr = imagecodecs.jpeg8_decode(data, **({"colorspace": "RGB", "outcolorspace": "RGB"} if spp == 3 else {}))
    except (KeyboardInterrupt, SystemExit):
        raise
    except BaseException as e:  # noqa: BLE001 - whatever the native decoder raises
        raise FallbackRefused(f"{type(e).__name__}: {str(e).strip() or 'no reason given'}") from None
    expected = (rows, cols) if spp == 1 else (rows, cols, spp)
    if arr.shape != expected:
        raise CorruptImageError(f"{path.name}: the JPEG data of frame 1 decodes to {arr.shape}, the DICOM header "
                                f"says {expected}. The file is damaged; re-export it from the source system.")
    photometric = str(ds.get("PhotometricInterpretation", "")).upper()
    if spp == 3 and photometric in ("YBR_FULL", "YBR_FULL_422"):
        from pydicom.pixels import convert_color_space

        arr = convert_color_space(arr, "YBR_FULL", "RGB")
    if signed and spp == 1 and stored < 32:  # two's complement in Bits Stored bits
        wide = arr.astype(np.int32)
        arr = np.where(wide >= 1 << (stored - 1), wide - (1 << stored), wide).astype(np.int16 if stored <= 16 else np.int32)
    note = (f"pixel data decoded with imagecodecs ({imagecodecs.jpeg8_version()}): JPEG {jpeg.process}, "
            f"{jpeg.precision}-bit, {jpeg.scans} scan(s); pydicom's decoder plugins refused it")
    return arr, note
