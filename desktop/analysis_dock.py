"""The analysis dock: state of the analysis (spinner), probabilities, Grad-CAM controls,
the model in use and the research-use notice."""

from __future__ import annotations

from PySide6.QtCore import Qt
from PySide6.QtGui import QAction
from PySide6.QtWidgets import QDockWidget, QFrame, QHBoxLayout, QLabel, QPushButton, QScrollArea, QVBoxLayout, QWidget

from engine import DISCLAIMER

from .cam_controls import CamControls
from .prob_panel import ProbPanel
from .spinner import Spinner


def _section(title: str) -> QLabel:
    label = QLabel(title)
    f = label.font()
    f.setBold(True)
    label.setFont(f)
    return label


class AnalysisDock(QDockWidget):
    def __init__(self, cam_toggle: QAction, opacity: float, card_action: QAction, parent: QWidget | None = None) -> None:
        super().__init__("Analysis", parent)
        self.setObjectName("analysisDock")
        body = QWidget()
        self.spinner = Spinner(body, 18)
        self.state = QLabel("No image.")
        self.state.setWordWrap(True)
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

    def busy(self, text: str) -> None:
        self.spinner.start()
        self.state.setText(text)

    def idle(self, text: str) -> None:
        self.spinner.stop()
        self.state.setText(text)
