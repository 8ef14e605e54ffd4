"""DICOM loading and the display pipeline (see DESIGN.md).

Pixel data -> Modality LUT (slope/intercept or sequence) -> VOI (VOI LUT sequence, else
window center/width with its VOI LUT Function, else full range) -> MONOCHROME1 inversion.
The stages are ``engine.io.dicom_pipeline``'s functions; this module reads the file, decodes
the pixel data and turns every failure into a typed error. Compressed transfer syntaxes
decode through the pylibjpeg plugins; a JPEG frame they refuse goes to a second decoder
(``engine.io.dicom_jpeg``: imagecodecs' libjpeg-turbo, for 12-bit and progressive JPEG), then
through the same pipeline. A native decoder's panic (pyo3 ``PanicException``, a
BaseException) is caught like any other decoder error.
"""

from __future__ import annotations

import contextlib
import io
from pathlib import Path

import numpy as np
import pydicom
from pydicom.dataset import Dataset
from pydicom.errors import InvalidDicomError
from pydicom.uid import UID, ExplicitVRBigEndian, ExplicitVRLittleEndian, ImplicitVRLittleEndian

from ..errors import CorruptImageError, ImageLoadError, UnsupportedImageError
from . import dicom_jpeg as jpeg_fallback
from .dicom_header import PIXEL_KEYWORDS, int_value, magnification_factor, spacing_pair, tag_rows
from .dicom_pipeline import (
    apply_modality,
    apply_palette_color,
    apply_presentation_inversion,
    apply_voi,
    finite_pixels,
    read_windows,
    to_grey,
)
from .display import colourfulness
from .fileio import check_pixels, read_bytes
from .image import Identifiers, ImageMeta, LoadedImage, TagRow

__all__ = ["TagRow", "dicom_tags", "load_dicom", "read_dataset"]  # TagRow: its historical home


def read_dataset(path: Path, data: bytes | None = None, force: bool = False) -> tuple[Dataset, list[str]]:
    """Read strictly; fall back to ``force=True`` only for files that look like DICOM
    without a preamble. Returns the dataset and notes on what was needed."""
    notes: list[str] = []
    src = io.BytesIO(data) if data is not None else str(path)
    try:
        if force:
            raise InvalidDicomError("no preamble")
        ds = pydicom.dcmread(src)
    except InvalidDicomError:
        if data is not None:
            src = io.BytesIO(data)
        try:
            ds = pydicom.dcmread(src, force=True)
        except Exception as e:  # noqa: BLE001 - any parser failure means a damaged file
            raise CorruptImageError(f"{path.name}: not readable as DICOM ({e}).") from None
        if len(ds) == 0:
            raise UnsupportedImageError(f"{path.name}: not a DICOM file (no data elements found).") from None
        notes.append("no DICOM preamble/file meta header: read with force")
    except Exception as e:  # noqa: BLE001
        raise CorruptImageError(f"{path.name}: damaged DICOM file ({type(e).__name__}: {e}).") from None
    _ensure_transfer_syntax(ds, notes)
    return ds, notes


def _ensure_transfer_syntax(ds: Dataset, notes: list[str]) -> None:
    meta = getattr(ds, "file_meta", None)
    if meta is not None and "TransferSyntaxUID" in meta:
        return
    implicit, little = getattr(ds, "original_encoding", (True, True))
    if implicit is None:
        implicit, little = True, True
    uid = ImplicitVRLittleEndian if implicit else (ExplicitVRLittleEndian if little else ExplicitVRBigEndian)
    if meta is None:
        ds.file_meta = pydicom.dataset.FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = uid
    notes.append(f"transfer syntax inferred as {uid.name}")


def _text(ds: Dataset, keyword: str) -> str:
    v = ds.get(keyword, "")
    return "" if v is None else str(v)


