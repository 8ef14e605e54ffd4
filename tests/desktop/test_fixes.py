"""Issue 12's fixes, each seen on screen: decoding started at launch, small windows, batch rows
in their own study, stale status text, steady probability bars, the image summary for every
format, the smaller items, and the plain message when X11 libraries are missing."""

from __future__ import annotations

import os
import shutil
import signal
import time
from pathlib import Path

import pytest
from PySide6.QtCore import QTimer
from PySide6.QtWidgets import QApplication, QInputDialog

from desktop.batch.batch_view import PATH_ROLE
from desktop.core.decoder import shared_decoder, wants_decoder
from desktop.core.messages import call_text, percent_text
from desktop.core.wl_text import format_wl, window_text
from engine import Window, analyze


def wait_result(qtbot, win, paths: list[str], target: str | Path, timeout: int = 20000) -> None:
    with qtbot.waitSignal(win.analysisFinished, timeout=timeout,
                          check_params_cb=lambda p: os.path.abspath(p) == os.path.abspath(str(target))):
        win.open_paths(paths)


# -- the first DICOM after launch ---------------------------------------------------------
def test_decoding_processes_start_at_launch_and_a_second_open_decodes_once(window, qtbot, dicom_dir: Path,
                                                                           tmp_path: Path) -> None:
    dec = window.service.decoder
    assert dec is shared_decoder()
    qtbot.waitUntil(lambda: dec._warming is not None, timeout=5000)  # started once the model is in, before any file
    qtbot.waitUntil(lambda: not dec._warming.is_alive(), timeout=20000)
    pool = dec._pool
    assert pool is not None and len(pool._processes) >= 1
    path = tmp_path / "j2k.dcm"
    shutil.copy(dicom_dir / "RG1_J2KI.dcm", path)
    first = dec.load(str(path))
    t0 = time.perf_counter()
    again = dec.load(str(path))  # e.g. opened before the model loaded, and again once it has
    assert again is first and time.perf_counter() - t0 < 0.05
    os.utime(path, ns=(time.time_ns(), time.time_ns() + 10**9))  # the file changed: decoded anew
    assert dec.load(str(path)) is not first
    # the command line: a DICOM (or a folder) starts the decoding process before Qt loads
    assert wants_decoder([str(path)]) and wants_decoder([str(tmp_path)])
    png = tmp_path / "x.png"
    png.write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(200))
    assert not wants_decoder([str(png), str(tmp_path / "missing.dcm")])


def test_a_file_given_at_launch_is_decoded_meanwhile_and_opened_once(make_window, qtbot, dicom_dir: Path) -> None:
    win = make_window(wait_model=False)  # as a double-click: the file comes while the model loads
    shown: list[str] = []
    win.service.imageReady.connect(lambda r: shown.append(r.path))
    path = str(dicom_dir / "RG1_J2KI.dcm")
    with qtbot.waitSignal(win.analysisFinished, timeout=30000,
                          check_params_cb=lambda p: win.prediction is not None):
        win.open_paths([path])
        assert win.service._deferred is not None  # waits for the model, decoding meanwhile
    assert shown == [path]  # one open, with the model: no second decode, no second display
    assert win.prediction is not None and win.prediction.path == path


# -- small windows -------------------------------------------------------------------------
def test_small_window_keeps_most_of_the_width_for_the_image(window, qtbot, png_path: Path) -> None:
    window.resize(900, 600)
    wait_result(qtbot, window, [str(png_path)], png_path)
    qtbot.waitUntil(lambda: window.centralWidget().width() >= 0.55 * window.width(), timeout=5000)
    # a JPEG/PNG has no tags: the tag dock shrinks to the summary and the study list keeps the room
    assert window.tags.table.isHidden() and window.tags.height() < window.study.dock.height() / 2


