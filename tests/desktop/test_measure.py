"""Measuring on the image with the mouse, on real DICOM and PNG files: lengths in mm from
the file's spacing (the expectation computed from the tag), the detector and uncalibrated
labels, angle and Cobb angle, select / move / edit / delete, tool modes that leave pan,
zoom and window/level working, and measurements that stay with their image."""

from __future__ import annotations

import math
from pathlib import Path

import pydicom
import pytest
from PySide6.QtCore import QEvent, QPointF, Qt
from PySide6.QtGui import QMouseEvent, QWheelEvent
from PySide6.QtWidgets import QApplication

from desktop.viewer.measure_tools import Handle, MeasurementItem

LEFT, RIGHT, NONE = Qt.MouseButton.LeftButton, Qt.MouseButton.RightButton, Qt.MouseButton.NoButton
PRESS, MOVE, RELEASE = QEvent.Type.MouseButtonPress, QEvent.Type.MouseMove, QEvent.Type.MouseButtonRelease


def at(win, x: float, y: float) -> QPointF:
    """The viewport position of image pixel (x, y)."""
    return QPointF(win.view.mapFromScene(win.view.image_item().mapToScene(QPointF(x, y))))


def mouse(win, kind: QEvent.Type, pos: QPointF, button: Qt.MouseButton, buttons: Qt.MouseButton) -> None:
    vp = win.view.viewport()
    ev = QMouseEvent(kind, pos, vp.mapToGlobal(pos), button, buttons, Qt.KeyboardModifier.NoModifier)
    QApplication.sendEvent(vp, ev)


def drag(win, a: QPointF, b: QPointF, button: Qt.MouseButton = LEFT) -> None:
    mouse(win, PRESS, a, button, button)
    mouse(win, MOVE, (a + b) / 2, NONE, button)
    mouse(win, MOVE, b, NONE, button)
    mouse(win, RELEASE, b, button, NONE)


def click(win, p: QPointF) -> None:
    mouse(win, PRESS, p, LEFT, LEFT)
    mouse(win, RELEASE, p, LEFT, NONE)


def flat(points: list[tuple[float, float]]) -> list[float]:
    return [v for p in points for v in p]


def scene_items(win) -> list[MeasurementItem]:
    return [i for i in win.view.scene().items() if isinstance(i, MeasurementItem)]


def spacing(path: Path, keyword: str) -> tuple[float, float]:
    row, col = pydicom.dcmread(path, stop_before_pixels=True).data_element(keyword).value
    return float(row), float(col)


def test_distance_on_a_dicom_with_pixel_spacing(window, open_wait, pydicom_file) -> None:
    path = pydicom_file("CT_small.dcm")
    open_wait(window, path)
    tools = window.measure
    tools.tools["distance"].trigger()
    assert tools.mode == "distance"
    drag(window, at(window, 20, 30), at(window, 100, 90))
    (item,) = scene_items(window)
    (m,) = tools.store.for_path(str(path))
    assert m is item.m and m.kind == "distance"
    (x0, y0), (x1, y1) = m.points
    assert (x0, y0) == pytest.approx((20, 30), abs=0.5) and (x1, y1) == pytest.approx((100, 90), abs=0.5)
    row, col = spacing(path, "PixelSpacing")
    expected = math.hypot((x1 - x0) * col, (y1 - y0) * row)
    assert m.value(tools.cal) == pytest.approx(expected)
    assert item.label.text == f"{expected:.1f} mm"
    # click, click draws too; the tool stays on for the next one
    click(window, at(window, 10, 10))
    click(window, at(window, 10, 110))
    assert len(tools.store.for_path(str(path))) == 2
    assert tools.store.for_path(str(path))[1].value(tools.cal) == pytest.approx(100 * row, rel=0.01)


def test_imager_pixel_spacing_only_is_at_detector(window, open_wait, dicom_dir: Path, tmp_path: Path) -> None:
    ds = pydicom.dcmread(dicom_dir / "CR-ModalitySequenceLUT.dcm")
    del ds.PixelSpacing
    path = tmp_path / "ips_only.dcm"
    ds.save_as(path)
    open_wait(window, path)
    window.measure.tools["distance"].trigger()
    drag(window, at(window, 400, 300), at(window, 1400, 300))
    (m,) = window.measure.store.for_path(str(path))
    row, col = spacing(path, "ImagerPixelSpacing")
    (x0, y0), (x1, y1) = m.points
    expected = math.hypot((x1 - x0) * col, (y1 - y0) * row)
    assert scene_items(window)[0].label.text == f"{expected:.1f} mm (at detector, magnification not corrected)"


def test_png_lengths_are_uncalibrated_pixels(window, open_wait, png_path: Path) -> None:
    open_wait(window, png_path)
    window.measure.tools["distance"].trigger()
    drag(window, at(window, 10, 10), at(window, 110, 10))
    (item,) = scene_items(window)
    assert item.label.text.endswith(" px (uncalibrated)")
    assert float(item.label.text.split()[0]) == pytest.approx(100, abs=1)


