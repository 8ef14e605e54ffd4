"""Batch analysis from the window: progress, cancel, error rows, filter, sort, export."""

from __future__ import annotations

import os
import re
import time
from pathlib import Path

import pytest
from PySide6.QtCore import Qt

from desktop.batch.batch_view import ALL, ERRORS, SORT_ROLE
from engine import DISCLAIMER, analyze
from engine.batch.report import IDENTIFIER_COLUMNS, read_report


@pytest.fixture
def finished_batch(window, qtbot, study_folder: Path):
    dlg = window.batch_dialog(str(study_folder))
    assert dlg is not None
    if dlg.end is None:
        with qtbot.waitSignal(dlg.finished_batch, timeout=60000):
            pass
    return dlg


def test_batch_rows_errors_and_progress(finished_batch, window) -> None:
    dlg = finished_batch
    end = dlg.end
    assert (end.done, end.total, end.cancelled, end.error) == (10, 10, False, "")
    rows = dlg.model.rows()
    assert len(rows) == 10 and dlg.model.rowCount() == 10
    errors = {os.path.basename(r.path): r.error for r in rows if not r.ok}
    assert set(errors) == {"empty.png", "notes.dcm"}  # bad files are rows; the batch went on
    assert "empty (0 bytes)" in errors["empty.png"]
    assert "not a PNG, JPEG or DICOM" in errors["notes.dcm"]
    ok = [r for r in rows if r.ok]
    ref = analyze(ok[0].path, window.classifier)
    assert ok[0].label == ref.top_label
    assert ok[0].probs[ref.top_label] == pytest.approx(ref.top_prob, abs=1e-5)
    assert re.search(r"Finished: 10 files in [\d.]+ s \([\d.]+ images/s\)", dlg.status.text())
    assert dlg.bar.value() == dlg.bar.maximum() == 10
    assert dlg.summary.text().startswith("10 files:") and "0 out of scope; 2 error(s)" in dlg.summary.text()


def test_batch_filter_sort_and_click_opens(finished_batch, window, qtbot) -> None:
    dlg = finished_batch
    proxy = dlg.proxy
    dlg.filter.setCurrentText(ERRORS)
    assert proxy.rowCount() == 2
    assert all(proxy.index(r, 1).data() == "error" for r in range(2))
    total = 0
    for label in window.classifier.labels:
        dlg.filter.setCurrentText(label)
        total += proxy.rowCount()
        assert all(proxy.index(r, 2).data() == label for r in range(proxy.rowCount()))
    assert total == 8
    dlg.filter.setCurrentText("Out of scope")
    assert proxy.rowCount() == 0  # real radiographs only in this folder (test_scope covers the rest)
    dlg.filter.setCurrentText(ALL)
    assert proxy.rowCount() == 10
    dlg.table.sortByColumn(3, Qt.SortOrder.DescendingOrder)  # "Call %", numerically
    keys = [proxy.index(r, 3).data(SORT_ROLE) for r in range(proxy.rowCount())]
    assert keys == sorted(keys, reverse=True)
    target = proxy.index(0, 0)
    path = target.data(Qt.ItemDataRole.UserRole + 1)
    with qtbot.waitSignal(window.analysisFinished, timeout=20000):
        dlg.table.clicked.emit(target)
    assert window.current_path == path
    assert window.prediction is not None and window.prediction.path == path


def test_batch_export_csv(finished_batch, window, dialogs, tmp_path: Path) -> None:
    dlg = finished_batch
    out = tmp_path / "report.csv"
    dialogs.csv_paths.append(str(out))
    assert dlg.export() == str(out)
    meta, rows = read_report(out)
    assert meta["notice"] == DISCLAIMER and meta["model"]["sha256"] == window.classifier.sha256
    assert meta["options"]["source"] == "RadLens batch window" and meta["counts"]["files"] == 10
    assert all(r["notice"] == DISCLAIMER and r["model_sha256"] == window.classifier.sha256 for r in rows)
    assert len(rows) == 10
    assert not any(c in rows[0] for c in IDENTIFIER_COLUMNS)  # identifiers only when asked
    by_file = {r["file"]: r for r in rows}
    assert by_file["empty.png"]["status"] == "error" and "0 bytes" in by_file["empty.png"]["error"]
    assert by_file["notes.dcm"]["status"] == "error"
    for r in dlg.model.rows():
        line = by_file[r.rel_path]
        if r.ok:
            assert line["call"] == r.label and line["flags"] == ";".join(r.flags)
            for lab, p in r.probs.items():
                assert float(line[f"prob_{lab}"]) == pytest.approx(p, abs=1e-6)
            assert line["model_name"] == window.classifier.card.name
    assert str(out) in dlg.status.text()
    # with identifiers, on request
    dlg.identifiers.setChecked(True)
    out2 = tmp_path / "with-ids.csv"
    dialogs.csv_paths.append(str(out2))
    dlg.export()
    _, rows2 = read_report(out2)
    assert all(c in rows2[0] for c in IDENTIFIER_COLUMNS)
    # a cancelled save dialog writes nothing
    assert dlg.export() == ""


