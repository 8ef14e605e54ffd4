"""Results as DICOM (engine.results.dicom_results): an SR and a heatmap secondary capture for real DICOM
chest radiographs analysed by the bundled model, each validated by dciodvfy (dicom3tools) and
read back with pydicom; an out-of-scope CT; sources that cannot give results; the CLI option."""

from __future__ import annotations

import csv
import json
import shutil
from pathlib import Path

import numpy as np
import pydicom
import pytest
from dicom_validator import dciodvfy  # tests/dicom_validator.py

from engine import DISCLAIMER, Classifier, default_model_path, load_image
from engine.ai.cam import cam_scale, card_cam_scale
from engine.ai.pipeline import classify
from engine.results.dicom_results import DicomResultsError, read_source_header, results_for, write_results
from engine.results.dicom_sr import class_code

CHEST = ["CR-MONO1-10-chest.dcm", "nccid_nih_dx.dcm", "RG1_J2KI.dcm"]  # in scope (README's scope table)
COMPREHENSIVE_3D_SR = "1.2.840.10008.5.1.4.1.1.88.34"
SECONDARY_CAPTURE = "1.2.840.10008.5.1.4.1.1.7"
PATIENT_STUDY = ("PatientName", "PatientID", "PatientBirthDate", "PatientSex", "StudyInstanceUID", "StudyID",
                 "AccessionNumber", "StudyDate", "StudyTime")


@pytest.fixture(scope="module")
def model() -> Classifier:
    path = default_model_path()
    if not path.is_file():
        pytest.skip(f"the bundled model is missing: {path}")
    return Classifier(path, device="cpu")


def content_items(ds: pydicom.Dataset) -> list[pydicom.Dataset]:
    """Every content item of an SR, depth first."""
    out: list[pydicom.Dataset] = []

    def walk(items: object) -> None:
        for it in items:  # type: ignore[attr-defined]
            out.append(it)
            walk(it.get("ContentSequence", []))

    walk(ds.ContentSequence)
    return out


def named(items: list[pydicom.Dataset], meaning: str) -> list[pydicom.Dataset]:
    return [it for it in items if "ConceptNameCodeSequence" in it
            and it.ConceptNameCodeSequence[0].CodeMeaning == meaning]


def code_of(item: pydicom.Dataset) -> tuple[str, str]:
    c = item.ConceptCodeSequence[0]
    return c.CodeValue, c.CodingSchemeDesignator


def groups(sr: pydicom.Dataset) -> list[pydicom.Dataset]:
    return named(content_items(sr), "Measurement Group")


def num(group: pydicom.Dataset, meaning: str) -> float:
    (item,) = named(list(group.ContentSequence), meaning)
    mv = item.MeasuredValueSequence[0]
    assert mv.MeasurementUnitsCodeSequence[0].CodeValue == "1"
    assert mv.MeasurementUnitsCodeSequence[0].CodingSchemeDesignator == "UCUM"
    return float(mv.get("FloatingPointValue", mv.NumericValue))


def write_and_validate(datasets: list[pydicom.Dataset], out: Path) -> list[pydicom.Dataset]:
    """Write, run dciodvfy (no Error lines), read back."""
    paths = write_results(datasets, out)
    assert [p.name for p in paths] == [f"{ds.SOPInstanceUID}.dcm" for ds in datasets]
    assert not list(out.glob(".*.tmp"))
    for p in paths:
        errors, _ = dciodvfy(p)
        assert errors == [], f"{p.name}: {errors}"
    return [pydicom.dcmread(p) for p in paths]


