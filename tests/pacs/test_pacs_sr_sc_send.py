"""The viewer's "send results to PACS" path (desktop.pacs.pacs_send.build_objects, which calls
engine.results.dicom_results.results_for): the SR sent references the Secondary Capture sent with
it (issue 24, item 17), and on a real Orthanc that reference resolves to the stored SC."""

from __future__ import annotations

import os

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

import threading  # noqa: E402
from io import BytesIO  # noqa: E402
from pathlib import Path  # noqa: E402

import pydicom  # noqa: E402
import pytest  # noqa: E402
import requests  # noqa: E402
from conftest import Orthanc  # noqa: E402  (tests/pacs/conftest.py)

pytest.importorskip("PySide6")

from desktop.pacs.pacs_send import SendItem, build_objects  # noqa: E402
from engine import Classifier, default_model_path  # noqa: E402
from engine.pacs.dicomweb import PacsClient  # noqa: E402

ILLUSTRATION = "Best illustration of finding"


def _on_server(orthanc: Orthanc, sop_uid: str) -> bytes:
    """The stored file of the instance ``sop_uid`` (Orthanc's REST API)."""
    found = requests.post(f"{orthanc.url}/tools/find", json={"Level": "Instance", "Query": {"SOPInstanceUID": sop_uid}},
                          timeout=10).json()
    assert len(found) == 1, f"{sop_uid} is not on the server"
    r = requests.get(f"{orthanc.url}/instances/{found[0]}/file", timeout=30)
    assert r.ok
    return r.content


def test_the_sent_sr_references_the_sent_sc(orthanc: Orthanc, dicom_dir: Path, tmp_path: Path) -> None:
    clf = Classifier(default_model_path(), device="cpu")
    src = dicom_dir / "nccid_nih_dx.dcm"  # a fixture Orthanc holds (as test_pacs_send uses): no new study
    built = build_objects([SendItem(str(src), clf)], lambda d, t: None, threading.Event(), str(tmp_path / "send"))
    assert sorted(built.kinds) == ["SC", "SR"] and not built.skipped
    by_kind = dict(zip(built.kinds, built.files, strict=True))
    sc_uid = str(pydicom.dcmread(by_kind["SC"], stop_before_pixels=True).SOPInstanceUID)
    sr_uid = str(pydicom.dcmread(by_kind["SR"], stop_before_pixels=True).SOPInstanceUID)
    result = PacsClient(orthanc.server()).store_files(built.files)
    assert (result.stored, result.failed) == (2, 0)

    sr = pydicom.dcmread(BytesIO(_on_server(orthanc, sr_uid)))
    refs: dict[str, set[str]] = {}

    def walk(items: object) -> None:
        for it in items:  # type: ignore[attr-defined]
            if it.ValueType == "IMAGE":
                refs.setdefault(str(it.ConceptNameCodeSequence[0].CodeMeaning), set()).add(
                    str(it.ReferencedSOPSequence[0].ReferencedSOPInstanceUID))
            walk(it.get("ContentSequence", []))

    walk(sr.ContentSequence)
    assert refs[ILLUSTRATION] == {sc_uid}
    assert refs["Source of Measurement"] == {str(pydicom.dcmread(src, stop_before_pixels=True).SOPInstanceUID)}
    evidence = {str(sop.ReferencedSOPInstanceUID) for st in sr.CurrentRequestedProcedureEvidenceSequence
                for se in st.ReferencedSeriesSequence for sop in se.ReferencedSOPSequence}
    assert sc_uid in evidence
    sc = pydicom.dcmread(BytesIO(_on_server(orthanc, sc_uid)))  # the reference resolves on the PACS
    assert sc.StudyInstanceUID == sr.StudyInstanceUID and sc.Modality == "OT"
