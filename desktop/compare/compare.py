"""Compare: two images side by side, the current one (left: the window's own view, display
and result, moved into the left pane) and another of the study (right: its own ImageView,
DisplayController and AnalysisService, so it runs the engine's same per-image job in the
same worker as every image). Each side shows its own call, probabilities, scope banner (with
"Show anyway" for an out-of-scope image, as in the single view) and
Grad-CAM; zoom, pan and window/level are linked (``core.compare_link``) until unlinked.
Leaving compare puts the window's view back as the central widget, unchanged."""

from __future__ import annotations

import os

from PySide6.QtCore import QObject, Qt, Signal
from PySide6.QtGui import QAction
from PySide6.QtWidgets import QLabel, QMainWindow, QSizePolicy, QSplitter, QWidget

from ..analysis.result_view import scope_banner
from ..core.compare_link import ViewPlace, centre_for, map_window, place_of, same_window, scale_for
from ..core.messages import AnalysisDone, Failure, ImageReady
from ..viewer.display_control import DisplayController, action
from ..viewer.image_view import ImageView
from ..workers import AnalysisService
from .compare_side import ComparePane, result_summary


class CompareMode(QObject):
    """Enters and leaves compare mode in ``win`` and keeps the two sides linked."""

    changed = Signal(bool)  # compare shown (True) or left (False)
    analysisFinished = Signal(str)  # path: the right side's result (or error) is on screen

    def __init__(self, win: QMainWindow) -> None:  # the MainWindow (not imported: no cycle)
        super().__init__(win)
        self.win = win
        self.active = False
        self.other_path = ""
        self.result: AnalysisDone | None = None  # the right side's analysis
        self.service: AnalysisService | None = None  # made on first use
        self._syncing = False
        self.widget: QWidget | None = None
        self.compare_with = action(win, "&Compare with…", "Ctrl+Shift+C", "Show another image of the study beside "
                                   "this one, each with its own analysis")
        self.compare_previous = action(win, "Compare with &previous image", "Ctrl+Shift+P", "Show the previous "
                                       "image of the study beside this one")
        self.link = action(win, "&Link zoom, pan and window/level", "Ctrl+Shift+L", "Compare: both sides follow "
                           "each other's zoom, pan and window/level", checkable=True)
        self.link.setChecked(True)
        self.leave = action(win, "E&xit compare", "Ctrl+Shift+X", "Back to the single image view")
        self.compare_with.triggered.connect(self.choose)
        self.compare_previous.triggered.connect(self.with_previous)
        self.link.toggled.connect(self.set_linked)
        self.leave.triggered.connect(self.exit)
        self._update_actions()

    def actions(self) -> list[QAction]:
        return [self.compare_with, self.compare_previous, self.link, self.leave]

    # -- entering and leaving ------------------------------------------------------------
    def choose(self) -> None:
        """Ask which image of the study to compare the current one with."""
        if not self._can_compare():
            return
        others = [p for p in self.win.study.browser.paths() if os.path.abspath(p) != self._current()]
        if not others:
            self.win.dialogs.error("Compare", "The study has no other image. Open a folder or several files "
                                   "(File > Open) to compare two images.")
            return
        names = [f"{i + 1}. {os.path.basename(p)}" for i, p in enumerate(others)]
        pick = self.win.dialogs.choose("Compare with", "Show beside the current image:", names)
        if pick in names:
            self.enter(others[names.index(pick)])

    def with_previous(self) -> None:
        """Compare with the image before the current one in the study (the prior)."""
        if not self._can_compare():
            return
        paths = [os.path.abspath(p) for p in self.win.study.browser.paths()]
        cur = self._current()
        i = paths.index(cur) if cur in paths else -1
        if i <= 0:
            self.win.dialogs.error("Compare", "There is no previous image in the study: the current image is the "
                                   "first. Use View > Compare > Compare with… to pick any image.")
            return
        self.enter(self.win.study.browser.paths()[i - 1])

    def _current(self) -> str:
        return os.path.abspath(self.win.current_path) if self.win.current_path else ""

    def _can_compare(self) -> bool:
        if not self.win.view.has_image():
            self.win.dialogs.error("Compare", "Open an image first: compare shows another image beside it.")
            return False
        return True

    def enter(self, path: str) -> None:
        """Show ``path`` beside the current image and analyse it (the same job as any image)."""
        if not os.path.isfile(path):
            self.win.dialogs.error("Compare", f"Cannot compare with {path}: the file does not exist any more.")
            return
        if self.service is None:
            self._build()
        assert self.widget is not None and self.service is not None
        if not self.active:
            view = self.win.takeCentralWidget()  # the window's ImageView, kept (not deleted)
            half = max(1, view.width() // 2)
            self.left.set_view(view)
            self.win.setCentralWidget(self.widget)
            self.widget.setSizes([half, half])
            self.widget.show()
            self.active = True
        self.other_path = path
        self.result = None
        self.other.clear_heatmaps()
        self.other.set_lungs(None)
        self.other_view.set_banner("")
        self.right.set_text(os.path.basename(path), "Opening…", "busy")
        self.right.offer_anyway(False)
        self.refresh_left()
        self.service.open(path, self.win.classifier, want_tags=False)
        self._update_actions()
        self.changed.emit(True)

    def exit(self) -> None:
        """Back to the single view: the window's own view, as it was."""
        if not self.active:
            return
        self.win.takeCentralWidget()  # the compare widget, kept for next time
        view = self.left.take_view()
        self.win.setCentralWidget(view)
        view.show()
        self.active = False
        if self.service is not None:
            self.service.cancel_current()
        self.other_path = ""
        self.result = None
        self.other.clear("")
        self._update_actions()
        self.changed.emit(False)

    def _update_actions(self) -> None:
        self.leave.setEnabled(self.active)
        self.link.setEnabled(self.active)

    def shutdown(self) -> None:
        """Stop the right side's worker threads (the window is closing)."""
        if self.service is not None:
            self.service.shutdown()

    # -- construction --------------------------------------------------------------------
    def _build(self) -> None:
        win = self.win
        self.service = AnalysisService(self, decoder=win.service.decoder)
        self.other_view = ImageView()
        self.other_view.setObjectName("compareView")
        d = win.display
        self.other = DisplayController(self.other_view, win.settings.user_presets(), d.cam_toggle.isChecked(),
                                       win.analysis.cam.opacity_value(), self,
                                       lungs_visible=d.lung_toggle.isChecked())
        for act in self.other.findChildren(QAction):
            act.setShortcuts([])  # the keys are the window's (the left side's); none twice in the shortcuts list
        d.cam_toggle.toggled.connect(self.other.cam_toggle.setChecked)
        d.lung_toggle.toggled.connect(self.other.lung_toggle.setChecked)
        win.analysis.cam.opacityChanged.connect(self.other_view.set_overlay_opacity)
        self.left = ComparePane("Left")
        self.right = ComparePane("Right")
        self.right.anyway.toggled.connect(self.show_right)
        bar = self.other.bar  # the right side's own window/level (follows the left while linked)
        bar.preset.setMinimumContentsLength(8)
        for box in (bar.center, bar.width):
            box.setMinimumWidth(70)
        self.right.bar_row.addWidget(bar)
        self.right.bar_row.addStretch(1)
        self.left_wl = QLabel()
        self.left_wl.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Preferred)
        self.left_wl.setObjectName("compareLeftWindow")
        self.left_wl.setToolTip("The left image's window/level: set it in the toolbar or by right-dragging")
        self.left.bar_row.addWidget(self.left_wl)
        d.windowChanged.connect(lambda text: self.left_wl.setText(f"W/L {text}"))
        self.left_wl.setText(f"W/L {win.wl_label.text()}")
        self.right.set_view(self.other_view)
        split = QSplitter(Qt.Orientation.Horizontal)
        split.setObjectName("compareSplitter")
        split.addWidget(self.left)
        split.addWidget(self.right)
        split.setChildrenCollapsible(False)
        split.setStretchFactor(0, 1)
        split.setStretchFactor(1, 1)
        self.widget = split
        s = self.service
        s.imageReady.connect(self._on_image)
        s.analysed.connect(self._on_analysed)
        s.failed.connect(self._on_failed)
        win.analysisFinished.connect(lambda _p: self.refresh_left())
        win.analysis.probs.showAnywayToggled.connect(lambda _on: self.refresh_left())
        win.models.loaded.connect(self._reanalyse)  # another model or device: the right side again too
        for view, display in ((win.view, d), (self.other_view, self.other)):
            view.zoomChanged.connect(lambda _s, v=view: self._view_moved(v))
            view.horizontalScrollBar().valueChanged.connect(lambda _v, v=view: self._view_moved(v))
            view.verticalScrollBar().valueChanged.connect(lambda _v, v=view: self._view_moved(v))
            display.windowChanged.connect(lambda _t, c=display: self._window_moved(c))

    def _reanalyse(self) -> None:
        if self.active and self.other_path:
            self.enter(self.other_path)

    # -- the two sides' results ----------------------------------------------------------
    def refresh_left(self) -> None:
        """The left header: the current image's call and probabilities (or why there are none)."""
        if not self.active:
            return
        r = self.win.results.result
        name = os.path.basename(self.win.current_path)
        if r is not None and os.path.abspath(r.path) == self._current():
            summary, state = result_summary(r, self.win.analysis.probs.shown_anyway())
        else:
            summary, state = self.win.analysis.state_text(), "busy" if self.win.view.has_image() else "error"
        self.left.set_text(name, summary, state)
        self._even_headers()

    def _even_headers(self) -> None:
        """Both headers as tall as the taller one, so the two images start at the same height."""
        for pane in (self.left, self.right):
            pane.header.setMinimumHeight(0)
        h = max(self.left.header.sizeHint().height(), self.right.header.sizeHint().height())
        for pane in (self.left, self.right):
            pane.header.setMinimumHeight(h)

    def _on_image(self, r: ImageReady) -> None:
        self.other.set_source(r.display)
        if self.win.classifier is None:
            self.right.set_text(os.path.basename(r.path), self.win.model_reason or "No model: no analysis.", "busy")
            self.analysisFinished.emit(r.path)
        else:
            self.right.set_text(os.path.basename(r.path), "Analysing…", "busy")
        if self.link.isChecked():
            self.sync_from(self.win.view, self.win.display)

    def _on_analysed(self, r: AnalysisDone) -> None:
        self.result = r
        self.other.set_lungs(r.prediction.lungs)
        self.right.offer_anyway(not r.prediction.in_scope)
        self.show_right()
        self.analysisFinished.emit(r.path)

    def show_right(self, anyway: bool = False) -> None:
        """The right side's result. Out of scope, as in the single view: no verdict, the banner
        says why, and the probabilities and heatmap only on "Show anyway", marked not valid."""
        r = self.result
        if r is None:
            return
        p = r.prediction
        if p.in_scope or anyway:
            self.other.set_heatmaps(r.heat, p.top_index, r.evidence, p.labels)
        else:
            self.other.clear_heatmaps()
        self.other_view.set_banner(*(("", "out") if p.in_scope else scope_banner(p, anyway)))
        self.right.set_text(os.path.basename(r.path), *result_summary(r, anyway))
        self._even_headers()

    def _on_failed(self, r: Failure) -> None:
        name = os.path.basename(r.path)
        self.right.offer_anyway(False)
        if r.stage == "load":
            self.other.clear(f"Cannot show {name}.\n\n{r.message}")
        self.right.set_text(name, f"{'Cannot open' if r.stage == 'load' else 'Analysis failed'}: {r.message}",
                            "error")
        self.analysisFinished.emit(r.path)

    # -- linking -------------------------------------------------------------------------
    def set_linked(self, on: bool) -> None:
        if on and self.active:
            self.sync_from(self.win.view, self.win.display)

    def linked(self) -> bool:
        return self.link.isChecked()

    def _pair(self, view: ImageView) -> tuple[ImageView, DisplayController]:
        if view is self.win.view:
            return self.other_view, self.other
        return self.win.view, self.win.display

    def _view_moved(self, view: ImageView) -> None:
        if self._syncing or not self.active or not self.link.isChecked():
            return
        dst, _ = self._pair(view)
        self._sync_place(view, dst)

    def _window_moved(self, display: DisplayController) -> None:
        if self._syncing or not self.active or not self.link.isChecked():
            return
        dst = self.other if display is self.win.display else self.win.display
        self._sync_window(display, dst)

    def sync_from(self, view: ImageView, display: DisplayController) -> None:
        """Make the other side follow ``view`` (zoom, pan) and ``display`` (window/level)."""
        dst_view, dst_display = self._pair(view)
        self._sync_place(view, dst_view)
        self._sync_window(display, dst_display)

    @staticmethod
    def place(view: ImageView) -> ViewPlace:
        vp = view.viewport().rect()
        c = view.mapToScene(vp.center())
        return place_of(view.scale_factor(), (c.x(), c.y()), (vp.width(), vp.height()), view.image_size())

    def _sync_place(self, src: ImageView, dst: ImageView) -> None:
        if not (src.has_image() and dst.has_image()):
            return
        place = self.place(src)
        self._syncing = True
        try:
            if place.fitted:
                dst.fit_to_window()
                return
            vp = dst.viewport().rect()
            s = scale_for(place, (vp.width(), vp.height()), dst.image_size())
            dst.resetTransform()
            dst.scale(s, s)
            cx, cy = centre_for(place, dst.image_size())
            dst.centerOn(cx, cy)
            dst.zoomChanged.emit(dst.scale_factor())
        finally:
            self._syncing = False

    def _sync_window(self, src: DisplayController, dst: DisplayController) -> None:
        if src.src is None or dst.src is None:
            return
        target = map_window(src.window, src.src, dst.src)
        if dst.invert == src.invert and same_window(dst.window, target, dst.src.hi - dst.src.lo):
            return
        self._syncing = True
        try:
            dst.set_invert(src.invert)
            dst.set_window(target)
            dst.flush()
        finally:
            self._syncing = False