# -- batch rows open in their own study ----------------------------------------------------
def test_batch_row_opens_the_batch_folder_as_its_own_study(window, qtbot, png_path: Path, tmp_path: Path,
                                                           cxr_samples: dict[str, list[Path]]) -> None:
    wait_result(qtbot, window, [str(png_path)], png_path)  # an unrelated study is open
    folder = tmp_path / "batch"
    folder.mkdir()
    for label, paths in cxr_samples.items():
        shutil.copy(paths[0], folder / f"{label}.jpg")
    dlg = window.batch_dialog(str(folder))
    with qtbot.waitSignal(dlg.finished_batch, timeout=60000):
        pass
    assert dlg.worker.process is not None and dlg.worker.process.pid != os.getpid()  # the batch ran in a process
    index = dlg.proxy.index(2, 0)
    target = index.data(PATH_ROLE)
    with qtbot.waitSignal(window.analysisFinished, timeout=20000):
        dlg.table.clicked.emit(index)
    study = {os.path.abspath(p) for p in window.study.browser.paths()}
    assert study == {os.path.abspath(p) for p in dlg.paths()}  # the batch's files, and only them
    assert os.path.abspath(str(png_path)) not in study
    assert window.current_path == target and window.study.browser.current_path() == target


def test_a_dead_batch_process_keeps_its_rows_and_says_so(window, qtbot, cxr_dir: Path) -> None:
    dlg = window.batch_dialog(str(cxr_dir / "images"))
    qtbot.waitUntil(lambda: dlg.model.rowCount() >= 16, timeout=60000)
    os.kill(dlg.worker.process.pid, signal.SIGKILL)
    with qtbot.waitSignal(dlg.finished_batch, timeout=10000) as sig:
        pass
    end = sig.args[0]
    assert "stopped unexpectedly" in end.error and dlg.model.rowCount() >= 16
    assert dlg.export_button.isEnabled()  # what was analysed can still be exported
    dlg.close_confirmed = True


# -- the status bar ------------------------------------------------------------------------
def test_status_bar_never_shows_stale_text(window, qtbot, study_folder: Path, png_path: Path) -> None:
    first = sorted(p for p in study_folder.iterdir() if p.suffix == ".jpg")[0]
    with qtbot.waitSignal(window.analysisFinished, timeout=20000):
        window.open_paths([str(study_folder)])
        assert window.statusBar().currentMessage().startswith("Listing")
    assert not window.statusBar().currentMessage().startswith("Listing")  # cleared when the listing ended
    assert first.exists()
    empty = study_folder / "empty.png"
    window.view.zoom_by(2.0)
    wait_result(qtbot, window, [str(empty)], empty)
    err = window.statusBar().currentMessage()
    assert "empty" in err
    assert window.zoom_label.text() == "" and window.wl_label.text() == ""  # nothing of the last image
    assert window.display.bar.center.text().strip() == "" and window.display.bar.width.text().strip() == ""
    wait_result(qtbot, window, [str(png_path)], png_path)
    assert window.statusBar().currentMessage() != err  # the error went with its image
    assert window.zoom_label.text().endswith("%") and window.display.bar.center.text().strip()


# -- probability bars ----------------------------------------------------------------------
def test_bars_keep_the_card_order_and_sorting_is_a_kept_option(make_window, qtbot, png_path: Path,
                                                                settings_path: str) -> None:
    from desktop.settings import Settings

    win = make_window()
    wait_result(qtbot, win, [str(png_path)], png_path)
    labels = list(win.classifier.labels)
    assert [lab for lab, _ in win.analysis.probs.bars()] == labels
    win.analysis.probs.sort.setChecked(True)
    probs = [p for _, p in win.analysis.probs.bars()]
    assert probs == sorted(probs, reverse=True)
    assert Settings(settings_path).sort_probs  # kept for the next session
    win.close()
    again = make_window()
    assert again.analysis.probs.sort.isChecked()


def test_percentages_never_read_100_or_0() -> None:
    assert percent_text(0.99996) == ">99.9%" and percent_text(1.0) == ">99.9%"
    assert percent_text(0.00001) == "<0.1%" and percent_text(0.0) == "<0.1%"
    assert percent_text(0.5) == "50.0%" and percent_text(0.999) == "99.9%"
    assert "call covid >99.9%" in call_text("covid", 0.99999, ())