def test_angle_and_cobb_by_mouse(window, open_wait, pydicom_file) -> None:
    open_wait(window, pydicom_file("CT_small.dcm"))
    tools = window.measure
    tools.tools["angle"].trigger()
    drag(window, at(window, 100, 40), at(window, 40, 40))  # first arm, ending at the vertex
    assert tools.draft is not None and flat(tools.draft.m.points) == pytest.approx([100, 40, 40, 40], abs=0.5)
    mouse(window, MOVE, at(window, 40, 80), NONE, NONE)  # the second arm follows the mouse
    click(window, at(window, 40, 100))
    (angle_item,) = scene_items(window)
    assert angle_item.m.value(tools.cal) == pytest.approx(90.0, abs=1.0)
    tools.tools["cobb"].trigger()
    drag(window, at(window, 10, 10), at(window, 110, 10))  # horizontal
    drag(window, at(window, 10, 110), at(window, 110, 60))  # rising 50 over 100
    cobb_item = next(i for i in scene_items(window) if i.m.kind == "cobb")
    assert cobb_item.m.value(tools.cal) == pytest.approx(math.degrees(math.atan2(50, 100)), abs=1.0)
    assert cobb_item.label.text.startswith("Cobb ")


def test_select_move_edit_delete(window, open_wait, pydicom_file) -> None:
    path = str(pydicom_file("CT_small.dcm"))
    open_wait(window, path)
    tools = window.measure
    assert tools.mode == "pan"
    a = tools.add("distance", [(20.0, 20.0), (100.0, 20.0)])
    b = tools.add("angle", [(60.0, 100.0), (20.0, 100.0), (20.0, 60.0)])
    # click on the line in pan mode: selected, not panned
    click(window, at(window, 60, 20))
    assert a.isSelected() and not b.isSelected()
    assert tools.delete.isEnabled() and all(h.isVisible() for h in a.handles)
    # drag the whole measurement: its points move with it
    before = list(a.m.points)
    drag(window, at(window, 60, 20), at(window, 70, 30))
    assert flat(a.m.points) == pytest.approx(flat([(x + 10, y + 10) for x, y in before]), abs=0.5)
    # drag one end: only that point moves
    handle = a.handles[1]
    assert isinstance(handle, Handle)
    drag(window, at(window, *a.m.points[1]), at(window, 90, 50))
    assert a.m.points[1] == pytest.approx((90, 50), abs=0.5) and a.m.points[0] == pytest.approx(before[0], abs=11)
    assert a.label.text == f"{a.m.value(tools.cal):.1f} mm"
    # Delete removes the selected one from the scene and the store
    tools.delete.trigger()
    assert scene_items(window) == [b] and tools.store.for_path(path) == [b.m]
    # right-click on a measurement: its menu (not window/level)
    start = window.display.effective_window()
    mouse(window, PRESS, at(window, 20, 80), RIGHT, RIGHT)
    mouse(window, RELEASE, at(window, 20, 80), RIGHT, NONE)
    menu = tools.menu
    assert menu is not None and b.isSelected() and window.display.effective_window() == start
    menu.actions()[0].trigger()
    menu.close()
    assert scene_items(window) == [] and tools.store.for_path(path) == []
    tools.add("distance", [(1.0, 1.0), (5.0, 5.0)])
    tools.add("distance", [(1.0, 9.0), (5.0, 9.0)])
    tools.clear_all.trigger()
    assert scene_items(window) == [] and tools.store.for_path(path) == []


def test_tool_mode_keeps_zoom_window_level_and_pan(window, open_wait, dicom_dir: Path) -> None:
    open_wait(window, dicom_dir / "CR-MONO1-10-chest.dcm")
    view, tools = window.view, window.measure
    tools.tools["distance"].trigger()
    start = window.display.effective_window()
    drag(window, QPointF(300, 300), QPointF(360, 330), RIGHT)  # right-drag: window/level, no measurement
    window.display.flush()
    assert window.display.effective_window() != start and not scene_items(window)
    scale = view.scale_factor()
    centre = QPointF(view.viewport().rect().center())
    wheel = QWheelEvent(centre, view.viewport().mapToGlobal(centre), QPointF(0, 0).toPoint(), QPointF(0, 120).toPoint(),
                        NONE, Qt.KeyboardModifier.NoModifier, Qt.ScrollPhase.NoScrollPhase, False)
    QApplication.sendEvent(view.viewport(), wheel)
    assert view.scale_factor() == pytest.approx(scale * 1.2, rel=0.01)
    tools.tools["pan"].trigger()  # Esc: back to pan, left-drag pans
    assert tools.mode == "pan" and view.dragMode() == view.DragMode.ScrollHandDrag
    view.zoom_by(3)
    h = view.horizontalScrollBar().value()
    drag(window, QPointF(400, 300), QPointF(300, 300))
    assert view.horizontalScrollBar().value() == h + 100 and not scene_items(window)
    # Esc while drawing drops the drawing and keeps the tool
    tools.tools["distance"].trigger()
    click(window, QPointF(300, 300))
    assert tools.draft is not None
    tools.tools["pan"].trigger()
    assert tools.draft is None and tools.mode == "distance" and not scene_items(window)


def test_measurements_stay_with_their_image(window, open_wait, pydicom_file, dicom_dir: Path,
                                            undecodable_dicom: Path) -> None:
    ct, cr = str(pydicom_file("CT_small.dcm")), str(dicom_dir / "CR-MONO1-10-chest.dcm")
    open_wait(window, ct)
    tools = window.measure
    item = tools.add("distance", [(10.0, 10.0), (50.0, 40.0)])
    label = item.label.text
    open_wait(window, cr)
    assert scene_items(window) == [] and tools.path == cr
    open_wait(window, undecodable_dicom)  # an image that cannot be shown: nothing drawn
    assert scene_items(window) == [] and not window.view.has_image()
    open_wait(window, ct)
    (back,) = scene_items(window)
    assert back.m is item.m and back.label.text == label
    assert tools.store.labels(ct) == [label] and tools.store.for_path(cr) == []
