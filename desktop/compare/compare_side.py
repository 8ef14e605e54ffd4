"""One side of compare mode: its header (the file name, the call and probabilities or why
there are none, "Show anyway" for an out-of-scope image, an optional window/level bar)
above its image view. ``desktop.compare.compare`` puts two of these side by side."""

from __future__ import annotations

from PySide6.QtCore import Qt
from PySide6.QtWidgets import QHBoxLayout, QLabel, QVBoxLayout, QWidget

from ..analysis.analysis_dock import StateLabel
from ..analysis.prob_panel import reset_anyway, show_anyway_button
from ..core.messages import AnalysisDone
from ..core.report_text import call_sentence, probs_summary
from ..viewer.image_view import ImageView

HEADER_STYLE = {  # state: (background, text)
    "in": ("#16324f", "#e8f0ff"),
    "out": ("#5c3b00", "#ffe08a"),
    "invalid": ("#7a1020", "#ffffff"),  # out of scope, results shown anyway (not valid)
    "busy": ("#26262c", "#d0d0d0"),
    "error": ("#6a1020", "#ffffff"),
}


class ComparePane(QWidget):
    """One side: the file name, the call and probabilities (or why there are none), an
    optional window/level bar, and the image view."""

    def __init__(self, side: str, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.title = StateLabel()  # a long name (a PACS UID) elided in the middle, never widening the pane
        self.title.setObjectName(f"compareTitle{side}")
        self.title.setWordWrap(False)  # one line: the name, elided
        f = self.title.font()
        f.setBold(True)
        self.title.setFont(f)
        self.summary = QLabel()
        self.summary.setObjectName(f"compareSummary{side}")
        self.summary.setWordWrap(True)
        self.summary.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.anyway = show_anyway_button(f"compareShowAnyway{side}")  # as the probability panel's; one side uses it
        self.header = QWidget()
        self.header.setObjectName("compareHeader")
        self.header.setAttribute(Qt.WidgetAttribute.WA_StyledBackground, True)
        head = QVBoxLayout(self.header)
        head.setContentsMargins(8, 4, 8, 4)
        head.setSpacing(2)
        head.addWidget(self.title)
        head.addWidget(self.summary)
        head.addWidget(self.anyway, 0, Qt.AlignmentFlag.AlignLeft)
        self.bar_row = QHBoxLayout()
        head.addLayout(self.bar_row)
        self._lay = QVBoxLayout(self)
        self._lay.setContentsMargins(0, 0, 0, 0)
        self._lay.setSpacing(0)
        self._lay.addWidget(self.header)
        self.view: ImageView | None = None
        self.set_state("busy")

    def set_view(self, view: ImageView) -> None:
        self.view = view
        self._lay.addWidget(view, 1)
        view.show()

    def take_view(self) -> ImageView | None:
        view, self.view = self.view, None
        if view is not None:
            self._lay.removeWidget(view)
            view.setParent(None)
        return view

    def set_text(self, title: str, summary: str, state: str) -> None:
        self.title.set_state(title, title)
        self.summary.setText(summary)
        self.set_state(state)

    def set_state(self, state: str) -> None:
        self.state = state
        bg, fg = HEADER_STYLE.get(state, HEADER_STYLE["busy"])
        self.header.setStyleSheet(f"QWidget#compareHeader {{ background: {bg}; }} "
                                  f"QWidget#compareHeader > QLabel {{ color: {fg}; background: transparent; }}")

    def offer_anyway(self, offer: bool) -> None:
        """A new result: "Show anyway" unpressed, shown only for an out-of-scope image."""
        reset_anyway(self.anyway, offer)


def result_summary(r: AnalysisDone, shown_anyway: bool = False) -> tuple[str, str]:
    """(summary text, header state) for one side's analysis; out of scope, the probabilities
    only when shown anyway, marked not valid."""
    p = r.prediction
    if p.in_scope:
        return f"{call_sentence(p)}\n{probs_summary(p)}", "in"
    if shown_anyway:
        return f"{call_sentence(p)}\nNOT VALID for this image: {probs_summary(p)}", "invalid"
    return call_sentence(p), "out"
