"""The SR references the Secondary Capture it is made (and sent) with (issue 24, item 17).

For real DICOM chest radiographs and an out-of-scope CT analysed by the bundled model: the SR's
summary Measurement Group holds an IMAGE item "Best illustration of finding" (DCM 121080) that
references the SC, next to the source image reference ("Source of Measurement"), and the SC is
listed with the source in the Current Requested Procedure Evidence Sequence. dciodvfy finds no
error and no warning the SR without the reference does not have; DCMTK's dsrdump (when
installed) reads the tree without a complaint. The same holds on the radlens-batch
--dicom-results path (the viewer's send path is in tests/pacs/test_pacs_sr_sc_send.py).
"""

from __future__ import annotations

import shutil
import subprocess
from collections import Counter
from pathlib import Path

import highdicom as hd
import pydicom
import pytest
from dicom_validator import dciodvfy  # tests/dicom_validator.py

from engine import Classifier, default_model_path, load_image
from engine.ai.pipeline import classify
from engine.results.dicom_results import _evidence, read_source_header, results_for, withheld_warnings, write_results
from engine.results.dicom_sr import build_sr

SECONDARY_CAPTURE = "1.2.840.10008.5.1.4.1.1.7"
ILLUSTRATION = ("121080", "DCM", "Best illustration of finding")


@pytest.fixture(scope="module")
def model() -> Classifier:
    path = default_model_path()
    if not path.is_file():
        pytest.skip(f"the bundled model is missing: {path}")
    return Classifier(path, device="cpu")


def image_items(sr: pydicom.Dataset) -> list[tuple[tuple[str, str, str], str, str]]:
    """((code value, scheme, meaning), referenced SOP class, referenced SOP instance) of every
    IMAGE content item, depth first."""
    out = []

    def walk(items: object) -> None:
        for it in items:  # type: ignore[attr-defined]
            if it.ValueType == "IMAGE":
                name = it.ConceptNameCodeSequence[0]
                ref = it.ReferencedSOPSequence[0]
                out.append(((name.CodeValue, name.CodingSchemeDesignator, name.CodeMeaning),
                            str(ref.ReferencedSOPClassUID), str(ref.ReferencedSOPInstanceUID)))
            walk(it.get("ContentSequence", []))

    walk(sr.ContentSequence)
    return out


def evidence_of(sr: pydicom.Dataset) -> set[tuple[str, str, str]]:
    """(study, series, SOP instance) of the Current Requested Procedure Evidence Sequence."""
    return {(str(st.StudyInstanceUID), str(se.SeriesInstanceUID), str(sop.ReferencedSOPInstanceUID))
            for st in sr.CurrentRequestedProcedureEvidenceSequence for se in st.ReferencedSeriesSequence
            for sop in se.ReferencedSOPSequence}


def check_reference(sr: pydicom.Dataset, sc: pydicom.Dataset, source: pydicom.Dataset) -> None:
    """The SR references ``sc`` as the best illustration, and still ``source`` as the source."""
    items = image_items(sr)
    illustrations = [it for it in items if it[0] == ILLUSTRATION]
    assert illustrations == [(ILLUSTRATION, SECONDARY_CAPTURE, str(sc.SOPInstanceUID))], items
    sources = {uid for name, _, uid in items if name != ILLUSTRATION}
    assert sources == {str(source.SOPInstanceUID)}, "the source image reference stays"
    assert evidence_of(sr) == {
        (str(source.StudyInstanceUID), str(source.SeriesInstanceUID), str(source.SOPInstanceUID)),
        (str(sc.StudyInstanceUID), str(sc.SeriesInstanceUID), str(sc.SOPInstanceUID))}
    first = sr.CurrentRequestedProcedureEvidenceSequence[0].ReferencedSeriesSequence[0].ReferencedSOPSequence[0]
    assert first.ReferencedSOPInstanceUID == source.SOPInstanceUID  # the source first, as before
    # highdicom reads the reference back from the file
    back = hd.sr.Comprehensive3DSR.from_dataset(sr)  # (study, series, SOP instance, SOP class) each
    assert (str(sc.StudyInstanceUID), str(sc.SeriesInstanceUID), str(sc.SOPInstanceUID), SECONDARY_CAPTURE) in {
        tuple(map(str, e)) for e in back.get_evidence(current_procedure_only=True)}


