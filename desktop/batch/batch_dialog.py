"""Analyse a folder: the window that shows progress (count, rate, ETA), cancels, lists the
results and exports them through ``engine.batch.report.write_report`` (atomic). The work,
``engine.batch.analyze_folder``, runs in its own process (``batch_process``)."""

from __future__ import annotations

import logging
import os
import time
from collections import Counter, deque

from PySide6.QtCore import QModelIndex, Qt, QThread, QTimer, Signal
from PySide6.QtWidgets import (
    QAbstractItemView,
    QCheckBox,
    QComboBox,
    QDialog,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QProgressBar,
    QPushButton,
    QTableView,
    QVBoxLayout,
    QWidget,
)

from engine import DISCLAIMER, Classifier
from engine.batch import BatchRow
from engine.batch.report import ModelInfo, write_report

from ..dialogs import Dialogs
from ..workers import describe_error
from .batch_process import BatchEnd, BatchWorker
from .batch_view import ALL, ERRORS, OUT_OF_SCOPE, PATH_ROLE, BatchFilterProxy, BatchTableModel

__all__ = ["BatchDialog", "BatchEnd", "format_eta"]
log = logging.getLogger(__name__)
DRAIN_MS = 15  # a slice of the received rows every 15 ms: under one frame, never a long turn
ROWS_PER_STEP = 8
TEARDOWN_ROWS = 200  # rows removed per event-loop turn once the window is closed


def format_eta(seconds: float) -> str:
    seconds = max(0, int(round(seconds)))
    h, rem = divmod(seconds, 3600)
    m, s = divmod(rem, 60)
    return f"{h}:{m:02d}:{s:02d}" if h else f"{m}:{s:02d}"


