"""``radlens-batch`` called in-process through ``main([...])``, and ``python -m engine``."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from engine.batch.cli import main
from engine.batch.report import read_report

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def folder(tmp_path_factory: pytest.TempPathFactory, cxr_samples: dict[str, list[Path]], dicom_dir: Path,
           undecodable_dicom: Path) -> Path:
    root = tmp_path_factory.mktemp("cliin")
    for label, paths in cxr_samples.items():
        for i, p in enumerate(paths[:2]):
            shutil.copy(p, root / f"{label}{i}.jpg")
    shutil.copy(dicom_dir / "CR-MONO1-10-chest.dcm", root / "chest.dcm")
    shutil.copy(undecodable_dicom, root / "jply.dcm")  # no decoder reads it: an error row
    (root / "empty.png").write_bytes(b"")
    return root


def test_batch_run(tmp_path: Path, folder: Path, tiny_model_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "report.csv"
    code = main([str(folder), "-o", str(out), "--model", str(tiny_model_path), "--batch-size", "3"])
    captured = capsys.readouterr()
    assert code == 1  # some files could not be analysed: the report is written, the status says so
    meta, table = read_report(out)
    assert meta["notice"] == "Research use only, not for diagnosis" and meta["model"]["name"] == "tiny-test-cnn"
    assert meta["counts"]["files"] == 11 and meta["counts"]["errors"] == 2 and meta["options"]["batch_size"] == 3
    assert out.read_text(encoding="utf-8").startswith("file,status,error,scope,scope_reason,call,flags,")
    assert len(table) == 11
    statuses = [r["status"] for r in table]
    assert statuses.count("error") == 2 and statuses.count("ok") == 9
    s = captured.out
    assert "Processed 11 of 11 file(s)" in s and "9 analysed, 0 out of scope, 2 error(s)" in s
    assert "Calls per class" in s
    counts = {lab: int(n) for lab, n in re.findall(r"^\s+(normal|covid|pneumonia|tuberculosis)\s+(\d+)", s, re.M)}
    assert sum(counts.values()) == 9
    predicted = [r["call"] for r in table if r["status"] == "ok"]
    assert counts == {lab: predicted.count(lab) for lab in ("normal", "covid", "pneumonia", "tuberculosis")}
    assert "jply.dcm: unsupported compression" in s and "empty.png: the file is empty" in s
    assert "Device: CPU" in s or "Device: CUDA" in s
    assert "Provider:" not in s  # the device and any fallback reason are printed once
    assert s.rstrip().endswith("Research use only, not for diagnosis.")
    assert re.search(r"11/11 \[[0-9:]+<[0-9:]+, +[0-9.]+img/s\]", captured.err)  # progress bar: rate and ETA
    assert "patient_id" not in table[0]


def test_include_identifiers(tmp_path: Path, folder: Path, tiny_model_path: Path) -> None:
    out = tmp_path / "ids.csv"
    assert main([str(folder), "-o", str(out), "--model", str(tiny_model_path), "--include-identifiers",
                 "--device", "cpu", "--no-progress"]) == 1  # jply.dcm and empty.png fail
    table = read_report(out)[1]
    chest = next(r for r in table if r["file"] == "chest.dcm")
    assert "patient_id" in chest and chest["study_instance_uid"]


def test_no_model(tmp_path: Path, folder: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    missing = tmp_path / "models" / "radlens-cxr4.onnx"
    monkeypatch.setenv("RADLENS_MODEL", str(missing))  # the default model path, made to be absent
    assert main([str(folder), "-o", str(tmp_path / "r.csv")]) == 2
    err = capsys.readouterr().err
    assert f"no model found at {missing}" in err and "pass --model" in err
    assert not (tmp_path / "r.csv").exists()


def test_refused_model(tmp_path: Path, folder: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "bad.onnx"
    bad.write_text("not onnx")
    assert main([str(folder), "-o", str(tmp_path / "r.csv"), "--model", str(bad)]) == 2
    assert "bad.onnx is not a loadable ONNX model" in capsys.readouterr().err


def test_missing_folder(tmp_path: Path, tiny_model_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main([str(tmp_path / "nowhere"), "-o", str(tmp_path / "r.csv"), "--model", str(tiny_model_path)]) == 2
    assert "folder not found" in capsys.readouterr().err


def test_empty_folder(tmp_path: Path, tiny_model_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "empty").mkdir()
    assert main([str(tmp_path / "empty"), "-o", str(tmp_path / "r.csv"), "--model", str(tiny_model_path)]) == 2
    assert "no image files in" in capsys.readouterr().err
    assert not (tmp_path / "r.csv").exists()


def test_missing_output_folder(tmp_path: Path, folder: Path, tiny_model_path: Path,
                               capsys: pytest.CaptureFixture[str]) -> None:
    assert main([str(folder), "-o", str(tmp_path / "no" / "r.csv"), "--model", str(tiny_model_path)]) == 2
    assert "folder for the report does not exist" in capsys.readouterr().err


def test_exit_status_when_files_fail(tmp_path: Path, tiny_model_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Some files failing is exit 1 with the report written, distinct from 0 (all analysed),
    2 (nothing could run) and 3 (no report)."""
    (tmp_path / "in").mkdir()
    (tmp_path / "in" / "a.dcm").write_text("text")
    out = tmp_path / "r.csv"
    assert main([str(tmp_path / "in"), "-o", str(out), "--model", str(tiny_model_path), "--no-progress"]) == 1
    assert read_report(out)[1][0]["status"] == "error"
    assert "0 analysed, 0 out of scope, 1 error(s)" in capsys.readouterr().out


