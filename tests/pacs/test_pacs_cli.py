"""``radlens-batch --dicomweb``: retrieve from a real Orthanc, analyse with the bundled model,
the same CSV as for the same files in a folder, results stored back, and a clear exit status and
message for each failure."""

from __future__ import annotations

import csv
import json
import shutil
from pathlib import Path

import pydicom
import pytest
from conftest import AUTH_USERS, Orthanc, PacsData, free_port  # tests/pacs/conftest.py

from engine.ai.card import DISCLAIMER
from engine.batch.cli import main
from engine.pacs.dicomweb import PacsClient


def _rows(path: Path) -> list[dict[str, str]]:
    with open(path, newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f))


def test_study_from_pacs_gives_the_same_csv_as_the_files_in_a_folder(
        orthanc: Orthanc, pacs_data: PacsData, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    multi = pacs_data.studies["multi"]
    cache, out = tmp_path / "cache", tmp_path / "pacs.csv"
    code = main(["--dicomweb", orthanc.dicomweb, "--study", multi.study_uid, "-o", str(out), "--cache", str(cache),
                 "--no-progress", "--device", "cpu"])
    text = capsys.readouterr().out
    assert "Retrieved 5 instance(s) of 1 study(ies)" in text and "MB/s" in text
    folder = tmp_path / "folder" / multi.study_uid  # the uploaded files, laid out as the cache is
    folder.mkdir(parents=True)
    for f in multi.files:
        shutil.copy(f, folder / f.name)
    assert main([str(folder.parent), "-o", str(tmp_path / "folder.csv"), "--no-progress", "--device", "cpu"]) == code
    pacs_rows, folder_rows = _rows(out), _rows(tmp_path / "folder.csv")
    assert len(pacs_rows) == 5
    assert pacs_rows == folder_rows
    assert {r["file"] for r in pacs_rows} == {f"{multi.study_uid}/{f.name}" for f in multi.files}
    assert all(r["notice"] == DISCLAIMER for r in pacs_rows)
    assert sum(r["status"] == "ok" for r in pacs_rows) >= 2  # the chest films get a call
    run = json.loads((tmp_path / "pacs.json").read_text())["options"]
    assert run["dicomweb"] == orthanc.dicomweb and run["studies"] == [multi.study_uid]
    assert run["folder"] == str(cache.resolve()) and run["retrieve_failures"] == []
    assert run["retrieve_bytes"] == sum(p.stat().st_size for p in (cache / multi.study_uid).iterdir())


def test_query_store_results_and_results_are_not_analysed_again(
        orthanc: Orthanc, pacs_data: PacsData, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    study = pacs_data.studies["clistow"]
    args = ["--dicomweb", orthanc.dicomweb, "--query", f"AccessionNumber={study.accession}",
            "--query", "Modality=DX", "--cache", str(tmp_path / "cache"), "--no-progress", "--device", "cpu"]
    assert main([*args, "-o", str(tmp_path / "a.csv"), "--store-results"]) == 0
    text = capsys.readouterr().out
    assert "1 study(ies) match" in text and "Stored 2 of 2 result instance(s)" in text
    with PacsClient(orthanc.server()) as c:
        (found,) = c.search_studies(accession=study.accession)
        assert found.n_instances == 3 and {"SR", "OT"} <= set(found.modalities) | {"OT"}
        back = c.retrieve(study.study_uid, tmp_path / "check")
    sr = next(pydicom.dcmread(p) for p in back.paths if pydicom.dcmread(p, stop_before_pixels=True).Modality == "SR")
    assert sr.VerificationFlag == "UNVERIFIED" and DISCLAIMER.lower() in str(sr).lower()
    # the second run finds the SR and the secondary capture RadLens stored, and does not analyse them
    assert main([*args, "-o", str(tmp_path / "b.csv")]) == 0
    assert "2 are not images or are RadLens results" in capsys.readouterr().out
    assert [r["file"] for r in _rows(tmp_path / "b.csv")] == [r["file"] for r in _rows(tmp_path / "a.csv")]


def test_basic_auth_secret_from_the_environment(orthanc_auth: Orthanc, pacs_data: PacsData, tmp_path: Path,
                                                monkeypatch: pytest.MonkeyPatch,
                                                capsys: pytest.CaptureFixture[str]) -> None:
    base = ["--dicomweb", orthanc_auth.dicomweb, "--study", pacs_data.studies["stow"].study_uid,
            "--auth", "basic", "--user", "radlens", "-o", str(tmp_path / "r.csv"), "--cache", str(tmp_path),
            "--no-progress", "--device", "cpu"]
    monkeypatch.delenv("RADLENS_PACS_SECRET", raising=False)
    assert main(base) == 2  # no terminal to ask in, no keyring entry
    assert "set RADLENS_PACS_SECRET" in capsys.readouterr().err
    monkeypatch.setenv("RADLENS_PACS_SECRET", "wrong")
    assert main(base) == 2
    assert "refused the credentials" in capsys.readouterr().err
    monkeypatch.setenv("RADLENS_PACS_SECRET", AUTH_USERS["radlens"])
    assert main(base) in (0, 1)
    assert len(_rows(tmp_path / "r.csv")) >= 1


@pytest.mark.parametrize("argv, words", [
    (["--study", "1.2.3"], "need(s) --dicomweb"),
    (["somefolder", "--dicomweb", "http://h/dicom-web", "--study", "1.2.3"], "not both"),
    (["--dicomweb", "http://h/dicom-web"], "--study UID or --query"),
    (["--dicomweb", "http://h/dicom-web", "--query", "Colour=blue"], "KEY=VALUE with KEY one of"),
    (["--dicomweb", "ftp://h/dicom-web", "--study", "1.2.3"], "not an http"),
    (["--dicomweb", "http://h/dicom-web", "--study", "not-a-uid"], "not a DICOM UID"),
    ([], "give a FOLDER"),
    (["--dicomweb", "http://dr.who:s3cret-pw@h/dicom-web", "--study", "1.2.3"], "--auth basic --user"),
])
def test_bad_arguments_exit_2_with_a_message(argv: list[str], words: str, tmp_path: Path,
                                             capsys: pytest.CaptureFixture[str]) -> None:
    assert main([*argv, "-o", str(tmp_path / "r.csv"), "--cache", str(tmp_path)]) == 2
    captured = capsys.readouterr()
    assert words in captured.err and "s3cret-pw" not in captured.err + captured.out
    assert not (tmp_path / "r.csv").exists()


def test_pacs_failures_exit_2_and_say_why(orthanc: Orthanc, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "r.csv"
    down = ["--dicomweb", f"http://127.0.0.1:{free_port()}/dicom-web", "--study", "1.2.3", "-o", str(out),
            "--cache", str(tmp_path), "--no-progress"]
    assert main(down) == 2
    assert "Cannot reach" in capsys.readouterr().err
    unknown = ["--dicomweb", orthanc.dicomweb, "--study", "1.2.826.0.1.3680043.8.498.2", "-o", str(out),
               "--cache", str(tmp_path), "--no-progress"]
    assert main(unknown) == 2
    err = capsys.readouterr().err
    assert "has no study 1.2.826.0.1.3680043.8.498.2" in err and "every retrieve failed" in err
    nothing = ["--dicomweb", orthanc.dicomweb, "--query", "PatientID=NOBODY", "-o", str(out), "--cache",
               str(tmp_path), "--no-progress"]
    assert main(nothing) == 2
    assert "no study on" in capsys.readouterr().err
    assert not out.exists()
