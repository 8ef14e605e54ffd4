"""Issue 24 in the window. Item 2: the corner text's patient identifiers go into a PNG or PDF
export only after the user confirms it (declined: the export goes ahead without them), and the
on-screen option does not come back at the next launch. Item 12: a long file name (PACS files
are named by their UIDs) is elided in the middle in the Analysis panel, never pushing the panel
wider than the dock, with the full name in the tooltip. Items 16 and 20: the study list, the
batch table and the probability bars write percentages by the one rule (">99.9%")."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pydicom
import pytest

from desktop.core.messages import percent_text
from desktop.settings import Settings

CR = "CR-ModalitySequenceLUT.dcm"  # a DICOM with a patient name, ID and sex


def patient_name(path: Path) -> str:
    return str(pydicom.dcmread(path, stop_before_pixels=True).PatientName).replace("^", " ")


def rgb(path: Path) -> np.ndarray:
    from PySide6.QtGui import QImage

    from desktop.viewer.convert import qimage_array

    img = QImage(str(path))
    assert not img.isNull(), path
    return qimage_array(img)[..., :3]


def corner_shown(win) -> str:
    return "\n".join(lab.text() for lab in win.corner.labels.values() if lab.isVisible())


@pytest.fixture
def grabbed(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """What the corner labels said each time an export grabbed the window."""
    import desktop.export.export as export

    seen: list[str] = []
    real = export.grab

    def spy(widget):  # noqa: ANN001, ANN202
        win = widget.window()
        seen.append(corner_shown(win))
        return real(widget)

    monkeypatch.setattr(export, "grab", spy)
    return seen


def identifiers_on(win, open_wait, dicom_dir: Path) -> str:
    path = dicom_dir / CR
    name = patient_name(path)
    win.corner.toggle.trigger()
    open_wait(win, path)
    win.corner.identifiers.trigger()
    assert name in corner_shown(win)
    return name


# -- item 2: identifiers in exports ----------------------------------------------------------
def test_png_export_asks_before_burning_identifiers(window, open_wait, dialogs, grabbed, tmp_path: Path,
                                                    dicom_dir: Path) -> None:
    win = window
    name = identifiers_on(win, open_wait, dicom_dir)
    # declined: the PNG is written, without the identifiers
    dialogs.confirms = [False]
    declined = tmp_path / "declined.png"
    assert win.exporter.export_png(str(declined)) == str(declined) and declined.is_file()
    assert len(dialogs.asked) == 1 and "identifiers" in dialogs.asked[0][0].lower()
    assert name not in grabbed[-1] and "Sex" not in grabbed[-1] and "ID " not in grabbed[-1]
    assert "px" in grabbed[-1]  # the rest of the corner text is still there
    assert name in corner_shown(win)  # the screen is as it was
    # confirmed: the identifiers are in the PNG
    dialogs.confirms = [True]
    accepted = tmp_path / "accepted.png"
    assert win.exporter.export_png(str(accepted)) == str(accepted)
    assert len(dialogs.asked) == 2 and name in grabbed[-1]
    # the pixels: declined is the view with the option off; accepted differs from it
    win.corner.identifiers.trigger()
    off = tmp_path / "off.png"
    assert win.exporter.export_png(str(off)) == str(off)
    assert len(dialogs.asked) == 2  # nothing shown, nothing asked
    assert np.array_equal(rgb(declined), rgb(off))
    assert not np.array_equal(rgb(accepted), rgb(off))


def test_pdf_export_asks_before_burning_identifiers(window, open_wait, dialogs, grabbed, tmp_path: Path,
                                                    dicom_dir: Path) -> None:
    win = window
    name = identifiers_on(win, open_wait, dicom_dir)
    dialogs.confirms = [False]
    out = tmp_path / "declined.pdf"
    assert win.exporter.export_pdf(str(out)) == str(out) and out.is_file()
    assert len(dialogs.asked) == 1 and "PDF" in dialogs.asked[0][0]
    assert grabbed and all(name not in g for g in grabbed)
    assert name in corner_shown(win)
    grabbed.clear()
    dialogs.confirms = [True]
    out2 = tmp_path / "accepted.pdf"
    assert win.exporter.export_pdf(str(out2)) == str(out2)
    assert len(dialogs.asked) == 2 and any(name in g for g in grabbed)


def test_no_question_without_identifiers_on_screen(window, open_wait, dialogs, tmp_path: Path,
                                                   dicom_dir: Path) -> None:
    win = window
    win.corner.identifiers.trigger()  # identifiers on, but the corner text is off: nothing shown
    open_wait(win, dicom_dir / CR)
    assert win.exporter.export_png(str(tmp_path / "v.png"))
    assert win.exporter.export_pdf(str(tmp_path / "r.pdf"))
    assert dialogs.asked == []


def test_identifiers_option_is_off_at_every_launch(make_window, open_wait, qtbot, settings_path: str,
                                                   dicom_dir: Path) -> None:
    first = make_window()
    assert "this session" in first.corner.identifiers.text()
    name = identifiers_on(first, open_wait, dicom_dir)
    first.close()
    second = make_window()  # the next launch, with the same settings file
    assert not second.corner.identifiers.isChecked() and not Settings(settings_path).show_identifiers
    assert second.corner.toggle.isChecked()  # the harmless corner text setting does persist
    open_wait(second, dicom_dir / CR)
    assert name not in corner_shown(second) and "px" in corner_shown(second)


# -- item 12: long file names in the Analysis panel ------------------------------------------
def test_long_file_name_is_elided_in_the_analysis_panel(make_window, open_wait, qtbot, cxr_samples,
                                                        tmp_path: Path) -> None:
    src = cxr_samples["pneumonia"][0]
    stem = "1.2.826.0.1.3680043.8.498." + "1234567890" * 12
    name = stem[: 120 - len(src.suffix)] + src.suffix
    assert len(name) == 120
    path = tmp_path / name
    shutil.copy(src, path)
    win = make_window()
    win.resize(1400, 900)
    open_wait(win, path)
    qtbot.wait(50)
    dock = win.analysis
    label = dock.state
    scroll = dock.widget()
    # the panel's contents fit the dock: nothing (percentages, notice) is cut off at the right
    assert scroll.widget().width() <= scroll.viewport().width(), (scroll.widget().width(), scroll.viewport().width())
    shown = label.text()
    assert name not in shown and "…" in shown, shown
    fm = label.fontMetrics()
    width = label.contentsRect().width()
    assert width > 100
    assert all(fm.horizontalAdvance(word) <= width for word in shown.split()), (shown, width)
    assert name in label.toolTip() and name in dock.state_text()  # the full name is kept
    from PySide6.QtCore import Qt

    from desktop.analysis.prob_panel import ProbBar

    bars = dock.probs.findChildren(ProbBar)
    assert bars
    for bar in bars:  # every percentage lies inside the visible part of the panel
        right = bar.mapTo(scroll.viewport(), bar.rect().topRight()).x()
        assert right <= scroll.viewport().width(), (bar.label, right)
    # a narrower dock elides further
    win.resizeDocks([dock], [300], Qt.Orientation.Horizontal)
    qtbot.wait(50)
    width = label.contentsRect().width()
    assert all(fm.horizontalAdvance(word) <= width for word in label.text().split()), (label.text(), width)
    assert scroll.widget().width() <= scroll.viewport().width()


# -- items 16 and 20: one rule on every screen -----------------------------------------------
def test_screens_never_write_a_certain_percentage(qtbot) -> None:
    from desktop.analysis.prob_panel import ProbBar
    from desktop.batch.batch_view import BatchTableModel
    from desktop.study_browser import StudyBrowser
    from engine.batch import BatchRow

    browser = StudyBrowser()
    qtbot.addWidget(browser)
    browser.set_paths(["/data/a.png", "/data/b.png"])
    browser.set_status(0, "analysed", "Pneumonia", 0.99996)
    browser.set_status(1, "analysed", "Normal", 0.9993)
    assert browser.text(0).endswith(f"Pneumonia  {percent_text(0.99996)}") and ">99.9%" in browser.text(0)
    assert browser.text(1).endswith("Normal  99.9%")

    model = BatchTableModel(("Normal", "Pneumonia"))
    model.add_rows([BatchRow(0, 1, "/data/a.png", "a.png", "ok", label="Pneumonia",
                             probs={"Normal": 0.00002, "Pneumonia": 0.99998}, scope="in")])
    cells = [model.item(0, c).text() for c in range(model.columnCount())]
    assert cells[3] == ">99.9" and cells[5] == "<0.1" and cells[6] == ">99.9"

    bar = ProbBar("Pneumonia", 1.0, 0.9996, call=True, flagged=True)
    qtbot.addWidget(bar)
    assert bar.text() == ">99.9%" and "Operating point >99.9%" in bar.toolTip()
