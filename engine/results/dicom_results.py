"""RadLens results as DICOM objects, written with highdicom (see docs/dicom-results.md).

For one analysed DICOM image, ``results_for`` gives two new instances in the source's study:

- a Structured Report (Comprehensive 3D SR, TID 1500 Measurement Report; ``engine.results.dicom_sr``): the
  call, each class's probability with its operating point, the flags, the scope verdict, the
  notice "Research use only, not for diagnosis", the model (name, version, SHA-256), a
  reference to the source image's SOP instance and one to the Secondary Capture below ("Best
  illustration of finding", DCM 121080; both listed as evidence); VerificationFlag UNVERIFIED;
- a Secondary Capture (``engine.results.dicom_sc``): the displayed image with the Grad-CAM heatmap
  blended in and the notice burned in as a banner, in a new derived series.

Patient and study attributes are copied from the source; every new UID is generated.
``write_results`` writes them atomically, named by their SOP Instance UID.
"""

from __future__ import annotations

import contextlib
import logging
import os
import threading
import warnings
from collections.abc import Iterator, Sequence
from pathlib import Path

import pydicom
from pydicom.dataelem import DataElement
from pydicom.dataset import Dataset
from pydicom.errors import InvalidDicomError
from pydicom.multival import MultiValue
from pydicom.uid import UID

from ..ai.model import Classifier
from ..ai.prediction import Prediction
from ..errors import RadLensError
from ..io.fileio import create_temp, printable
from ..io.image import LoadedImage

__all__ = ["DicomResultsError", "check_folder", "read_source_header", "results_for", "write_results"]

log = logging.getLogger(__name__)

# Identify the source instance and its study: without them the results cannot join the study.
REQUIRED = ("SOPClassUID", "SOPInstanceUID", "StudyInstanceUID", "SeriesInstanceUID")
# Type 2 patient/study attributes highdicom copies from the source: present (maybe empty) in ours.
TYPE2 = ("PatientName", "PatientID", "PatientBirthDate", "PatientSex", "StudyDate", "StudyTime",
         "ReferringPhysicianName", "StudyID", "AccessionNumber")


class DicomResultsError(RadLensError):
    """DICOM results cannot be made or written for this image (not DICOM, header lacking, disk)."""


def _name(path: str) -> str:
    return printable(path.replace("\\", "/").rsplit("/", 1)[-1])


def read_source_header(image: LoadedImage) -> Dataset:
    """The source file's header (no pixel data), checked to be the image that was analysed
    and to hold the attributes the results need."""
    meta = image.meta
    name = _name(meta.path)
    if meta.format != "dicom":
        raise DicomResultsError(
            f"{name} is a {meta.format.upper() or 'non-DICOM'} file, not DICOM: results as DICOM (SR and secondary "
            "capture) join the source image's patient and study, which only a DICOM image has. Use the CSV report "
            "for this image, or open the DICOM original.")
    try:
        try:
            ds = pydicom.dcmread(meta.path, stop_before_pixels=True)
        except InvalidDicomError:  # no preamble: the loader read it with force too
            ds = pydicom.dcmread(meta.path, stop_before_pixels=True, force=True)
    except Exception as e:  # noqa: BLE001 - any reader failure: the file changed since it was analysed
        raise DicomResultsError(
            f"{name}: its DICOM header cannot be read again ({type(e).__name__}: {str(e)[:200]}). The file may have "
            "been moved or changed since it was analysed; open and analyse it again.") from None
    missing = [k for k in REQUIRED if not str(ds.get(k, "") or "").strip()]
    if missing:
        raise DicomResultsError(
            f"{name}: the DICOM header lacks {', '.join(missing)}, so results cannot reference the image or join "
            "its study. Results as DICOM need an image with its study, series and instance UIDs (re-export it "
            "from the PACS or modality); the CSV report still works.")
    bad = [f"{k} {printable(str(ds.get(k)))}" for k in REQUIRED if not UID(str(ds.get(k))).is_valid]
    if bad:
        raise DicomResultsError(
            f"{name}: the DICOM header has invalid UIDs ({'; '.join(bad)}), so results referencing this image "
            "would be invalid DICOM that a PACS may refuse. Have the source system re-export it with valid UIDs; "
            "the CSV report still works.")
    analysed = meta.identifiers.sop_instance_uid
    if analysed and str(ds.SOPInstanceUID) != analysed:
        raise DicomResultsError(
            f"{name} now holds another image (SOP Instance UID {ds.SOPInstanceUID}, analysed {analysed}): "
            "it changed since it was analysed. Open and analyse it again.")
    return ds


def _evidence(header: Dataset) -> Dataset:
    """The source header as the results copy it: the Type 2 patient/study attributes present
    (empty when the source lacks them), and a value that is not valid DICOM for its VR (an
    ACR-NEMA date "1993.02.24", a Patient's Age "81") left out, so the copies stay valid."""
    ev = Dataset()
    ev.update(header)
    for elem in list(ev):
        if elem.VR == "SQ" or elem.keyword in REQUIRED or not _invalid(elem):
            continue
        if elem.keyword in TYPE2:
            setattr(ev, elem.keyword, "")
        else:
            del ev[elem.tag]
    for kw in TYPE2:
        if kw not in ev or ev[kw].value is None:
            setattr(ev, kw, "")
    return ev


