"""The scope check: no verdict on what the model was not built for (engine.ai.scope and the
per-image job). Real DICOM files, real knee radiographs, generated cases."""

from __future__ import annotations

import shutil
from pathlib import Path

import cv2
import numpy as np
import pytest
import scopecases

from engine import analyze, load_image
from engine.ai.scope import IN_SCOPE, header_and_pixels, header_evidence, image_statistics, verdict
from engine.batch import analyze_folder


def _pydicom(name: str) -> Path:
    from pydicom.data import get_testdata_file

    p = get_testdata_file(name, download=False)
    if p is None:
        pytest.skip(f"{name} is not bundled with this pydicom")
    return Path(p)


@pytest.mark.parametrize("name, modality", [("CT_small.dcm", "CT"), ("MR_small.dcm", "MR"), ("JPEG2000.dcm", "NM"),
                                            ("examples_rgb_color.dcm", "US"), ("examples_palette.dcm", "US"),
                                            ("rtdose.dcm", "RTDOSE")])
def test_other_modalities_are_out_of_scope_with_no_call(classifier, name: str, modality: str) -> None:
    pred = analyze(_pydicom(name), classifier)
    assert not pred.in_scope and pred.scope.kind == "modality"
    assert f"DICOM modality {modality}" in pred.scope.reason and "chest radiographs only" in pred.scope.reason
    assert pred.call == "" and pred.flags == ()
    assert np.all(np.isfinite(pred.probs))  # still computed, for an explicit "show anyway"


@pytest.mark.parametrize("name, words", [("RG3_JPLL.dcm", "body part is extremity"), ("CR-ModalitySequenceLUT.dcm", "teeth")])
def test_dental_and_ankle_fixtures_are_out_of_scope(classifier, dicom_dir: Path, name: str, words: str) -> None:
    pred = analyze(dicom_dir / name, classifier)
    assert not pred.in_scope and pred.scope.kind == "body_part" and words in pred.scope.reason
    assert pred.call == ""


@pytest.mark.parametrize("name", ["RG1_J2KI.dcm", "CR-MONO1-10-chest.dcm", "nccid_nih_dx.dcm"])
def test_chest_dicoms_pass_the_header_and_pixel_checks(dicom_dir: Path, name: str) -> None:
    assert header_and_pixels(load_image(dicom_dir / name)) == IN_SCOPE


def test_lateral_view_from_the_header(dicom_dir: Path) -> None:
    meta = load_image(dicom_dir / "CR-MONO1-10-chest.dcm").meta
    import dataclasses

    lat = header_evidence(dataclasses.replace(meta, view_position="LL"))
    assert lat is not None and lat.kind == "lateral" and "lateral view" in lat.reason


@pytest.fixture(scope="module")
def generated(tmp_path_factory: pytest.TempPathFactory, cxr_samples: dict[str, list[Path]]) -> dict[str, Path]:
    xr = cv2.imread(str(cxr_samples["normal"][0]), cv2.IMREAD_GRAYSCALE)
    return scopecases.write_cases(tmp_path_factory.mktemp("gen"), scopecases.cases(xr))


def test_generated_cases_are_all_out_of_scope(generated: dict[str, Path]) -> None:
    """Blank, uniform, noise, colour photographs, screenshots: the header and pixel evidence
    alone (before any model) flags them, except smooth gradients, which need the lung field or
    the OOD score (checked with the shipped model in test_shipped_model_scope)."""
    missed = {}
    for name, path in generated.items():
        sc = header_and_pixels(load_image(path))
        if sc.in_scope and not name.startswith("gradient"):
            missed[name] = image_statistics(load_image(path).pixels)
    assert not missed


@pytest.mark.parametrize("name, kind", [("blank-black", "blank"), ("blank-white", "blank"), ("uniform-grey", "blank"),
                                        ("noise-uniform", "noise"), ("colour-photo-astronaut", "colour"),
                                        ("screenshot", "graphic")])
def test_generated_case_reasons(generated: dict[str, Path], name: str, kind: str) -> None:
    sc = header_and_pixels(load_image(generated[name]))
    assert sc.kind == kind and sc.reason


def test_too_small(tmp_path: Path, cxr_samples: dict[str, list[Path]]) -> None:
    img = cv2.resize(cv2.imread(str(cxr_samples["normal"][0]), cv2.IMREAD_GRAYSCALE), (96, 96))
    p = tmp_path / "small.png"
    cv2.imwrite(str(p), img)
    sc = header_and_pixels(load_image(p))
    assert sc.kind == "small" and "96x96" in sc.reason


def test_real_radiographs_are_in_scope_by_header_and_pixels(cxr_samples: dict[str, list[Path]]) -> None:
    for paths in cxr_samples.values():
        for p in paths[:5]:
            assert header_and_pixels(load_image(p)).in_scope, p


def test_verdict_order_and_ood_threshold() -> None:
    assert verdict(IN_SCOPE, None, 0.5, 1.0).in_scope
    out = verdict(IN_SCOPE, None, 2.5, 1.0)
    assert not out.in_scope and out.kind == "ood" and out.ood_score == 2.5 and "2.50" in out.reason
    assert verdict(IN_SCOPE, None, float("nan"), 1.0).in_scope  # a non-finite score never decides

    class Lungs:
        plausible = False
        reason = "no lung fields found"
        area_fraction = 0.0

    lungs = verdict(IN_SCOPE, Lungs(), 0.1, 1.0)
    assert not lungs.in_scope and lungs.kind == "lungs" and "no lung fields found" in lungs.reason


def test_batch_rows_and_csv_for_out_of_scope(tmp_path: Path, classifier, cxr_samples: dict[str, list[Path]],
                                            generated: dict[str, Path]) -> None:
    from engine.batch.report import read_report, write_report

    shutil.copy(cxr_samples["normal"][0], tmp_path / "a_chest.jpg")
    shutil.copy(generated["blank-black"], tmp_path / "b_blank.png")
    shutil.copy(_pydicom("CT_small.dcm"), tmp_path / "c_ct.dcm")
    rows = list(analyze_folder(tmp_path, classifier))
    assert [r.status for r in rows] == ["ok", "out_of_scope", "out_of_scope"]
    assert rows[1].label == "" and rows[1].scope == "out" and "blank" in rows[1].scope_reason
    out = tmp_path.parent / f"{tmp_path.name}-r.csv"
    write_report(out, rows, classifier)
    meta, table = read_report(out)
    assert [t["scope"] for t in table] == ["in", "out", "out"]
    assert table[2]["call"] == "" and table[2]["prob_normal"] == "" and "modality CT" in table[2]["scope_reason"]
    assert meta["counts"]["out_of_scope"] == 2 and meta["counts"]["analysed"] == 1
    write_report(out, rows, classifier, out_of_scope_probs=True)
    _, table = read_report(out)
    assert table[2]["call"] == "" and table[2]["prob_normal"] != "" and "NOT VALID" in table[2]["scope_reason"]


def test_grey_radiograph_saved_as_colour_jpeg_stays_in_scope(tmp_path: Path, cxr_samples: dict[str, list[Path]]) -> None:
    """Chroma noise of a colour JPEG of a grey film is not 'a colour image'."""
    grey = cv2.imread(str(cxr_samples["pneumonia"][0]), cv2.IMREAD_GRAYSCALE)
    p = tmp_path / "colour.jpg"
    cv2.imwrite(str(p), cv2.cvtColor(grey, cv2.COLOR_GRAY2BGR), [cv2.IMWRITE_JPEG_QUALITY, 60])
    im = load_image(p)
    assert im.meta.colourfulness < 0.05 and header_and_pixels(im).in_scope
