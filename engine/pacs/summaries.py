"""QIDO-RS: the search filters RadLens sends and the study and series rows it reads back
(DICOM JSON, PS3.18 F.2), each checked so a malformed answer is a clear ``PacsError``."""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass
from typing import Any

from .errors import PacsError

UID_RE = re.compile(r"^[0-9]+(\.[0-9]+)*$")

STUDY_FIELDS = ("StudyDescription", "ModalitiesInStudy", "NumberOfStudyRelatedSeries",
                "NumberOfStudyRelatedInstances", "PatientBirthDate", "PatientSex")
SERIES_FIELDS = ("SeriesDescription", "NumberOfSeriesRelatedInstances", "BodyPartExamined")


@dataclass(frozen=True)
class StudySummary:
    """One study found by a search."""

    study_uid: str
    patient_id: str = ""
    patient_name: str = ""
    study_date: str = ""  # YYYYMMDD as the server sends it ("" if none)
    study_time: str = ""
    accession: str = ""
    description: str = ""
    modalities: tuple[str, ...] = ()
    n_series: int | None = None
    n_instances: int | None = None
    patient_birth_date: str = ""
    patient_sex: str = ""

    @property
    def date_text(self) -> str:
        """The study date as YYYY-MM-DD (or as sent when it is not 8 digits)."""
        d = self.study_date
        return f"{d[:4]}-{d[4:6]}-{d[6:8]}" if len(d) == 8 and d.isdigit() else d


@dataclass(frozen=True)
class SeriesSummary:
    """One series of a study."""

    series_uid: str
    study_uid: str
    modality: str = ""
    number: int | None = None
    description: str = ""
    n_instances: int | None = None
    body_part: str = ""


def check_uid(uid: str, what: str) -> str:
    """``uid`` stripped, if it is a valid DICOM UID (digits and dots, at most 64 characters);
    else ``PacsError('invalid')``. UIDs become file and folder names, so this also keeps paths safe."""
    u = (uid or "").strip().rstrip("\x00")
    if not UID_RE.match(u) or len(u) > 64:
        raise PacsError("invalid", f"{what} {uid!r} is not a DICOM UID (digits and dots, at most 64 characters). "
                                   "Copy the UID again from the study list or the PACS.")
    return u


def _date(value: dt.date | str | None, what: str) -> str:
    if value is None or value == "":
        return ""
    if isinstance(value, dt.date):
        return value.strftime("%Y%m%d")
    s = str(value).strip().replace("-", "")
    try:
        dt.datetime.strptime(s, "%Y%m%d")
    except ValueError:
        raise PacsError("invalid", f"{what} {value!r} is not a date; use YYYY-MM-DD.") from None
    return s


def study_filters(patient_id: str | None = None, patient_name: str | None = None,
                  date_from: dt.date | str | None = None, date_to: dt.date | str | None = None,
                  modality: str | None = None, accession: str | None = None) -> dict[str, str]:
    """QIDO-RS search filters. A patient name without wildcards matches names that start with it
    (``smith`` finds ``SMITH^JOHN``); a date range may be open at either end."""
    f: dict[str, str] = {}
    if patient_id and patient_id.strip():
        f["PatientID"] = patient_id.strip()
    if patient_name and patient_name.strip():
        name = patient_name.strip()
        f["PatientName"] = name if any(c in name for c in "*?") else name + "*"
    start, end = _date(date_from, "The start date"), _date(date_to, "The end date")
    if start and end and start > end:
        raise PacsError("invalid", f"The date range is reversed ({start} to {end}); swap the dates.")
    if start or end:
        f["StudyDate"] = start if start == end else f"{start}-{end}"
    if modality and modality.strip():
        f["ModalitiesInStudy"] = modality.strip().upper()
    if accession and accession.strip():
        f["AccessionNumber"] = accession.strip()
    return f


# Query values go in the URL. Orthanc 1.10's DICOMweb plugin does not percent-decode them, and
# requests always escapes "^" and " ", so on the wire each becomes "?" (any one character) and the
# answer is narrowed here to what the filter means (PS3.4 C.2.2.2: "*" and "?" wildcards; person
# names case-insensitively, as most archives match them).
_WIRE = str.maketrans({"^": "?", " ": "?"})
_TEXT_FILTERS = {"PatientID": "patient_id", "PatientName": "patient_name", "AccessionNumber": "accession"}