@pytest.mark.parametrize("name", CHEST)
def test_chest_radiograph_results(name: str, dicom_dir: Path, model: Classifier, tmp_path: Path) -> None:
    src = dicom_dir / name
    image = load_image(src)
    pred = classify(image, model)
    assert pred.in_scope, pred.scope.reason
    source = pydicom.dcmread(src, stop_before_pixels=True, force=True)
    sr, sc = write_and_validate(results_for(image, pred, model), tmp_path)

    # kinds, flags, same study, new series and instances
    assert (sr.SOPClassUID, sr.Modality) == (COMPREHENSIVE_3D_SR, "SR")
    assert (sc.SOPClassUID, sc.Modality) == (SECONDARY_CAPTURE, "OT")
    assert sr.VerificationFlag == "UNVERIFIED" and sr.CompletionFlag == "COMPLETE"
    assert sr.StudyInstanceUID == sc.StudyInstanceUID == source.StudyInstanceUID
    new = [sr.SeriesInstanceUID, sc.SeriesInstanceUID, sr.SOPInstanceUID, sc.SOPInstanceUID]
    old = {source.SeriesInstanceUID, source.SOPInstanceUID}
    assert len(set(new)) == 4 and not set(new) & old
    for ds in (sr, sc):
        for kw in PATIENT_STUDY:
            if str(source.get(kw, "") or "").isdigit() or kw not in ("StudyDate", "StudyTime", "PatientBirthDate"):
                assert str(ds.get(kw, "") or "") == str(source.get(kw, "") or ""), kw

    # SR content: source reference, algorithm, scope, call, probabilities, operating points, flags, notice
    items = content_items(sr)
    images = [it for it in items if it.ValueType == "IMAGE"]
    sources = [it for it in images if it.ConceptNameCodeSequence[0].CodeMeaning != "Best illustration of finding"]
    assert sources and {it.ReferencedSOPSequence[0].ReferencedSOPInstanceUID for it in sources} == {source.SOPInstanceUID}
    assert {it.ReferencedSOPSequence[0].ReferencedSOPInstanceUID for it in images} == {source.SOPInstanceUID,
                                                                                      sc.SOPInstanceUID}
    evidence = sr.CurrentRequestedProcedureEvidenceSequence[0].ReferencedSeriesSequence[0].ReferencedSOPSequence
    assert evidence[0].ReferencedSOPInstanceUID == source.SOPInstanceUID
    assert {it.TextValue for it in named(items, "Algorithm Name")} == {pred.model_name}
    assert {it.TextValue for it in named(items, "Algorithm Version")} == {pred.model_version}
    assert {it.TextValue for it in named(items, "Algorithm Parameters")} == {f"SHA-256 {model.sha256}"}
    assert model.sha256 == pred.model_sha256
    (scope,) = named(items, "Scope verdict")
    assert code_of(scope) == ("IN_SCOPE", "99RADLENS")
    (call,) = named(items, "RadLens call (top class)")
    expected_call = class_code(pred.call)
    assert code_of(call) == (expected_call.value, expected_call.scheme_designator)
    by_class = {}
    for g in groups(sr)[1:]:
        (finding,) = named(list(g.ContentSequence), "Finding")
        by_class[code_of(finding)] = g
    assert len(by_class) == len(pred.labels) == 4
    for i, label in enumerate(pred.labels):
        c = class_code(label)
        g = by_class[(c.value, c.scheme_designator)]
        assert num(g, "Probability") == float(pred.probs[i])  # exactly: FD when DS cannot hold it
        op = model.card.operating_points.get(label)
        if op is None:  # no operating point in the card (normal, under the coherent rule): neither item
            assert not named(list(g.ContentSequence), "Operating point")
            assert not named(list(g.ContentSequence), "At or above operating point")
            continue
        assert num(g, "Operating point") == pytest.approx(op)
        (flag,) = named(list(g.ContentSequence), "At or above operating point")
        assert code_of(flag) == (("373066001" if label in pred.flags else "373067005"), "SCT")
    assert sum(float(pred.probs[i]) for i in range(4)) == pytest.approx(1.0, abs=1e-5)
    assert [it.TextValue for it in named(items, "Intended use notice")] == [DISCLAIMER]
    assert not named(items, "Scope verdict reason")
    assert sr.CodingSchemeIdentificationSequence[0].CodingSchemeDesignator == "99RADLENS"

    # SC: the displayed image under a burned-in banner, referencing its source
    assert sc.BurnedInAnnotation == "YES" and list(sc.ImageType)[:2] == ["DERIVED", "SECONDARY"]
    assert sc.SourceImageSequence[0].ReferencedSOPInstanceUID == source.SOPInstanceUID
    assert DISCLAIMER in sc.ImageComments
    px = sc.pixel_array
    h, w = image.shape
    band = px.shape[0] - h
    assert px.shape[1:] == (w, 3) and sc.PhotometricInterpretation == "RGB" and 16 <= band <= h // 5
    top = px[:band]
    assert np.mean(top.max(axis=2) == 0) > 0.6  # a black banner...
    assert np.mean(top.min(axis=2) > 200) > 0.01  # ...with white text in it
    # below it: the displayed image where the call's heatmap (the model's fixed scale) is zero, colour where not
    scale = cam_scale(pred.cam, pred.top_index, card_cam_scale(model.card)).value
    heat = pred.heatmap(pred.top_index, scale=scale)
    grey = np.floor(np.clip(image.pixels, 0, 1) * 255 + 0.5).astype(np.int16)
    below = px[band:].astype(np.int16)
    cold = heat == 0
    assert np.array_equal(below[..., 0][cold], grey[cold]) and np.array_equal(below[..., 2][cold], grey[cold])
    assert heat.max() > 0  # the call's evidence is not negligible on these films
    hot = heat >= 0.5 * heat.max()  # (a weak map, e.g. of a normal call, still shows where it is strongest)
    assert (below.max(axis=2) - below.min(axis=2))[hot].mean() > 5  # the heatmap is blended in


