"""Issue 24, ``radlens-batch``: item 3 (no patient identifier reaches stderr or a log while the
DICOM results are built, unless asked for), item 10 (every argument is checked before the model
loads; the closing summary uses "analysed" as the report's JSON does)."""

from __future__ import annotations

import json
import logging
import re
import shutil
import subprocess
import sys
import warnings
from pathlib import Path

import pytest

import engine.batch.cli as cli
from engine.batch.cli import EXIT_NOTHING_RAN, main

REPO = Path(__file__).resolve().parents[2]

# the shared DICOM files' person names and IDs (PatientName, ReferringPhysicianName, PatientID)
SOURCES = ("RG1_J2KI.dcm", "nccid_nih_dx.dcm", "CR-MONO1-10-chest.dcm")
IDENTIFIERS = ("Covid0000", "CompressedSamples", "9RG1", "Anonymized")
PHYSICIAN = re.compile(r"\bward\b")  # RG1_J2KI.dcm's ReferringPhysicianName


def _leaks(text: str) -> list[str]:
    found = [s for s in IDENTIFIERS if s in text]
    return found + (["ward"] if PHYSICIAN.search(text) else [])


@pytest.fixture
def study(tmp_path: Path, dicom_dir: Path) -> Path:
    """DICOM files whose headers name a patient and a physician (highdicom warns about both)."""
    import pydicom

    folder = tmp_path / "study"
    folder.mkdir()
    for name in SOURCES:
        shutil.copyfile(dicom_dir / name, folder / name)
    names = {str(pydicom.dcmread(folder / n, stop_before_pixels=True, force=True).get(k, ""))
             for n in SOURCES for k in ("PatientName", "ReferringPhysicianName")}
    assert {"Covid0000", "ward", "CompressedSamples^RG1"} <= names  # what the assertions look for
    return folder


