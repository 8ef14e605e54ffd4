"""DICOM loading and the display pipeline (see DESIGN.md).

Pixel data -> Modality LUT (slope/intercept or sequence) -> VOI (VOI LUT sequence, else
window center/width with its VOI LUT Function, else full range) -> MONOCHROME1 inversion.
Compressed transfer syntaxes decode through the pylibjpeg plugins.
"""

from __future__ import annotations

import contextlib
import io
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pydicom
from pydicom.dataset import Dataset
from pydicom.errors import InvalidDicomError
from pydicom.uid import UID, ExplicitVRBigEndian, ExplicitVRLittleEndian, ImplicitVRLittleEndian

from .dicom_header import apply_modality, int_value, pixel_spacing, read_lut
from .display import apply_window, full_range_window
from .errors import CorruptImageError, ImageLoadError, UnsupportedImageError
from .fileio import check_pixels, read_bytes
from .image import Identifiers, ImageMeta, LoadedImage, Window

_PIXEL_KEYWORDS = ("PixelData", "FloatPixelData", "DoubleFloatPixelData")


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


def _windows(ds: Dataset) -> tuple[Window, ...]:
    if "WindowCenter" not in ds or "WindowWidth" not in ds:
        return ()
    c, w = ds.WindowCenter, ds.WindowWidth
    centers = list(c) if isinstance(c, pydicom.multival.MultiValue) else [c]
    widths = list(w) if isinstance(w, pydicom.multival.MultiValue) else [w]
    expl = ds.get("WindowCenterWidthExplanation", "")
    expls = list(expl) if isinstance(expl, pydicom.multival.MultiValue) else [expl]
    fn = str(ds.get("VOILUTFunction", "LINEAR") or "LINEAR").upper()
    out = []
    for i, (cc, ww) in enumerate(zip(centers, widths, strict=False)):
        try:
            out.append(Window(float(cc), float(ww), fn, str(expls[i]) if i < len(expls) and expls[i] else f"DICOM {i + 1}"))
        except (TypeError, ValueError):
            continue
    return tuple(out)


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


def _decode_error(path: Path, ts: UID, exc: Exception) -> ImageLoadError:
    msg = str(exc).strip()
    first = msg.splitlines()[0] if msg else type(exc).__name__
    detail = " ".join(line.strip() for line in msg.splitlines()[1:3])
    low = msg.lower()
    if ("length" in low or "bytes" in low) and ("expected" in low or "truncat" in low or "does not match" in low):
        return CorruptImageError(f"{path.name}: the pixel data is truncated or incomplete ({first}). Re-copy the file.")
    if ts.is_compressed:
        return UnsupportedImageError(
            f"{path.name}: unsupported compression: {ts.name} ({ts}) could not be decoded "
            f"({detail or first}). Convert the file to an uncompressed transfer syntax "
            "(e.g. with dcmdjpeg or gdcmconv --raw) and open it again."
        )
    return CorruptImageError(f"{path.name}: the pixel data could not be read ({first}). The file may be damaged; re-export or re-copy it.")


def load_dicom(path: Path, data: bytes | None = None, force: bool = False, max_pixels: int = 100_000_000) -> LoadedImage:
    ds, notes = read_dataset(path, data, force=force)
    try:
        return _display(path, ds, notes, data, max_pixels)
    except (ImageLoadError, MemoryError):
        raise
    except Exception as e:  # noqa: BLE001 - a header value no check foresaw: still a typed error
        first = (str(e).splitlines() or [""])[0][:200]
        raise CorruptImageError(
            f"{path.name}: the DICOM header is inconsistent ({type(e).__name__}: {first}). "
            "The file may be damaged; re-export it from the source system or re-copy it."
        ) from None


