"""The batch results table: a model over ``engine.batch.BatchRow`` and a proxy that sorts
numerically and filters by call, out-of-scope rows or errors. Columns follow the engine's
decision rule: the call (top class), the flags (classes at or above their operating points)."""

from __future__ import annotations

from collections.abc import Sequence

from PySide6.QtCore import QModelIndex, QPersistentModelIndex, QSortFilterProxyModel, Qt
from PySide6.QtGui import QBrush, QColor, QStandardItem, QStandardItemModel

from engine.batch import BatchRow

from ..core.messages import percent_text

SORT_ROLE = Qt.ItemDataRole.UserRole
PATH_ROLE = Qt.ItemDataRole.UserRole + 1
ERROR_COLOR = QColor(220, 60, 60)
SCOPE_COLOR = QColor(150, 110, 20)
ALL, ERRORS, OUT_OF_SCOPE = "All files", "Errors only", "Out of scope"
STATUS_TEXT = {"ok": "ok", "out_of_scope": "out of scope", "error": "error"}

Index = QModelIndex | QPersistentModelIndex


class BatchTableModel(QStandardItemModel):
    """The rows as Qt items, each cell's text and sort key computed once when its row
    arrives: painting the table then never calls into Python (a Python ``data()`` asked
    for every role of every visible cell took about 12 ms per repaint during a batch)."""

    def __init__(self, labels: Sequence[str], parent=None) -> None:  # noqa: ANN001
        self.labels = tuple(labels)
        self.columns = ["File", "Status", "Call", "Call %", "Flags", *(f"{lab} %" for lab in self.labels),
                        "Scope / error"]
        super().__init__(0, len(self.columns), parent)
        self.setHorizontalHeaderLabels(self.columns)
        self._first_prob = 5
        self._rows: list[BatchRow] = []

    def rows(self) -> list[BatchRow]:
        """Every row so far, in file order (what an export writes)."""
        return sorted(self._rows, key=lambda r: r.index)

    def row_at(self, i: int) -> BatchRow:
        return self._rows[i]

    def add_rows(self, rows: Sequence[BatchRow]) -> None:
        numeric = {3, *range(self._first_prob, self._first_prob + len(self.labels))}
        right = Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter
        for row in rows:
            tip = row.error or row.scope_reason or row.path
            brush = None if row.ok else QBrush(SCOPE_COLOR if row.out_of_scope else ERROR_COLOR)
            items = []
            for col in range(len(self.columns)):
                text, key = self._value(row, col)
                item = QStandardItem(text)
                item.setEditable(False)
                item.setData(key, SORT_ROLE)
                item.setData(row.path, PATH_ROLE)
                item.setToolTip(tip)
                if brush is not None:
                    item.setForeground(brush)
                if col in numeric:
                    item.setTextAlignment(right)
                items.append(item)
            self._rows.append(row)
            self.appendRow(items)

    def clear(self) -> None:
        self.removeRows(0, self.rowCount())
        self._rows = []

    def drop_last(self, n: int) -> int:
        """Remove the last ``n`` rows (a closed window's table goes a slice per event-loop
        turn: deleting thousands of items at once stalls the GUI). Returns the rows left."""
        n = min(n, self.rowCount())
        if n:
            self.removeRows(self.rowCount() - n, n)
            del self._rows[len(self._rows) - n:]
        return self.rowCount()

    def _value(self, row: BatchRow, col: int) -> tuple[str, object]:
        """(display text, sort key) of a cell."""
        n = len(self.labels)
        if col == 0:
            return row.rel_path, row.rel_path.lower()
        if col == 1:
            text = STATUS_TEXT.get(row.status, row.status)
            return text, text
        if col == 2:
            return row.label, row.label
        if col == 3:
            return (percent_text(row.top_prob, sign=False) if row.ok else ""), (row.top_prob if row.ok else -1.0)
        if col == 4:
            text = ", ".join(row.flags) if row.ok else ""
            return text, text
        k = self._first_prob
        if k <= col < k + n:
            p = row.probs.get(self.labels[col - k]) if row.ok else None  # out of scope: not valid, not shown
            return ("" if p is None else percent_text(p, sign=False)), (-1.0 if p is None else p)
        text = row.error or row.scope_reason
        return text, text


class BatchFilterProxy(QSortFilterProxyModel):
    """Sorts by the numeric sort key; shows all rows, errors only, out-of-scope rows only, or one call."""

    def __init__(self, parent=None) -> None:  # noqa: ANN001
        super().__init__(parent)
        self.setSortRole(SORT_ROLE)
        self._mode = ALL

    def set_mode(self, mode: str) -> None:
        if hasattr(self, "beginFilterChange"):  # Qt >= 6.9; invalidateFilter is deprecated there
            self.beginFilterChange()
            self._mode = mode
            self.endFilterChange(QSortFilterProxyModel.Direction.Rows)
        else:
            self._mode = mode
            self.invalidateFilter()

    def mode(self) -> str:
        return self._mode

    def filterAcceptsRow(self, source_row: int, source_parent: Index) -> bool:  # noqa: N802
        if self._mode == ALL:
            return True
        model = self.sourceModel()
        assert isinstance(model, BatchTableModel)
        row = model.row_at(source_row)
        if self._mode == ERRORS:
            return not row.analysed
        if self._mode == OUT_OF_SCOPE:
            return row.out_of_scope
        return row.ok and row.label == self._mode

    def lessThan(self, left: Index, right: Index) -> bool:  # noqa: N802
        a, b = left.data(SORT_ROLE), right.data(SORT_ROLE)
        try:
            return a < b
        except TypeError:
            return str(a) < str(b)