def _missing_pixels(path: Path, ds: Dataset, data: bytes | None) -> ImageLoadError:
    """Why a dataset has no pixel data: a truncated image file, or a file that is not an
    image (a structured report, a presentation state)."""
    header = ds
    if "Rows" not in ds or "Columns" not in ds:
        # When a file ends inside encapsulated pixel data, pydicom drops every element it
        # had read (EOF while looking for the sequence delimiter): read the header alone.
        with contextlib.suppress(Exception):
            header = pydicom.dcmread(io.BytesIO(data) if data is not None else str(path), force=True,
                                     stop_before_pixels=True)
    sop = header.get("SOPClassUID") or getattr(getattr(ds, "file_meta", None), "MediaStorageSOPClassUID", None)
    kind = UID(str(sop)).name if sop else "unknown SOP class"
    rows, cols = header.get("Rows"), header.get("Columns")
    if rows and cols:
        return CorruptImageError(
            f"{path.name}: the file is truncated: its header describes a {cols}x{rows} image but the pixel data "
            "is missing or cut short. Re-copy the file; it was cut short."
        )
    if "Image Storage" in kind:
        return CorruptImageError(
            f"{path.name}: the file is truncated: it is a {kind} file but it ends before its image. "
            "Re-copy the file; it was cut short."
        )
    return UnsupportedImageError(
        f"{path.name}: this DICOM file holds no image ({kind}); it may be a report or a "
        "presentation state. Open the image series instead."
    )


def _ts_label(ts: UID) -> str:
    return f"{ts} ({ts.name if ts.name != str(ts) else 'unknown'})"


def _decode_error(path: Path, ts: UID, exc: BaseException) -> ImageLoadError:
    msg = str(exc).strip()
    lines = [line.strip() for line in msg.splitlines() if line.strip()]
    first = lines[0] if lines else type(exc).__name__
    # one line per decoder plugin ("pylibjpeg: ...", "pillow: ..."): keep them apart
    detail = "; ".join(lines[1:])
    low = msg.lower()
    if not ts.is_transfer_syntax:  # a UID pydicom does not know (ts.is_compressed raises for it)
        return UnsupportedImageError(
            f"{path.name}: unsupported transfer syntax {_ts_label(ts)}: its pixel data cannot be decoded. "
            "Convert the file to a standard transfer syntax (e.g. with gdcmconv --raw) and open it again."
        )
    if not isinstance(exc, Exception):  # a native decoder panicked (pyo3_runtime.PanicException)
        return CorruptImageError(
            f"{path.name}: the {ts.name} decoder failed on the pixel data ({type(exc).__name__}: "
            f"{first[:200]}). The pixel data is damaged; re-export or re-copy the file."
        )
    if ("length" in low or "bytes" in low) and ("expected" in low or "truncat" in low or "does not match" in low):
        return CorruptImageError(f"{path.name}: the pixel data is truncated or incomplete ({first}). Re-copy the file.")
    if ts.is_compressed:
        return UnsupportedImageError(
            f"{path.name}: unsupported compression: {ts.name} ({ts}) could not be decoded "
            f"({detail or first}). Convert the file to an uncompressed transfer syntax "
            "(e.g. with dcmdjpeg or gdcmconv --raw) and open it again."
        )
    return CorruptImageError(f"{path.name}: the pixel data could not be read ({first}). The file may be damaged; re-export or re-copy it.")


_JP2_SIGNATURE = b"\x00\x00\x00\x0c\x6a\x50\x20\x20"
_JPEG2000_SYNTAXES = frozenset({"1.2.840.10008.1.2.4.90", "1.2.840.10008.1.2.4.91", "1.2.840.10008.1.2.4.201",
                                "1.2.840.10008.1.2.4.202", "1.2.840.10008.1.2.4.203"})


def check_jp2_boxes(path: Path, ds: Dataset, ts: UID) -> None:
    """Refuse a JPEG 2000 frame wrapped in a JP2 file whose boxes cannot be walked.

    pydicom's ``get_jp2_parameters`` loops forever on a box of length 0 (found by the fuzzer:
    two cases in 20,000): walk the boxes here first, bounded, and refuse such a file."""
    if str(ts) not in _JPEG2000_SYNTAXES:
        return
    data = ds.get("PixelData")
    if not isinstance(data, (bytes, bytearray)):
        return
    start = data.find(_JP2_SIGNATURE)
    if start < 0:
        return
    offset, end = start + 12, len(data)
    for _ in range(10_000):
        if offset + 8 > end:
            return
        length = int.from_bytes(data[offset : offset + 4], "big")
        if data[offset + 4 : offset + 8] == b"jp2c":
            return
        if length == 1 and offset + 16 <= end:  # an extended length (XLBox)
            length = int.from_bytes(data[offset + 8 : offset + 16], "big")
        if length < 8:
            raise CorruptImageError(
                f"{path.name}: the JPEG 2000 data is damaged (a JP2 box of length {length} before the codestream). "
                "Re-export or re-copy the file."
            )
        offset += length


