"""Issue 24, items 14 and 21 and long names: the window at 1024 x 700. Every toolbar control
in one row (window/level and heatmap never in the overflow chevron), the shortcuts window
within a 700 px screen, restored docks readable, compare's out-of-scope banner whole, and a
study list that elides names made of UIDs."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from PySide6.QtCore import QRect, Qt
from PySide6.QtGui import QKeySequence
from PySide6.QtWidgets import QLabel, QToolButton

from desktop.dock_layout import READABLE_WIDTH, RESTORE_SHARE
from desktop.shortcuts import FRAME_ALLOWANCE
from desktop.study_browser import ELLIPSIS, StudyBrowser, elide_name

UID = "1.2.826.0.1.3680043.8.498.{}.dcm"
SIZES = [(1024, 700), (1400, 900)]


def settle(qtbot, win, size: tuple[int, int]) -> None:
    win.resize(*size)
    qtbot.waitUntil(lambda: (win.width(), win.height()) == size, timeout=5000)
    qtbot.wait(100)  # the dock fitter and the toolbar's layout


# -- item 14: the toolbar ------------------------------------------------------------------
def test_every_toolbar_control_is_in_the_row_at_1024(window, qtbot) -> None:
    settle(qtbot, window, (1024, 700))
    tb = window.commands.toolbar
    assert tb.width() <= 1024 and tb.sizeHint().width() <= 1024 - 40  # room to spare
    ext = tb.findChild(QToolButton, "qt_toolbar_ext_button")
    assert ext is None or not ext.isVisible()  # no overflow chevron
    inside = tb.contentsRect()
    for act in tb.actions():
        if act.isSeparator():
            continue
        w = tb.widgetForAction(act)
        assert w is not None and w.isVisible() and inside.contains(w.geometry()), act.text()
    # the window/level bar and the heatmap toggle in particular, each with its parts
    bar = window.display.bar
    assert tb.widgetForAction(window.commands.wl_action) is bar and bar.isVisible()
    for part in (bar.preset, bar.center, bar.width):
        assert part.isVisible() and bar.rect().contains(part.geometry())
    heat = tb.widgetForAction(window.display.cam_toggle)
    assert heat.isVisible() and inside.contains(heat.geometry()) and heat.text() == "Heatmap"
    # short labels on the buttons; the menus and tooltips keep the full names
    assert window.display.cam_toggle.text().replace("&", "") == "Show Grad-CAM heatmap"
    assert "Grad-CAM" in heat.toolTip()
    for tool in window.measure.tools.values():
        if tb.widgetForAction(tool) is not None:
            assert len(tool.iconText()) <= 8 and tool.text().replace("&", "") != tool.iconText()
    # batch analysis left the toolbar for the menus (File and Analysis, Ctrl+B)
    assert window.commands.batch not in tb.actions()
    assert window.commands.batch in window.commands.file_menu.actions()


# -- item 14: the shortcuts window ---------------------------------------------------------
def test_shortcuts_window_fits_a_700_px_screen(window, qtbot) -> None:
    dlg = window.show_shortcuts()
    qtbot.waitExposed(dlg)
    screen = dlg.screen().availableGeometry()
    assert dlg.height() + FRAME_ALLOWANCE <= min(screen.height(), 700) and screen.contains(dlg.geometry())
    dlg.fit_to(QRect(0, 0, 1024, 700))  # a 1024 x 700 screen
    qtbot.wait(50)
    assert dlg.height() + FRAME_ALLOWANCE <= 700 and dlg.width() <= 1024
    t = dlg.table
    assert t.verticalScrollBar().maximum() > 0  # the rest of the list scrolls inside the window
    # every shortcut is still listed, and no text is cut off
    listed = {keys for _, keys in dlg.rows}
    for a in window.all_actions():
        keys = ", ".join(k.toString(QKeySequence.SequenceFormat.NativeText) for k in a.shortcuts())
        assert not keys or keys in listed, a.text()
    assert t.rowCount() == len(dlg.rows)
    fm = t.fontMetrics()
    assert all(fm.horizontalAdvance(n) < t.columnWidth(0) and fm.horizontalAdvance(k) < t.columnWidth(1)
               for n, k in dlg.rows)
    dlg.close()


# -- item 21: restored dock widths ---------------------------------------------------------
def test_a_tiny_study_list_is_restored_readable(make_window, qtbot) -> None:
    small = make_window()
    settle(qtbot, small, (640, 480))  # a small window: the dock fitter squeezes the study list
    small.resizeDocks([small.study.dock], [60], Qt.Orientation.Horizontal)  # and the user narrowed it more
    qtbot.waitUntil(lambda: small.study.dock.width() < READABLE_WIDTH, timeout=5000)
    small.close()  # saves the layout
    for size in SIZES:
        win = make_window()  # restores it (the fixture shows it at 1200 x 800)
        settle(qtbot, win, size)
        qtbot.waitUntil(lambda w=win: w.study.dock.width() >= READABLE_WIDTH, timeout=5000)
        qtbot.wait(200)  # and it stays so (the dock fitter has run again)
        assert READABLE_WIDTH <= win.study.dock.width() <= RESTORE_SHARE * win.width() + 8
        assert win.centralWidget().width() >= 0.55 * win.width()  # the image keeps most of the window
        win.close()


# -- item 21: compare's banner -------------------------------------------------------------
def _clipped(label: QLabel) -> bool:
    return label.isVisible() and label.height() < label.heightForWidth(label.width())


@pytest.mark.parametrize("size", SIZES)
def test_compare_banner_wraps_and_is_whole(window, qtbot, open_wait, size, cxr_samples, pydicom_file,
                                           tmp_path: Path) -> None:
    chest = tmp_path / "chest.jpg"
    shutil.copy(cxr_samples["normal"][0], chest)
    ct = tmp_path / "ct.dcm"  # a CT slice: out of scope for a chest radiograph model
    ct.write_bytes(pydicom_file("CT_small.dcm").read_bytes())
    settle(qtbot, window, size)
    cmp = window.compare
    for left, right in ((ct, chest), (chest, ct)):  # the out-of-scope image on either side
        open_wait(window, left)
        qtbot.wait(100)  # the single view places its banner at its full width
        with qtbot.waitSignal(cmp.analysisFinished, timeout=30000):
            cmp.enter(str(right))
        qtbot.wait(150)
        out_view = window.view if left == ct else cmp.other_view
        banner = out_view.findChild(QLabel, "viewBanner")
        assert out_view.banner().startswith("Not analysed") and banner.wordWrap()
        assert banner.height() >= banner.heightForWidth(banner.width()), (size, left.name, banner.geometry())
        assert out_view.viewport().geometry().contains(banner.geometry())
        assert banner.heightForWidth(banner.width()) > banner.fontMetrics().height() * 1.5  # it does wrap
        for pane in (cmp.left, cmp.right):
            assert not _clipped(pane.summary) and not _clipped(pane.title)
            assert pane.rect().contains(pane.header.geometry())
        cmp.exit()


def test_compare_title_elides_a_long_name(window, qtbot, open_wait, cxr_samples, tmp_path: Path) -> None:
    names = [UID.format("12345678901234567890") + ".jpg", UID.format("12345678901234567891") + ".jpg"]
    for name, src in zip(names, cxr_samples["normal"], strict=False):
        shutil.copy(src, tmp_path / name)
    settle(qtbot, window, (1024, 700))
    open_wait(window, tmp_path / names[0])
    with qtbot.waitSignal(window.compare.analysisFinished, timeout=30000):
        window.compare.enter(str(tmp_path / names[1]))
    qtbot.wait(100)
    title = window.compare.right.title
    assert ELLIPSIS in title.text() and title.toolTip() == names[1]
    assert title.fontMetrics().horizontalAdvance(title.text()) <= title.contentsRect().width()
    window.compare.exit()


# -- long names in the study list ----------------------------------------------------------
def test_study_list_elides_long_names(qtbot, tmp_path: Path) -> None:
    browser = StudyBrowser()
    qtbot.addWidget(browser)
    names = [UID.format(f"1234567890123456789{i}") for i in range(3)] + ["short.png"]
    paths = [str(tmp_path / n) for n in names]
    browser.set_paths(paths)
    browser.resize(220, 400)
    browser.show()
    qtbot.waitExposed(browser)
    lst = browser.list
    assert lst.horizontalScrollBar().maximum() == 0 and not lst.horizontalScrollBar().isVisible()
    fm = lst.fontMetrics()
    shown = [browser.shown_text(r).split("\n")[0] for r in range(len(names))]
    for row, (name, first) in enumerate(zip(names, shown, strict=True)):
        assert browser.shown_text(row).split("\n")[1] == "pending"  # the status line is kept
        assert name in browser.tooltip(row) and browser.tooltip(row) == paths[row]  # the full name
        assert name in browser.text(row)  # the item's own text is whole
        rect = lst.visualItemRect(lst.item(row))
        assert rect.right() <= lst.viewport().width()
        assert fm.horizontalAdvance(first) <= rect.width() - lst.iconSize().width()
        if name == "short.png":
            assert first == name
        else:
            assert first != name and ELLIPSIS in first and first.startswith("1.2.")
            assert first.endswith(f"{row}.dcm")  # the end, where UIDs differ, is kept
    assert len(set(shown)) == len(shown)  # the rows can be told apart
    # wider: more of the name, and whole once it fits
    browser.resize(900, 400)
    qtbot.waitUntil(lambda: browser.shown_text(0).split("\n")[0] == names[0], timeout=3000)


def test_elide_name_fits_and_keeps_the_end(qtbot) -> None:
    fm = QLabel().fontMetrics()
    name = UID.format("12345678901234567890")
    for width in (80, 120, 200):
        out = elide_name(fm, name, width)
        assert ELLIPSIS in out and fm.horizontalAdvance(out) <= width + 2, (width, out)
        assert out.startswith(name[0]) and out.endswith("0.dcm"), (width, out)
        head, tail = out.split(ELLIPSIS)
        assert len(tail) >= len(head)  # the end gets the larger part
    assert elide_name(fm, name, 2000) == name and elide_name(fm, name, 3) == ELLIPSIS


def test_study_list_keeps_the_percentage_whole(qtbot, tmp_path: Path) -> None:
    """At a narrow list, a row's call line shortens the class name, never the percentage (">99.9%")."""
    from desktop.study_browser import fit_detail

    browser = StudyBrowser()
    qtbot.addWidget(browser)
    browser.set_paths([str(tmp_path / "a.dcm"), str(tmp_path / "b.dcm")])
    browser.set_status(0, "analysed", "tuberculosis", 0.99995)
    browser.set_status(1, "analysed", "normal", 0.5)
    browser.resize(170, 300)
    browser.show()
    qtbot.waitExposed(browser)
    fm = browser.list.fontMetrics()
    first, second = (browser.shown_text(r).split("\n")[1] for r in (0, 1))
    assert first.endswith(">99.9%") and first.startswith("tub") and ELLIPSIS in first, first  # shortened
    assert second == "normal  50.0%"
    rect = browser.list.visualItemRect(browser.list.item(0))
    assert fm.horizontalAdvance(first) <= rect.width() - browser.list.iconSize().width()
    assert fit_detail(fm, "tuberculosis  >99.9%", 10_000) == "tuberculosis  >99.9%"  # whole when it fits
    assert fit_detail(fm, "pending", 5).endswith(ELLIPSIS) or fit_detail(fm, "pending", 5) == ""