def test_bad_arguments(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        main(["folder"])  # -o is required
    assert info.value.code == 2
    assert "-o" in capsys.readouterr().err


def test_python_dash_m_engine(tmp_path: Path, folder: Path) -> None:
    env = dict(os.environ, PYTHONPATH=str(REPO))
    help_ = subprocess.run([sys.executable, "-m", "engine", "--help"], capture_output=True, text=True, env=env,
                           cwd=tmp_path, timeout=120)
    assert help_.returncode == 0 and "radlens-batch" in help_.stdout and "--include-identifiers" in help_.stdout
    assert "exit status:" in help_.stdout and "some files could not be analysed" in help_.stdout
    run = subprocess.run([sys.executable, "-m", "engine", str(folder), "-o", str(tmp_path / "r.csv"), "--model",
                          str(tmp_path / "none.onnx")], capture_output=True, text=True, env=env, cwd=tmp_path, timeout=120)
    assert run.returncode == 2 and "no model found at" in run.stderr


def test_report_inside_the_folder_is_not_analysed(tmp_path: Path, cxr_samples: dict[str, list[Path]],
                                                  tiny_model_path: Path) -> None:
    shutil.copy(cxr_samples["normal"][0], tmp_path / "a.jpg")
    out = tmp_path / "report.csv"
    for _ in range(2):  # the second run finds the first run's report in the folder
        assert main([str(tmp_path), "-o", str(out), "--model", str(tiny_model_path), "--no-progress"]) == 0
    assert [r["file"] for r in read_report(out)[1]] == ["a.jpg"]


def test_model_with_a_malformed_card(tmp_path: Path, folder: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A card with a non-numeric operating point: exit 2 with a message naming the field
    (before: a ValueError traceback out of main)."""
    from tinymodel import build_tiny_model, tiny_card

    bad = build_tiny_model(tmp_path / "badcard.onnx", card=tiny_card(operating_points={"normal": "high"}))
    assert main([str(folder), "-o", str(tmp_path / "r.csv"), "--model", str(bad), "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert "operating_points" in err and "Pass --model PATH" in err
    assert not (tmp_path / "r.csv").exists()


def test_model_file_name_not_utf8(tmp_path: Path, folder: Path, tiny_model_path: Path,
                                  capsys: pytest.CaptureFixture[str]) -> None:
    """A model whose file name is not valid UTF-8 loads, and its name prints as escapes
    (before: onnxruntime refused the path, and the name would have crashed the print)."""
    raw = os.path.join(os.fsencode(tmp_path), b"model\xff.onnx")
    try:
        shutil.copyfile(os.fsencode(tiny_model_path), raw)
    except (OSError, UnicodeError):
        pytest.skip("this file system does not accept non-UTF-8 file names")
    out = tmp_path / "r.csv"
    assert main([str(folder), "-o", str(out), "--model", os.fsdecode(raw), "--no-progress"]) == 1  # 2 bad files
    text = capsys.readouterr().out
    assert "(model\\xff.onnx, sha256 " in text
    text.encode("utf-8")  # no lone surrogates reached the output
    assert out.exists()


def test_list_file_naming_a_folder_says_so(tmp_path: Path, folder: Path, tiny_model_path: Path) -> None:
    """A list file line that names a (readable) folder: its row says it is a folder, not 'permission denied'."""
    lst = tmp_path / "files.txt"
    lst.write_text(f"{folder / 'chest.dcm'}\n{folder}\n", encoding="utf-8")
    out = tmp_path / "r.csv"
    assert main([f"@{lst}", "-o", str(out), "--model", str(tiny_model_path), "--no-progress"]) == 1
    rows = read_report(out)[1]
    assert [r["status"] for r in rows] == ["ok", "error"]
    assert "permission denied" not in rows[1]["error"] and "is a folder" in rows[1]["error"]
