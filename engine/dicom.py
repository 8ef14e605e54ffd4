"""DICOM loading and the display pipeline (see DESIGN.md).

Pixel data -> Modality LUT (slope/intercept or sequence) -> VOI (VOI LUT sequence, else
window center/width with its VOI LUT Function, else full range) -> MONOCHROME1 inversion.
Compressed transfer syntaxes decode through the pylibjpeg plugins.
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pydicom
from pydicom.dataset import Dataset
from pydicom.errors import InvalidDicomError
from pydicom.pixels import apply_modality_lut, apply_voi_lut
from pydicom.uid import UID, ExplicitVRBigEndian, ExplicitVRLittleEndian, ImplicitVRLittleEndian

from .display import apply_window, full_range_window
from .errors import CorruptImageError, ImageLoadError, UnsupportedImageError
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


def _lut_data(item: Dataset, ds: Dataset) -> np.ndarray:
    """A LUT's entries as numbers; LUT Data stored as OW arrives as raw bytes."""
    data = item.LUTData
    if isinstance(data, bytes):
        little = ds.file_meta.TransferSyntaxUID != ExplicitVRBigEndian
        return np.frombuffer(data, dtype="<u2" if little else ">u2")
    return np.asarray(data if isinstance(data, (list, pydicom.multival.MultiValue)) else [data], dtype=np.float64)


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
    from .io import _check_pixels  # shared pixel limit

    ds, notes = read_dataset(path, data, force=force)
    if not any(k in ds for k in _PIXEL_KEYWORDS):
        sop = ds.get("SOPClassUID")
        kind = UID(str(sop)).name if sop else "unknown SOP class"
        raise UnsupportedImageError(
            f"{path.name}: this DICOM file holds no image ({kind}); it may be a report or a "
            "presentation state. Open the image series instead."
        )
    ts: UID = ds.file_meta.TransferSyntaxUID
    rows, cols = int(ds.get("Rows", 0) or 0), int(ds.get("Columns", 0) or 0)
    frames = int(ds.get("NumberOfFrames", 1) or 1)
    _check_pixels(path.name, cols, rows, frames, max_pixels)
    try:
        if frames > 1:
            arr = pydicom.pixels.pixel_array(ds, index=0)
            notes.append(f"multi-frame ({frames} frames): showing frame 1")
        else:
            arr = ds.pixel_array
    except Exception as e:  # noqa: BLE001 - decoder plugins raise many types
        raise _decode_error(path, ts, e) from None
    photometric = str(ds.get("PhotometricInterpretation", "MONOCHROME2")).upper()
    if arr.ndim == 3 and int(ds.get("SamplesPerPixel", 1)) > 1:
        import cv2

        if photometric.startswith("YBR"):
            arr = pydicom.pixels.convert_color_space(arr, photometric, "RGB")
        arr = cv2.cvtColor(arr.astype(np.float32), cv2.COLOR_RGB2GRAY)
        notes.append(f"colour ({photometric}) converted to grayscale")
    elif arr.ndim != 2:
        raise UnsupportedImageError(f"{path.name}: unexpected pixel array shape {arr.shape}.")

    values = np.asarray(apply_modality_lut(arr, ds), dtype=np.float32)
    windows = _windows(ds)
    if "VOILUTSequence" in ds:
        # The VOI LUT maps the modality LUT's output (integer indices); PS3.3 C.11.2.1.1
        voi = np.asarray(apply_voi_lut(np.rint(values).astype(np.int64), ds, index=0, prefer_lut=True))
        item = ds.VOILUTSequence[0]
        bits = int(item.LUTDescriptor[2])
        top = max(float(2**bits - 1), float(np.max(_lut_data(item, ds))))
        pixels = np.clip(voi.astype(np.float32) / top, 0.0, 1.0)
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
    spacing = ds.get("PixelSpacing") or ds.get("ImagerPixelSpacing")
    bits_stored = int(ds.get("BitsStored", arr.dtype.itemsize * 8) or 8)
    meta = ImageMeta(
        path=str(path), format="dicom", width=int(arr.shape[1]), height=int(arr.shape[0]),
        modality=_text(ds, "Modality"), photometric=photometric, bits_stored=bits_stored,
        transfer_syntax=str(ts), transfer_syntax_name=ts.name,
        pixel_spacing=(float(spacing[0]), float(spacing[1])) if spacing and len(spacing) >= 2 else None,
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
    ds, _ = read_dataset(path, None)
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