def test_out_of_scope_ct_has_verdict_and_no_call(pydicom_file, model: Classifier, tmp_path: Path) -> None:
    src = pydicom_file("CT_small.dcm")
    image = load_image(src)
    pred = classify(image, model)
    assert not pred.in_scope and pred.call == ""
    sr, sc = write_and_validate(results_for(image, pred, model), tmp_path)
    items = content_items(sr)
    (scope,) = named(items, "Scope verdict")
    assert code_of(scope) == ("OUT_OF_SCOPE", "99RADLENS")
    assert not named(items, "RadLens call (top class)")
    assert not named(items, "Probability")  # not valid out of scope: not reported
    assert [it.TextValue for it in named(items, "Scope verdict reason")] == [pred.scope.reason]
    assert "CT" in pred.scope.reason
    assert [it.TextValue for it in named(items, "Intended use notice")] == [DISCLAIMER]
    assert sr.StudyInstanceUID == pydicom.dcmread(src).StudyInstanceUID
    px = sc.pixel_array
    body = px[px.shape[0] - image.shape[0]:]
    assert np.all(body[..., 0] == body[..., 1]) and np.all(body[..., 1] == body[..., 2])  # no heatmap
    assert "out of scope" in sc.ImageComments


def test_png_source_is_a_clear_error(png_path: Path, model: Classifier) -> None:
    image = load_image(png_path)
    pred = classify(image, model)
    with pytest.raises(DicomResultsError, match=r"chest\.png is a PNG file, not DICOM"):
        results_for(image, pred, model)


def test_header_lacking_uids_or_with_invalid_ones(dicom_dir: Path, tmp_path: Path) -> None:
    ds = pydicom.dcmread(dicom_dir / "nccid_nih_dx.dcm")
    del ds.SeriesInstanceUID
    lacking = tmp_path / "no-series.dcm"
    ds.save_as(lacking)
    with pytest.raises(DicomResultsError, match="lacks SeriesInstanceUID"):
        read_source_header(load_image(lacking))
    # a fixture whose SOP Instance UID is not a valid UID (999.999.01...): refused, not written invalid
    with pytest.raises(DicomResultsError, match="invalid UIDs .*SOPInstanceUID 999.999.01"):
        read_source_header(load_image(dicom_dir / "CR-ModalitySequenceLUT.dcm"))


def test_source_changed_since_analysis(dicom_dir: Path, tmp_path: Path) -> None:
    copy = tmp_path / "image.dcm"
    shutil.copyfile(dicom_dir / "nccid_nih_dx.dcm", copy)
    image = load_image(copy)
    shutil.copyfile(dicom_dir / "CR-MONO1-10-chest.dcm", copy)
    with pytest.raises(DicomResultsError, match="changed since it was analysed"):
        read_source_header(image)
    copy.unlink()
    with pytest.raises(DicomResultsError, match="cannot be read again"):
        read_source_header(image)


def test_write_results_to_a_file_path_fails_cleanly(dicom_dir: Path, model: Classifier, tmp_path: Path) -> None:
    image = load_image(dicom_dir / "CR-MONO1-10-chest.dcm")
    datasets = results_for(image, classify(image, model), model)
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("x")
    with pytest.raises(DicomResultsError, match="Choose a writable folder"):
        write_results(datasets, blocker)
    out = tmp_path / "new" / "deeper"
    assert len(write_results(datasets, out)) == 2  # the folder is created


