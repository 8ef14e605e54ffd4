"""The local cache of retrieved and received studies: ``<cache>/<StudyInstanceUID>/<SOPInstanceUID>.dcm``.
Every instance is written to a hidden temporary name in the same folder and renamed into place,
so a reader never sees half a file and a failure leaves none behind."""

from __future__ import annotations

import os
import uuid
from pathlib import Path

import pydicom
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import PYDICOM_IMPLEMENTATION_UID, ExplicitVRLittleEndian, ImplicitVRLittleEndian

from ..io.fileio import sniff_format
from .summaries import UID_RE

PART_SUFFIX = ".part"


def study_folder(cache_dir: str | os.PathLike[str], study_uid: str) -> Path:
    """The cache folder of one study (the UID is checked, so it cannot leave ``cache_dir``)."""
    if not UID_RE.match(study_uid) or len(study_uid) > 64:
        raise ValueError(f"not a DICOM UID: {study_uid!r}")
    return Path(cache_dir) / study_uid


def _ensure_file_meta(ds: Dataset) -> None:
    meta = getattr(ds, "file_meta", None)
    if meta is None:
        meta = ds.file_meta = FileMetaDataset()
    if "TransferSyntaxUID" not in meta:  # read without file meta (no preamble): keep how it was encoded
        implicit, little = getattr(ds, "original_encoding", (None, None))
        meta.TransferSyntaxUID = ImplicitVRLittleEndian if implicit and little is not False else ExplicitVRLittleEndian
    meta.MediaStorageSOPClassUID = ds.SOPClassUID
    meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    if "ImplementationClassUID" not in meta:
        meta.ImplementationClassUID = PYDICOM_IMPLEMENTATION_UID


def write_instance(ds: Dataset, folder: Path, raw: bytes | None = None) -> Path:
    """Write ``ds`` as ``folder/<SOPInstanceUID>.dcm`` atomically (a hidden temp file in the same
    folder, then a rename over any earlier copy). ``raw``: the bytes ``ds`` was read from; when
    they are a DICOM file they are stored as they are (byte for byte, and 4x faster than encoding
    again). On failure no temp file remains and an earlier file of that name is untouched. The
    cache can be fetched again, so files are not fsynced: a crash never leaves half a file under
    the final name, a power cut may lose the last ones. Raises ``ValueError`` for a dataset
    without a valid SOP Instance UID and ``OSError`` when the disk refuses."""
    sop = str(ds.get("SOPInstanceUID", "")).strip()
    if not UID_RE.match(sop) or len(sop) > 64:
        raise ValueError(f"an instance has no valid SOP Instance UID ({sop!r})")
    if "SOPClassUID" not in ds:
        raise ValueError(f"instance {sop} has no SOP Class UID")
    folder.mkdir(parents=True, exist_ok=True)
    final = folder / f"{sop}.dcm"
    tmp = folder / f".{sop}.{uuid.uuid4().hex[:8]}{PART_SUFFIX}"
    try:
        with open(tmp, "wb") as f:
            if raw is not None and sniff_format(raw[:132]) == "dicom":  # a DICOM file, as it came
                f.write(raw)
            else:
                _ensure_file_meta(ds)
                pydicom.dcmwrite(f, ds, enforce_file_format=True)
        os.replace(tmp, final)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return final


def leftover_parts(folder: Path) -> list[Path]:
    """Temporary files in ``folder`` (none after any retrieve or receive, finished or not)."""
    return sorted(folder.glob(f".*{PART_SUFFIX}")) if folder.is_dir() else []


def remove_stale_parts(folder: Path, older_than_s: float = 3600.0) -> int:
    """Delete temporary files a killed process left in ``folder`` (older than ``older_than_s``, so
    a retrieve running now in another process keeps its own). Returns how many went."""
    import time

    gone = 0
    for p in leftover_parts(folder):
        try:
            if time.time() - p.stat().st_mtime > older_than_s:
                p.unlink()
                gone += 1
        except OSError:
            continue
    return gone
