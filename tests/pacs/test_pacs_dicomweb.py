"""Search, retrieve and store against a real Orthanc (QIDO-RS, WADO-RS, STOW-RS)."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import numpy as np
import pydicom
import pytest
from conftest import Orthanc, PacsData  # tests/pacs/conftest.py

from engine.ai.card import DISCLAIMER
from engine.pacs.cache import leftover_parts
from engine.pacs.dicomweb import PacsClient, PacsError


@pytest.fixture
def client(orthanc: Orthanc) -> PacsClient:
    with PacsClient(orthanc.server()) as c:
        yield c


def _uids(studies: list) -> set[str]:
    return {s.study_uid for s in studies}


def test_search_by_each_filter(client: PacsClient, pacs_data: PacsData) -> None:
    multi = pacs_data.studies["multi"]
    everything = client.search_studies()
    assert len(everything) == len(pacs_data.fixtures) + len(pacs_data.studies)
    (hit,) = client.search_studies(patient_id=multi.patient_id)
    assert hit.study_uid == multi.study_uid
    assert (hit.patient_name, hit.accession, hit.study_date) == (multi.patient_name, multi.accession, multi.date)
    assert hit.n_instances == 5 and hit.n_series == 3 and set(hit.modalities) == {"CR", "DX"}
    assert hit.date_text == "2024-01-15"
    # a name without wildcards matches names that start with it, in any case
    assert _uids(client.search_studies(patient_name="compressedsamples")) == {
        str(pydicom.dcmread(f, stop_before_pixels=True).StudyInstanceUID)
        for f in pacs_data.fixtures if f.name.startswith("RG")}
    assert _uids(client.search_studies(patient_name="Radlens^M*")) == {multi.study_uid}
    in_2004 = client.search_studies(date_from=dt.date(2004, 8, 1), date_to="2004-08-31")
    assert len(in_2004) == 3 and all(s.study_date.startswith("200408") for s in in_2004)
    assert {s.study_date for s in client.search_studies(date_from="20240116")} == {"20240116", "20240117"}
    assert _uids(client.search_studies(modality="DX")) == {
        multi.study_uid, pacs_data.studies["clistow"].study_uid,
        str(pydicom.dcmread(next(f for f in pacs_data.fixtures if f.name.startswith("nccid")),
                            stop_before_pixels=True).StudyInstanceUID)}
    (acc,) = client.search_studies(accession="RLACC0002")
    assert acc.study_uid == pacs_data.studies["stow"].study_uid
    assert client.search_studies(patient_id="RLTEST-MULTI", modality="MR") == []
    assert len(client.search_studies(limit=2)) == 2


def test_bad_search_input_is_refused_before_sending(client: PacsClient) -> None:
    with pytest.raises(PacsError, match="not a date") as e:
        client.search_studies(date_from="yesterday")
    assert e.value.kind == "invalid"
    with pytest.raises(PacsError, match="reversed"):
        client.search_studies(date_from="20240201", date_to="20240101")
    with pytest.raises(PacsError, match="not a DICOM UID") as e:
        client.retrieve("../../etc", "/tmp")
    assert e.value.kind == "invalid"


def test_series_of_a_study(client: PacsClient, pacs_data: PacsData) -> None:
    multi = pacs_data.studies["multi"]
    series = client.search_series(multi.study_uid)
    assert [s.series_uid for s in series] == multi.series_uids
    assert [s.n_instances for s in series] == [2, 1, 2] and [s.number for s in series] == [1, 2, 3]


def _pixels(path: Path) -> np.ndarray:
    from engine import load_image

    return load_image(path).pixels


def test_retrieve_study_with_progress_keeps_every_instance_whole(client: PacsClient, pacs_data: PacsData,
                                                                tmp_path: Path) -> None:
    multi = pacs_data.studies["multi"]
    seen: list[tuple[int, int | None]] = []
    result = client.retrieve(multi.study_uid, tmp_path, progress=lambda d, t: seen.append((d, t)))
    assert result.complete and result.fetched == 5 and result.expected == 5
    assert result.folder == tmp_path / multi.study_uid
    assert seen == [(i, 5) for i in range(6)]
    assert "Fetched 5 instance(s)" in result.message and "MB/s" in result.message
    assert sorted(p.name for p in result.paths) == sorted(f.name for f in multi.files)
    for src in multi.files:  # original transfer syntax (JPEG 2000, lossy JPEG, ...) and identical pixels
        got = result.folder / src.name
        a, b = pydicom.dcmread(src), pydicom.dcmread(got)
        assert a.file_meta.TransferSyntaxUID == b.file_meta.TransferSyntaxUID
        assert a.PixelData == b.PixelData
    assert leftover_parts(result.folder) == []
    print(f"\nretrieve: {result.fetched} instances, {result.bytes / 1e6:.2f} MB in {result.seconds:.3f} s "
          f"({result.bytes / 1e6 / max(result.seconds, 1e-9):.1f} MB/s)")


def test_retrieve_one_series(client: PacsClient, pacs_data: PacsData, tmp_path: Path) -> None:
    multi = pacs_data.studies["multi"]
    result = client.retrieve(multi.study_uid, tmp_path, series_uid=multi.series_uids[2])
    assert result.complete and result.fetched == 2
    assert {pydicom.dcmread(p).SeriesInstanceUID for p in result.paths} == {multi.series_uids[2]}
    for src in multi.files[3:]:
        assert pydicom.dcmread(result.folder / src.name).PixelData == pydicom.dcmread(src).PixelData
    with pytest.raises(PacsError, match="no series") as e:
        client.retrieve(multi.study_uid, tmp_path, series_uid="1.2.3.4.999")
    assert e.value.kind == "not_found"


def test_a_file_without_preamble_is_retrieved_and_readable(client: PacsClient, pacs_data: PacsData,
                                                          tmp_path: Path) -> None:
    src = next(f for f in pacs_data.fixtures if f.name == "CR-MONO1-10-chest.dcm")  # no DICM preamble
    uid = str(pydicom.dcmread(src, force=True).StudyInstanceUID)
    (path,) = client.retrieve(uid, tmp_path).paths
    assert pydicom.dcmread(path).file_meta.TransferSyntaxUID  # now a DICOM file with its file meta
    np.testing.assert_array_equal(_pixels(path), _pixels(src))


def test_store_sr_and_sc_and_read_them_back(orthanc: Orthanc, client: PacsClient, pacs_data: PacsData,
                                            tmp_path: Path) -> None:
    from engine import analyze
    from engine.ai.model import Classifier, default_model_path
    from engine.results.dicom_results import results_for

    stow = pacs_data.studies["stow"]
    src = stow.files[0]
    classifier = Classifier(default_model_path(), device="cpu")
    prediction = analyze(src, classifier)
    sr, sc = results_for(prediction.image, prediction, classifier)
    result = client.store([sr, sc])
    assert (result.stored, result.failed) == (2, 0), result.message
    assert "2 of 2" in result.message

    back = client.retrieve(stow.study_uid, tmp_path)
    assert back.fetched == 3
    by_sop = {pydicom.dcmread(p).SOPInstanceUID: pydicom.dcmread(p) for p in back.paths}
    sr_back, sc_back = by_sop[sr.SOPInstanceUID], by_sop[sc.SOPInstanceUID]
    src_ds = pydicom.dcmread(src)
    for ds in (sr_back, sc_back):
        assert ds.StudyInstanceUID == stow.study_uid and ds.PatientID == stow.patient_id
        assert ds.SeriesInstanceUID not in stow.series_uids
    assert sr_back.VerificationFlag == "UNVERIFIED"
    texts = [str(v) for v in _walk_values(sr_back)]
    assert any(DISCLAIMER.lower() in t.lower() for t in texts)
    assert prediction.model_sha256 in texts or any(prediction.model_sha256 in t for t in texts)
    refs = [r.ReferencedSOPInstanceUID for item in sr_back.get("CurrentRequestedProcedureEvidenceSequence", [])
            for s in item.ReferencedSeriesSequence for r in s.ReferencedSOPSequence]
    assert src_ds.SOPInstanceUID in refs
    assert sc_back.Manufacturer == "RadLens" and sc_back.BurnedInAnnotation == "YES"
    assert sc_back.pixel_array.ndim == 3 and sc_back.pixel_array.shape[2] == 3  # the RGB overlay
    np.testing.assert_array_equal(sc_back.pixel_array, sc.pixel_array)


def _walk_values(ds: pydicom.Dataset):
    for elem in ds.iterall():
        if elem.VR in ("LO", "LT", "ST", "UT", "SH", "CS", "DS", "UC") and elem.value not in (None, ""):
            yield elem.value
        if elem.VR == "SQ":
            for item in elem.value:
                for name in ("CodeMeaning",):
                    if name in item:
                        yield item.get(name)


def test_store_refuses_a_dataset_without_uids(client: PacsClient) -> None:
    with pytest.raises(PacsError, match="no SOP Class") as e:
        client.store([pydicom.Dataset()])
    assert e.value.kind == "invalid"
