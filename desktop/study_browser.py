"""The study browser: the files of the opened folder or drop, with thumbnail, name,
status (pending, analysed, error) and the call, or "out of scope" (the reason in the
tooltip) for an image the model was not built for. Arrow keys move through it.

A name too wide for the list (every PACS file is named by its UID) is drawn elided
(``elide_name``: its start, "…" and a longer end), never widening the list past the dock (no
horizontal scroll bar); the row's tooltip has the full path."""

from __future__ import annotations

import os
from collections.abc import Sequence

import numpy as np
from PySide6.QtCore import QModelIndex, QObject, QPersistentModelIndex, QSize, Qt, Signal
from PySide6.QtGui import QBrush, QColor, QFontMetrics, QIcon, QPixmap
from PySide6.QtWidgets import (
    QAbstractItemView,
    QLabel,
    QListWidget,
    QListWidgetItem,
    QStyle,
    QStyledItemDelegate,
    QStyleOptionViewItem,
    QVBoxLayout,
    QWidget,
)

from .core.messages import percent_text
from .core.windowing import THUMB_SIZE
from .viewer.convert import gray_qimage

PATH_ROLE = Qt.ItemDataRole.UserRole
STATUS_ROLE = Qt.ItemDataRole.UserRole + 1
LABEL_ROLE = Qt.ItemDataRole.UserRole + 2
SCOPE_ROLE = Qt.ItemDataRole.UserRole + 3  # why the image is out of scope ("" in scope)
OUT_OF_SCOPE = "out of scope"

STATUS_TEXT = {
    "pending": "pending",
    "analysed": "analysed",
    "loaded": "not analysed (no model)",
    "error": "error",
}
ERROR_COLOR = QColor(220, 60, 60)
OUT_OF_SCOPE_COLOR = QColor(200, 140, 0)
ROW_MIN_TEXT = 60  # a row asks for its thumbnail and this much text: the list never asks to be wider
LINE_BREAK = "\u2028"  # how Qt's item views break a display text's lines
ELLIPSIS = "\u2026"


def elide_name(fm: QFontMetrics, name: str, width: int) -> str:
    """``name`` in ``width`` pixels: whole when it fits, else its start, "…" and its end, the end
    given twice the start's room: files named by their UID (1.2.826.0.1.3680043.8.498.…) share
    the start and differ in the last digits, before the extension."""
    if fm.horizontalAdvance(name) <= width:
        return name
    room = width - fm.horizontalAdvance(ELLIPSIS)
    if room <= 0:
        return ELLIPSIS
    tail = 0
    while tail < len(name) - 1 and fm.horizontalAdvance(name[-(tail + 1):]) <= room * 2 // 3:
        tail += 1
    rest = room - fm.horizontalAdvance(name[len(name) - tail:])
    head = 0
    while head < len(name) - tail and fm.horizontalAdvance(name[:head + 1]) <= rest:
        head += 1
    return name[:head] + ELLIPSIS + name[len(name) - tail:]


CALL_GAP = "  "  # between the call and its percentage on a row's second line


def fit_detail(fm: QFontMetrics, detail: str, width: int) -> str:
    """A row's second line in ``width`` pixels: "call  >99.9%" keeps its percentage whole and
    shortens the call's name (at its end) when the two do not fit; other lines are cut at their end."""
    if fm.horizontalAdvance(detail) <= width:
        return detail
    label, gap, pct = detail.rpartition(CALL_GAP)
    if gap and pct.endswith("%"):
        room = width - fm.horizontalAdvance(gap + pct)
        if room > fm.horizontalAdvance(ELLIPSIS):
            return fm.elidedText(label, Qt.TextElideMode.ElideRight, room) + gap + pct
    return fm.elidedText(detail, Qt.TextElideMode.ElideRight, width)


