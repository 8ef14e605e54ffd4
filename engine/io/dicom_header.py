"""DICOM header values, checked: whole and decimal numbers, pixel spacing, the
Modality and VOI LUT Sequences with their lookup, and the tag rows of a dataset. A value
that cannot be used raises ``CorruptImageError`` naming the element, never a bare
ValueError or KeyError.

The LUT lookups are done here, not with pydicom's ``apply_modality_lut``/``apply_voi``:
those build the index array in the LUT entries' own dtype (uint8 for an 8-bit VOI LUT,
which wraps past 255 entries) or ask numpy for 'uint12' when a descriptor says 12 bits.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pydicom
from pydicom.datadict import keyword_for_tag
from pydicom.dataelem import DataElement
from pydicom.dataset import Dataset
from pydicom.uid import ExplicitVRBigEndian

from ..errors import CorruptImageError
from .image import TagRow


def lut_data(item: Dataset, ds: Dataset, entries: int, bits: int) -> np.ndarray:
    """A LUT's entries as integers; LUT Data stored as OW arrives as raw bytes (16 bits
    per entry, or 8 bits packed two to a word when the descriptor says 8 bits and the
    bytes hold exactly one per entry)."""
    data = item.LUTData
    if isinstance(data, bytes):
        if bits <= 8 and len(data) in (entries, entries + 1) and len(data) // 2 < entries:
            return np.frombuffer(data[:entries], dtype=np.uint8).astype(np.int64)
        little = ds.file_meta.TransferSyntaxUID != ExplicitVRBigEndian
        return np.frombuffer(data[: len(data) // 2 * 2], dtype="<u2" if little else ">u2").astype(np.int64)
    values = data if isinstance(data, (list, tuple, pydicom.multival.MultiValue)) else [data]
    return np.asarray([int(v) for v in values], dtype=np.int64)


@dataclass(frozen=True)
class Lut:
    """The first item of a Modality or VOI LUT Sequence (PS3.3 C.11.1, C.11.2)."""

    data: np.ndarray  # int64 entries, exactly as many as the descriptor says
    first_mapped: int  # the input value mapped to the first entry
    bits: int  # bits per entry (the descriptor's third value)

    def lookup(self, values: np.ndarray) -> np.ndarray:
        """Entries for ``values``: below the first mapped value the first entry, above the
        last the last entry. Indices are int64 whatever the entries' bit depth (pydicom
        builds 8-bit indices for an 8-bit VOI LUT, which wrap past 255 entries)."""
        lo = self.first_mapped
        clipped = np.clip(np.rint(values), lo, lo + len(self.data) - 1)  # before the cast: no int overflow
        return self.data[clipped.astype(np.int64) - lo]


def _empty(value: object) -> bool:
    return value is None or (hasattr(value, "__len__") and len(value) == 0)  # type: ignore[arg-type]


def read_lut(path: Path, ds: Dataset, keyword: str, notes: list[str]) -> Lut | None:
    """The LUT of ``keyword`` (a sequence), checked; None when the sequence is absent or
    empty, or when its item has an empty or missing LUTDescriptor or LUTData: such a LUT
    is ignored with a note (the next rule of its stage applies), as the pixels still
    decode. A LUT that is present but malformed raises ``CorruptImageError``."""
    seq = ds.get(keyword)
    if not seq:
        return None
    item = seq[0]
    where = f"{keyword} item 1"
    desc = item.get("LUTDescriptor")
    if _empty(desc):
        notes.append(f"{where} has {'no' if desc is None else 'an empty'} LUTDescriptor: LUT ignored")
        return None
    values = list(desc) if isinstance(desc, (list, tuple, pydicom.multival.MultiValue)) else [desc]
    try:  # pydicom settles LUTData's VR (US/SS/OW) from the descriptor as it reads it
        raw = item.get("LUTData")
    except (TypeError, ValueError, IndexError):
        raise bad_header(path, f"{where} LUTDescriptor", desc,
                         "three numbers are required: entries, first mapped value, bits per entry") from None
    if _empty(raw):
        notes.append(f"{where} has {'no' if raw is None else 'an empty'} LUTData: LUT ignored")
        return None
    try:
        entries, first, bits = (int(v) for v in values)
    except (TypeError, ValueError):
        raise bad_header(path, f"{where} LUTDescriptor", desc,
                         "three numbers are required: entries, first mapped value, bits per entry") from None
    entries = entries % 65536 or 65536  # 0 means 2^16 entries; a US value read as SS is negative
    if int(ds.get("PixelRepresentation", 0) or 0) == 0:
        first %= 65536
    elif first >= 32768:  # signed pixel data: the first mapped value is signed too
        first -= 65536
    if not 1 <= bits <= 16:
        raise bad_header(path, f"{where} LUTDescriptor", desc, f"{bits} bits per entry; 1 to 16 are supported")
    try:
        data = lut_data(item, ds, entries, bits)
    except (TypeError, ValueError):
        raise bad_header(path, f"{where} LUTData", "not numbers", "LUT entries must be integers") from None
    if len(data) < entries:
        raise bad_header(path, f"{where} LUTData", f"{len(data)} entries",
                         f"the LUTDescriptor says {entries} entries")
    return Lut(data[:entries], first, bits)


def short(value: object) -> str:
    text = value if isinstance(value, str) else repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def bad_header(path: Path, element: str, value: object, expected: str) -> CorruptImageError:
    return CorruptImageError(
        f"{path.name}: invalid {element} in the DICOM header ({short(value)}: {expected}). "
        "The file is damaged; re-export it from the source system or re-copy it."
    )


def _number(ds: Dataset, keyword: str) -> tuple[object, float | None]:
    """(raw value, its float: NaN when unparseable); (value, None) when absent or empty."""
    value = ds.get(keyword)
    if value is None or value == "":
        return value, None
    try:
        return value, float(value)
    except (TypeError, ValueError):
        return value, float("nan")


def int_value(path: Path, ds: Dataset, keyword: str, default: int, minimum: int) -> int:
    """A whole-number header value (IS, US, ...) of at least ``minimum``; empty -> default."""
    value, number = _number(ds, keyword)
    if number is None:
        return default
    if not (math.isfinite(number) and number.is_integer() and number >= minimum):
        raise bad_header(path, keyword, value, f"a whole number of at least {minimum} is required")
    return int(number)


def float_value(path: Path, ds: Dataset, keyword: str, default: float) -> float:
    """A decimal header value (DS); empty -> default."""
    value, number = _number(ds, keyword)
    if number is None:
        return default
    if not math.isfinite(number):
        raise bad_header(path, keyword, value, "a decimal number is required")
    return number


def spacing_pair(ds: Dataset, keyword: str, notes: list[str]) -> tuple[float, float] | None:
    """A (row, column) spacing in mm (Pixel Spacing, Imager Pixel Spacing). Spacing is not
    part of the display: an unreadable value is left out with a note rather than refusing
    the image."""
    value = ds.get(keyword)
    if value is None or value == "":
        return None
    items = list(value) if isinstance(value, (list, tuple, pydicom.multival.MultiValue)) else [value]
    try:
        row, col = (float(v) for v in items)
        if all(math.isfinite(v) and v > 0 for v in (row, col)):
            return row, col
    except (TypeError, ValueError):
        pass
    notes.append(f"{keyword} {short(str(value))} unreadable (two positive numbers expected): ignored")
    return None


def magnification_factor(ds: Dataset, notes: list[str]) -> float | None:
    """Estimated Radiographic Magnification Factor (0018,1114), SID/SOD; None when absent or
    not a number of at least 1 (noted)."""
    value, number = _number(ds, "EstimatedRadiographicMagnificationFactor")
    if number is None:
        return None
    if math.isfinite(number) and number >= 1.0:
        return number
    notes.append(f"EstimatedRadiographicMagnificationFactor {short(str(value))} unusable (1 or more expected): ignored")
    return None


PIXEL_KEYWORDS = ("PixelData", "FloatPixelData", "DoubleFloatPixelData")
_IDENTIFYING_GROUPS = {0x0010}
_IDENTIFYING_KEYWORDS = {
    "AccessionNumber", "InstitutionName", "InstitutionAddress", "ReferringPhysicianName",
    "PerformingPhysicianName", "OperatorsName", "StudyID", "OtherPatientIDs",
}


def _shown(elem: DataElement) -> str:
    if elem.keyword in PIXEL_KEYWORDS:
        return f"<{len(elem.value) if elem.value is not None else 0} bytes of pixel data>"
    if elem.VR == "SQ":
        return f"<sequence of {len(elem.value)} item(s)>"
    return str(elem.value) if not isinstance(elem.value, bytes) else f"<{len(elem.value)} bytes>"


_TEXT_VRS = frozenset({"SH", "LO", "ST", "LT", "UT", "UC", "PN"})


def _raw_text(elem: DataElement) -> bytes | None:
    """The bytes of a text element read without a Specific Character Set: raw bytes, a
    PersonName's original string, else the text re-encoded as pydicom's default decoding
    (ISO 8859-1, which maps every byte to one character) read it."""
    if str(elem.VR) not in _TEXT_VRS or elem.value is None:
        return None
    values = elem.value if isinstance(elem.value, (list, tuple, pydicom.multival.MultiValue)) else [elem.value]
    out = []
    for v in values:
        raw = getattr(v, "original_string", None)
        if isinstance(v, bytes) or isinstance(raw, bytes):
            out.append(v if isinstance(v, bytes) else raw)
        else:
            out.append(str(v).encode("latin-1", "replace"))
    return b"\\".join(out)


def _charset_note(ds: Dataset, found: list[tuple[DataElement, bytes]]) -> TagRow:
    """The row that says text was decoded without a Specific Character Set, with raw bytes."""
    shown = "; ".join(f"{e.keyword or e.tag} = {b[:48].hex(' ')}{' ...' if len(b) > 48 else ''}" for e, b in found[:3])
    more = f" (and {len(found) - 3} more element(s))" if len(found) > 3 else ""
    state = "empty" if "SpecificCharacterSet" in ds else "missing"
    return TagRow(
        tag="(0008,0005)", keyword="SpecificCharacterSet", name="Specific Character Set", vr="CS",
        value=(f"<{state}: text with non-ASCII bytes is shown with the default character set (ISO 8859-1); "
               f"names may be wrong. Raw bytes: {shown}{more}>"),
        identifying=any(e.tag.group in _IDENTIFYING_GROUPS or e.keyword in _IDENTIFYING_KEYWORDS for e, _ in found),
    )


def tag_rows(ds: Dataset, max_value_chars: int = 200) -> tuple[TagRow, ...]:
    """Every data element of ``ds`` and its file meta (pixel data summarised), for the tag
    viewer. An element whose value cannot be read is shown as unreadable: the rows never
    stop an image from loading. When the data set has no (or an empty) Specific Character
    Set but its text holds non-ASCII bytes, pydicom's default decoding is kept and a
    (0008,0005) row says so, with the raw bytes (the first row of the data set)."""
    rows: list[TagRow] = []
    no_charset = not ds.get("SpecificCharacterSet")
    non_ascii: list[tuple[DataElement, bytes]] = []

    def walk(d: Dataset, depth: int) -> None:
        for tag in list(d.keys()):
            try:
                elem = d[tag]
                value = _shown(elem)
                if no_charset and (raw := _raw_text(elem)) is not None and max(raw, default=0) >= 0x80:
                    non_ascii.append((elem, raw))
            except Exception as e:  # noqa: BLE001 - a damaged value is shown, not raised
                rows.append(TagRow(tag=f"({tag.group:04X},{tag.element:04X})", keyword=keyword_for_tag(tag),
                                   name="", vr="", value=f"<unreadable: {type(e).__name__}>", depth=depth))
                continue
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
    meta_rows = len(rows)
    walk(ds, 0)
    if non_ascii:
        note = _charset_note(ds, non_ascii)
        at = next((i for i in range(meta_rows, len(rows)) if rows[i].tag == note.tag and rows[i].depth == 0), None)
        if at is None:
            rows.insert(meta_rows, note)
        else:  # an empty (0008,0005): its own row carries the note
            rows[at] = note
    return tuple(rows)
