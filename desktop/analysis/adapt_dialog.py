"""Analysis > Adapt to this site…: choose the site's folder of confirmed films, adapt the model in a
background thread (progress, Cancel), see the before/after table, and switch to the adapted model.

The work is ``engine.adapt.adapt_site`` (the same function as ``radlens-adapt``); this dialog only
starts it and shows its result. The bundled model is never changed: the adapted model is a new
file, and Analysis > Use the bundled model switches back.
"""

from __future__ import annotations

import os
import threading
from pathlib import Path

from PySide6.QtCore import QStandardPaths, Qt, QThread, Signal
from PySide6.QtWidgets import (
    QDialog,
    QFormLayout,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QLineEdit,
    QProgressBar,
    QPushButton,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from engine import DISCLAIMER, Classifier
from engine.adapt import MIN_FILMS, MIN_PER_CLASS, AdaptResult, Cancelled, adapt_site
from engine.adapt.run import slug
from engine.adapt.summary import summary_rows
from engine.errors import RadLensError

from ..dialogs import Dialogs


def default_output(classifier: Classifier, site_name: str) -> str:
    """Where an adapted model goes unless the user says otherwise: the app's data folder."""
    base = QStandardPaths.writableLocation(QStandardPaths.StandardLocation.AppDataLocation) or str(Path.home() / ".radlens")
    parent = classifier.card.parent["name"] if classifier.card.parent else classifier.card.name
    return str(Path(base) / "site-models" / f"{parent}-{slug(site_name)}.onnx")


class AdaptWorker(QThread):
    """Runs ``adapt_site`` off the GUI thread; ``cancel()`` stops it between batches of films."""

    progressed = Signal(str, int, int)  # stage ("films" | "fit"), done, total
    finishedOk = Signal(object)  # AdaptResult
    failed = Signal(str, bool)  # message, cancelled

    def __init__(self, classifier: Classifier, site: str, output: str, name: str, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.classifier, self.site, self.output, self.name = classifier, site, output, name
        self._stop = threading.Event()

    def cancel(self) -> None:
        self._stop.set()

    def run(self) -> None:
        try:
            res = adapt_site(self.site, self.classifier, self.output, self.name,
                             progress=lambda s, d, n: self.progressed.emit(s, d, n), cancel=self._stop.is_set,
                             overwrite=True)  # the dialog asked before replacing an existing file
        except Cancelled as e:
            self.failed.emit(str(e), True)
        except RadLensError as e:
            self.failed.emit(str(e), False)
        except Exception as e:  # noqa: BLE001 - any failure is shown, never a crash of the window
            self.failed.emit(f"unexpected error ({type(e).__name__}: {e}). Nothing was written.", False)
        else:
            self.finishedOk.emit(res)


class AdaptDialog(QDialog):
    useModel = Signal(str)  # the adapted model's path: switch to it

    def __init__(self, classifier: Classifier, dialogs: Dialogs, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle("Adapt to this site")
        self.classifier = classifier
        self.dialogs = dialogs
        self.worker: AdaptWorker | None = None
        self.result: AdaptResult | None = None
        labels = ", ".join(f"{lab}/" for lab in classifier.labels)
        intro = QLabel(
            f"<b>{DISCLAIMER}.</b><br>RadLens refits the last layer of <b>{classifier.card.name} "
            f"{classifier.card.version}</b> on your site's confirmed films, together with the model's own training "
            f"features, and saves a <b>new</b> model; the bundled model is not changed.<br>Put the films in "
            f"subfolders named by the labels ({labels}); some labels may be missing (normal/ only is fine). At least "
            f"{MIN_FILMS} films, and {MIN_PER_CLASS} in each folder that has any.")
        intro.setWordWrap(True)
        self.folder = QLineEdit()
        self.folder.setPlaceholderText("the site's folder (normal/, tuberculosis/, …)")
        self.name = QLineEdit()
        self.name.setPlaceholderText("the site's name (default: the folder's name)")
        self.output = QLineEdit()
        browse = QPushButton("Choose…")
        browse.clicked.connect(self._choose_folder)
        save_as = QPushButton("Choose…")
        save_as.clicked.connect(self._choose_output)
        form = QFormLayout()
        form.addRow("Site folder", self._row(self.folder, browse))
        form.addRow("Site name", self.name)
        form.addRow("Save the adapted model as", self._row(self.output, save_as))
        self.progress = QProgressBar()
        self.progress.setRange(0, 1)
        self.progress.setValue(0)
        self.state = QLabel("Choose the site's folder, then Adapt.")
        self.state.setWordWrap(True)
        self.state.setObjectName("adaptState")
        self.table = QTableWidget(0, 4)
        self.table.setHorizontalHeaderLabels(["", "before", "after", ""])
        for col in (0, 1, 2):
            self.table.horizontalHeader().setSectionResizeMode(col, QHeaderView.ResizeMode.ResizeToContents)
        self.table.horizontalHeader().setStretchLastSection(True)
        self.table.verticalHeader().setVisible(False)
        self.table.setEditTriggers(QTableWidget.EditTrigger.NoEditTriggers)
        self.warnings = QLabel("")
        self.warnings.setWordWrap(True)
        self.warnings.setStyleSheet("color:#b00020")
        self.start_button = QPushButton("Adapt")
        self.start_button.setDefault(True)
        self.start_button.clicked.connect(self.start)
        self.cancel_button = QPushButton("Cancel")
        self.cancel_button.setEnabled(False)
        self.cancel_button.clicked.connect(self.cancel)
        self.use_button = QPushButton("Use the adapted model")
        self.use_button.setEnabled(False)
        self.use_button.clicked.connect(self._use)
        close = QPushButton("Close")
        close.clicked.connect(self.close)
        buttons = QHBoxLayout()
        buttons.addWidget(self.start_button)
        buttons.addWidget(self.cancel_button)
        buttons.addStretch(1)
        buttons.addWidget(self.use_button)
        buttons.addWidget(close)
        lay = QVBoxLayout(self)
        lay.addWidget(intro)
        lay.addLayout(form)
        lay.addWidget(self.progress)
        lay.addWidget(self.state)
        lay.addWidget(self.table, 1)
        lay.addWidget(self.warnings)
        lay.addLayout(buttons)
        self.resize(760, 560)
        self.folder.textChanged.connect(self._suggest_output)
        self.name.textChanged.connect(self._suggest_output)
        self._user_output = False
        self.output.textEdited.connect(lambda _t: setattr(self, "_user_output", True))

    @staticmethod
    def _row(edit: QLineEdit, button: QPushButton) -> QWidget:
        w = QWidget()
        h = QHBoxLayout(w)
        h.setContentsMargins(0, 0, 0, 0)
        h.addWidget(edit, 1)
        h.addWidget(button)
        return w

    def _site_name(self) -> str:
        return self.name.text().strip() or os.path.basename(self.folder.text().rstrip("/\\")) or "site"

    def _suggest_output(self) -> None:
        if not self._user_output:
            self.output.setText(default_output(self.classifier, self._site_name()))

    def _choose_folder(self) -> None:
        path = self.dialogs.open_folder(self.folder.text() or str(Path.home()), "The site's folder of confirmed films")
        if path:
            self.folder.setText(path)

    def _choose_output(self) -> None:
        path = self.dialogs.save_file("Save the adapted model", self.output.text(), "ONNX model (*.onnx)", ".onnx")
        if path:
            self._user_output = True
            self.output.setText(path)

    # -- running -------------------------------------------------------------------------
    def start(self) -> None:
        site, out = self.folder.text().strip(), self.output.text().strip()
        if not site:
            self.state.setText("Choose the site's folder first.")
            return
        if os.path.exists(out) and not self.dialogs.confirm(
                "Replace the model?", f"{out} exists. Replace it with the new adapted model?", "Replace"):
            return
        try:
            Path(out).parent.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            self.state.setText(f"Cannot create the folder for {out} ({e.strerror or e}). Choose another place.")
            return
        self.result = None
        self.table.setRowCount(0)
        self.warnings.setText("")
        self.use_button.setEnabled(False)
        self.start_button.setEnabled(False)
        self.cancel_button.setEnabled(True)
        self.progress.setRange(0, 0)
        self.state.setText("Reading the site's films…")
        self.worker = AdaptWorker(self.classifier, site, out, self._site_name(), self)
        self.worker.progressed.connect(self._on_progress)
        self.worker.finishedOk.connect(self._on_done)
        self.worker.failed.connect(self._on_failed)
        self.worker.start()

    def cancel(self) -> None:
        if self.worker is not None and self.worker.isRunning():
            self.worker.cancel()
            self.cancel_button.setEnabled(False)
            self.state.setText("Cancelling…")

    def _on_progress(self, stage: str, done: int, total: int) -> None:
        self.progress.setRange(0, max(1, total))
        self.progress.setValue(done)
        self.state.setText(f"Reading the site's films: {done} of {total}" if stage == "films"
                           else f"Fitting and cross-validating: step {done} of {total}")

    def _finish(self) -> None:
        self.start_button.setEnabled(True)
        self.cancel_button.setEnabled(False)
        self.progress.setRange(0, 1)

    def _on_failed(self, message: str, cancelled: bool) -> None:
        self._finish()
        self.progress.setValue(0)
        self.state.setText(("Cancelled: " if cancelled else "Not adapted: ") + message)

    def _on_done(self, res: AdaptResult) -> None:
        self._finish()
        self.progress.setValue(1)
        self.result = res
        sa = res.card.site_adaptation or {}
        counts = ", ".join(f"{n} {lab}" for lab, n in sa["site"]["counts"].items() if n)
        left = ", ".join(f"{n} {why}" for why, n in sa["site"]["left_out"].items())
        self.state.setText(f"Saved {res.card.name} {res.card.version} to {res.output} in {res.seconds:.1f} s from "
                           f"{counts} films" + (f" (left out: {left})" if left else "") + ". 'after' on the site's "
                           "films is cross-validated: each film was called by a head fitted without it.")
        rows = summary_rows(res.figures, tuple(res.card.labels))
        self.table.setRowCount(len(rows))
        for i, r in enumerate(rows):
            for j, text in enumerate((r.what, r.before, r.after, r.note)):
                item = QTableWidgetItem(text)
                if j in (1, 2):
                    item.setTextAlignment(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
                self.table.setItem(i, j, item)
        self.warnings.setText("\n".join(res.warnings))
        self.use_button.setEnabled(True)

    def _use(self) -> None:
        if self.result is not None:
            self.useModel.emit(str(self.result.output))
            self.accept()

    def _stop_worker(self) -> None:
        if self.worker is not None and self.worker.isRunning():
            self.worker.cancel()
            self.worker.wait(30000)

    def closeEvent(self, event) -> None:  # noqa: ANN001, N802 - Qt override
        self._stop_worker()
        super().closeEvent(event)

    def done(self, r: int) -> None:  # Escape / accept: stop the worker first
        self._stop_worker()
        super().done(r)