class NameDelegate(QStyledItemDelegate):
    """Draws a row's first line, the file name, elided (``elide_name``) to the width the row's
    text has (the second line, the call, by ``fit_detail``: its percentage stays whole), and asks for
    no more width than the thumbnail and ``ROW_MIN_TEXT``: the rows are as wide as the list."""

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._elided: dict[tuple[str, str, int], str] = {}  # (font, name, width) -> the name as drawn

    def initStyleOption(self, option: QStyleOptionViewItem, index: QModelIndex | QPersistentModelIndex) -> None:  # noqa: N802
        super().initStyleOption(option, index)
        if option.rect.width() <= 0:  # measuring (sizeHint): the full text
            return
        name, _, detail = option.text.replace("\n", LINE_BREAK).partition(LINE_BREAK)
        style = option.widget.style() if option.widget is not None else None
        if style is None:
            return
        margin = style.pixelMetric(QStyle.PixelMetric.PM_FocusFrameHMargin, None, option.widget) + 1
        room = style.subElementRect(QStyle.SubElement.SE_ItemViewItemText, option, option.widget).width() - 2 * margin
        key = (option.font.key(), name, room)  # painted often (hover, scroll), measured once
        shown = self._elided.get(key)
        if shown is None:
            if len(self._elided) > 4096:
                self._elided.clear()
            shown = self._elided[key] = elide_name(option.fontMetrics, name, room)
        option.text = f"{shown}{LINE_BREAK}{fit_detail(option.fontMetrics, detail, room)}" if detail else shown

    def sizeHint(self, option: QStyleOptionViewItem, index: QModelIndex | QPersistentModelIndex) -> QSize:  # noqa: N802
        hint = super().sizeHint(option, index)
        least = option.decorationSize.width() + ROW_MIN_TEXT
        return QSize(min(hint.width(), least), hint.height())


def _placeholder() -> QIcon:
    pm = QPixmap(THUMB_SIZE, THUMB_SIZE)
    pm.fill(QColor(40, 40, 44))
    return QIcon(pm)