def _invalid(elem: DataElement) -> bool:
    import pydicom.config
    from pydicom.valuerep import validate_value

    values = elem.value if isinstance(elem.value, (list, tuple, MultiValue)) else [elem.value]
    try:
        for v in values:
            if v is not None and v != "":
                validate_value(elem.VR, v, pydicom.config.RAISE)
    except (ValueError, TypeError):
        return True
    return False


_QUIET = threading.RLock()  # catch_warnings swaps process-wide state: one thread at a time


@contextlib.contextmanager
def withheld_warnings() -> Iterator[None]:
    """Catch every warning raised inside (highdicom's and pydicom's, while a header is read, the
    results are built or written): they quote header values, such as "The string "Covid0000" is
    unlikely to represent the intended person name" for a patient's or a referring physician's
    name, and no identifier may reach stderr or a log unless the user asked for identifiers (and
    those go to the report only). Each kind of warning is logged once, at debug level, as a
    generic line naming its category and library, never its text."""
    with _QUIET, warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            yield
        finally:
            kinds = sorted({(w.category.__name__, _library(w.filename)) for w in caught})
            caught.clear()
    for category, library in kinds:
        log.debug("%s from %s while making DICOM results: a header value looks unusual (text withheld: it may "
                  "quote patient identifiers)", category, library)


def _library(filename: str) -> str:
    """The package a warning came from (its top-level folder in site-packages), not the file."""
    parts = filename.replace("\\", "/").split("/")
    for lib in ("highdicom", "pydicom"):
        if lib in parts:
            return lib
    return "radlens" if "engine" in parts else "another library"


def results_for(image: LoadedImage, prediction: Prediction, classifier: Classifier) -> list[Dataset]:
    """[SR, SC] for one analysed DICOM image; ``DicomResultsError`` with a clear message when
    the source is not DICOM or lacks the attributes the results need. Warnings that highdicom or
    pydicom raise meanwhile are withheld (``withheld_warnings``): they may quote identifiers."""
    if prediction.image is not image and prediction.path != image.meta.path:
        raise DicomResultsError(f"{_name(image.meta.path)}: the prediction is for another file "
                                f"({_name(prediction.path)}); analyse this image first.")
    with withheld_warnings():
        return _build(image, prediction, classifier)


def _build(image: LoadedImage, prediction: Prediction, classifier: Classifier) -> list[Dataset]:
    from .dicom_sc import build_sc
    from .dicom_sr import build_sr

    evidence = _evidence(read_source_header(image))
    try:
        sc = build_sc(evidence, image, prediction, classifier)
        sr = build_sr(evidence, prediction, classifier, illustration=sc)  # the SR references the SC
    except (ValueError, TypeError, AttributeError) as e:  # highdicom refuses a header value
        raise DicomResultsError(
            f"{_name(image.meta.path)}: results as DICOM could not be built from this file's header "
            f"({type(e).__name__}: {str(e)[:200]}). The CSV report still works; please report the file.") from None
    return [sr, sc]


def file_name(ds: Dataset) -> str:
    """The file name of a result: its SOP Instance UID."""
    return f"{ds.SOPInstanceUID}.dcm"


def write_results(datasets: Sequence[Dataset], out_dir: Path) -> list[Path]:
    """Write each dataset to ``out_dir/<SOPInstanceUID>.dcm`` (the folder is created). All are
    written to temp files first and then renamed, so a failure leaves no partial file."""
    out_dir = Path(out_dir)
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise DicomResultsError(f"cannot create the folder for DICOM results {printable(str(out_dir))} "
                                f"({e.strerror or e}). Choose a writable folder.") from None
    temps: list[tuple[str, Path]] = []
    try:
        for ds in datasets:
            target = out_dir / file_name(ds)
            fd, tmp = create_temp(target)
            temps.append((tmp, target))
            with os.fdopen(fd, "wb") as f, withheld_warnings():  # pydicom's may quote a header value
                ds.save_as(f, enforce_file_format=True)
                f.flush()
                os.fsync(f.fileno())
        for tmp, target in temps:
            os.replace(tmp, target)
    except OSError as e:
        raise DicomResultsError(f"cannot write DICOM results to {printable(str(out_dir))} ({e.strerror or e}). "
                                "Choose a writable folder with free space.") from None
    finally:
        for tmp, _ in temps:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
    return [target for _, target in temps]


def check_folder(out_dir: Path) -> str | None:
    """Why ``--dicom-results out_dir`` cannot be created or written, or None; creates nothing, so
    ``radlens-batch`` can check it with its other arguments, before the model loads."""
    out_dir = Path(out_dir)
    where = printable(str(out_dir))
    if out_dir.exists():
        if not out_dir.is_dir():
            return f"--dicom-results {where} is a file, not a folder. Choose a folder for the DICOM results."
        if not os.access(out_dir, os.W_OK | os.X_OK):
            return f"the folder for DICOM results {where} is not writable. Choose a writable --dicom-results folder."
        return None
    parent = out_dir.parent
    while not parent.exists() and parent != parent.parent:
        parent = parent.parent
    if not parent.is_dir():
        return (f"cannot create the folder for DICOM results {where} ({printable(str(parent))} is a file). "
                "Choose a writable --dicom-results folder.")
    if not os.access(parent, os.W_OK | os.X_OK):
        return (f"cannot create the folder for DICOM results {where} ({printable(str(parent))} is not writable). "
                "Choose a writable --dicom-results folder.")
    return None
