"""CSV reports: content, identifiers only on request, atomic writing."""

from __future__ import annotations

import os
import shutil
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest

from engine.batch import BatchRow, analyze_folder
from engine.batch.report import (
    IDENTIFIER_COLUMNS,
    ModelInfo,
    ReportError,
    read_report,
    report_columns,
    write_report,
)
from engine.io.image import Identifiers

LABELS = ("normal", "covid", "pneumonia", "tuberculosis")


@pytest.fixture(scope="module")
def folder(tmp_path_factory: pytest.TempPathFactory, cxr_samples: dict[str, list[Path]], dicom_dir: Path,
           undecodable_dicom: Path) -> Path:
    root = tmp_path_factory.mktemp("reportin")
    shutil.copy(cxr_samples["normal"][0], root / "a.jpg")
    shutil.copy(dicom_dir / "RG3_JPLL.dcm", root / "b.dcm")
    shutil.copy(undecodable_dicom, root / "c_bad.dcm")  # no decoder reads it: an error row
    (root / "sub").mkdir()
    shutil.copy(cxr_samples["tuberculosis"][0], root / "sub" / "d.jpg")
    return root


@pytest.fixture(scope="module")
def rows(folder: Path, classifier) -> list[BatchRow]:
    return list(analyze_folder(folder, classifier))


def test_columns() -> None:
    assert report_columns(LABELS) == [
        "file", "status", "error", "scope", "scope_reason", "call", "flags", "prob_normal", "prob_covid", "prob_pneumonia",
        "prob_tuberculosis", "ood_score",
        "model_name", "model_version", "model_sha256", "width", "height", "modality", "view_position", "notice"]
    with_ids = report_columns(LABELS, include_identifiers=True)
    assert with_ids[-len(IDENTIFIER_COLUMNS) - 1:-1] == list(IDENTIFIER_COLUMNS) and with_ids[-1] == "notice"
    assert {"patient_id", "patient_name", "study_instance_uid", "accession_number", "study_date"} <= set(with_ids)


def test_report_content(tmp_path: Path, rows: list[BatchRow], classifier) -> None:
    out = tmp_path / "report.csv"
    assert write_report(out, rows, classifier) == 4
    meta, table = read_report(out)
    assert out.read_text(encoding="utf-8").splitlines()[0] == ",".join(report_columns(classifier.labels))
    assert meta["notice"] == "Research use only, not for diagnosis" and meta["report"] == "report.csv"
    assert meta["model"]["sha256"] == classifier.sha256 and meta["model"]["name"] == "tiny-test-cnn"
    assert meta["counts"] == {"files": 4, "analysed": 2, "out_of_scope": 1, "errors": 1,
                              "calls": {lab: sum(r.ok and r.label == lab for r in rows) for lab in classifier.labels},
                              "flags": {lab: sum(r.ok and lab in r.flags for r in rows) for lab in classifier.labels}}
    assert list(table[0]) == report_columns(classifier.labels)
    assert [r["file"] for r in table] == ["a.jpg", "b.dcm", "c_bad.dcm", "sub/d.jpg"]
    for src, line in zip(rows, table, strict=True):
        assert line["status"] == src.status and line["error"] == src.error
        assert (line["model_name"], line["model_version"], line["model_sha256"]) == ("tiny-test-cnn", "0.0.1", classifier.sha256)
        assert line["notice"] == "Research use only, not for diagnosis"
        if src.ok:
            assert line["call"] == src.label
            probs = {lab: float(line[f"prob_{lab}"]) for lab in classifier.labels}
            assert probs == pytest.approx(src.probs, abs=1e-6)
            assert max(probs, key=probs.get) == line["call"]
            ops = classifier.card.operating_points
            assert set(filter(None, line["flags"].split(";"))) == {lab for lab in ops if probs[lab] >= ops[lab]}
            assert line["scope"] == "in" and line["scope_reason"] == ""
        elif src.out_of_scope:  # RG3_JPLL.dcm: an extremity radiograph; no call, no probabilities
            assert line["scope"] == "out" and "body part is extremity" in line["scope_reason"]
            assert line["call"] == line["flags"] == "" and all(line[f"prob_{lab}"] == "" for lab in classifier.labels)
            assert (int(line["width"]), int(line["height"])) == (src.width, src.height)
            assert (int(line["width"]), int(line["height"])) == (src.width, src.height)
        else:
            assert line["call"] == line["flags"] == "" and all(line[f"prob_{lab}"] == "" for lab in classifier.labels)
            assert "unsupported compression" in line["error"]
    b = table[1]
    assert (b["modality"], b["view_position"], b["width"], b["height"]) == ("CR", "AP", "1760", "1760")
    assert stat.S_IMODE(out.stat().st_mode) == 0o644