def test_batch_export_failure_is_a_message(finished_batch, dialogs, tmp_path: Path) -> None:
    dialogs.csv_paths.append(str(tmp_path / "missing-folder" / "r.csv"))
    assert finished_batch.export() == ""
    assert dialogs.errors and "does not exist" in dialogs.errors[-1][1]


def test_batch_cancel_stops_within_a_second(window, qtbot, cxr_dir: Path) -> None:
    from engine.batch import list_images

    total = len(list_images(cxr_dir / "images"))  # 16,539 images: far from done when cancelled
    dlg = window.batch_dialog(str(cxr_dir / "images"))
    qtbot.waitUntil(lambda: dlg.model.rowCount() >= 32, timeout=30000)
    # the progress signal for these rows follows the rows signal: wait for it, not for the rows alone
    qtbot.waitUntil(lambda: bool(re.search(rf"[1-9]\d* / {total} files · [\d.]+ images/s · ETA \d+:\d\d", dlg.status.text())),
                    timeout=10000)
    t0 = time.perf_counter()
    with qtbot.waitSignal(dlg.finished_batch, timeout=5000) as sig:
        dlg.cancel()
    elapsed = time.perf_counter() - t0
    end = sig.args[0]
    assert end.cancelled and end.done < end.total == total
    assert elapsed < 1.0, f"cancel took {elapsed:.2f} s"
    assert "Cancelled after" in dlg.status.text()
    assert dlg.model.rowCount() == end.done  # every finished row reached the table
    assert dlg.export_button.isEnabled()


def test_batch_needs_a_model(make_window, dialogs, monkeypatch, tmp_path: Path, study_folder: Path) -> None:
    monkeypatch.setenv("RADLENS_MODEL", str(tmp_path / "none.onnx"))
    win = make_window(model=None)
    assert not win.commands.batch.isEnabled()
    assert win.batch_dialog(str(study_folder)) is None
    assert dialogs.errors and "needs a model" in dialogs.errors[-1][1]


def test_closing_unexported_results_asks_first(finished_batch, window, dialogs, qtbot, tmp_path: Path) -> None:
    dlg = finished_batch
    assert dlg.unexported() == 10
    dialogs.confirms.append(False)  # "Cancel": keep the results
    dlg.close()
    assert dlg.isVisible() and dlg in window.batch_dialogs
    assert "10 result(s) have not been exported" in dialogs.asked[-1][1]
    dialogs.csv_paths.append(str(tmp_path / "r.csv"))
    assert dlg.export()
    assert dlg.unexported() == 0
    asked = len(dialogs.asked)
    with qtbot.waitSignal(dlg.discarded, timeout=5000):
        dlg.close()  # everything exported: no question
    assert len(dialogs.asked) == asked
    assert dlg not in window.batch_dialogs  # released, not kept for the life of the window


def test_closing_a_running_batch_cancels_without_blocking(window, qtbot, cxr_dir: Path, dialogs) -> None:
    dlg = window.batch_dialog(str(cxr_dir / "images"))
    qtbot.waitUntil(lambda: dlg.model.rowCount() >= 16, timeout=30000)
    with qtbot.waitSignal(dlg.discarded, timeout=5000):
        t0 = time.perf_counter()
        dlg.reject()  # Escape closes (and cancels) instead of hiding a running batch
        returned = time.perf_counter() - t0
        assert not dlg.isVisible() and dlg.worker.cancel.is_set()
    assert returned < 0.2, f"closing blocked the GUI for {returned:.2f} s"
    assert "still running" in dialogs.asked[-1][1]  # it had unexported rows
    assert dlg.end is not None and dlg.end.cancelled
    assert dlg not in window.batch_dialogs


def test_quitting_with_unexported_results_asks_first(finished_batch, window, dialogs) -> None:
    dialogs.confirms.append(False)
    window.close()
    assert window.isVisible()
    assert "have not been exported" in dialogs.asked[-1][1]
    window.close()  # the default answer: quit
    assert not window.isVisible()
