"""The DICOM tag viewer: a searchable table of every data element, plus the image's
summary (size, bit depth, how it is displayed, notes) for every format. Patient
identifiers appear here, and in the corner text only when the user turns them on for the session.
A PNG or JPEG has no tags: the
table and the search are hidden and the dock shrinks to the summary."""

from __future__ import annotations

from collections.abc import Sequence

from PySide6.QtCore import Qt
from PySide6.QtGui import QBrush, QColor
from PySide6.QtWidgets import (
    QAbstractItemView,
    QDockWidget,
    QHeaderView,
    QLabel,
    QLineEdit,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from engine import ImageMeta

IDENT_BG = QColor(255, 214, 102, 70)
COLUMNS = ("Tag", "Name", "VR", "Value")


def meta_summary(meta: ImageMeta) -> str:
    """A one-paragraph description of how the image is displayed (no identifiers)."""
    parts = [f"{meta.format.upper()} {meta.width}×{meta.height}", f"{meta.bits_stored}-bit"]
    if meta.modality:
        parts.append(meta.modality)
    if meta.photometric:
        parts.append(meta.photometric + (" (inverted for display)" if meta.inverted else ""))
    if meta.view_position:
        parts.append(f"view {meta.view_position}")
    if meta.transfer_syntax_name:
        parts.append(meta.transfer_syntax_name)
    if meta.pixel_spacing and min(meta.pixel_spacing) > 0:
        parts.append(f"spacing {meta.pixel_spacing[0]:.3g}×{meta.pixel_spacing[1]:.3g} mm")
    voi = {"voi_lut": "VOI LUT from the file", "window": "window from the file", "full_range": "full range"}
    if meta.voi_source:
        parts.append("default display: " + voi.get(meta.voi_source, meta.voi_source))
    text = ", ".join(parts) + "."
    if meta.notes:
        text += " Notes: " + "; ".join(meta.notes) + "."
    return text


class TagDock(QDockWidget):
    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__("DICOM tags", parent)
        self.setObjectName("tagDock")
        body = QWidget()
        self.info = QLabel("No image.")
        self.info.setWordWrap(True)
        self.info.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.search = QLineEdit()
        self.search.setPlaceholderText("Search tags: name, keyword, (gggg,eeee) or value")
        self.search.setClearButtonEnabled(True)
        self.search.textChanged.connect(self._filter)
        self.no_match = QLabel("")
        self.no_match.setObjectName("noTagMatch")
        self.no_match.setWordWrap(True)
        self.no_match.setVisible(False)
        self.table = QTableWidget(0, len(COLUMNS))
        self.table.setHorizontalHeaderLabels(COLUMNS)
        self.table.verticalHeader().setVisible(False)
        self.table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.table.setWordWrap(False)
        hh = self.table.horizontalHeader()
        hh.setSectionResizeMode(QHeaderView.ResizeMode.Interactive)
        hh.setStretchLastSection(True)
        fm = self.table.fontMetrics()
        self.table.setColumnWidth(0, fm.horizontalAdvance("(0000,0000)") + 12)
        self.table.setColumnWidth(1, fm.horizontalAdvance("Photometric Interpretation") + 12)
        self.table.setColumnWidth(2, fm.horizontalAdvance("VR") + 16)
        self.table.verticalHeader().setDefaultSectionSize(fm.height() + 6)
        self.table.setHorizontalScrollMode(QAbstractItemView.ScrollMode.ScrollPerPixel)
        self.note = QLabel("Highlighted rows identify the patient or study. They are shown here, and on the "
                           "image only with View > Show patient identifiers (this session only). Exports leave "
                           "them out unless you ask: \"Include identifiers\" in a batch, a question before a "
                           "PNG or PDF export.")
        self.note.setWordWrap(True)
        self.note.setStyleSheet("color: palette(mid);")
        lay = QVBoxLayout(body)
        lay.setContentsMargins(4, 4, 4, 4)
        lay.addWidget(self.info)
        lay.addWidget(self.search)
        lay.addWidget(self.no_match)
        lay.addWidget(self.table, 1)
        lay.addWidget(self.note)
        self.setWidget(body)
        self._summary = ""

    def clear(self, message: str = "No image.") -> None:
        self._summary = ""
        self.info.setText(message)
        self.table.setRowCount(0)
        self.no_match.setVisible(False)

    def set_meta(self, meta: ImageMeta) -> None:
        """The image's summary, for every format; a PNG/JPEG shows no tag table."""
        self._summary = meta_summary(meta)
        self.info.setText(self._summary)
        self._show_table(meta.format == "dicom")

    def set_message(self, message: str) -> None:
        self.info.setText(message)

    def summary(self) -> str:
        return self._summary

    def _show_table(self, on: bool) -> None:
        for w in (self.search, self.table, self.note):
            w.setVisible(on)
        self.no_match.setVisible(on and bool(self.no_match.text()))
        body = self.widget()
        if on:
            body.setMaximumHeight(16777215)
        else:  # just the summary: the study list above gets the room
            body.setMaximumHeight(max(60, self.info.heightForWidth(max(120, self.info.width())) + 16))

    def set_rows(self, rows: Sequence, message: str = "") -> None:  # rows: engine.io.dicom.TagRow
        if rows:
            self._show_table(True)
        self.table.setSortingEnabled(False)
        self.table.setRowCount(len(rows))
        for r, row in enumerate(rows):
            name = ("  " * row.depth) + (row.name or row.keyword)
            cells = (row.tag, name, row.vr, row.value)
            for c, text in enumerate(cells):
                item = QTableWidgetItem(text)
                item.setToolTip(f"{row.keyword or row.name}: {row.value}" if c == 3 else text)
                if row.identifying:
                    item.setBackground(QBrush(IDENT_BG))
                self.table.setItem(r, c, item)
            self.table.item(r, 0).setData(Qt.ItemDataRole.UserRole, bool(row.identifying))
            self.table.item(r, 1).setData(Qt.ItemDataRole.UserRole, row.keyword)
        if message:  # e.g. "This file is a JPEG image: it has no DICOM tags." after its summary
            self.info.setText(f"{self._summary}\n{message}" if self._summary else message)
        self._filter(self.search.text())

    def _filter(self, text: str) -> None:
        needle = text.strip().lower().replace(" ", "")
        for r in range(self.table.rowCount()):
            if not needle:
                self.table.setRowHidden(r, False)
                continue
            hay = "".join(
                (self.table.item(r, c).text() if self.table.item(r, c) else "") for c in range(len(COLUMNS))
            ) + str(self.table.item(r, 1).data(Qt.ItemDataRole.UserRole) or "")
            self.table.setRowHidden(r, needle not in hay.lower().replace(" ", ""))
        shown = sum(not self.table.isRowHidden(r) for r in range(self.table.rowCount()))
        none = bool(needle) and self.table.rowCount() > 0 and shown == 0
        self.no_match.setText(f"No tag matches “{text.strip()}”." if none else "")
        self.no_match.setVisible(none)

    def visible_rows(self) -> list[tuple[str, str, str, str]]:
        out = []
        for r in range(self.table.rowCount()):
            if not self.table.isRowHidden(r):
                out.append(tuple(self.table.item(r, c).text() for c in range(len(COLUMNS))))
        return out