class StudyBrowser(QWidget):
    fileActivated = Signal(str)  # the user moved to another file (click or arrow keys)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.list = QListWidget()
        self.list.setIconSize(QSize(64, 64))
        self.list.setUniformItemSizes(True)
        self.list.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.list.setWordWrap(False)
        self.list.setTextElideMode(Qt.TextElideMode.ElideRight)  # the status line; the name: NameDelegate
        self.list.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        self.delegate = NameDelegate(self.list)
        self.list.setItemDelegate(self.delegate)
        self.list.setAlternatingRowColors(True)
        self.list.setToolTip("Arrow keys move through the study; the image opens in the viewer")
        self.list.currentRowChanged.connect(self._on_row)
        self.summary = QLabel("No study open.")
        self.summary.setWordWrap(True)
        lay = QVBoxLayout(self)
        lay.setContentsMargins(2, 2, 2, 2)
        lay.addWidget(self.list, 1)
        lay.addWidget(self.summary)
        self._placeholder = _placeholder()
        self._index: dict[str, int] = {}
        self._quiet = False

    # -- content -------------------------------------------------------------------------
    def set_paths(self, paths: Sequence[str]) -> None:
        self._quiet = True
        self.list.clear()
        self._index = {}
        for p in paths:
            self._add(p)
        self._quiet = False
        self._update_summary()

    def _add(self, path: str) -> int:
        item = QListWidgetItem(self._placeholder, "")
        item.setData(PATH_ROLE, path)
        item.setToolTip(path)
        self.list.addItem(item)
        row = self.list.count() - 1
        self._index[os.path.abspath(path)] = row
        self._set_text(item, "pending", "", 0.0, "")
        return row

    def add_path(self, path: str) -> int:
        row = self.row_of(path)
        if row < 0:
            row = self._add(path)
            self._update_summary()
        return row

    def paths(self) -> list[str]:
        return [self.list.item(i).data(PATH_ROLE) for i in range(self.list.count())]

    def row_of(self, path: str) -> int:
        return self._index.get(os.path.abspath(path), -1)

    def count(self) -> int:
        return self.list.count()

    def status(self, row: int) -> str:
        return self.list.item(row).data(STATUS_ROLE)

    def label(self, row: int) -> str:
        return self.list.item(row).data(LABEL_ROLE) or ""

    def text(self, row: int) -> str:
        return self.list.item(row).text()

    def shown_text(self, row: int) -> str:
        """The row's text as drawn at the list's width now (the name elided when too wide)."""
        item = self.list.item(row)
        opt = QStyleOptionViewItem()
        opt.initFrom(self.list.viewport())
        opt.widget = self.list
        opt.font = self.list.font()
        opt.decorationSize = self.list.iconSize()
        opt.rect = self.list.visualItemRect(item)
        self.delegate.initStyleOption(opt, self.list.indexFromItem(item))
        return opt.text.replace(LINE_BREAK, "\n")

    def tooltip(self, row: int) -> str:
        return self.list.item(row).toolTip()

    def scope_reason(self, row: int) -> str:
        """Why the row's image is out of scope ("" when it is in scope or not analysed)."""
        return self.list.item(row).data(SCOPE_ROLE) or ""

    def current_path(self) -> str:
        item = self.list.currentItem()
        return item.data(PATH_ROLE) if item else ""

    def select_path(self, path: str) -> None:
        """Make ``path`` current without emitting fileActivated."""
        row = self.row_of(path)
        if row >= 0 and row != self.list.currentRow():
            self._quiet = True
            self.list.setCurrentRow(row)
            self._quiet = False

    def move(self, step: int) -> None:
        if self.list.count():
            row = max(0, min(self.list.count() - 1, self.list.currentRow() + step))
            self.list.setCurrentRow(row)

    def set_status(self, row: int, status: str, label: str = "", prob: float = 0.0, message: str = "",
                   thumb: np.ndarray | None = None, scope_reason: str = "") -> None:
        """``scope_reason``: the image was analysed but is out of scope (no call); why."""
        if not 0 <= row < self.list.count():
            return
        item = self.list.item(row)
        if thumb is not None:
            self.set_thumbnail(row, thumb)
        self._set_text(item, status, label, prob, message, scope_reason)
        self._update_summary()

    def set_pending(self, rows: Sequence[int]) -> None:
        """Mark many rows pending at once (a new model); the summary is counted once."""
        for row in rows:
            if 0 <= row < self.list.count():
                self._set_text(self.list.item(row), "pending", "", 0.0, "")
        self._update_summary()

    def set_thumbnail(self, row: int, thumb: np.ndarray) -> None:
        if 0 <= row < self.list.count():
            self.list.item(row).setIcon(QIcon(QPixmap.fromImage(gray_qimage(thumb))))

    def _set_text(self, item: QListWidgetItem, status: str, label: str, prob: float, message: str,
                  scope_reason: str = "") -> None:
        name = os.path.basename(item.data(PATH_ROLE))
        out = status == "analysed" and bool(scope_reason)
        item.setData(STATUS_ROLE, status)
        item.setData(LABEL_ROLE, "" if out else label)
        item.setData(SCOPE_ROLE, scope_reason if out else "")
        detail = STATUS_TEXT.get(status, status)
        if out:
            detail = OUT_OF_SCOPE
        elif status == "analysed" and label:
            detail = f"{label}{CALL_GAP}{percent_text(prob)}"
        item.setText(f"{name}\n{detail}")
        tip = item.data(PATH_ROLE)
        if out:
            tip += f"\nNot analysed: {scope_reason}"
        if message:
            tip += "\n" + message
        item.setToolTip(tip)
        item.setForeground(QBrush(ERROR_COLOR) if status == "error" else QBrush(OUT_OF_SCOPE_COLOR) if out
                           else QBrush())

    def _update_summary(self) -> None:
        n = self.list.count()
        if not n:
            self.summary.setText("No study open.")
            return
        counts: dict[str, int] = {}
        for i in range(n):
            item = self.list.item(i)
            s = item.data(STATUS_ROLE)
            if s == "analysed" and item.data(SCOPE_ROLE):
                s = OUT_OF_SCOPE
            counts[s] = counts.get(s, 0) + 1
        parts = [f"{n} file{'s' if n != 1 else ''}"]
        for key in ("analysed", OUT_OF_SCOPE, "pending", "loaded", "error"):
            if counts.get(key):
                parts.append(f"{counts[key]} {STATUS_TEXT.get(key, key) if key != 'loaded' else 'not analysed'}")
        self.summary.setText(", ".join(parts))

    def _on_row(self, row: int) -> None:
        if not self._quiet and row >= 0:
            self.fileActivated.emit(self.list.item(row).data(PATH_ROLE))