def wire_filters(filters: dict[str, str]) -> dict[str, str]:
    """``filters`` as sent: "^" and spaces as "?" in the text filters (see ``matches``)."""
    return {k: (v.translate(_WIRE) if k in _TEXT_FILTERS else v) for k, v in filters.items()}


def _pattern_matches(pattern: str, value: str, ignore_case: bool) -> bool:
    regex = "".join(".*" if c == "*" else "." if c == "?" else re.escape(c) for c in pattern)
    return re.fullmatch(regex, value, re.IGNORECASE if ignore_case else 0) is not None


def matches(filters: dict[str, str], study: StudySummary) -> bool:
    """Whether ``study`` meets the text filters as the user wrote them."""
    return all(_pattern_matches(v, getattr(study, _TEXT_FILTERS[k]), k == "PatientName")
               for k, v in filters.items() if k in _TEXT_FILTERS)


def _values(item: dict[str, Any], tag: str) -> list[Any]:
    element = item.get(tag)
    if element is None:
        return []
    if not isinstance(element, dict):
        raise ValueError(f"attribute {tag} is not a DICOM JSON element")
    values = element.get("Value", [])
    if not isinstance(values, list):
        raise ValueError(f"attribute {tag} has a Value that is not a list")
    return values


def _text(item: dict[str, Any], tag: str) -> str:
    values = _values(item, tag)
    if not values or values[0] is None:
        return ""
    v = values[0]
    if isinstance(v, dict):  # a person name
        v = v.get("Alphabetic", "")
    return str(v)


def _int(item: dict[str, Any], tag: str) -> int | None:
    values = _values(item, tag)
    try:
        return int(values[0]) if values and values[0] is not None else None
    except (TypeError, ValueError):
        return None


def _uid(item: dict[str, Any], tag: str, problem: str) -> str:
    uid = _text(item, tag)
    if not UID_RE.match(uid):
        raise ValueError(f"{problem} ({uid!r})")
    return uid


def _rows(payload: object, what: str, server: str) -> list[dict[str, Any]]:
    if not isinstance(payload, list) or not all(isinstance(x, dict) for x in payload):
        raise PacsError("malformed", f"{server} answered the {what} search with something that is not a list of "
                                     "DICOM JSON objects. Check that the URL is the server's DICOMweb root.")
    return payload


def parse_studies(payload: object, server: str) -> list[StudySummary]:
    out = []
    try:
        for item in _rows(payload, "study", server):
            uid = _uid(item, "0020000D", "a study has no valid Study Instance UID")
            out.append(StudySummary(
                study_uid=uid, patient_id=_text(item, "00100020"), patient_name=_text(item, "00100010"),
                study_date=_text(item, "00080020"), study_time=_text(item, "00080030"),
                accession=_text(item, "00080050"), description=_text(item, "00081030"),
                modalities=tuple(str(v) for v in _values(item, "00080061") if v),
                n_series=_int(item, "00201206"), n_instances=_int(item, "00201208"),
                patient_birth_date=_text(item, "00100030"), patient_sex=_text(item, "00100040")))
    except ValueError as e:
        raise PacsError("malformed", f"{server} sent a study search result RadLens cannot read: {e}.") from None
    return out


def parse_series(payload: object, study_uid: str, server: str) -> list[SeriesSummary]:
    out = []
    try:
        for item in _rows(payload, "series", server):
            uid = _uid(item, "0020000E", "a series has no valid Series Instance UID")
            out.append(SeriesSummary(
                series_uid=uid, study_uid=_text(item, "0020000D") or study_uid, modality=_text(item, "00080060"),
                number=_int(item, "00200011"), description=_text(item, "0008103E"),
                n_instances=_int(item, "00201209"), body_part=_text(item, "00180015")))
    except ValueError as e:
        raise PacsError("malformed", f"{server} sent a series search result RadLens cannot read: {e}.") from None
    return sorted(out, key=lambda s: (s.number is None, s.number or 0, s.series_uid))
