"""The probability panel: a bar per class, sorted, top class highlighted, each class's
operating point marked, and a visible note when the top probability is low."""

from __future__ import annotations

from collections.abc import Sequence

from PySide6.QtCore import QPointF, QRectF, QSize, Qt
from PySide6.QtGui import QColor, QFont, QPainter, QPen, QPolygonF
from PySide6.QtWidgets import QLabel, QSizePolicy, QVBoxLayout, QWidget

LOW_CONFIDENCE = 0.5
TOP_COLOR = QColor(38, 132, 255)
OTHER_COLOR = QColor(120, 130, 145)
OP_COLOR = QColor(255, 170, 0)


class ProbBar(QWidget):
    """One class: name, bar, percentage; the operating point as an orange tick."""

    def __init__(self, label: str, prob: float, op: float | None, top: bool, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.label, self.prob, self.op, self.top = label, float(prob), op, top
        self.setMinimumHeight(36)
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Fixed)
        tip = f"{label}: {prob * 100:.1f}%"
        if op is not None:
            side = "at or above" if prob >= op else "below"
            tip += f"\nOperating point {op * 100:.0f}% (orange mark): {side} it."
        self.setToolTip(tip)
        self.setAccessibleName(tip)

    def text(self) -> str:
        return f"{self.prob * 100:.1f}%"

    def sizeHint(self) -> QSize:  # noqa: N802
        return QSize(240, 36)

    def paintEvent(self, event) -> None:  # noqa: ANN001, N802
        p = QPainter(self)
        p.setRenderHint(QPainter.RenderHint.Antialiasing)
        pal = self.palette()
        font = QFont(self.font())
        font.setBold(self.top)
        p.setFont(font)
        w, h = self.width(), self.height()
        text_h = p.fontMetrics().height()
        p.setPen(pal.windowText().color())
        name = self.label + ("  (top)" if self.top else "")
        p.drawText(QRectF(0, 0, w - 60, text_h), Qt.AlignmentFlag.AlignLeft | Qt.AlignmentFlag.AlignVCenter, name)
        p.drawText(QRectF(w - 60, 0, 60, text_h), Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter, self.text())
        bar = QRectF(0, text_h + 6, w - 1, max(8.0, h - text_h - 8))
        track = QColor(pal.mid().color())
        track.setAlpha(90)
        p.setPen(Qt.PenStyle.NoPen)
        p.setBrush(track)
        p.drawRoundedRect(bar, 3, 3)
        fill = QRectF(bar.left(), bar.top(), bar.width() * max(0.0, min(1.0, self.prob)), bar.height())
        p.setBrush(TOP_COLOR if self.top else OTHER_COLOR)
        p.drawRoundedRect(fill, 3, 3)
        if self.op is not None:
            x = bar.left() + bar.width() * max(0.0, min(1.0, self.op))
            p.setPen(QPen(OP_COLOR, 2.0))
            p.drawLine(int(x), int(bar.top() - 2), int(x), int(bar.bottom() + 1))
            p.setPen(Qt.PenStyle.NoPen)
            p.setBrush(OP_COLOR)
            t = bar.top()
            p.drawPolygon(QPolygonF([QPointF(x - 4, t - 6), QPointF(x + 4, t - 6), QPointF(x, t - 1)]))


class ProbPanel(QWidget):
    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._layout = QVBoxLayout(self)
        self._layout.setContentsMargins(0, 0, 0, 0)
        self._layout.setSpacing(4)
        self._bars: list[ProbBar] = []
        self.message = QLabel()
        self.message.setWordWrap(True)
        self.note = QLabel()
        self.note.setWordWrap(True)
        self.note.setObjectName("lowConfidenceNote")
        self.note.setStyleSheet("QLabel#lowConfidenceNote { background: #fff3cd; color: #6b4e00; "
                                "border: 1px solid #e0b100; border-radius: 3px; padding: 4px; }")
        self.note.setVisible(False)
        self.legend = QLabel("Orange mark: the class's operating point.")
        self.legend.setStyleSheet("color: palette(mid);")
        self.legend.setVisible(False)
        self._layout.addWidget(self.message)
        self._bar_box = QVBoxLayout()
        self._bar_box.setSpacing(2)
        self._layout.addLayout(self._bar_box)
        self._layout.addWidget(self.note)
        self._layout.addWidget(self.legend)
        self.clear("No image.")

    def clear(self, message: str) -> None:
        for b in self._bars:
            self._bar_box.removeWidget(b)
            b.deleteLater()
        self._bars = []
        self.message.setText(message)
        self.message.setVisible(bool(message))
        self.note.setVisible(False)
        self.legend.setVisible(False)

    def set_prediction(self, labels: Sequence[str], probs: Sequence[float],
                       operating_points: dict[str, float] | None = None) -> None:
        self.clear("")
        ops = operating_points or {}
        order = sorted(range(len(labels)), key=lambda i: -float(probs[i]))
        for rank, i in enumerate(order):
            bar = ProbBar(labels[i], float(probs[i]), ops.get(labels[i]), rank == 0, self)
            self._bars.append(bar)
            self._bar_box.addWidget(bar)
        top = float(probs[order[0]]) if order else 0.0
        if order and top < LOW_CONFIDENCE:
            self.note.setText(f"Low confidence: the top class ({labels[order[0]]}) has only {top * 100:.0f}% "
                              "probability. The model is unsure; do not rely on this result.")
            self.note.setVisible(True)
        self.legend.setVisible(bool(ops) and bool(order))

    def bars(self) -> list[tuple[str, float]]:
        """(label, probability) in display order."""
        return [(b.label, b.prob) for b in self._bars]

    def bar_widgets(self) -> list[ProbBar]:
        return list(self._bars)

    def low_confidence_shown(self) -> bool:
        return not self.note.isHidden()
