"""The current image's analysis on screen: the call and probabilities (or the out-of-scope
banner and, on request, the marked probabilities), the Grad-CAM heatmaps, the lung outline,
and the Grad-CAM controls (class, opacity). The window owns one ``ResultView``."""

from __future__ import annotations

import os

from PySide6.QtCore import QObject

from engine import Prediction

from ..core.messages import AnalysisDone, call_text
from ..settings import Settings
from ..study import StudyController
from ..viewer.display_control import DisplayController
from ..viewer.image_view import ImageView
from .analysis_dock import AnalysisDock


def scope_banner(p: Prediction, shown_anyway: bool = False) -> tuple[str, str]:
    """The view's banner for an out-of-scope image: (text, ``ImageView.set_banner`` kind)."""
    why = f"Not analysed: {p.scope.reason}"
    if shown_anyway:
        return f"NOT VALID for this image: probabilities and heatmap shown on request. {why}", "invalid"
    return why, "out"


class ResultView(QObject):
    def __init__(self, view: ImageView, display: DisplayController, analysis: AnalysisDock, study: StudyController,
                 settings: Settings, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.view = view
        self.display = display
        self.analysis = analysis
        self.study = study
        self.settings = settings
        self.result: AnalysisDone | None = None  # the current image's analysis (for "show anyway")
        cam = analysis.cam
        cam.opacityChanged.connect(self._on_opacity)
        cam.classChanged.connect(self._on_cam_class)
        analysis.probs.showAnywayToggled.connect(self.show_anyway)
        display.cam_next.triggered.connect(self.next_cam_class)
        display.cam_less.triggered.connect(lambda: cam.step_opacity(-10))
        display.cam_more.triggered.connect(lambda: cam.step_opacity(10))

    @property
    def prediction(self) -> Prediction | None:
        return self.result.prediction if self.result is not None else None

    def clear(self) -> None:
        """Another image is opening: no result, heatmaps, lung outline or banner yet."""
        self.result = None
        self.display.clear_heatmaps()
        self.display.set_lungs(None)
        self.view.set_banner("")
        self.analysis.cam.set_labels(())

    def show(self, r: AnalysisDone) -> None:
        p = r.prediction
        self.result = r
        name = os.path.basename(r.path)
        probs = [float(x) for x in p.probs]
        self.display.set_lungs(p.lungs)
        if p.in_scope:
            self.view.set_banner("")
            self.analysis.probs.set_prediction(p.labels, probs, p.operating_points, call=p.call, flags=p.flags)
            self._show_heatmaps(r, "call")
            call_prob = p.top_prob  # the call's probability (top_index is the call's class)
            self.analysis.idle(f"{name}: {call_text(p.call, call_prob, p.flags)} ({r.seconds * 1000:.0f} ms)", name)
            self.study.analysed(r.path, p.call, call_prob)
        else:
            # no verdict: probabilities and heatmap stay hidden until the user asks (and are marked then)
            self.view.set_banner(*scope_banner(p))
            self.analysis.probs.set_out_of_scope(p.scope.reason, p.labels, probs, p.operating_points)
            self.analysis.cam.set_labels(())
            self.display.clear_heatmaps()
            self.analysis.idle(f"{name}: not analysed, out of scope ({r.seconds * 1000:.0f} ms).", name)
            self.study.analysed(r.path, "", 0.0, scope_reason=p.scope.reason or "out of scope")

    def _show_heatmaps(self, r: AnalysisDone, mark: str) -> None:
        p = r.prediction
        self.analysis.cam.set_labels(p.labels, p.top_index, mark)
        self.analysis.cam.set_scale(r.cam_scale)
        self.display.set_heatmaps(r.heat, p.top_index, r.evidence, p.labels)
        self.analysis.cam.set_evidence_note(self.display.cam_note())

    def show_anyway(self, on: bool) -> None:
        """The user's explicit request to see an out-of-scope image's probabilities and heatmap."""
        r = self.result
        if r is None or r.prediction.in_scope:
            return
        if on:
            self._show_heatmaps(r, "top, NOT VALID")
        else:
            self.analysis.cam.set_labels(())
            self.display.clear_heatmaps()
        self.view.set_banner(*scope_banner(r.prediction, on))

    # -- Grad-CAM controls -------------------------------------------------------------------
    def _on_cam_class(self, i: int) -> None:
        self.display.set_cam_class(i)
        self.analysis.cam.set_evidence_note(self.display.cam_note())

    def _on_opacity(self, v: float) -> None:
        self.view.set_overlay_opacity(v)
        self.settings.overlay_opacity = v

    def next_cam_class(self) -> None:
        n = self.analysis.cam.classes.count()
        if n:
            self.analysis.cam.set_class_index((self.analysis.cam.class_index() + 1) % n)
