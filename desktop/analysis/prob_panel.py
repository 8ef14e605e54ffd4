"""The probability panel: a bar per class in the model card's order (so a class keeps its
place from image to image; "Sort by probability" is an option, kept in the settings), the
call highlighted, the flags marked, each class's operating point marked, and a visible note
when the call's probability is low. Percentages never read 100.0% or 0.0% (">99.9%", "<0.1%").

Out of scope (an image the model was not built for) there is no verdict: a banner says why,
and the bars stay hidden behind "Show anyway (not valid for this image)"; shown anyway, they
carry a "NOT VALID for this image" marker and no call."""

from __future__ import annotations

from collections.abc import Sequence

from PySide6.QtCore import QPointF, QRectF, QSize, Qt, Signal
from PySide6.QtGui import QColor, QFont, QPainter, QPen, QPolygonF
from PySide6.QtWidgets import QCheckBox, QLabel, QPushButton, QSizePolicy, QVBoxLayout, QWidget

from ..core.messages import percent_text

LOW_CONFIDENCE = 0.5
CALL_COLOR = QColor(38, 132, 255)
OTHER_COLOR = QColor(120, 130, 145)
INVALID_COLOR = QColor(150, 110, 115)
OP_COLOR = QColor(255, 170, 0)
SHOW_ANYWAY = "Show anyway (not valid for this image)"
HIDE_AGAIN = "Hide the results (not valid for this image)"
NOT_VALID = "NOT VALID for this image: the model was not built for it, so these numbers and the heatmap mean nothing here."


def show_anyway_button(name: str) -> QPushButton:
    """The "Show anyway" toggle of an out-of-scope image (this panel's and compare mode's),
    hidden until ``reset_anyway`` offers it; its text says what the next press does."""
    b = QPushButton(SHOW_ANYWAY)
    b.setObjectName(name)
    b.setCheckable(True)
    b.setToolTip("Show the model's probabilities and heatmap for this image although it is out of "
                 "scope. They are not valid: the model was not built for this kind of image.")
    b.toggled.connect(lambda on: b.setText(HIDE_AGAIN if on else SHOW_ANYWAY))
    b.setVisible(False)
    return b


def reset_anyway(b: QPushButton, offer: bool) -> None:
    """A new result: the toggle unpressed (without a signal), shown only when ``offer``."""
    b.blockSignals(True)
    b.setChecked(False)
    b.setText(SHOW_ANYWAY)
    b.blockSignals(False)
    b.setVisible(offer)