def _also_refused(error: BaseException, reason: str) -> BaseException:
    """pydicom's refusal with the second decoder's reason added as one more plugin line."""
    if not isinstance(error, Exception):  # a panic stays a panic (CorruptImageError)
        return error
    lines = [line for line in str(error).strip().splitlines() if line.strip()]
    if len(lines) > 1:  # "Unable to decode ...:" then one line per plugin
        return RuntimeError("\n".join([*lines, f"  imagecodecs: {reason}"]))
    first = lines[0] if lines else type(error).__name__
    return RuntimeError(f"No decoder could read the pixel data:\n  pydicom: {first}\n  imagecodecs: {reason}")


# JPEG-LS: pydicom tries pylibjpeg (libjpeg's JPEG-LS, 350 ms for a 1955x1841 16-bit film here)
# before pyjpegls (CharLS, 86 ms, holding the GIL). imagecodecs' CharLS (``engine.io.dicom_charls``)
# gives the same pixels in 85 ms and releases the GIL, so two decode threads make it 48 ms a film.
PREFERRED_PLUGINS = {"1.2.840.10008.1.2.4.80": ("imagecodecs-charls", "pyjpegls"),
                     "1.2.840.10008.1.2.4.81": ("imagecodecs-charls", "pyjpegls")}


def _pixel_array(ds: Dataset, ts: UID, index: int | None) -> np.ndarray:
    """pydicom's pixel array (RGB for YBR), through the fastest installed plugin for the transfer
    syntax first; if none is installed or each refuses the file, through pydicom's own order."""
    for plugin in PREFERRED_PLUGINS.get(str(ts), ()):
        if plugin in _available_plugins(str(ts)):
            try:
                return pydicom.pixels.pixel_array(ds, index=index, as_rgb=True, decoding_plugin=plugin)
            except (KeyboardInterrupt, SystemExit):
                raise
            except BaseException:  # noqa: BLE001, S112 - the next plugin gets its turn
                continue
    return pydicom.pixels.pixel_array(ds, index=index, as_rgb=True)


_plugins: dict[str, tuple[str, ...]] = {}


def _available_plugins(ts: str) -> tuple[str, ...]:
    if ts not in _plugins:
        try:
            from . import dicom_charls

            if ts in dicom_charls.SYNTAXES:
                dicom_charls.register()
            _plugins[ts] = tuple(pydicom.pixels.get_decoder(UID(ts)).available_plugins)
        except Exception:  # noqa: BLE001 - no decoder for it: pydicom's own call says why
            _plugins[ts] = ()
    return _plugins[ts]


def _decode(path: Path, ds: Dataset, ts: UID, shape: tuple[int, int, int], notes: list[str]) -> np.ndarray:
    """Frame 1 (of ``shape``: rows, columns, frames) through pydicom's plugins, else the second JPEG decoder."""
    rows, cols, frames = shape
    check_jp2_boxes(path, ds, ts)
    jpeg = str(ts) in jpeg_fallback.FALLBACK_SYNTAXES
    try:
        # as_rgb: YBR_FULL and YBR_FULL_422 come back as RGB (JPEG 2000 YBR_ICT/RCT are RGB
        # once decoded), so no colour conversion is left to do here.
        arr = _pixel_array(ds, ts, 0 if frames > 1 else None)
    except (KeyboardInterrupt, SystemExit):
        raise
    except BaseException as e:  # noqa: BLE001 - plugins raise many types; a Rust panic is a BaseException
        error = e
    else:
        if jpeg:  # never show the grey rows a decoder made up for a cut-short frame
            jpeg_fallback.check_complete(path, ds, frames)
        return arr
    if not jpeg:
        raise _decode_error(path, ts, error) from None
    # JPEG that pydicom's plugins refuse (12-bit Se != 63, spectral selection, progression):
    # the second decoder, with the same checks and the same display pipeline after it
    try:
        arr, note = jpeg_fallback.decode_first_frame(path, ds, frames, rows, cols)
    except jpeg_fallback.FallbackRefused as why:
        raise _decode_error(path, ts, _also_refused(error, str(why))) from None
    notes.append(note)
    return arr


