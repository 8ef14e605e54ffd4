"""The analysis dock: state of the analysis (spinner), probabilities, Grad-CAM controls,
the model in use and the research-use notice. The state line names the file: a name too wide
for the dock (every PACS file is named by its UID) is elided in the middle, never widening the
dock's contents past its width, and the full text is the line's tooltip."""

from __future__ import annotations

from PySide6.QtCore import Qt
from PySide6.QtGui import QAction
from PySide6.QtWidgets import (
    QDockWidget,
    QFrame,
    QHBoxLayout,
    QLabel,
    QPushButton,
    QScrollArea,
    QSizePolicy,
    QVBoxLayout,
    QWidget,
)

from engine import DISCLAIMER

from ..spinner import Spinner
from .cam_controls import CamControls
from .prob_panel import ProbPanel


def _section(title: str) -> QLabel:
    label = QLabel(title)
    f = label.font()
    f.setBold(True)
    label.setFont(f)
    return label


class StateLabel(QLabel):
    """A wrapped sentence that may name a file: ``set_state(text, name)`` shows ``text`` with
    ``name`` elided in the middle to the label's width (again at every resize), so a long,
    unbreakable name cannot push the dock's contents wider than the dock; the tooltip holds
    the full text. The label takes the width its layout gives it and never asks for more."""

    def __init__(self, text: str = "", parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._full, self._name = "", ""
        self.setWordWrap(True)
        self.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Preferred)
        self.set_state(text)

    def set_state(self, text: str, name: str = "") -> None:
        self._full = text
        self._name = name if name and name in text else ""
        self.setToolTip(text if self._name else "")
        self._elide()

    def full_text(self) -> str:
        """The text with the name in full (``text()`` is what is drawn)."""
        return self._full

    def _elide(self) -> None:
        text, name = self._full, self._name
        if name:
            i = text.index(name)
            start = text.rfind(" ", 0, i) + 1  # the name's word: with what is stuck to it ("name:", "name…")
            end = text.find(" ", i + len(name))
            end = len(text) if end < 0 else end
            fm = self.fontMetrics()
            stuck = fm.horizontalAdvance(text[start:i] + text[i + len(name):end])
            room = max(40, self.contentsRect().width() - stuck - 2)
            text = text[:i] + fm.elidedText(name, Qt.TextElideMode.ElideMiddle, room) + text[i + len(name):]
        if text != self.text():
            self.setText(text)

    def resizeEvent(self, event) -> None:  # noqa: ANN001, N802
        super().resizeEvent(event)
        self._elide()


class AnalysisDock(QDockWidget):
    def __init__(self, cam_toggle: QAction, opacity: float, card_action: QAction, parent: QWidget | None = None) -> None:
        super().__init__("Analysis", parent)
        self.setObjectName("analysisDock")
        body = QWidget()
        self.spinner = Spinner(body, 18)
        self.state = StateLabel("No image.")
        head = QHBoxLayout()
        head.addWidget(self.spinner, 0, Qt.AlignmentFlag.AlignTop)
        head.addWidget(self.state, 1)
        self.probs = ProbPanel()
        self.cam = CamControls(cam_toggle, opacity)
        self.model = QLabel("No model.")
        self.model.setWordWrap(True)
        self.model.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        card = QPushButton("Model card…")
        card.clicked.connect(card_action.trigger)
        card_action.changed.connect(lambda: card.setEnabled(card_action.isEnabled()))
        card.setEnabled(card_action.isEnabled())
        self.card_button = card
        notice = QLabel(f"{DISCLAIMER}.")
        notice.setObjectName("disclaimerBanner")
        notice.setWordWrap(True)
        notice.setAlignment(Qt.AlignmentFlag.AlignCenter)
        notice.setStyleSheet("QLabel#disclaimerBanner { background: #7a1020; color: white; font-weight: bold; "
                             "padding: 4px; border-radius: 3px; }")
        line = QFrame()
        line.setFrameShape(QFrame.Shape.HLine)
        lay = QVBoxLayout(body)
        lay.setContentsMargins(8, 6, 8, 6)
        lay.addWidget(notice)
        lay.addLayout(head)
        lay.addWidget(_section("Class probabilities"))
        lay.addWidget(self.probs)
        lay.addWidget(line)
        lay.addWidget(_section("Grad-CAM"))
        lay.addWidget(self.cam)
        lay.addSpacing(6)
        lay.addWidget(_section("Model"))
        lay.addWidget(self.model)
        lay.addWidget(card, 0, Qt.AlignmentFlag.AlignLeft)
        lay.addStretch(1)
        scroll = QScrollArea()
        scroll.setWidget(body)
        scroll.setWidgetResizable(True)
        scroll.setFrameShape(QFrame.Shape.NoFrame)
        scroll.setMinimumWidth(280)
        self.setWidget(scroll)

    def busy(self, text: str, name: str = "") -> None:
        """``text`` with the spinner running; ``name``, a file name in it, elided when too wide."""
        self.spinner.start()
        self.state.set_state(text, name)

    def idle(self, text: str, name: str = "") -> None:
        self.spinner.stop()
        self.state.set_state(text, name)

    def state_text(self) -> str:
        """The state line in full (the file name not elided)."""
        return self.state.full_text()