def test_cli_dicom_results(dicom_dir: Path, png_path: Path, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    from engine.batch.cli import main

    folder = tmp_path / "study"
    folder.mkdir()
    for name in ("CR-MONO1-10-chest.dcm", "nccid_nih_dx.dcm"):
        shutil.copyfile(dicom_dir / name, folder / name)
    shutil.copyfile(png_path, folder / "chest.png")
    out_dir = tmp_path / "results"
    report = tmp_path / "report.csv"
    code = main([str(folder), "-o", str(report), "--dicom-results", str(out_dir), "--no-progress", "--device", "cpu"])
    printed = capsys.readouterr().out
    assert code == 0, printed
    files = sorted(out_dir.glob("*.dcm"))
    kinds = sorted(str(pydicom.dcmread(f, stop_before_pixels=True).Modality) for f in files)
    assert kinds == ["OT", "OT", "SR", "SR"]
    referenced = {pydicom.dcmread(f).SourceImageSequence[0].ReferencedSOPInstanceUID for f in files
                  if pydicom.dcmread(f, stop_before_pixels=True).Modality == "OT"}
    assert referenced == {str(pydicom.dcmread(folder / n, force=True).SOPInstanceUID)
                          for n in ("CR-MONO1-10-chest.dcm", "nccid_nih_dx.dcm")}
    # the SR's probabilities are the report's (the CSV keeps 9 significant digits)
    rows = {r["file"]: r for r in csv.DictReader(open(report, newline="", encoding="utf-8"))}
    by_uid = {str(pydicom.dcmread(folder / n, force=True).SOPInstanceUID): n for n in rows if n.endswith(".dcm")}
    for sr in (pydicom.dcmread(f) for f in files):
        if sr.Modality != "SR":
            continue
        (uid,) = {it.ReferencedSOPSequence[0].ReferencedSOPInstanceUID for it in content_items(sr)
                  if it.ValueType == "IMAGE" and it.ConceptNameCodeSequence[0].CodeMeaning == "Source of Measurement"}
        row = rows[by_uid[uid]]
        for label in ("normal", "covid", "pneumonia", "tuberculosis"):
            c = class_code(label)
            (g,) = [g for g in groups(sr)[1:] if any(code_of(it) == (c.value, c.scheme_designator)
                                                     for it in named(list(g.ContentSequence), "Finding"))]
            assert num(g, "Probability") == pytest.approx(float(row[f"prob_{label}"]), rel=1e-6)
    sidecar = json.loads(report.with_suffix(".json").read_text())
    note = sidecar["options"]["dicom_results"]
    assert (note["images"], note["files"], note["skipped_not_dicom"], note["failed"]) == (2, 4, 1, 0)
    assert note["analysed_again"] == 0  # a local run keeps its predictions for the SR/SC: one analysis per image
    assert "DICOM results: 4 file(s)" in printed and "1 non-DICOM image(s) skipped" in printed


def test_cli_dicom_results_folder_not_creatable(dicom_dir: Path, tmp_path: Path) -> None:
    from engine.batch.cli import EXIT_NOTHING_RAN, main

    blocker = tmp_path / "file"
    blocker.write_text("x")
    report = tmp_path / "r.csv"
    assert main([str(dicom_dir), "-o", str(report), "--dicom-results", str(blocker / "sub"), "--no-progress",
                 "--device", "cpu"]) == EXIT_NOTHING_RAN
    assert not report.exists()


def test_batch_results_refuse_a_source_changed_since_its_row(dicom_dir: Path, model: Classifier,
                                                             tmp_path: Path) -> None:
    """A row without a kept prediction (a Dask run, a resumed journal) is analysed again for its
    SR/SC: if the file now holds another image, no results are written that contradict the CSV row."""
    from engine.batch import analyze_folder
    from engine.batch.dicom_out import BatchResults

    src = tmp_path / "in"
    src.mkdir()
    shutil.copy(dicom_dir / CHEST[0], src / "a.dcm")
    row, = list(analyze_folder(src, model))  # no kept prediction, as from a Dask worker
    assert row.prediction is None and row.format == "dicom"
    same = BatchResults(tmp_path / "same", model)
    same.add(row)
    assert same.images == 1 and not same.failed  # unchanged file: analysed again, results written
    shutil.copy(dicom_dir / CHEST[1], src / "a.dcm")  # another radiograph under the same name
    changed = BatchResults(tmp_path / "changed", model)
    changed.add(row)
    assert changed.images == 0 and not changed.written
    assert len(changed.failed) == 1 and "changed since it was analysed" in changed.failed[0]
    assert not list((tmp_path / "changed").glob("*.dcm"))


def test_cli_dicom_results_keep_no_pixels_of_out_of_scope_rows(pydicom_file, tmp_path: Path,
                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    """With --dicom-results a local run keeps each row's prediction (its pixels) until its SR/SC are
    written; the CLI's own tallies (out-of-scope rows, listed at the end) must not hold them after."""
    import weakref

    from engine.batch.cli import main
    from engine.batch.dicom_out import BatchResults

    folder = tmp_path / "cts"
    folder.mkdir()
    for i in range(8):
        shutil.copy(pydicom_file("CT_small.dcm"), folder / f"ct{i}.dcm")  # out of scope: no call
    alive: list[weakref.ref] = []
    most = 0
    real_add = BatchResults.add

    def spy(self: BatchResults, row) -> None:  # noqa: ANN001 - observes, then runs the real add
        nonlocal most
        if row.prediction is not None:
            alive.append(weakref.ref(row.prediction))
        most = max(most, sum(r() is not None for r in alive))
        real_add(self, row)

    monkeypatch.setattr(BatchResults, "add", spy)
    assert main([str(folder), "-o", str(tmp_path / "r.csv"), "--dicom-results", str(tmp_path / "dcm"),
                 "--no-progress", "--device", "cpu", "--batch-size", "1", "--workers", "1"]) == 0
    assert len(alive) == 8 and len(list((tmp_path / "dcm").glob("*.dcm"))) == 16
    assert most <= 2, f"{most} predictions (with their pixels) held at once"
