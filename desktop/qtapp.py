"""The one QApplication, named for QSettings and QStandardPaths, and the exception hook that
reports errors in a dialog. Shared by the viewer's entry point (``app``, which imports this
module only after checking that Qt's system libraries and a display are there) and the
self-test's start-up timing (``selftest``)."""

from __future__ import annotations

import logging
import sys
import threading
import traceback
from collections.abc import Callable, Sequence
from pathlib import Path
from types import TracebackType

from PySide6.QtCore import QCoreApplication, QObject, Qt, Signal, Slot
from PySide6.QtWidgets import QApplication, QMessageBox

from . import APP_NAME, ORG_NAME

log = logging.getLogger("radlens")


def make_app(argv: Sequence[str]) -> QApplication:
    """The running QApplication, or a new one named RadLens (``argv``: extra Qt arguments)."""
    QCoreApplication.setOrganizationName(ORG_NAME)
    QCoreApplication.setApplicationName(APP_NAME)
    app = QApplication.instance() or QApplication([sys.argv[0] if sys.argv else APP_NAME, *argv])
    app.setApplicationDisplayName(APP_NAME)
    return app  # type: ignore[return-value]


class ErrorReporter(QObject):
    """Receives uncaught exceptions from any thread; logs them and shows a dialog on the
    GUI thread. ``show`` is replaceable (tests)."""

    reported = Signal(str, str)  # summary, traceback text

    def __init__(self, log_path: Path | None, show: Callable[[str, str], None] | None = None,
                 parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.log_path = log_path
        self.show = show or self._dialog
        self.count = 0
        self._boxes: list[QMessageBox] = []
        self.reported.connect(self._on_reported, Qt.ConnectionType.QueuedConnection)

    def handle(self, etype: type[BaseException], value: BaseException, tb: TracebackType | None) -> None:
        if issubclass(etype, KeyboardInterrupt):
            QCoreApplication.quit()
            return
        text = "".join(traceback.format_exception(etype, value, tb))
        log.error("uncaught exception in thread %s:\n%s", threading.current_thread().name, text)
        self.reported.emit(f"{etype.__name__}: {value}", text)

    def install(self) -> None:
        sys.excepthook = self.handle
        threading.excepthook = lambda a: self.handle(a.exc_type, a.exc_value, a.exc_traceback)  # type: ignore[arg-type]

    @Slot(str, str)
    def _on_reported(self, summary: str, text: str) -> None:
        self.count += 1
        self.show(summary, text)

    def _dialog(self, summary: str, text: str) -> None:
        where = f"\n\nThe details were written to {self.log_path}." if self.log_path else ""
        box = QMessageBox(QMessageBox.Icon.Critical, f"{APP_NAME}: unexpected error",
                          f"Something went wrong: {summary}\n\nRadLens keeps running; if something looks wrong, "
                          f"save your work and restart it. Please report this error.{where}")
        box.setDetailedText(text)
        box.setModal(False)
        self._boxes.append(box)  # no parent: keep it alive until it is closed
        box.finished.connect(lambda _r, b=box: self._boxes.remove(b) if b in self._boxes else None)
        box.show()