# -- item 3: identifiers -------------------------------------------------------------------------
def test_dicom_results_put_no_identifier_on_stderr_or_in_logs(study: Path, tmp_path: Path, tiny_model_path: Path,
                                                              capsys: pytest.CaptureFixture[str],
                                                              caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    out_dir = tmp_path / "results"
    with warnings.catch_warnings(record=True) as caught:  # what would reach stderr outside pytest
        warnings.simplefilter("always")
        code = main([str(study), "-o", str(tmp_path / "r.csv"), "--dicom-results", str(out_dir), "--no-progress",
                     "--device", "cpu", "--model", str(tiny_model_path)])
    captured = capsys.readouterr()
    assert code in (0, 1), captured.err
    assert len(list(out_dir.glob("*.dcm"))) >= 4  # the SR/SC were built (and warned about) for these files
    assert _leaks(captured.err) == [] and _leaks(captured.out) == []
    assert _leaks("\n".join(str(w.message) for w in caught)) == []
    assert _leaks("\n".join(r.getMessage() for r in caplog.records)) == []
    # the warnings are replaced by a generic line, without their text
    assert any("text withheld" in r.getMessage() and "highdicom" in r.getMessage() for r in caplog.records)


def test_radlens_batch_stderr_names_no_patient(study: Path, tmp_path: Path, tiny_model_path: Path) -> None:
    """As a user runs it: ``python -m engine.batch.cli`` (``radlens-batch``), Python's default warning display."""
    r = subprocess.run([sys.executable, "-m", "engine.batch.cli", str(study), "-o", str(tmp_path / "r.csv"),
                        "--dicom-results", str(tmp_path / "results"), "--no-progress", "--device", "cpu",
                        "--model", str(tiny_model_path)], cwd=REPO, capture_output=True, text=True, timeout=300)
    assert r.returncode in (0, 1), r.stderr
    assert "DICOM results:" in r.stdout
    assert _leaks(r.stderr) == [] and _leaks(r.stdout) == [], r.stderr
    assert "UserWarning" not in r.stderr


def test_withheld_warnings_keep_the_warning_filters(tmp_path: Path) -> None:
    from engine.results.dicom_results import withheld_warnings

    before = list(warnings.filters)
    with withheld_warnings():
        warnings.warn('The string "Covid0000" is unlikely to represent the intended person name', UserWarning,
                      stacklevel=1)
    assert warnings.filters == before


# -- item 10: arguments before the model ------------------------------------------------------------
@pytest.fixture
def no_model_load(monkeypatch: pytest.MonkeyPatch) -> list[object]:
    """Loading the model fails the test: these runs must stop before it."""
    loads: list[object] = []

    def refuse(*a: object, **k: object) -> None:
        loads.append(a)
        raise AssertionError("the model was loaded before the arguments were checked")

    monkeypatch.setattr(cli, "Classifier", refuse)
    return loads


@pytest.mark.parametrize(("make_args", "words"), [
    (lambda t, m: [str(t / "nowhere"), "-o", str(t / "r.csv")], "nowhere"),
    (lambda t, m: [f"@{t / 'missing.txt'}", "-o", str(t / "r.csv")], "list file not found"),
    (lambda t, m: [str(t / "empty"), "-o", str(t / "r.csv")], "no image files"),
    (lambda t, m: [str(t / "in"), "-o", str(t)], "-o names a folder"),
    (lambda t, m: [str(t / "in"), "-o", str(t / "in")], "-o names a folder"),
    (lambda t, m: [str(t / "in"), "-o", str(t / "no" / "r.csv")], "does not exist"),
    (lambda t, m: [str(t / "in"), "-o", str(t / "r.csv"), "--dicom-results", str(t / "file" / "sub")], "is a file"),
    (lambda t, m: [str(t / "in"), "-o", str(t / "r.csv"), "--dicom-results", str(t / "file")], "is a file"),
    (lambda t, m: [str(t / "in"), "-o", str(t / "r.csv"), "--chunk", "0", "--dask", "local:1"], "--chunk"),
    (lambda t, m: [str(t / "in"), "-o", str(t / "r.csv"), "--dask", "local:0"], "local:N with N >= 1"),
    (lambda t, m: [str(t / "in"), "-o", str(t / "r.csv"), "--resume"], "belong to a distributed run"),
    (lambda t, m: [str(t / "in"), "-o", str(t / "r.csv"), "--workers", "-1"], "--workers"),
])
def test_arguments_are_checked_before_the_model_loads(make_args, words: str, tmp_path: Path, tiny_model_path: Path,
                                                      no_model_load: list[object],
                                                      capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "in").mkdir()
    (tmp_path / "in" / "a.png").write_bytes(b"not really")
    (tmp_path / "empty").mkdir()
    (tmp_path / "file").write_text("x")
    args = make_args(tmp_path, tiny_model_path)
    assert main([*args, "--model", str(tiny_model_path), "--no-progress"]) == EXIT_NOTHING_RAN
    captured = capsys.readouterr()
    assert words in captured.err and captured.err.startswith("radlens-batch: error: ")
    assert no_model_load == []
    assert not (tmp_path / "r.csv").exists() and not (tmp_path / "file" / "sub").exists()


def test_output_naming_a_folder_is_refused_at_once_not_after_the_run(tmp_path: Path, tiny_model_path: Path,
                                                                     cxr_samples: dict[str, list[Path]],
                                                                     capsys: pytest.CaptureFixture[str]) -> None:
    """With a usable model and folder, ``-o DIR`` was refused only after the whole analysis, with exit 3."""
    src = tmp_path / "in"
    src.mkdir()
    shutil.copy(cxr_samples["normal"][0], src / "a.jpg")
    out = tmp_path / "reports"
    out.mkdir()
    assert main([str(src), "-o", str(out), "--model", str(tiny_model_path), "--no-progress"]) == EXIT_NOTHING_RAN
    captured = capsys.readouterr()
    assert "-o names a folder" in captured.err and "report.csv" in captured.err
    assert "Processed" not in captured.out and "Model:" not in captured.out  # nothing ran
    assert list(out.iterdir()) == []


def test_summary_counts_use_the_words_of_the_json(tmp_path: Path, tiny_model_path: Path,
                                                  cxr_samples: dict[str, list[Path]], pydicom_file,
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    src = tmp_path / "in"
    src.mkdir()
    for i, p in enumerate(cxr_samples["normal"][:2]):
        shutil.copy(p, src / f"chest{i}.jpg")
    shutil.copy(pydicom_file("CT_small.dcm"), src / "ct.dcm")  # out of scope: a CT
    (src / "empty.png").write_bytes(b"")  # an error
    out = tmp_path / "r.csv"
    assert main([str(src), "-o", str(out), "--model", str(tiny_model_path), "--no-progress"]) == 1
    printed = capsys.readouterr().out
    counts = json.loads(out.with_suffix(".json").read_text(encoding="utf-8"))["counts"]
    assert (counts["files"], counts["analysed"], counts["out_of_scope"], counts["errors"]) == (4, 2, 1, 1)
    line = next(ln for ln in printed.splitlines() if ln.startswith("Processed "))
    assert line.startswith("Processed 4 of 4 file(s) in ")
    assert line.endswith(f": {counts['analysed']} analysed, {counts['out_of_scope']} out of scope, "
                         f"{counts['errors']} error(s).")
    assert "Analysed 4 of 4" not in printed  # "analysed" never counts out-of-scope or failed files
