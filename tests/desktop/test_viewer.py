"""The viewer: opening DICOM/PNG files, drops, probabilities, Grad-CAM, window/level."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
from PySide6.QtCore import QEvent, QMimeData, QPoint, QPointF, Qt, QUrl
from PySide6.QtGui import QDragEnterEvent, QDropEvent, QMouseEvent, QWheelEvent
from PySide6.QtWidgets import QApplication

from desktop.core.messages import percent_text
from desktop.viewer.convert import qimage_array
from engine import DISCLAIMER, analyze

DICOM_FILES = ["CR-MONO1-10-chest.dcm", "CR-ModalitySequenceLUT.dcm", "RG1_J2KI.dcm", "RG2_JPLY.dcm",
               "RG3_JPLL.dcm", "nccid_nih_dx.dcm"]


def grab_view(win) -> np.ndarray:
    win.display.flush()
    QApplication.processEvents()
    return qimage_array(win.view.viewport().grab().toImage())


@pytest.mark.parametrize("name", DICOM_FILES)
def test_open_each_shared_dicom(window, open_wait, qtbot, dicom_dir: Path, name: str) -> None:
    path = dicom_dir / name
    open_wait(window, path)
    assert window.view.has_image()
    src = window.display.src
    assert window.view.image_size() == (src.shape[1], src.shape[0])
    assert window.prediction is not None and os.path.basename(window.prediction.path) == name
    if window.prediction.in_scope:
        assert len(window.analysis.probs.bars()) == 4
    else:  # e.g. a dental or extremity radiograph: no verdict, the reason instead (test_scope_view.py)
        assert window.analysis.probs.bars() == []
        assert window.analysis.probs.banner.text() == f"Not analysed: {window.prediction.scope.reason}"
    assert window.study.browser.status(0) == "analysed"
    wait_tags(qtbot, window)
    assert window.tags.table.rowCount() > 10
    assert name in window.windowTitle()


def test_open_undecodable_dicom_is_an_error(window, open_wait, undecodable_dicom: Path) -> None:
    """A DICOM file no decoder reads (tests/conftest.py): an error on screen, not a crash."""
    open_wait(window, undecodable_dicom)
    assert not window.view.has_image()
    assert "unsupported compression" in window.view.message()
    assert undecodable_dicom.name in window.statusBar().currentMessage()
    assert window.study.browser.status(0) == "error"
    assert window.prediction is None


def wait_tags(qtbot, window) -> None:
    """Tags follow the prediction from the same worker, by their own queued signal."""
    qtbot.waitUntil(lambda: window.tags.table.rowCount() > 0, timeout=10000)


def test_png_bars_show_engine_probabilities(window, open_wait, png_path: Path) -> None:
    open_wait(window, png_path)
    expected = analyze(png_path, window.classifier)
    bars = window.analysis.probs.bars()
    assert [lab for lab, _ in bars] == list(expected.labels)  # the model card's order (sorting is an option)
    for (_lab, p), q in zip(bars, expected.probs, strict=True):
        assert p == pytest.approx(float(q), abs=1e-6)
    widgets = window.analysis.probs.bar_widgets()
    calls = [w for w in widgets if w.call]
    assert len(calls) == 1 and calls[0].label == expected.call  # the call (the top class) highlighted
    assert "(call)" in calls[0].title()
    assert calls[0].text() == percent_text(expected.top_prob)
    ops = expected.operating_points
    assert all(w.op == pytest.approx(ops[w.label]) for w in widgets)  # operating points marked
    assert window.analysis.probs.low_confidence_shown() == (expected.top_prob < 0.5)
    assert window.analysis.cam.classes.currentIndex() == expected.top_index  # heatmap of the top class
    assert not window.analysis.spinner.is_spinning()


def test_low_confidence_note(qtbot) -> None:
    from desktop.analysis.prob_panel import ProbPanel

    panel = ProbPanel()
    qtbot.addWidget(panel)
    panel.set_prediction(["a", "b", "c"], [0.2, 0.45, 0.35], {"a": 0.3})
    assert [lab for lab, _ in panel.bars()] == ["a", "b", "c"]  # the card's order by default
    panel.sort.setChecked(True)
    assert [lab for lab, _ in panel.bars()] == ["b", "c", "a"]  # on request, highest first
    assert panel.low_confidence_shown() and "45%" in panel.note.text()
    panel.set_prediction(["a", "b"], [0.9, 0.1])
    assert not panel.low_confidence_shown()


def test_spinner_runs_while_analysing(window, open_wait, png_path: Path, qtbot) -> None:
    with qtbot.waitSignal(window.analysisFinished, timeout=20000):
        window.open_paths([str(png_path)])
        assert window.analysis.spinner.is_spinning()  # started synchronously, before any result
    assert not window.analysis.spinner.is_spinning()


def test_drop_files_and_folder(window, qtbot, study_folder: Path, png_path: Path) -> None:
    mime = QMimeData()
    mime.setUrls([QUrl.fromLocalFile(str(png_path)), QUrl.fromLocalFile(str(study_folder))])
    enter = QDragEnterEvent(QPoint(50, 50), Qt.DropAction.CopyAction, mime, Qt.MouseButton.LeftButton,
                            Qt.KeyboardModifier.NoModifier)
    target = window.view.viewport()  # dropped on the image: the event reaches the window
    QApplication.sendEvent(target, enter)
    assert enter.isAccepted()
    drop = QDropEvent(QPointF(50, 50), Qt.DropAction.CopyAction, mime, Qt.MouseButton.LeftButton,
                      Qt.KeyboardModifier.NoModifier)
    with qtbot.waitSignal(window.analysisFinished, timeout=20000):
        QApplication.sendEvent(target, drop)
    assert drop.isAccepted()
    browser = window.study.browser
    assert browser.count() == 1 + 10  # the PNG, then the folder's 8 images + 2 bad files
    assert window.current_path == str(png_path)
    assert window.view.has_image()
    # the study worker analyses the rest in the background; bad files become errors
    qtbot.waitUntil(lambda: all(browser.status(i) != "pending" for i in range(browser.count())), timeout=30000)
    statuses = {os.path.basename(p): browser.status(i) for i, p in enumerate(browser.paths())}
    assert statuses["empty.png"] == "error" and statuses["notes.dcm"] == "error"
    assert sum(s == "analysed" for s in statuses.values()) == 9


def test_drop_without_files_is_ignored(window) -> None:
    mime = QMimeData()
    mime.setText("just text")
    enter = QDragEnterEvent(QPoint(5, 5), Qt.DropAction.CopyAction, mime, Qt.MouseButton.LeftButton,
                            Qt.KeyboardModifier.NoModifier)
    QApplication.sendEvent(window, enter)
    assert not enter.isAccepted()


def test_gradcam_toggle_changes_drawing(window, open_wait, png_path: Path, qtbot) -> None:
    window.display.cam_toggle.setChecked(True)
    open_wait(window, png_path)
    with_cam = grab_view(window)
    assert window.view.overlay_visible()
    window.display.cam_toggle.trigger()  # the G action
    assert not window.view.overlay_visible()
    without = grab_view(window)
    assert np.abs(with_cam.astype(int) - without.astype(int)).mean() > 1.0
    window.display.cam_toggle.trigger()
    assert np.array_equal(grab_view(window), with_cam)
    # another class draws another heatmap
    window.analysis.cam.set_class_index((window.analysis.cam.class_index() + 1) % 4)
    assert not np.array_equal(grab_view(window), with_cam)
    # opacity 0 draws the plain image
    window.analysis.cam.opacity.setValue(0)
    assert np.abs(grab_view(window).astype(int) - without.astype(int)).max() <= 1


def test_overlay_aligned_at_every_zoom(window, open_wait, dicom_dir: Path) -> None:
    open_wait(window, dicom_dir / "RG1_J2KI.dcm")
    image_item = window.view.overlay_item().parentItem()
    for action in (window.display.fit, window.display.actual, window.display.zoom_in, window.display.zoom_out):
        action.trigger()
        a = window.view.mapFromScene(image_item.sceneBoundingRect()).boundingRect()
        b = window.view.mapFromScene(window.view.overlay_item().sceneBoundingRect()).boundingRect()
        assert a == b


def test_wheel_zoom_keeps_point_under_cursor(window, open_wait, png_path: Path) -> None:
    open_wait(window, png_path)
    view = window.view
    # a point off-centre, but far enough from the edges that the view can keep it fixed
    pos = QPointF(view.viewport().width() * 0.4, view.viewport().height() * 0.45)
    before = view.mapToScene(pos.toPoint())
    scale = view.scale_factor()
    ev = QWheelEvent(pos, view.viewport().mapToGlobal(pos), QPoint(0, 0), QPoint(0, 480),
                     Qt.MouseButton.NoButton, Qt.KeyboardModifier.NoModifier, Qt.ScrollPhase.NoScrollPhase, False)
    QApplication.sendEvent(view.viewport(), ev)
    assert view.scale_factor() == pytest.approx(scale * 1.0015 ** 480, rel=1e-3)
    after = view.mapToScene(pos.toPoint())
    assert abs(after.x() - before.x()) <= 1.5 and abs(after.y() - before.y()) <= 1.5
    window.display.actual.trigger()
    assert view.scale_factor() == pytest.approx(1.0)
    window.display.fit.trigger()
    vp = view.viewport().rect()
    w, h = view.image_size()
    assert view.scale_factor() == pytest.approx(min(vp.width() / w, vp.height() / h), rel=0.02)


def _mouse(view, kind: QEvent.Type, pos: QPointF, button: Qt.MouseButton, buttons: Qt.MouseButton) -> None:
    ev = QMouseEvent(kind, pos, view.viewport().mapToGlobal(pos), button, buttons, Qt.KeyboardModifier.NoModifier)
    QApplication.sendEvent(view.viewport(), ev)


def test_window_level_drag_presets_numeric_invert(window, open_wait, dicom_dir: Path) -> None:
    open_wait(window, dicom_dir / "CR-MONO1-10-chest.dcm")
    d = window.display
    default = d.displayed().copy()
    start = d.effective_window()
    assert (start.center, start.width) == (550.0, 1024.0)  # the file's own window
    view = window.view
    p0 = QPointF(200, 200)
    _mouse(view, QEvent.Type.MouseButtonPress, p0, Qt.MouseButton.RightButton, Qt.MouseButton.RightButton)
    _mouse(view, QEvent.Type.MouseMove, QPointF(260, 230), Qt.MouseButton.NoButton, Qt.MouseButton.RightButton)
    _mouse(view, QEvent.Type.MouseButtonRelease, QPointF(260, 230), Qt.MouseButton.RightButton, Qt.MouseButton.NoButton)
    d.flush()
    w = d.effective_window()
    assert w.width > start.width and w.center != start.center
    assert not np.array_equal(d.displayed(), default)
    assert "Custom" in window.wl_label.text()
    # presets
    names = d.preset_names()
    for name in ("DICOM default", "Full range", "Lung", "Mediastinum", "Bone"):
        assert name in names
    d.apply_preset("Lung")
    d.flush()
    lung = d.displayed()
    # lung window: dark lung fields get the grey scale, a good share of the image saturates to white
    assert (lung == 255).mean() > 0.2 and (lung < 128).mean() > 0.15
    d.preset_actions[0].trigger()  # F2: DICOM default
    d.flush()
    assert np.array_equal(d.displayed(), default)
    # numeric entry
    d.bar.center.setValue(400.0)
    d.bar.width.setValue(300.0)
    d.flush()
    assert (d.effective_window().center, d.effective_window().width) == (400.0, 300.0)
    # invert and reset
    before = d.displayed().copy()
    d.invert_action.trigger()
    d.flush()
    assert np.array_equal(d.displayed(), 255 - before)
    d.reset.trigger()
    d.flush()
    assert not d.invert and d.window is None and np.array_equal(d.displayed(), default)


def test_tag_viewer_search_and_identifiers_only_there(window, open_wait, qtbot, dicom_dir: Path) -> None:
    open_wait(window, dicom_dir / "RG1_J2KI.dcm")
    wait_tags(qtbot, window)
    tags = window.tags
    tags.search.setText("PatientName")
    rows = tags.visible_rows()
    assert len(rows) == 1 and rows[0][0] == "(0010,0010)" and "CompressedSamples^RG1" in rows[0][3]
    ident = [tags.table.item(r, 0).data(Qt.ItemDataRole.UserRole) for r in range(tags.table.rowCount())
             if not tags.table.isRowHidden(r)]
    assert ident == [True]
    tags.search.setText("(0028,0010)")  # Rows, by tag
    assert [r[0] for r in tags.visible_rows()] == ["(0028,0010)"]
    tags.search.setText("")
    # the patient's name and ID appear nowhere but the tag dock
    visible = [window.windowTitle(), window.statusBar().currentMessage(), window.analysis.state.text(),
               window.analysis.model.text(), window.tags.info.text(),
               *(window.study.browser.list.item(i).text() for i in range(window.study.browser.count()))]
    assert not any("CompressedSamples" in t or "9RG1" in t for t in visible)


def test_stale_results_are_dropped(window, qtbot, dicom_dir: Path, png_path: Path) -> None:
    last = dicom_dir / "nccid_nih_dx.dcm"
    window.open_paths([str(dicom_dir / "RG1_J2KI.dcm"), str(png_path), str(last)])
    window.open_file(str(png_path))
    with qtbot.waitSignal(window.analysisFinished, timeout=20000,
                          check_params_cb=lambda p: p == str(last)):
        window.open_file(str(last))
    qtbot.waitUntil(lambda: window.service.busy.idle.is_set(), timeout=20000)
    QApplication.processEvents()
    assert window.current_path == str(last)
    assert window.prediction.path == str(last)
    assert window.display.src.shape == (1024, 1024)


def test_arrow_keys_move_through_study(window, qtbot, study_folder: Path) -> None:
    from PySide6.QtTest import QTest

    with qtbot.waitSignal(window.analysisFinished, timeout=20000):
        window.open_paths([str(study_folder)])
    browser = window.study.browser
    first = window.current_path
    assert first == browser.paths()[0]
    browser.list.setFocus()
    with qtbot.waitSignal(window.analysisFinished, timeout=20000):
        QTest.keyClick(browser.list, Qt.Key.Key_Down)
    assert window.current_path == browser.paths()[1]
    with qtbot.waitSignal(window.analysisFinished, timeout=20000):
        window.commands.next.trigger()  # Page Down
    assert window.current_path == browser.paths()[2]
    with qtbot.waitSignal(window.analysisFinished, timeout=20000):
        QTest.keyClick(window.view, Qt.Key.Key_Up)  # Up on the image
    assert window.current_path == browser.paths()[1]


def test_disclaimer_always_visible(window) -> None:
    assert window.disclaimer_label.text() == DISCLAIMER
    assert window.disclaimer_label.isVisible()


def test_folder_listing_runs_off_the_gui_thread_and_goes_stale(window, qtbot, study_folder: Path,
                                                               png_path: Path) -> None:
    """A folder is listed in a thread; opening something else before it is done wins."""
    seen: list[int] = []
    window.study.listed.connect(lambda gen, *_: seen.append(gen))
    listing = window.study.generation
    window.open_paths([str(study_folder)])  # returns at once: the listing runs in a thread
    assert window.study.generation == listing + 1
    with qtbot.waitSignal(window.analysisFinished, timeout=20000,
                          check_params_cb=lambda p: p == str(png_path)):
        window.open_paths([str(png_path)])  # before the listing has been delivered
    qtbot.waitUntil(lambda: bool(seen), timeout=10000)
    QApplication.processEvents()
    assert window.study.browser.paths() == [str(png_path)]  # the folder's late result was dropped
    assert window.current_path == str(png_path)
