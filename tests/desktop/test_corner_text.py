"""Corner text on real DICOM files: modality, view, date, size, W/L, zoom and the call;
identifiers only with the setting; nothing stale after an image that cannot be shown."""

from __future__ import annotations

from pathlib import Path

import pydicom
import pytest
from PySide6.QtCore import Qt

from desktop.core.corner_info import ai_line
from desktop.settings import Settings
from engine import DISCLAIMER

CR = "CR-ModalitySequenceLUT.dcm"


def shown(win) -> str:
    """The text of every visible corner label."""
    return "\n".join(lab.text() for lab in win.corner.labels.values() if lab.isVisible())


def test_corner_text_follows_image_window_and_zoom(window, open_wait, dicom_dir: Path) -> None:
    path = dicom_dir / CR
    ds = pydicom.dcmread(path, stop_before_pixels=True)
    open_wait(window, path)
    assert shown(window) == ""  # off by default
    window.corner.toggle.trigger()
    text = shown(window)
    d = str(ds.StudyDate)
    assert f"{ds.Modality}" in text and f"Study date {d[:4]}-{d[4:6]}-{d[6:]}" in text
    assert f"{ds.Columns} × {ds.Rows} px" in text
    assert "0.15 × 0.15 mm/pixel (at detector, magnification not corrected)" in text
    assert window.wl_label.text() in text and f"Zoom {window.view.scale_factor() * 100:.0f}%" in text
    assert ai_line(window.prediction) in text and DISCLAIMER in text
    # window/level and zoom changes show at once
    window.display.apply_preset("Full range")
    window.display.flush()
    assert "Full range: C" in shown(window)
    window.view.zoom_by(2.0)
    assert f"Zoom {window.view.scale_factor() * 100:.0f}%" in shown(window)
    # the labels sit inside the view's corners
    vp = window.view.viewport().geometry()
    for label in window.corner.labels.values():
        assert vp.contains(label.geometry()), label.objectName()
    # a banner along the top pushes the top corners below it
    window.view.set_banner("Not analysed: a test banner")
    banner = window.view.findChild(type(window.corner.labels["top_left"]), "viewBanner")
    assert window.corner.labels["top_left"].geometry().top() > banner.geometry().bottom()
    window.view.set_banner("")
    window.corner.toggle.trigger()
    assert shown(window) == ""


def test_identifiers_only_with_the_setting(window, open_wait, qtbot, dicom_dir: Path, settings_path: str) -> None:
    path = dicom_dir / CR
    ds = pydicom.dcmread(path, stop_before_pixels=True)
    name = str(ds.PatientName).replace("^", " ")
    window.corner.toggle.trigger()
    open_wait(window, path)
    assert name not in shown(window) and f"Sex {ds.PatientSex}" not in shown(window)
    window.corner.identifiers.trigger()
    assert name in shown(window) and f"ID {ds.PatientID}" in shown(window) and f"Sex {ds.PatientSex}" in shown(window)
    assert Settings(settings_path).show_identifiers
    # the same rows the tag viewer highlights as identifying
    table = window.tags.table
    qtbot.waitUntil(lambda: table.rowCount() > 0, timeout=10000)
    flagged = {table.item(r, 1).data(Qt.ItemDataRole.UserRole) for r in range(table.rowCount())
               if table.item(r, 0).data(Qt.ItemDataRole.UserRole)}
    assert {"PatientName", "PatientID", "PatientSex"} <= flagged
    window.corner.identifiers.trigger()
    assert name not in shown(window) and not Settings(settings_path).show_identifiers


def test_error_image_shows_no_stale_values(window, open_wait, dicom_dir: Path, undecodable_dicom: Path) -> None:
    window.corner.toggle.trigger()
    open_wait(window, dicom_dir / CR)
    assert "Zoom" in shown(window)
    open_wait(window, undecodable_dicom)  # no decoder reads it
    assert not window.view.has_image()
    assert shown(window) == "" and window.corner.lines().all() == ()
    open_wait(window, dicom_dir / "CR-MONO1-10-chest.dcm")
    text = shown(window)
    assert "440 × 440 px" in text and "CR PA" in text and "no pixel spacing (uncalibrated)" in text
    assert "1976" not in text


@pytest.mark.parametrize("on", [True, False])
def test_corner_text_setting_persists(make_window, settings_path: str, on: bool) -> None:
    s = Settings(settings_path)
    s.corner_text = on
    s.sync()
    win = make_window(wait_model=False)
    assert win.corner.toggle.isChecked() is on
