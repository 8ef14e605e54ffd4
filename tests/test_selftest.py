"""``RadLens --self-test`` (desktop.selftest) in-process, on the tiny test model with a
temporary expected.json; and the shipped expected.json against the bundled model."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

pytest.importorskip("PySide6")
os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

from desktop import selftest  # noqa: E402

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def expected(tiny_model_path: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("golden") / "expected.json"
    selftest.write_expected(str(tiny_model_path), out)
    return out


def _run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str]:
    rc = selftest.run_self_test(["--self-test", *argv])
    return rc, capsys.readouterr().out


def test_write_expected_records_model_golden_and_dicom(expected: Path, tiny_model_path: Path) -> None:
    data = json.loads(expected.read_text())
    assert data["model"]["model_name"] == "tiny-test-cnn"
    g = data["golden"]
    assert set(g["probs"]) == {"normal", "covid", "pneumonia", "tuberculosis"}
    assert abs(sum(g["probs"].values()) - 1.0) < 1e-5
    assert g["label"] == max(g["probs"], key=g["probs"].get)
    assert g["heatmap"]["shape"] == [224, 224] and g["heatmap"]["max"] == pytest.approx(1.0)
    assert {d["file"] for d in data["dicom"]} == set(selftest.DICOM_FILES)
    assert all("pylibjpeg" in d["plugins"] for d in data["dicom"])


def test_self_test_passes(capsys: pytest.CaptureFixture[str], expected: Path, tiny_model_path: Path,
                          tmp_path: Path) -> None:
    report = tmp_path / "report.txt"
    rc, out = _run(capsys, "--model", str(tiny_model_path), "--expected", str(expected), "--report", str(report))
    assert rc == 0, out
    assert "FAIL" not in out
    for name in ("model", "execution provider", "golden probabilities", "golden heatmap", "DICOM JPEG2000.dcm",
                 "DICOM MR_small_jpeg_ls_lossless.dcm", "DICOM MR_small_RLE.dcm", "Qt"):
        assert f"PASS {name}:" in out
    assert "CPUExecutionProvider" in out or "CUDAExecutionProvider" in out
    assert out.rstrip().splitlines()[-1].startswith("SELF-TEST PASSED")
    assert report.read_text() == out


def test_self_test_fails_on_wrong_probabilities(capsys: pytest.CaptureFixture[str], expected: Path,
                                               tiny_model_path: Path, tmp_path: Path) -> None:
    data = json.loads(expected.read_text())
    lab = data["golden"]["label"]
    data["golden"]["probs"][lab] += 0.01  # beyond the 1e-3 tolerance
    bad = tmp_path / "expected.json"
    bad.write_text(json.dumps(data))
    rc, out = _run(capsys, "--model", str(tiny_model_path), "--expected", str(bad))
    assert rc == 1
    assert "FAIL golden probabilities:" in out and "SELF-TEST FAILED" in out


def test_self_test_fails_on_moved_heatmap(capsys: pytest.CaptureFixture[str], expected: Path,
                                         tiny_model_path: Path, tmp_path: Path) -> None:
    data = json.loads(expected.read_text())
    cy, cx = data["golden"]["heatmap"]["centroid"]
    data["golden"]["heatmap"]["centroid"] = [1.0 - cy + 0.2, cx]
    bad = tmp_path / "expected.json"
    bad.write_text(json.dumps(data))
    rc, out = _run(capsys, "--model", str(tiny_model_path), "--expected", str(bad))
    assert rc == 1 and "FAIL golden heatmap:" in out


def test_self_test_names_a_model_that_does_not_match(capsys: pytest.CaptureFixture[str], expected: Path,
                                                    tmp_path: Path) -> None:
    import sys

    sys.path.insert(0, str(REPO / "tests"))
    from tinymodel import build_tiny_model

    other = build_tiny_model(tmp_path / "other.onnx", seed=7)
    rc, out = _run(capsys, "--model", str(other), "--expected", str(expected))
    assert rc == 1
    assert "FAIL model:" in out and "--write-expected" in out


def test_missing_model_fails_cleanly(capsys: pytest.CaptureFixture[str], expected: Path, tmp_path: Path) -> None:
    rc, out = _run(capsys, "--model", str(tmp_path / "absent.onnx"), "--expected", str(expected))
    assert rc == 1
    assert "FAIL model:" in out and "not found" in out
    assert "PASS Qt:" in out  # the other checks still run


def test_shipped_expected_matches_bundled_model(capsys: pytest.CaptureFixture[str],
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    """resources/golden/expected.json must be regenerated whenever the default model changes."""
    monkeypatch.delenv("RADLENS_MODEL", raising=False)
    if not list((REPO / "resources" / "models").glob("*.onnx")):
        pytest.skip("no bundled model in resources/models/")
    rc, out = _run(capsys)
    assert rc == 0, out
