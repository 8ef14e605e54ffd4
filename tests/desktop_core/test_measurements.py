"""Measurement geometry and calibration (Qt-free) on real DICOM headers: which spacing a
length uses and what its label says (PS3.3 10.7.1.1), distance with row vs column spacing,
angle and Cobb angle on known geometry, and the per-image store."""

from __future__ import annotations

import math
from pathlib import Path

import pydicom
import pytest

from desktop.core.measurements import (
    AT_DETECTOR,
    CORRECTED,
    UNCALIBRATED,
    UNKNOWN_CORRECTION,
    Calibration,
    Measurement,
    MeasurementStore,
    angle,
    calibration_for,
    cobb,
    distance,
)
from engine import load_image

CR_BOTH = "CR-ModalitySequenceLUT.dcm"  # Pixel Spacing = Imager Pixel Spacing = 0.15\0.15


def _edited(src: Path, dst: Path, edit) -> Path:  # noqa: ANN001
    ds = pydicom.dcmread(src)
    edit(ds)
    ds.save_as(dst)
    return dst


def _spacing(path: Path, keyword: str) -> tuple[float, float]:
    row, col = pydicom.dcmread(path, stop_before_pixels=True).data_element(keyword).value
    return float(row), float(col)


def test_pixel_spacing_of_a_ct_gives_plain_mm(pydicom_file) -> None:
    path = pydicom_file("CT_small.dcm")
    row, col = _spacing(path, "PixelSpacing")
    cal = calibration_for(load_image(path).meta)
    assert cal.calibrated and cal.qualifier == "" and (cal.row_mm, cal.col_mm) == (row, col)
    m = Measurement("distance", [(10.5, 20.5), (40.5, 60.5)])
    expected = math.hypot(30 * col, 40 * row)
    assert m.value(cal) == pytest.approx(expected)
    assert m.label(cal) == f"{expected:.1f} mm"


def test_pixel_spacing_equal_to_imager_spacing_is_at_the_detector(dicom_dir: Path) -> None:
    """PS3.3 10.7.1.1: the same values as Imager Pixel Spacing mean no magnification correction."""
    path = dicom_dir / CR_BOTH
    meta = load_image(path).meta
    assert meta.pixel_spacing == meta.imager_pixel_spacing == _spacing(path, "ImagerPixelSpacing")
    cal = calibration_for(meta)
    assert cal.qualifier == AT_DETECTOR
    m = Measurement("distance", [(100, 100), (100, 300)])
    assert m.label(cal) == f"{200 * meta.pixel_spacing[0]:.1f} mm (at detector, magnification not corrected)"


def test_imager_pixel_spacing_alone_is_labelled_at_detector(tmp_path: Path, dicom_dir: Path) -> None:
    path = _edited(dicom_dir / CR_BOTH, tmp_path / "ips_only.dcm", lambda ds: delattr(ds, "PixelSpacing"))
    meta = load_image(path).meta
    assert meta.pixel_spacing is None and meta.imager_pixel_spacing == _spacing(path, "ImagerPixelSpacing")
    cal = calibration_for(meta)
    assert cal.calibrated and cal.qualifier == AT_DETECTOR and "Imager Pixel Spacing" in cal.source
    m = Measurement("distance", [(0, 0), (400, 0)])
    assert m.value(cal) == pytest.approx(400 * meta.imager_pixel_spacing[1])
    assert m.label(cal).endswith("mm (at detector, magnification not corrected)")


def test_magnification_factor_is_reported_not_applied(tmp_path: Path, dicom_dir: Path) -> None:
    def edit(ds: pydicom.Dataset) -> None:
        del ds.PixelSpacing
        ds.EstimatedRadiographicMagnificationFactor = "1.15"

    meta = load_image(_edited(dicom_dir / CR_BOTH, tmp_path / "ermf.dcm", edit)).meta
    cal = calibration_for(meta)
    assert meta.magnification_factor == pytest.approx(1.15)
    assert cal.col_mm == meta.imager_pixel_spacing[1] and cal.qualifier == AT_DETECTOR
    assert "1.15x (not applied)" in cal.source


def test_pixel_spacing_different_from_the_detector_is_corrected(tmp_path: Path, dicom_dir: Path) -> None:
    path = _edited(dicom_dir / CR_BOTH, tmp_path / "corrected.dcm", lambda ds: setattr(ds, "PixelSpacing", [0.13, 0.13]))
    cal = calibration_for(load_image(path).meta)
    assert (cal.row_mm, cal.col_mm, cal.qualifier) == (0.13, 0.13, CORRECTED)