def dsrdump_complaints(path: Path) -> list[str]:
    exe = shutil.which("dsrdump")
    if exe is None:
        return []
    out = subprocess.run([exe, str(path)], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    return [ln for ln in out.stderr.splitlines() if ln.strip()]


@pytest.mark.parametrize("name", ["CR-MONO1-10-chest.dcm", "nccid_nih_dx.dcm", "CT_small.dcm"])
def test_the_sr_references_its_secondary_capture(name: str, dicom_dir: Path, pydicom_file, model: Classifier,
                                                 tmp_path: Path) -> None:
    src = pydicom_file(name) if name == "CT_small.dcm" else dicom_dir / name
    image = load_image(src)
    pred = classify(image, model)
    assert pred.in_scope == (name != "CT_small.dcm")
    source = pydicom.dcmread(src, stop_before_pixels=True, force=True)
    objects = results_for(image, pred, model)
    with withheld_warnings():  # the same SR without the reference: what dciodvfy said before
        before = build_sr(_evidence(read_source_header(image)), pred, model)
    sr_path, sc_path, before_path = write_results([*objects, before], tmp_path)
    sr, sc = pydicom.dcmread(sr_path), pydicom.dcmread(sc_path)
    assert (sr.Modality, sc.SOPClassUID) == ("SR", SECONDARY_CAPTURE)
    check_reference(sr, sc, source)
    assert not [it for it in image_items(pydicom.dcmread(before_path)) if it[0] == ILLUSTRATION]

    errors, warnings = dciodvfy(sr_path)
    errors_before, warnings_before = dciodvfy(before_path)
    assert errors == errors_before == [], errors
    assert Counter(warnings) == Counter(warnings_before), "the reference adds a dciodvfy warning"
    assert dciodvfy(sc_path)[0] == []
    assert dsrdump_complaints(sr_path) == []


def test_an_sc_of_another_study_is_refused(dicom_dir: Path, model: Classifier) -> None:
    image = load_image(dicom_dir / "CR-MONO1-10-chest.dcm")
    pred = classify(image, model)
    _, sc = results_for(image, pred, model)
    sc.StudyInstanceUID = pydicom.uid.generate_uid()
    with pytest.raises(ValueError, match="not in the source image's study"), withheld_warnings():
        build_sr(_evidence(read_source_header(image)), pred, model, illustration=sc)


def test_batch_dicom_results_sr_references_the_sc_of_the_same_image(dicom_dir: Path, tmp_path: Path,
                                                                    capsys: pytest.CaptureFixture) -> None:
    from engine.batch.cli import main

    folder = tmp_path / "study"
    folder.mkdir()
    names = ("CR-MONO1-10-chest.dcm", "nccid_nih_dx.dcm")
    for n in names:
        shutil.copyfile(dicom_dir / n, folder / n)
    out_dir = tmp_path / "results"
    code = main([str(folder), "-o", str(tmp_path / "r.csv"), "--dicom-results", str(out_dir), "--no-progress",
                 "--device", "cpu"])
    assert code == 0, capsys.readouterr().out
    files = [pydicom.dcmread(f) for f in sorted(out_dir.glob("*.dcm"))]
    srs = [d for d in files if d.Modality == "SR"]
    scs = {str(d.SOPInstanceUID): d for d in files if d.Modality != "SR"}
    assert len(srs) == len(scs) == 2
    sources = {str(pydicom.dcmread(folder / n, force=True).SOPInstanceUID): folder / n for n in names}
    paired = set()
    for sr in srs:
        (illustration,) = [uid for name, _, uid in image_items(sr) if name == ILLUSTRATION]
        sc = scs[illustration]  # a capture written in the same run
        source_uid = str(sc.SourceImageSequence[0].ReferencedSOPInstanceUID)  # the SC's own source...
        check_reference(sr, sc, pydicom.dcmread(sources[source_uid], stop_before_pixels=True, force=True))  # ...is the SR's
        paired.add(illustration)
    assert paired == set(scs)
    for f in sorted(out_dir.glob("*.dcm")):
        assert dciodvfy(f)[0] == [], f.name