def test_identifiers_only_with_the_option(tmp_path: Path, rows: list[BatchRow], classifier) -> None:
    dcm = next(r for r in rows if r.rel_path == "b.dcm")
    uid = dcm.identifiers.study_instance_uid
    assert uid  # the DICOM has identifiers to leave out
    plain, full = tmp_path / "plain.csv", tmp_path / "full.csv"
    write_report(plain, rows, classifier)
    write_report(full, rows, classifier, include_identifiers=True)
    assert uid not in plain.read_text(encoding="utf-8")
    assert not set(IDENTIFIER_COLUMNS) & set(read_report(plain)[1][0])
    line = read_report(full)[1][1]
    for key, value in dcm.identifiers.as_dict().items():
        assert line[key] == value
    assert read_report(full)[1][0]["study_instance_uid"] == ""  # a PNG/JPEG has none


def _boom_after(rows: list[BatchRow], n: int, exc: BaseException) -> Iterator[BatchRow]:
    yield from rows[:n]
    raise exc


@pytest.mark.parametrize("exc", [RuntimeError("disk on fire"), KeyboardInterrupt()])
def test_failure_mid_write_leaves_nothing(tmp_path: Path, rows: list[BatchRow], classifier,
                                          exc: BaseException) -> None:
    out = tmp_path / "report.csv"
    with pytest.raises(type(exc)):
        write_report(out, _boom_after(rows, 2, exc), classifier)
    assert not out.exists()
    assert os.listdir(tmp_path) == []  # no temp file left either


def test_failure_keeps_the_previous_report(tmp_path: Path, rows: list[BatchRow], classifier) -> None:
    out = tmp_path / "report.csv"
    write_report(out, rows, classifier)
    before = out.read_bytes()
    with pytest.raises(RuntimeError):
        write_report(out, _boom_after(rows, 1, RuntimeError("crash")), classifier)
    assert out.read_bytes() == before and sorted(os.listdir(tmp_path)) == ["report.csv", "report.json"]


def test_temp_file_is_beside_the_target_until_done(tmp_path: Path, rows: list[BatchRow], classifier) -> None:
    out = tmp_path / "report.csv"
    seen: list[list[str]] = []

    def watching() -> Iterator[BatchRow]:
        for r in rows:
            seen.append(sorted(os.listdir(tmp_path)))
            yield r

    write_report(out, watching(), classifier)
    assert all(len(s) == 1 and s[0].startswith(".report.csv.") and s[0].endswith(".tmp") for s in seen)
    assert sorted(os.listdir(tmp_path)) == ["report.csv", "report.json"]


def test_missing_folder(tmp_path: Path, rows: list[BatchRow], classifier) -> None:
    with pytest.raises(ReportError, match="does not exist"):
        write_report(tmp_path / "no" / "r.csv", rows, classifier)


def test_awkward_text_round_trips(tmp_path: Path) -> None:
    info = ModelInfo(name="m", version="1", sha256="ab" * 32, labels=("x", "y"))
    odd = BatchRow(index=0, total=2, path="/p/a,b.png", rel_path='a,"b".png', status="error",
                   error='line one, "quoted"\nline two')
    ok = BatchRow(index=1, total=2, path="/p/é.png", rel_path="é.png", status="ok", label="y",
                  probs={"x": 0.25, "y": 0.75}, width=10, height=20, identifiers=Identifiers(patient_name="Müller^Zoë"))
    out = tmp_path / "r.csv"
    write_report(out, [odd, ok], info, include_identifiers=True)
    _, table = read_report(out)
    assert table[0]["file"] == 'a,"b".png' and table[0]["error"] == 'line one, "quoted"\nline two'
    assert table[1]["file"] == "é.png" and table[1]["patient_name"] == "Müller^Zoë"
    assert (table[1]["prob_x"], table[1]["prob_y"]) == ("0.25", "0.75")