class BatchDialog(QDialog):
    openRequested = Signal(str)
    finished_batch = Signal(object)  # BatchEnd
    discarded = Signal()  # closed, and its thread has stopped: the owner may delete it

    def __init__(self, folder: str, classifier: Classifier, dialogs: Dialogs | None = None,
                 parent: QWidget | None = None, batch_size: int = 16) -> None:
        super().__init__(parent)
        self.setWindowTitle(f"Batch analysis: {os.path.basename(os.path.normpath(folder)) or folder}")
        self.setModal(False)
        self.resize(980, 640)
        self.folder = folder
        self.classifier = classifier
        self.dialogs = dialogs or Dialogs(self)
        self.end: BatchEnd | None = None
        self.cancel_requested_at: float | None = None
        self.last_export: str = ""
        self.exported_rows = 0  # rows in the table at the last export
        self.close_confirmed = False  # the user has agreed to close (asked once)
        self._released = False
        self._counts: Counter[str] = Counter()
        self._errors = 0
        self._out_of_scope = 0
        card = classifier.card
        head = QLabel(f"<b>Folder:</b> {folder}<br><b>Model:</b> {card.name} {card.version} on "
                      f"{classifier.device_label}")
        head.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        notice = QLabel(f"{DISCLAIMER}. The CSV export says so too.")
        notice.setStyleSheet("color: #b00020; font-weight: bold;")
        self.bar = QProgressBar()
        self.bar.setRange(0, 0)
        self.status = QLabel("Starting the batch (its own process: loading the model, listing the files)…")
        self.cancel_button = QPushButton("Cancel")
        self.cancel_button.clicked.connect(self.cancel)
        top = QHBoxLayout()
        top.addWidget(self.bar, 1)
        top.addWidget(self.cancel_button)
        self.model = BatchTableModel(card.labels, self)
        self.proxy = BatchFilterProxy(self)
        self.proxy.setSourceModel(self.model)
        self.table = QTableView()
        self.table.setModel(self.proxy)
        self.table.setSortingEnabled(True)
        self.table.sortByColumn(-1, Qt.SortOrder.AscendingOrder)
        self.table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.table.verticalHeader().setVisible(False)
        self.table.setWordWrap(False)
        fm = self.table.fontMetrics()
        self.table.verticalHeader().setDefaultSectionSize(fm.height() + 6)
        header = self.table.horizontalHeader()
        header.setSectionResizeMode(QHeaderView.ResizeMode.Interactive)
        header.setStretchLastSection(True)
        self.table.setColumnWidth(0, 320)
        for col in range(1, self.model.columnCount()):
            self.table.setColumnWidth(col, fm.horizontalAdvance(self.model.columns[col]) + 28)
        self.table.setColumnWidth(2, fm.horizontalAdvance("tuberculosis") + 16)
        self.table.setToolTip("Click a row to open the image in the viewer")
        self.table.clicked.connect(self._on_click)
        self.table.activated.connect(self._on_click)
        self.filter = QComboBox()
        self.filter.addItems([ALL, ERRORS, OUT_OF_SCOPE, *card.labels])
        self.filter.currentTextChanged.connect(self.proxy.set_mode)
        self.filter.currentTextChanged.connect(lambda _t: self._update_shown())
        self.shown = QLabel("")
        self.shown.setObjectName("batchShown")
        self.shown.setToolTip("Rows shown by the filter / rows in the table")
        self.summary = QLabel("")
        self.summary.setWordWrap(True)
        self.identifiers = QCheckBox("Include patient/study identifiers")
        self.identifiers.setToolTip("Adds patient ID, name, birth date, study/series/SOP UIDs, accession number and "
                                    "study date to the CSV. Leave off to share reports safely.")
        self.export_button = QPushButton("Export CSV…")
        self.export_button.setEnabled(False)
        self.export_button.clicked.connect(self.export)
        close = QPushButton("Close")
        close.clicked.connect(self.close)
        filt = QHBoxLayout()
        filt.addWidget(QLabel("Show"))
        filt.addWidget(self.filter)
        filt.addWidget(self.shown)
        filt.addStretch(1)
        bottom = QHBoxLayout()
        bottom.addWidget(self.identifiers)
        bottom.addStretch(1)
        bottom.addWidget(self.export_button)
        bottom.addWidget(close)
        lay = QVBoxLayout(self)
        lay.addWidget(head)
        lay.addWidget(notice)
        lay.addLayout(top)
        lay.addWidget(self.status)
        lay.addLayout(filt)
        lay.addWidget(self.table, 1)
        lay.addWidget(self.summary)
        lay.addLayout(bottom)
        self._thread = QThread(self)
        self._thread.setObjectName("radlens-batch")
        self.worker = BatchWorker(folder, classifier, batch_size)
        self.worker.moveToThread(self._thread)
        self._thread.started.connect(self.worker.run)
        self.worker.rows.connect(self._queue_rows)
        self.worker.progress.connect(self._queue_progress)
        self.worker.finished.connect(self._on_finished)
        # The GUI thread takes rows in small slices, one slice per event-loop turn, and the
        # labels on a turn of their own: no turn holds it for more than a few milliseconds.
        self._pending: deque[BatchRow] = deque()
        self._progress: tuple[int, int, float] | None = None
        self._drain = QTimer(self)
        self._drain.setInterval(DRAIN_MS)
        self._drain.timeout.connect(self._drain_step)
        self._update_shown()

    def start(self) -> None:
        self._thread.start()

    def running(self) -> bool:
        return self._thread.isRunning() and self.end is None

    def cancel(self) -> None:
        if self.running():
            self.cancel_requested_at = time.perf_counter()
            self.worker.cancel.set()
            self.cancel_button.setEnabled(False)
            self.status.setText(self.status.text() + "  Cancelling…")

    # -- worker results ------------------------------------------------------------------
    def _queue_rows(self, rows: list[BatchRow]) -> None:
        self._pending.extend(rows)
        if not self._drain.isActive():
            self._drain.start()

    def _queue_progress(self, done: int, total: int, elapsed: float) -> None:
        self._progress = (done, total, elapsed)
        if not self._drain.isActive():
            self._drain.start()

    def _drain_step(self) -> None:
        """One slice: up to ``ROWS_PER_STEP`` rows, or else the progress and the labels."""
        if self._pending:
            n = min(ROWS_PER_STEP, len(self._pending))
            self._on_rows([self._pending.popleft() for _ in range(n)])
            self._labels_due = True
            return
        if self._progress is not None:
            self._on_progress(*self._progress)
            self._progress = None
            return
        if self._labels_due:
            self._update_summary()
            self._update_shown()
            self._labels_due = False
            return
        self._drain.stop()

    def flush(self) -> None:
        """Everything received so far into the table and the labels now (the batch ended)."""
        if self._pending:
            self._on_rows(list(self._pending))
            self._pending.clear()
        if self._progress is not None:
            self._on_progress(*self._progress)
            self._progress = None
        self._update_summary()
        self._update_shown()
        self._labels_due = False
        self._drain.stop()

    _labels_due = False

    def _on_rows(self, rows: list[BatchRow]) -> None:
        self.model.add_rows(rows)
        for r in rows:
            if r.ok:
                self._counts[r.label] += 1
            elif r.out_of_scope:
                self._out_of_scope += 1
            else:
                self._errors += 1

    def _on_progress(self, done: int, total: int, elapsed: float) -> None:
        self.bar.setRange(0, max(total, 1))
        self.bar.setValue(done)
        rate = done / elapsed if elapsed > 0 and done else 0.0
        eta = f"ETA {format_eta((total - done) / rate)}" if rate > 0 and done < total else ("done" if done >= total else "ETA …")
        self.status.setText(f"{done} / {total} files · {rate:.1f} images/s · {eta}")

    def _on_finished(self, end: BatchEnd) -> None:
        self.flush()
        self.end = end
        self._thread.quit()
        self.cancel_button.setEnabled(False)
        if end.error:
            self.bar.setRange(0, 1)
            self.status.setText(f"The batch could not run: {end.error}")
        elif end.cancelled:
            self.status.setText(f"Cancelled after {end.done} of {end.total} files ({end.seconds:.1f} s). "
                                "The table and an export hold the files analysed so far.")
        else:
            rate = end.done / end.seconds if end.seconds > 0 else 0.0
            self.status.setText(f"Finished: {end.done} files in {end.seconds:.1f} s ({rate:.1f} images/s).")
        self.export_button.setEnabled(self.model.rowCount() > 0)
        self._update_summary()
        self.finished_batch.emit(end)

    def _update_shown(self) -> None:
        self.shown.setText(f"{self.proxy.rowCount()} / {self.model.rowCount()} shown")

    def paths(self) -> list[str]:
        """The files analysed so far, in file order (the study a clicked row opens in)."""
        return [r.path for r in self.model.rows()]

    def _update_summary(self) -> None:
        counts = self._counts
        parts = [f"{counts[lab]} {lab}" for lab in self.model.labels if counts[lab]]
        self.summary.setText(f"{self.model.rowCount()} files: " + (", ".join(parts) or "no call")
                             + f"; {self._out_of_scope} out of scope; {self._errors} error(s).")

    def _on_click(self, index: QModelIndex) -> None:
        if index.isValid():
            self.openRequested.emit(index.data(PATH_ROLE))

    # -- export --------------------------------------------------------------------------
    def export(self) -> str:
        """Ask where, then write the CSV atomically. Returns the path written ("" if none)."""
        rows = self.model.rows()
        if not rows:
            return ""
        path = self.dialogs.save_csv(os.path.join(self.folder, "radlens-report.csv"))
        if not path:
            return ""
        try:
            n = write_report(path, rows, ModelInfo.from_classifier(self.classifier),
                             include_identifiers=self.identifiers.isChecked(),
                             run={"folder": self.folder, "provider": self.classifier.provider,
                                  "provider_note": self.classifier.provider_note, "source": "RadLens batch window"})
        except Exception as e:  # noqa: BLE001
            msg = describe_error(e) if not isinstance(e, OSError) else f"{e.strerror or e}. Choose a writable location."
            self.dialogs.error("Export failed", f"The report could not be written to {path}: {msg}")
            return ""
        self.last_export = path
        self.exported_rows = len(rows)
        note = " with identifiers" if self.identifiers.isChecked() else ""
        self.status.setText(f"Exported {n} rows{note} to {path}.")
        return path

    # -- closing -------------------------------------------------------------------------
    def unexported(self) -> int:
        """Rows analysed since the last export (0 when everything is in a written report)."""
        return max(0, self.model.rowCount() - self.exported_rows)

    def confirm_discard(self) -> bool:
        """Closing loses results that were never exported: ask first."""
        n = self.unexported()
        if not n:
            return True
        end = self.end
        if self.running():
            what = "is still running"
        elif end is not None and end.cancelled:
            what = f"was cancelled after {end.done} of {end.total} files"
        elif end is not None and end.error:
            what = "stopped with an error"
        else:
            what = "has finished"
        return self.dialogs.confirm(
            "Discard batch results?",
            f"The batch of {self.folder} {what}; {n} result(s) have not been exported to a CSV report. "
            "Close it and lose them?", "Discard results")

    def shutdown(self, timeout_ms: int = 5000) -> None:
        """Stop the batch and wait for its thread (application exit)."""
        self.worker.cancel.set()
        self._thread.quit()
        if not self._thread.wait(timeout_ms):
            log.warning("the batch thread did not stop in time")

    def reject(self) -> None:  # Escape, and QDialog's own closeEvent: cancel and release, not just hide
        if not self.close_confirmed and not self.confirm_discard():
            return
        self.close_confirmed = True
        self._release()
        super().reject()

    def closeEvent(self, event) -> None:  # noqa: ANN001, N802
        if not self.close_confirmed and not self.confirm_discard():
            event.ignore()
            return
        self.close_confirmed = True
        self._release()
        super().closeEvent(event)

    def _release(self) -> None:
        """Cancel a running batch (it stops within a second, its end quits the thread) and tell
        the owner when the thread is gone; never waits on the GUI thread."""
        if self._released:
            return
        self._released = True
        if self.running():
            self.cancel()
        if self._thread.isRunning():
            self._thread.finished.connect(self._teardown)
        else:
            QTimer.singleShot(0, self._teardown)

    def _teardown(self) -> None:
        """Empty the table a slice per event-loop turn, then tell the owner it may delete us."""
        self._drain.stop()
        self._pending.clear()
        if self.model.drop_last(TEARDOWN_ROWS):
            QTimer.singleShot(0, self._teardown)
        else:
            self.discarded.emit()