def load_dicom(path: Path, data: bytes | None = None, force: bool = False, max_pixels: int = 100_000_000,
               tags: bool = True) -> LoadedImage:
    """``tags=False``: no tag rows (``LoadedImage.tags`` empty), for callers that never show them (a batch)."""
    ds, notes = read_dataset(path, data, force=force)
    try:
        return _display(path, ds, notes, data, max_pixels, tags)
    except (ImageLoadError, MemoryError, KeyboardInterrupt, SystemExit):
        raise
    except BaseException as e:  # noqa: BLE001 - a header value no check foresaw: still a typed error
        first = (str(e).splitlines() or [""])[0][:200]
        raise CorruptImageError(
            f"{path.name}: the DICOM header is inconsistent ({type(e).__name__}: {first}). "
            "The file may be damaged; re-export it from the source system or re-copy it."
        ) from None


def _display(path: Path, ds: Dataset, notes: list[str], data: bytes | None, max_pixels: int,
             tags: bool = True) -> LoadedImage:
    """The display pipeline on a dataset read by ``read_dataset``."""
    if not any(k in ds for k in PIXEL_KEYWORDS):
        raise _missing_pixels(path, ds, data)
    ts: UID = ds.file_meta.TransferSyntaxUID
    rows = int_value(path, ds, "Rows", 0, minimum=0)
    cols = int_value(path, ds, "Columns", 0, minimum=0)
    frames = int_value(path, ds, "NumberOfFrames", 1, minimum=1)
    check_pixels(path.name, cols, rows, frames, max_pixels)
    arr = _decode(path, ds, ts, (rows, cols, frames), notes)
    if frames > 1:
        notes.append(f"multi-frame ({frames} frames): showing frame 1")
    photometric = str(ds.get("PhotometricInterpretation", "MONOCHROME2")).upper()
    stored_bits = arr.dtype.itemsize * 8
    arr = apply_palette_color(arr, ds, path, notes)
    chroma = colourfulness(arr)
    arr = to_grey(arr, ds, path, notes)
    arr = finite_pixels(arr, ds, path, notes)
    values = apply_modality(arr, ds, path, notes)
    windows = read_windows(ds, notes)
    pixels, window, source = apply_voi(values, ds, path, notes, windows)
    pixels, inverted = apply_presentation_inversion(pixels, ds)
    bits_stored = int_value(path, ds, "BitsStored", stored_bits, minimum=1)
    spacing = spacing_pair(ds, "PixelSpacing", notes)
    imager_spacing = spacing_pair(ds, "ImagerPixelSpacing", notes)
    ermf = magnification_factor(ds, notes)
    meta = ImageMeta(
        colourfulness=chroma,
        path=str(path), format="dicom", width=int(arr.shape[1]), height=int(arr.shape[0]),
        modality=_text(ds, "Modality"), photometric=photometric, bits_stored=bits_stored,
        transfer_syntax=str(ts), transfer_syntax_name=ts.name, pixel_spacing=spacing,
        imager_pixel_spacing=imager_spacing, magnification_factor=ermf,
        spacing_calibration_type=_text(ds, "PixelSpacingCalibrationType").strip().upper(),
        view_position=_text(ds, "ViewPosition"), body_part=_text(ds, "BodyPartExamined"),
        description=" | ".join(dict.fromkeys(t for k in ("StudyDescription", "SeriesDescription", "ProtocolName")
                                             if (t := _text(ds, k).strip()))),
        frames=frames, frame_used=0, default_window=window, windows=windows, voi_source=source,
        inverted=inverted, notes=tuple(notes),
        identifiers=Identifiers(
            patient_id=_text(ds, "PatientID"), patient_name=_text(ds, "PatientName"),
            patient_birth_date=_text(ds, "PatientBirthDate"),
            study_instance_uid=_text(ds, "StudyInstanceUID"),
            series_instance_uid=_text(ds, "SeriesInstanceUID"),
            sop_instance_uid=_text(ds, "SOPInstanceUID"),
            accession_number=_text(ds, "AccessionNumber"), study_date=_text(ds, "StudyDate"),
        ),
    )
    lo, hi = float(np.min(values)), float(np.max(values))
    return LoadedImage(pixels=np.ascontiguousarray(pixels, dtype=np.float32), values=values, meta=meta,
                       value_range=(lo, hi), tags=tag_rows(ds) if tags else ())


def dicom_tags(path: str | Path, max_value_chars: int = 200) -> tuple[TagRow, ...]:
    """Every data element of a DICOM file (pixel data summarised), for the tag viewer: the
    same rows as ``load_image(path).tags``, from the header alone (no pixel decoding)."""
    path = Path(path)
    ds, _ = read_dataset(path, read_bytes(path))
    return tag_rows(ds, max_value_chars)
