"""Help > Shortcuts: every keyboard shortcut of the window's actions, plus mouse gestures."""

from __future__ import annotations

from PySide6.QtCore import QRect
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

FRAME_ALLOWANCE = 40  # the window manager's title bar and borders, outside the dialog's own geometry
MAX_HEIGHT = 700  # the tallest the window gets, title bar included, even on a tall screen: the list scrolls

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
        self.rows = shortcut_rows(actions) + list(GESTURES)
        table = QTableWidget(len(self.rows), 2)
        table.setHorizontalHeaderLabels(["Action", "Shortcut"])
        table.verticalHeader().setVisible(False)
        table.verticalHeader().setDefaultSectionSize(table.fontMetrics().height() + 4)
        table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        table.horizontalHeader().setSectionResizeMode(0, QHeaderView.ResizeMode.Stretch)
        table.horizontalHeader().setSectionResizeMode(1, QHeaderView.ResizeMode.ResizeToContents)
        for r, (name, keys) in enumerate(self.rows):
            table.setItem(r, 0, QTableWidgetItem(name))
            table.setItem(r, 1, QTableWidgetItem(keys))
        self.table = table
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Close)
        buttons.rejected.connect(self.reject)
        self.buttons = buttons
        lay = QVBoxLayout(self)
        lay.addWidget(table)
        lay.addWidget(buttons)
        self._fit_to_content()

    def _fit_to_content(self) -> None:
        screen = self.screen()  # the parent window's, before the dialog is shown
        self.fit_to(screen.availableGeometry() if screen is not None else QRect(0, 0, 1024, MAX_HEIGHT))

    def fit_to(self, available: QRect) -> None:
        """Wide enough for the longest action and shortcut (nothing cut off), as tall as the
        rows need, but never taller than ``MAX_HEIGHT`` nor taller or wider than ``available``,
        the screen's free area (title bar and borders included): the list scrolls inside."""
        self._available = QRect(available)
        t = self.table
        fm = t.fontMetrics()
        pad = 3 * fm.horizontalAdvance("M")
        names = max((fm.horizontalAdvance(n) for n, _ in self.rows), default=200) + pad
        keys = max((fm.horizontalAdvance(k) for _, k in self.rows), default=80) + pad
        keys = max(keys, fm.horizontalAdvance("Shortcut") + pad)
        t.horizontalHeader().setMinimumSectionSize(min(names, keys))
        lay = self.layout()
        m = lay.contentsMargins()
        room_w = available.width() - FRAME_ALLOWANCE // 2 - m.left() - m.right()
        t.setMinimumWidth(min(room_w, names + keys + t.verticalScrollBar().sizeHint().width() + 2 * t.frameWidth() + 4))
        rows_h = t.horizontalHeader().sizeHint().height() + len(self.rows) * t.verticalHeader().defaultSectionSize()
        chrome = m.top() + m.bottom() + lay.spacing() + self.buttons.sizeHint().height()  # margins, Close
        most = min(available.height(), MAX_HEIGHT) - FRAME_ALLOWANCE
        height = min(rows_h + 2 * t.frameWidth() + chrome, most)
        self.setMaximumSize(available.width() - FRAME_ALLOWANCE // 2, available.height() - FRAME_ALLOWANCE)
        self.resize(t.minimumWidth() + m.left() + m.right(), height)

    def showEvent(self, event) -> None:  # noqa: ANN001, N802
        """Centred on the window, but wholly inside the screen's free area (title bar included)."""
        super().showEvent(event)
        a, g = self._available, self.frameGeometry()
        x = min(max(g.x(), a.left()), a.right() - g.width())
        y = min(max(g.y(), a.top()), a.bottom() - g.height())
        if (x, y) != (g.x(), g.y()):
            self.move(max(a.left(), x), max(a.top(), y))
