"""Corner text over the image view (View > Corner text, T): modality, view, study date,
image size and spacing, W/L, zoom and the model's call; patient name, ID, age and sex only
with View > Show patient identifiers (this session only: every launch starts with it off, and an
export carries them only when the user confirms it, see ``desktop.export.export``). The lines are
``core.corner_info``'s; here they are labels over the view's corners (children of the view,
like its banner, transparent to the mouse), updated on every W/L, zoom, image, result and
error. ``CornerText.lines()`` gives what is shown (for exporters).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager

from PySide6.QtCore import QObject, Qt
from PySide6.QtWidgets import QLabel, QMainWindow, QMenu

from engine import ImageMeta, Prediction
from engine.io.image import TagRow

from ..core.corner_info import CornerLines, ai_line, corner_lines, identifying_values, patient_lines
from ..core.messages import AnalysisDone, Failure, ImageReady
from ..settings import Settings
from .display_control import action
from .image_view import ImageView

STYLE = ("QLabel { color: #f0f0f0; background: rgba(0, 0, 0, 120); border-radius: 3px; padding: 2px 5px; "
         "font-weight: bold; }")
CORNERS = ("top_left", "top_right", "bottom_right")


class CornerText(QObject):
    def __init__(self, view: ImageView, settings: Settings, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.view, self.settings = view, settings
        self.meta: ImageMeta | None = None
        self.tags: Sequence[TagRow] = ()
        self.window_text = ""
        self.zoom: float | None = None
        self.ai = ""
        self._hide_identifiers = False  # an export without identifiers is being drawn
        self.labels: dict[str, QLabel] = {}
        for corner in CORNERS:
            label = QLabel(view)
            label.setObjectName(f"corner_{corner}")
            label.setStyleSheet(STYLE)
            label.setAttribute(Qt.WidgetAttribute.WA_TransparentForMouseEvents)
            label.setAlignment(Qt.AlignmentFlag.AlignRight if corner.endswith("right") else Qt.AlignmentFlag.AlignLeft)
            label.setVisible(False)
            self.labels[corner] = label
        self.toggle = action(self, "&Corner text", "T", "Modality, view, date, size, W/L, zoom and the AI call "
                             "at the corners of the image", checkable=True)
        self.toggle.setChecked(settings.corner_text)
        self.toggle.toggled.connect(self._on_toggle)
        self.identifiers = action(self, "Show patient &identifiers on the image (this session only)", None,
                                  "Patient name, ID, age and sex in the corner text (the rows the tag viewer "
                                  "highlights as identifying). Off again at the next launch; an export asks "
                                  "before it includes them", checkable=True)
        # privacy: identifiers never come back by themselves at a launch, whatever a past session left
        settings.show_identifiers = False
        self.identifiers.setChecked(False)
        self.identifiers.toggled.connect(self._on_identifiers)
        view.labelsPlaced.connect(self._place)
        view.zoomChanged.connect(self.set_zoom)

    # -- state ---------------------------------------------------------------------------
    def set_image(self, meta: ImageMeta, tags: Sequence[TagRow] = (), ai: str = "") -> None:
        self.meta, self.tags, self.ai = meta, tuple(tags), ai
        self.zoom = self.view.scale_factor()
        self.refresh()

    def clear(self) -> None:
        """No image (an error, or nothing open): no values at all."""
        self.meta, self.tags, self.window_text, self.zoom, self.ai = None, (), "", None, ""
        self.refresh()

    def set_window_text(self, text: str) -> None:
        self.window_text = text
        self.refresh()

    def set_zoom(self, scale: float) -> None:
        self.zoom = scale if self.view.has_image() else None
        self.refresh()

    def set_prediction(self, prediction: Prediction | None, status: str = "") -> None:
        self.ai = ai_line(prediction, status)
        self.refresh()

    def lines(self) -> CornerLines:
        """What the corners say now (empty when the corner text is off)."""
        if not self.toggle.isChecked():
            return CornerLines()
        return corner_lines(self.meta, self.tags, window=self.window_text, zoom=self.zoom, ai=self.ai,
                            identifiers=self.identifiers.isChecked() and not self._hide_identifiers)

    def shows_identifiers(self) -> bool:
        """True when the corners show the patient's name, ID, age or sex now."""
        return (self.toggle.isChecked() and self.identifiers.isChecked() and self.meta is not None
                and bool(patient_lines(identifying_values(self.tags, self.meta))))

    @contextmanager
    def identifiers_hidden(self, hide: bool = True) -> Iterator[None]:
        """The corners without identifiers while the block runs (an export drawing the view),
        then as before; ``hide`` False: unchanged."""
        if not hide or not self.shows_identifiers():
            yield
            return
        self._hide_identifiers = True
        self.refresh()
        try:
            yield
        finally:
            self._hide_identifiers = False
            self.refresh()

    def refresh(self) -> None:
        """Show the lines; only a label whose text changed is laid out again (a W/L drag
        changes one line per mouse move)."""
        lines = self.lines()
        changed = []
        for corner, label in self.labels.items():
            text = "\n".join(getattr(lines, corner))
            if text != label.text() or label.isHidden() == bool(text):
                label.setText(text)
                label.setVisible(bool(text))
                changed.append(corner)
        if changed:
            self._place(changed)

    def _on_toggle(self, on: bool) -> None:
        self.settings.corner_text = on
        self.refresh()

    def _on_identifiers(self, on: bool) -> None:
        self.settings.show_identifiers = on
        self.refresh()

    # -- layout --------------------------------------------------------------------------
    def _place(self, corners: Sequence[str] = CORNERS) -> None:
        vp = self.view.viewport().geometry()
        margin = 8
        banner = self.view.findChild(QLabel, "viewBanner")
        top = vp.top() + margin
        if banner is not None and not banner.isHidden():
            top = banner.geometry().bottom() + margin
        for corner in corners:
            label = self.labels[corner]
            if label.isHidden():
                continue
            widest = max(80, vp.width() // 2 - 2 * margin)
            label.setWordWrap(False)
            label.setMinimumWidth(0)
            label.setMaximumWidth(16777215)
            label.adjustSize()
            if label.width() > widest:
                label.setWordWrap(True)
                label.setFixedWidth(widest)
                label.adjustSize()
            x = vp.left() + margin if corner.endswith("left") else vp.right() - margin - label.width()
            y = top if corner.startswith("top") else vp.bottom() - margin - label.height()
            label.move(x, y)
            label.raise_()


def attach(win: QMainWindow) -> CornerText:
    """Corner text on the window's view (``win``: the ``MainWindow``), following its images,
    results, W/L and zoom; the toggles go in the View menu."""
    c = CornerText(win.view, win.settings, win)  # type: ignore[attr-defined]
    s = win.service  # type: ignore[attr-defined]

    def image(r: ImageReady) -> None:
        busy = win.classifier is not None  # type: ignore[attr-defined]
        c.set_image(r.image.meta, r.image.tags, ai_line(None, "analysing…") if busy else "")

    def analysed(r: AnalysisDone) -> None:
        c.set_prediction(r.prediction)

    def failed(r: Failure) -> None:
        if r.stage == "load":
            c.clear()
        else:
            c.set_prediction(None, "analysis failed")

    s.imageReady.connect(image)
    s.analysed.connect(analysed)
    s.failed.connect(failed)
    win.display.windowChanged.connect(c.set_window_text)  # type: ignore[attr-defined]
    view_menu = next((a.menu() for a in win.menuBar().actions() if a.text().replace("&", "") == "View"), None)
    if isinstance(view_menu, QMenu):
        view_menu.addSeparator()
        view_menu.addActions([c.toggle, c.identifiers])
    c.refresh()
    return c