def test_model_info_from_classifier(classifier) -> None:
    info = ModelInfo.from_classifier(classifier)
    assert (info.name, info.version, info.sha256, info.labels) == ("tiny-test-cnn", "0.0.1", classifier.sha256,
                                                                   classifier.labels)
    assert info.operating_points == classifier.card.operating_points
    assert info.decision_rule.startswith("the call is the top class")


@pytest.fixture
def umask():
    """Set the process umask for one test, then put the old one back."""
    old = os.umask(0o022)
    os.umask(old)

    def set_umask(mask: int) -> None:
        os.umask(mask)

    yield set_umask
    os.umask(old)


@pytest.mark.skipif(os.name == "nt", reason="POSIX permissions")
@pytest.mark.parametrize("mask, expected", [(0o022, 0o644), (0o027, 0o640), (0o077, 0o600), (0o002, 0o664)])
def test_report_permissions_follow_the_umask(tmp_path: Path, rows: list[BatchRow], classifier, umask,
                                             mask: int, expected: int) -> None:
    umask(mask)
    out = tmp_path / "report.csv"
    write_report(out, rows, classifier)
    assert stat.S_IMODE(out.stat().st_mode) == expected


@pytest.mark.skipif(os.name == "nt", reason="POSIX permissions")
@pytest.mark.parametrize("mask", [0o022, 0o002, 0o000])
def test_report_with_identifiers_is_private(tmp_path: Path, rows: list[BatchRow], classifier, umask,
                                            mask: int) -> None:
    """Patient identifiers: readable by the owner only, whatever the umask."""
    umask(mask)
    out = tmp_path / "report.csv"
    out.write_text("old report\n")
    out.chmod(0o644)  # replacing a shared report does not keep its permissions
    write_report(out, rows, classifier, include_identifiers=True)
    assert stat.S_IMODE(out.stat().st_mode) == 0o600


def test_readers_take_the_header_and_types(tmp_path: Path, rows: list[BatchRow], classifier) -> None:
    """The first line is the header: csv.DictReader and pandas read every column back, typed."""
    import csv

    pd = pytest.importorskip("pandas")
    out = tmp_path / "report.csv"
    write_report(out, rows, classifier, include_identifiers=True)
    with open(out, newline="", encoding="utf-8") as f:
        dict_rows = list(csv.DictReader(f))
    cols = report_columns(classifier.labels, include_identifiers=True)
    assert len(dict_rows) == 4 and all(list(r) == cols for r in dict_rows)
    df = pd.read_csv(out)
    assert list(df.columns) == cols and len(df) == 4
    for lab in classifier.labels:
        assert pd.api.types.is_float_dtype(df[f"prob_{lab}"])
    assert pd.api.types.is_numeric_dtype(df["width"]) and pd.api.types.is_numeric_dtype(df["height"])
    ok = df[df["status"] == "ok"]
    assert ok["width"].notna().all() and (ok[[f"prob_{lab}" for lab in classifier.labels]].sum(axis=1) - 1).abs().max() < 1e-4
    assert set(df["status"]) == {"ok", "out_of_scope", "error"} and set(ok["call"]) <= set(classifier.labels)
    assert (df["notice"] == "Research use only, not for diagnosis").all()
    bad = df[df["status"] == "error"].iloc[0]
    assert pd.isna(bad["call"]) and pd.isna(bad[f"prob_{classifier.labels[0]}"])


def test_sidecar_records_the_lung_model(tmp_path: Path, rows: list[BatchRow], classifier) -> None:
    out = tmp_path / "r.csv"
    write_report(out, rows, classifier)
    meta, _ = read_report(out)
    seg = classifier.lung_segmenter
    if seg is None:
        pytest.skip("no lung model installed")
    assert meta["model"]["card"]["lung_model"]["lung_model_sha256"] == seg.sha256
