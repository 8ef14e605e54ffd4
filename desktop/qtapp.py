"""The one QApplication, named for QSettings and QStandardPaths. Shared by the viewer's
entry point (``app``) and the self-test's start-up timing (``selftest``)."""

from __future__ import annotations

import sys
from collections.abc import Sequence

from PySide6.QtCore import QCoreApplication
from PySide6.QtWidgets import QApplication

from . import APP_NAME, ORG_NAME


def make_app(argv: Sequence[str]) -> QApplication:
    """The running QApplication, or a new one named RadLens (``argv``: extra Qt arguments)."""
    QCoreApplication.setOrganizationName(ORG_NAME)
    QCoreApplication.setApplicationName(APP_NAME)
    app = QApplication.instance() or QApplication([sys.argv[0] if sys.argv else APP_NAME, *argv])
    app.setApplicationDisplayName(APP_NAME)
    return app  # type: ignore[return-value]