def test_calibration_type_names_the_correction(tmp_path: Path, dicom_dir: Path) -> None:
    def edit(ds: pydicom.Dataset) -> None:
        ds.PixelSpacing = [0.14, 0.14]
        ds.PixelSpacingCalibrationType = "FIDUCIAL"
        ds.PixelSpacingCalibrationDescription = "ball of 25 mm at the hip"

    meta = load_image(_edited(dicom_dir / CR_BOTH, tmp_path / "fiducial.dcm", edit)).meta
    assert meta.spacing_calibration_type == "FIDUCIAL"
    assert calibration_for(meta).qualifier == "calibrated to a fiducial of known size"


def test_projection_pixel_spacing_without_detector_spacing_is_unknown(tmp_path: Path, dicom_dir: Path) -> None:
    """A CR with Pixel Spacing only: PS3.3 says it cannot be told whether it was corrected."""
    path = _edited(dicom_dir / CR_BOTH, tmp_path / "ps_only.dcm", lambda ds: delattr(ds, "ImagerPixelSpacing"))
    cal = calibration_for(load_image(path).meta)
    assert cal.calibrated and cal.qualifier == UNKNOWN_CORRECTION


def test_row_spacing_is_the_vertical_distance(tmp_path: Path, dicom_dir: Path) -> None:
    """Pixel Spacing is row spacing (vertical) first, then column spacing (horizontal)."""
    path = _edited(dicom_dir / CR_BOTH, tmp_path / "aniso.dcm", lambda ds: setattr(ds, "PixelSpacing", [0.2, 0.1]))
    cal = calibration_for(load_image(path).meta)
    assert distance((50, 50), (50, 60), cal) == pytest.approx(2.0)  # 10 rows down
    assert distance((50, 50), (60, 50), cal) == pytest.approx(1.0)  # 10 columns across
    # a 45-degree diagonal in pixels is not 45 degrees in the patient
    assert angle((60, 50), (50, 50), (60, 60), cal) == pytest.approx(math.degrees(math.atan2(2.0, 1.0)))


def test_no_spacing_is_uncalibrated_pixels(dicom_dir: Path, png_path: Path) -> None:
    for path in (dicom_dir / "RG3_JPLL.dcm", png_path):
        cal = calibration_for(load_image(path).meta)
        assert not cal.calibrated and cal.qualifier == UNCALIBRATED
        m = Measurement("distance", [(0, 0), (30, 40)])
        assert m.label(cal) == "50.0 px (uncalibrated)"
    assert calibration_for(None) == Calibration()


def test_angles_on_known_geometry() -> None:
    assert angle((10, 0), (0, 0), (0, 10)) == pytest.approx(90.0)
    assert angle((10, 0), (0, 0), (10, 10)) == pytest.approx(45.0)
    assert angle((10, 0), (0, 0), (-10, 0)) == pytest.approx(180.0)
    m = Measurement("angle", [(100, 0), (0, 0), (0, 100)])
    assert m.label(Calibration()) == "90.0°"


def test_cobb_angle_is_the_acute_angle_between_the_lines() -> None:
    def line(theta_deg: float, cx: float, cy: float) -> list[tuple[float, float]]:
        t = math.radians(theta_deg)
        return [(cx - 50 * math.cos(t), cy - 50 * math.sin(t)), (cx + 50 * math.cos(t), cy + 50 * math.sin(t))]

    upper, lower = line(10, 200, 100), line(-20, 200, 400)
    assert cobb(*upper, *lower) == pytest.approx(30.0)
    assert cobb(*upper, *reversed(lower)) == pytest.approx(30.0)  # direction of drawing does not matter
    assert cobb(*line(0, 0, 0), *line(120, 0, 100)) == pytest.approx(60.0)
    assert Measurement("cobb", upper + lower).label(Calibration()) == "Cobb 30.0°"


def test_incomplete_and_unknown_measurements() -> None:
    assert Measurement("angle", [(0, 0), (1, 1)]).value(Calibration()) is None
    with pytest.raises(ValueError, match="unknown measurement kind"):
        Measurement("area", [(0, 0)])


def test_store_keeps_measurements_per_path() -> None:
    store = MeasurementStore()
    a = store.add("a.dcm", Measurement("distance", [(0, 0), (3, 4)]))
    b = store.add("a.dcm", Measurement("angle", [(1, 0), (0, 0), (0, 1)]))
    store.add("b.png", Measurement("distance", [(0, 0), (6, 8)]))
    assert store.for_path("a.dcm") == [a, b] and store.labels("b.png") == ["10.0 px (uncalibrated)"]
    store.remove("a.dcm", a)
    assert store.for_path("a.dcm") == [b]
    assert store.clear("a.dcm") == 1 and store.paths() == ["b.png"] and store.for_path("c") == []