# -- the image summary for every format ----------------------------------------------------
def test_summary_for_jpeg_and_dicom(window, qtbot, cxr_samples: dict[str, list[Path]], dicom_dir: Path) -> None:
    jpeg = next(iter(cxr_samples.values()))[0]
    wait_result(qtbot, window, [str(jpeg)], jpeg)
    qtbot.waitUntil(lambda: "no DICOM tags" in window.tags.info.text(), timeout=10000)
    text = window.tags.info.text()
    meta = window.display.src
    assert text.startswith(f"JPEG {meta.shape[1]}×{meta.shape[0]}, 8-bit")  # the summary stays
    dcm = dicom_dir / "CR-MONO1-10-chest.dcm"
    wait_result(qtbot, window, [str(dcm)], dcm)
    qtbot.waitUntil(lambda: window.tags.table.rowCount() > 0, timeout=10000)
    assert window.tags.info.text().startswith("DICOM ") and "MONOCHROME1" in window.tags.info.text()
    assert not window.tags.table.isHidden()


# -- smaller items -------------------------------------------------------------------------
def test_presets_and_window_numbers(window, qtbot, png_path: Path, dicom_dir: Path) -> None:
    wait_result(qtbot, window, [str(png_path)], png_path)
    names = window.display.preset_names()
    assert "DICOM default" not in names and "Original image" in names
    w = window.display.effective_window()
    assert window.display.bar.center.text() == format_wl(w.center, window.display.bar.center.decimals())
    assert "." not in window.display.bar.center.text() or not window.display.bar.center.text().endswith("0")
    window.display.set_window(Window(127.5, 255.0, "LINEAR_EXACT", "Custom"))
    window.display.flush()
    assert window.display.bar.center.text() == "127.5" and "C 127.5 W 255" in window.wl_label.text()
    dcm = dicom_dir / "CR-MONO1-10-chest.dcm"
    wait_result(qtbot, window, [str(dcm)], dcm)
    assert "DICOM default" in window.display.preset_names()
    assert format_wl(127.5, 3) == "127.5" and format_wl(-600.0, 1) == "-600" and format_wl(0.125, 5) == "0.125"
    assert window_text("Lung", -600, 1500, 4000, True) == "Lung: C -600 W 1500 inverted"


def test_dialog_texts_fit(window, qtbot, dialogs) -> None:
    from desktop.dialogs import Dialogs

    dlg = window.show_shortcuts()
    qtbot.waitExposed(dlg)
    t = dlg.table
    fm = t.fontMetrics()
    for name, keys in dlg.rows:
        assert fm.horizontalAdvance(name) < t.columnWidth(0), name
        assert fm.horizontalAdvance(keys) < t.columnWidth(1), keys
    dlg.close()
    seen: dict[str, int] = {}

    def answer() -> None:
        box = QApplication.activeModalWidget()
        assert isinstance(box, QInputDialog)
        seen["width"], seen["title"] = box.width(), box.fontMetrics().horizontalAdvance(box.windowTitle())
        box.setTextValue("Soft tissue")
        box.accept()

    QTimer.singleShot(200, answer)
    assert Dialogs(window).text("Save window preset", "Name of the preset:", "My window") == "Soft tissue"
    assert seen["width"] >= seen["title"] + 100  # the title is not cut off


def test_tag_search_without_match_says_so(window, qtbot, dicom_dir: Path) -> None:
    dcm = dicom_dir / "CR-MONO1-10-chest.dcm"
    wait_result(qtbot, window, [str(dcm)], dcm)
    qtbot.waitUntil(lambda: window.tags.table.rowCount() > 0, timeout=10000)
    window.tags.search.setText("no-such-tag-xyz")
    assert not window.tags.no_match.isHidden() and window.tags.no_match.text() == "No tag matches “no-such-tag-xyz”."
    window.tags.search.setText("Modality")
    assert window.tags.no_match.isHidden() and window.tags.visible_rows()


def test_gradcam_controls_need_an_image(window, qtbot, png_path: Path) -> None:
    assert not window.analysis.cam.isEnabled() and not window.display.cam_toggle.isEnabled()
    wait_result(qtbot, window, [str(png_path)], png_path)
    assert window.analysis.cam.isEnabled() and window.display.cam_toggle.isEnabled()