def _display(path: Path, ds: Dataset, notes: list[str], data: bytes | None, max_pixels: int) -> LoadedImage:
    """The display pipeline on a dataset read by ``read_dataset``."""
    if not any(k in ds for k in _PIXEL_KEYWORDS):
        raise _missing_pixels(path, ds, data)
    ts: UID = ds.file_meta.TransferSyntaxUID
    rows = int_value(path, ds, "Rows", 0, minimum=0)
    cols = int_value(path, ds, "Columns", 0, minimum=0)
    frames = int_value(path, ds, "NumberOfFrames", 1, minimum=1)
    check_pixels(path.name, cols, rows, frames, max_pixels)
    try:
        # as_rgb: YBR_FULL and YBR_FULL_422 come back as RGB (JPEG 2000 YBR_ICT/RCT are RGB
        # once decoded), so no colour conversion is left to do here.
        arr = pydicom.pixels.pixel_array(ds, index=0 if frames > 1 else None, as_rgb=True)
    except Exception as e:  # noqa: BLE001 - decoder plugins raise many types
        raise _decode_error(path, ts, e) from None
    if frames > 1:
        notes.append(f"multi-frame ({frames} frames): showing frame 1")
    photometric = str(ds.get("PhotometricInterpretation", "MONOCHROME2")).upper()
    if arr.ndim == 3 and arr.shape[2] in (3, 4):
        import cv2

        arr = cv2.cvtColor(np.ascontiguousarray(arr[:, :, :3], dtype=np.float32), cv2.COLOR_RGB2GRAY)
        notes.append(f"colour ({photometric}) converted to grayscale")
    elif arr.ndim != 2:
        raise UnsupportedImageError(f"{path.name}: unexpected pixel array shape {arr.shape}.")

    values = apply_modality(path, ds, arr)
    windows = _windows(ds)
    voi_lut = read_lut(path, ds, "VOILUTSequence")
    if voi_lut is not None:
        # The VOI LUT maps the modality LUT's output (integer indices); PS3.3 C.11.2.1.1
        top = max(float(2**voi_lut.bits - 1), float(np.max(voi_lut.data)))
        pixels = np.clip(voi_lut.lookup(values).astype(np.float32) / top, 0.0, 1.0)
        window, source = (windows[0] if windows else None), "voi_lut"
    elif windows:
        window, source = windows[0], "window"
        pixels = apply_window(values, window)
    else:
        window, source = full_range_window(values), "full_range"
        pixels = apply_window(values, window)
    inverted = photometric == "MONOCHROME1"
    if inverted:
        pixels = 1.0 - pixels
    bits_stored = int_value(path, ds, "BitsStored", arr.dtype.itemsize * 8, minimum=1)
    spacing = pixel_spacing(ds, notes)
    meta = ImageMeta(
        path=str(path), format="dicom", width=int(arr.shape[1]), height=int(arr.shape[0]),
        modality=_text(ds, "Modality"), photometric=photometric, bits_stored=bits_stored,
        transfer_syntax=str(ts), transfer_syntax_name=ts.name, pixel_spacing=spacing,
        view_position=_text(ds, "ViewPosition"), body_part=_text(ds, "BodyPartExamined"),
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
    return LoadedImage(pixels=np.ascontiguousarray(pixels, dtype=np.float32), values=values, meta=meta, value_range=(lo, hi))


@dataclass(frozen=True)
class TagRow:
    tag: str  # "(0010,0010)"
    keyword: str
    name: str
    vr: str
    value: str
    depth: int = 0
    identifying: bool = False


_IDENTIFYING_GROUPS = {0x0010}
_IDENTIFYING_KEYWORDS = {
    "AccessionNumber", "InstitutionName", "InstitutionAddress", "ReferringPhysicianName",
    "PerformingPhysicianName", "OperatorsName", "StudyID", "OtherPatientIDs",
}


def dicom_tags(path: str | Path, max_value_chars: int = 200) -> list[TagRow]:
    """Every data element of a DICOM file (pixel data summarised), for the tag viewer."""
    path = Path(path)
    ds, _ = read_dataset(path, read_bytes(path))
    rows: list[TagRow] = []

    def walk(d: Dataset, depth: int) -> None:
        for elem in d:
            if elem.keyword in _PIXEL_KEYWORDS:
                value = f"<{len(elem.value) if elem.value is not None else 0} bytes of pixel data>"
            elif elem.VR == "SQ":
                value = f"<sequence of {len(elem.value)} item(s)>"
            else:
                value = str(elem.value) if not isinstance(elem.value, bytes) else f"<{len(elem.value)} bytes>"
            rows.append(TagRow(
                tag=f"({elem.tag.group:04X},{elem.tag.element:04X})", keyword=elem.keyword or "",
                name=elem.name, vr=str(elem.VR), value=value[:max_value_chars], depth=depth,
                identifying=elem.tag.group in _IDENTIFYING_GROUPS or elem.keyword in _IDENTIFYING_KEYWORDS,
            ))
            if elem.VR == "SQ":
                for item in elem.value:
                    walk(item, depth + 1)

    if getattr(ds, "file_meta", None) is not None:
        walk(ds.file_meta, 0)
    walk(ds, 0)
    return rows
