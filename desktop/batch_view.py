"""The batch results table: a model over ``engine.batch.BatchRow`` and a proxy that sorts
numerically and filters by predicted class or errors."""

from __future__ import annotations

from collections.abc import Sequence

from PySide6.QtCore import QAbstractTableModel, QModelIndex, QPersistentModelIndex, QSortFilterProxyModel, Qt
from PySide6.QtGui import QBrush, QColor

from engine.batch import BatchRow

SORT_ROLE = Qt.ItemDataRole.UserRole
PATH_ROLE = Qt.ItemDataRole.UserRole + 1
ERROR_COLOR = QColor(220, 60, 60)
ALL, ERRORS = "All files", "Errors only"

Index = QModelIndex | QPersistentModelIndex


class BatchTableModel(QAbstractTableModel):
    def __init__(self, labels: Sequence[str], parent=None) -> None:  # noqa: ANN001
        super().__init__(parent)
        self.labels = tuple(labels)
        self.columns = ["File", "Status", "Prediction", "Top %", *(f"{lab} %" for lab in self.labels), "Error"]
        self._rows: list[BatchRow] = []

    def rows(self) -> list[BatchRow]:
        """Every row so far, in file order (what an export writes)."""
        return sorted(self._rows, key=lambda r: r.index)

    def row_at(self, i: int) -> BatchRow:
        return self._rows[i]

    def add_rows(self, rows: Sequence[BatchRow]) -> None:
        if not rows:
            return
        n = len(self._rows)
        self.beginInsertRows(QModelIndex(), n, n + len(rows) - 1)
        self._rows.extend(rows)
        self.endInsertRows()

    def clear(self) -> None:
        self.beginResetModel()
        self._rows = []
        self.endResetModel()

    def rowCount(self, parent: Index = QModelIndex()) -> int:  # noqa: N802, B008
        return 0 if parent.isValid() else len(self._rows)

    def columnCount(self, parent: Index = QModelIndex()) -> int:  # noqa: N802, B008
        return 0 if parent.isValid() else len(self.columns)

    def headerData(self, section: int, orientation: Qt.Orientation, role: int = Qt.ItemDataRole.DisplayRole):  # noqa: N802, ANN201
        if role == Qt.ItemDataRole.DisplayRole and orientation == Qt.Orientation.Horizontal:
            return self.columns[section]
        return None

    def _value(self, row: BatchRow, col: int) -> tuple[str, object]:
        """(display text, sort key) of a cell."""
        n = len(self.labels)
        if col == 0:
            return row.rel_path, row.rel_path.lower()
        if col == 1:
            return row.status, row.status
        if col == 2:
            return row.label, row.label
        if col == 3:
            return (f"{row.top_prob * 100:.1f}" if row.ok else ""), (row.top_prob if row.ok else -1.0)
        if 4 <= col < 4 + n:
            p = row.probs.get(self.labels[col - 4])
            return ("" if p is None else f"{p * 100:.1f}"), (-1.0 if p is None else p)
        return row.error, row.error

    def data(self, index: Index, role: int = Qt.ItemDataRole.DisplayRole):  # noqa: ANN201
        if not index.isValid():
            return None
        row = self._rows[index.row()]
        col = index.column()
        if role == Qt.ItemDataRole.DisplayRole:
            return self._value(row, col)[0]
        if role == SORT_ROLE:
            return self._value(row, col)[1]
        if role == PATH_ROLE:
            return row.path
        if role == Qt.ItemDataRole.ToolTipRole:
            return row.error or row.path
        if role == Qt.ItemDataRole.ForegroundRole and not row.ok:
            return QBrush(ERROR_COLOR)
        if role == Qt.ItemDataRole.TextAlignmentRole and 3 <= col < 4 + len(self.labels):
            return int(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
        return None


class BatchFilterProxy(QSortFilterProxyModel):
    """Sorts by the numeric sort key; shows all rows, errors only, or one predicted class."""

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
            return not row.ok
        return row.ok and row.label == self._mode

    def lessThan(self, left: Index, right: Index) -> bool:  # noqa: N802
        a, b = left.data(SORT_ROLE), right.data(SORT_ROLE)
        try:
            return a < b
        except TypeError:
            return str(a) < str(b)