def test_batch_says_cancelled_and_counts_what_the_filter_shows(window, qtbot, dialogs, cxr_dir: Path,
                                                                study_folder: Path) -> None:
    done = window.batch_dialog(str(study_folder))
    with qtbot.waitSignal(done.finished_batch, timeout=60000):
        pass
    assert done.shown.text() == "10 / 10 shown"
    done.filter.setCurrentText("Errors only")
    assert done.shown.text() == "2 / 10 shown"
    done.close_confirmed = True
    dlg = window.batch_dialog(str(cxr_dir / "images"))
    qtbot.waitUntil(lambda: dlg.model.rowCount() >= 16, timeout=60000)
    with qtbot.waitSignal(dlg.finished_batch, timeout=10000):
        dlg.cancel()
    dialogs.confirms.append(False)
    dlg.close()
    assert f"was cancelled after {dlg.end.done} of {dlg.end.total} files" in dialogs.asked[-1][1]
    assert "has finished" not in dialogs.asked[-1][1]
    dlg.close_confirmed = True


def test_batch_analysis_is_also_under_analysis(window) -> None:
    menus = {m.title(): m for m in (a.menu() for a in window.menuBar().actions()) if m is not None}
    assert window.commands.batch in menus["&Analysis"].actions()
    assert window.commands.batch in menus["&File"].actions()


def test_cuda_without_a_gpu_says_so_and_keeps_zoom_and_window(window, qtbot, dialogs, png_path: Path) -> None:
    wait_result(qtbot, window, [str(png_path)], png_path)
    if window.classifier.provider == "CUDAExecutionProvider":
        pytest.skip("this machine has a usable CUDA GPU")
    window.view.zoom_by(2.0)
    zoom = window.view.scale_factor()
    custom = Window(100.0, 80.0, "LINEAR_EXACT", "Custom")
    window.display.set_window(custom)
    window.display.flush()
    with qtbot.waitSignal(window.analysisFinished, timeout=30000):
        window.set_device("cuda")
    assert "No usable CUDA GPU: running on CPU" in window.statusBar().currentMessage()
    assert dialogs.infos and "No usable CUDA GPU: running on CPU" in dialogs.infos[-1][1]
    assert window.view.scale_factor() == pytest.approx(zoom)
    assert window.display.effective_window() == custom
    assert window.prediction is not None and window.prediction.probs is not None
    ref = analyze(png_path, window.classifier)
    assert window.prediction.call == ref.call


# -- a bare Debian -------------------------------------------------------------------------
def test_missing_x11_libraries_are_named_before_qt_starts(monkeypatch, capsys) -> None:
    from desktop import app
    from desktop.core import system_libs as sl

    assert sl.uses_xcb("linux", {"DISPLAY": ":0"}) and sl.uses_xcb("linux", {"QT_QPA_PLATFORM": "xcb"})
    assert not sl.uses_xcb("linux", {"QT_QPA_PLATFORM": "offscreen"}) and not sl.uses_xcb("win32", {})
    assert not sl.uses_xcb("linux", {"WAYLAND_DISPLAY": "wayland-0"})
    assert sl.missing_libraries(["libc.so.6", "libradlens-none.so.9"]) == ["libradlens-none.so.9"]
    # a library this system really lacks, as a bare Debian lacks libxcb-cursor.so.0
    monkeypatch.setitem(sl.XCB_LIBRARIES, "libradlens-none.so.9", "libradlens-none9")
    monkeypatch.setenv("QT_QPA_PLATFORM", "xcb")
    assert app.main([]) == app.XCB_MISSING
    err = capsys.readouterr().err
    assert "libradlens-none.so.9 (package libradlens-none9)" in err
    assert "sudo apt-get install libegl1 libradlens-none9 libxcb-cursor0 libxkbcommon-x11-0" in err


def test_batch_process_reports_a_folder_it_cannot_analyse(window, qtbot, tmp_path: Path) -> None:
    empty = tmp_path / "empty-study"
    empty.mkdir()
    (empty / "notes.txt").write_text("not an image\n")
    dlg = window.batch_dialog(str(empty))
    with qtbot.waitSignal(dlg.finished_batch, timeout=60000) as sig:
        pass
    end = sig.args[0]
    assert "no image files" in end.error and "Choose a folder" in end.error
    assert dlg.status.text() == f"The batch could not run: {end.error}"
    assert dlg.model.rowCount() == 0 and not dlg.export_button.isEnabled()