class ProbBar(QWidget):
    """One class: name, bar, percentage; the operating point as an orange tick. ``call``:
    this class is the decision (highlighted); ``flagged``: it is one of the decision's flags;
    ``invalid``: shown for an out-of-scope image (muted, never a call)."""

    def __init__(self, label: str, prob: float, op: float | None, call: bool, flagged: bool = False,
                 invalid: bool = False, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.label, self.prob, self.op = label, float(prob), op
        self.call, self.flagged, self.invalid = call and not invalid, flagged and not invalid, invalid
        self.setMinimumHeight(36)
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Fixed)
        tip = f"{label}: {percent_text(prob)}"
        if self.call:
            tip += "\nThe call (the top class)."
        if op is not None:
            side = "at or above" if prob >= op else "below"
            tip += f"\nOperating point {percent_text(op)} (orange mark): {side} it."
        if self.flagged:
            tip += "\nFlagged: at or above its operating point."
        if invalid:
            tip += "\nNOT VALID for this image (out of scope)."
        self.setToolTip(tip)
        self.setAccessibleName(tip)

    def title(self) -> str:
        """The name as drawn: with "(call)" on the call and "flagged" on each flag."""
        return self.label + ("  (call)" if self.call else "") + ("  · flagged" if self.flagged else "")

    def text(self) -> str:
        return percent_text(self.prob)

    def sizeHint(self) -> QSize:  # noqa: N802
        return QSize(240, 36)

    def paintEvent(self, event) -> None:  # noqa: ANN001, N802
        p = QPainter(self)
        p.setRenderHint(QPainter.RenderHint.Antialiasing)
        pal = self.palette()
        font = QFont(self.font())
        font.setBold(self.call)
        p.setFont(font)
        w, h = self.width(), self.height()
        text_h = p.fontMetrics().height()
        p.setPen(pal.windowText().color())
        p.drawText(QRectF(0, 0, w - 60, text_h), Qt.AlignmentFlag.AlignLeft | Qt.AlignmentFlag.AlignVCenter,
                   self.title())
        p.drawText(QRectF(w - 60, 0, 60, text_h), Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter, self.text())
        bar = QRectF(0, text_h + 6, w - 1, max(8.0, h - text_h - 8))
        track = QColor(pal.mid().color())
        track.setAlpha(90)
        p.setPen(Qt.PenStyle.NoPen)
        p.setBrush(track)
        p.drawRoundedRect(bar, 3, 3)
        fill = QRectF(bar.left(), bar.top(), bar.width() * max(0.0, min(1.0, self.prob)), bar.height())
        p.setBrush(INVALID_COLOR if self.invalid else CALL_COLOR if self.call else OTHER_COLOR)
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
    showAnywayToggled = Signal(bool)  # the user asked to see (True) or hide (False) out-of-scope results

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._layout = QVBoxLayout(self)
        self._layout.setContentsMargins(0, 0, 0, 0)
        self._layout.setSpacing(4)
        self._bars: list[ProbBar] = []
        self._hidden: tuple[Sequence[str], Sequence[float], dict[str, float]] | None = None
        self.message = QLabel()
        self.message.setWordWrap(True)
        self.banner = QLabel()
        self.banner.setWordWrap(True)
        self.banner.setObjectName("scopeBanner")
        self.banner.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.banner.setStyleSheet("QLabel#scopeBanner { background: #5c3b00; color: #ffe08a; font-weight: bold; "
                                  "border: 1px solid #e0b100; border-radius: 3px; padding: 6px; }")
        self.show_anyway = show_anyway_button("showAnyway")
        self.show_anyway.toggled.connect(self._on_show_anyway)
        self.invalid = QLabel(NOT_VALID)
        self.invalid.setWordWrap(True)
        self.invalid.setObjectName("notValidMarker")
        self.invalid.setStyleSheet("QLabel#notValidMarker { background: #9a0a1e; color: white; font-weight: bold; "
                                   "border-radius: 3px; padding: 4px; }")
        self.note = QLabel()
        self.note.setWordWrap(True)
        self.note.setObjectName("lowConfidenceNote")
        self.note.setStyleSheet("QLabel#lowConfidenceNote { background: #fff3cd; color: #6b4e00; "
                                "border: 1px solid #e0b100; border-radius: 3px; padding: 4px; }")
        self.legend = QLabel("Orange mark: the class's operating point.")
        self.legend.setWordWrap(True)  # a narrow dock wraps it instead of scrolling the percentages away
        self.legend.setStyleSheet("color: palette(mid);")
        self.sort = QCheckBox("Sort by probability")
        self.sort.setObjectName("sortProbs")
        self.sort.setToolTip("Off: the classes keep the model card's order, so each stays in its place from image "
                             "to image. On: highest probability first.")
        self.sort.toggled.connect(self._redraw)
        self._shown: tuple | None = None  # the arguments of the bars on screen (to redraw them sorted or not)
        self._layout.addWidget(self.message)
        self._layout.addWidget(self.banner)
        self._layout.addWidget(self.show_anyway, 0, Qt.AlignmentFlag.AlignLeft)
        self._layout.addWidget(self.invalid)
        self._bar_box = QVBoxLayout()
        self._bar_box.setSpacing(2)
        self._layout.addLayout(self._bar_box)
        self._layout.addWidget(self.note)
        self._layout.addWidget(self.legend)
        self._layout.addWidget(self.sort)
        self.clear("No image.")

    def bind_settings(self, settings: object) -> None:
        """Start from, and keep, the user's choice (``settings.sort_probs``, a ``Settings``)."""
        self.sort.setChecked(bool(getattr(settings, "sort_probs", False)))
        self.sort.toggled.connect(lambda on: setattr(settings, "sort_probs", bool(on)))

    def _drop_bars(self) -> None:
        for b in self._bars:
            self._bar_box.removeWidget(b)
            b.deleteLater()
        self._bars = []

    def _redraw(self) -> None:
        if self._shown is not None:
            self._drop_bars()
            self._add_bars(*self._shown)

    def _remove_bars(self) -> None:
        self._shown = None
        self._drop_bars()
        self.note.setVisible(False)
        self.legend.setVisible(False)
        self.invalid.setVisible(False)

    def clear(self, message: str) -> None:
        self._remove_bars()
        self._hidden = None
        self.message.setText(message)
        self.message.setVisible(bool(message))
        self.banner.setVisible(False)
        reset_anyway(self.show_anyway, False)

    def _add_bars(self, labels: Sequence[str], probs: Sequence[float], ops: dict[str, float], call: str,
                  flags: Sequence[str], invalid: bool) -> None:
        self._shown = (labels, probs, ops, call, flags, invalid)
        order = list(range(len(labels)))
        if self.sort.isChecked():
            order.sort(key=lambda i: -float(probs[i]))
        for i in order:
            bar = ProbBar(labels[i], float(probs[i]), ops.get(labels[i]), labels[i] == call, labels[i] in flags,
                          invalid, self)
            self._bars.append(bar)
            self._bar_box.addWidget(bar)
        self.legend.setVisible(bool(ops) and bool(order))

    def set_prediction(self, labels: Sequence[str], probs: Sequence[float],
                       operating_points: dict[str, float] | None = None, call: str | None = None,
                       flags: Sequence[str] = ()) -> None:
        """An in-scope result: ``call`` (default: the top class) highlighted, ``flags`` marked."""
        self.clear("")
        if call is None:
            call = labels[max(range(len(labels)), key=lambda i: float(probs[i]))] if labels else ""
        self._add_bars(labels, probs, operating_points or {}, call, tuple(flags), invalid=False)
        if call in labels:
            p = float(probs[list(labels).index(call)])
            if p < LOW_CONFIDENCE:
                self.note.setText(f"Low confidence: the top class ({call}) has only {p * 100:.0f}% "
                                  "probability. The model is unsure; do not rely on this result.")
                self.note.setVisible(True)

    def set_out_of_scope(self, reason: str, labels: Sequence[str], probs: Sequence[float],
                         operating_points: dict[str, float] | None = None) -> None:
        """No verdict: the banner says why; the bars wait behind "Show anyway"."""
        self.clear("")
        self.banner.setText(f"Not analysed: {reason}" if reason else "Not analysed: the image is out of scope.")
        self.banner.setVisible(True)
        self._hidden = (tuple(labels), tuple(float(p) for p in probs), dict(operating_points or {}))
        self.show_anyway.setVisible(bool(labels))

    def _on_show_anyway(self, on: bool) -> None:
        self._remove_bars()
        if on and self._hidden is not None:
            labels, probs, ops = self._hidden
            self._add_bars(labels, probs, ops, "", (), invalid=True)
            self.invalid.setVisible(True)
        self.showAnywayToggled.emit(on)

    def out_of_scope(self) -> bool:
        return not self.banner.isHidden()

    def shown_anyway(self) -> bool:
        return self.out_of_scope() and self.show_anyway.isChecked()

    def bars(self) -> list[tuple[str, float]]:
        """(label, probability) in display order."""
        return [(b.label, b.prob) for b in self._bars]

    def bar_widgets(self) -> list[ProbBar]:
        return list(self._bars)

    def call_bar(self) -> str:
        """The label of the highlighted bar ("" when none is)."""
        return next((b.label for b in self._bars if b.call), "")

    def flagged_bars(self) -> list[str]:
        return [b.label for b in self._bars if b.flagged]

    def low_confidence_shown(self) -> bool:
        return not self.note.isHidden()
