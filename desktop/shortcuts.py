"""Help > Shortcuts: every keyboard shortcut of the window's actions, plus mouse gestures."""

from __future__ import annotations

from PySide6.QtGui import QAction, QKeySequence
from PySide6.QtWidgets import (
    QAbstractItemView,
    QDialog,
    QDialogButtonBox,
    QHeaderView,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

# desktop/viewer/measure_tools.py: the tool keys are its actions' shortcuts (also listed above as actions)
MEASURE_GESTURES = (
    ("M, then left-drag (or click, click)", "Measure a distance"),
    ("A, then drag one arm to the vertex, click", "Measure an angle: the click is the other arm's end"),
    ("Shift+A, then draw two lines", "Cobb angle: the angle between the two lines"),
    ("Esc (in a measuring tool)", "Back to Pan / select (while drawing: first drops the drawing)"),
    ("Click a measurement (Pan / select)", "Select it: its end handles show; drag it to move it whole"),
    ("Drag an end handle of a selected measurement", "Move that point; the value follows"),
    ("Delete (a measurement selected)", "Remove the selected measurements"),
    ("Right-click a measurement", "Menu: delete it, or every measurement on this image"),
)

GESTURES = (
    ("Mouse wheel", "Zoom around the cursor"),
    ("Left-drag on the image", "Pan (in Pan / select mode, the default)"),
    ("Right-drag on the image", "Window/level: left-right = width, up-down = level"),
    *MEASURE_GESTURES,
    ("Up / Down (study browser or image)", "Previous / next image in the study"),
    ("Drop files or a folder on the window", "Open them as a study"),
)


def shortcut_rows(actions: list[QAction]) -> list[tuple[str, str]]:
    """(action, shortcut text) for every action that has a shortcut, without duplicates."""
    rows, seen = [], set()
    for a in actions:
        keys = [k.toString(QKeySequence.SequenceFormat.NativeText) for k in a.shortcuts() if not k.isEmpty()]
        if not keys:
            continue
        name = a.text().replace("&", "").rstrip(".…")
        key = (name, tuple(keys))
        if key in seen:
            continue
        seen.add(key)
        rows.append((name, ", ".join(keys)))
    return rows


class ShortcutsDialog(QDialog):
    def __init__(self, actions: list[QAction], parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle("Keyboard shortcuts")
        self.resize(560, 620)
        self.rows = shortcut_rows(actions) + list(GESTURES)
        table = QTableWidget(len(self.rows), 2)
        table.setHorizontalHeaderLabels(["Action", "Shortcut"])
        table.verticalHeader().setVisible(False)
        table.verticalHeader().setDefaultSectionSize(table.fontMetrics().height() + 6)
        table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        table.horizontalHeader().setSectionResizeMode(0, QHeaderView.ResizeMode.Stretch)
        table.horizontalHeader().setSectionResizeMode(1, QHeaderView.ResizeMode.ResizeToContents)
        for r, (name, keys) in enumerate(self.rows):
            table.setItem(r, 0, QTableWidgetItem(name))
            table.setItem(r, 1, QTableWidgetItem(keys))
        self.table = table
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Close)
        buttons.rejected.connect(self.reject)
        lay = QVBoxLayout(self)
        lay.addWidget(table)
        lay.addWidget(buttons)
        self._fit_to_content()

    def _fit_to_content(self) -> None:
        """Wide enough for the longest action and shortcut (nothing cut off), as tall as the
        rows need, within the screen."""
        t = self.table
        fm = t.fontMetrics()
        pad = 3 * fm.horizontalAdvance("M")
        names = max((fm.horizontalAdvance(n) for n, _ in self.rows), default=200) + pad
        keys = max((fm.horizontalAdvance(k) for _, k in self.rows), default=80) + pad
        keys = max(keys, fm.horizontalAdvance("Shortcut") + pad)
        t.horizontalHeader().setMinimumSectionSize(min(names, keys))
        t.setMinimumWidth(names + keys + t.verticalScrollBar().sizeHint().width() + 2 * t.frameWidth() + 4)
        rows_h = t.horizontalHeader().sizeHint().height() + len(self.rows) * t.verticalHeader().defaultSectionSize()
        screen = self.screen().availableGeometry() if self.screen() is not None else None
        max_h = int(screen.height() * 0.85) if screen is not None else 800
        self.resize(t.minimumWidth() + 24, min(max_h, rows_h + 2 * t.frameWidth() + 70))
