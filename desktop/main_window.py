"""The RadLens main window: view, study browser, analysis and tag docks, menus, status
bar. It starts work and shows results; the work itself runs in ``workers``."""

from __future__ import annotations

import logging
import os
from pathlib import Path

from PySide6.QtCore import QMimeData, Qt, QTimer, Signal
from PySide6.QtGui import QAction, QCloseEvent, QDragEnterEvent, QDropEvent
from PySide6.QtWidgets import QLabel, QMainWindow

from engine import DISCLAIMER, Classifier, Window, default_model_path

from . import APP_NAME
from .actions import Actions
from .analysis_dock import AnalysisDock
from .batch_dialog import BatchDialog
from .core.messages import AnalysisDone, Failure, ImageReady, ModelReady, TagsReady, call_text
from .core.model_state import ModelState
from .dialogs import Dialogs
from .display_control import DisplayController
from .image_view import ImageView
from .model_card import ModelCardDialog
from .settings import DEVICES, Settings
from .shortcuts import ShortcutsDialog
from .study import StudyController
from .tag_dock import TagDock
from .workers import AnalysisService

log = logging.getLogger(__name__)


def local_paths(mime: QMimeData) -> list[str]:
    """Local files and folders carried by a drag (file URLs only)."""
    return [u.toLocalFile() for u in mime.urls() if u.isLocalFile() and u.toLocalFile()] if mime.hasUrls() else []


class MainWindow(QMainWindow):
    modelChanged = Signal()
    analysisFinished = Signal(str)  # path: a result, or an error, is on screen

    def __init__(self, settings: Settings | None = None, model_path: str | None = None, device: str | None = None,
                 dialogs: Dialogs | None = None) -> None:
        super().__init__()
        self.settings = settings or Settings()
        self.dialogs = dialogs or Dialogs(self)
        self.device = device if device in DEVICES else self.settings.device
        self.classifier: Classifier | None = None
        self.model_path = ""
        self.model_state = ModelState.LOADING
        self.model_reason = "Loading the model…"  # what the state means for the user ("" when READY)
        self.current_path = ""
        self.prediction = None
        self._result: AnalysisDone | None = None  # the current image's analysis (for "show anyway")
        self.batch_dialogs: list[BatchDialog] = []
        self._model_user_request = False
        self.setWindowTitle(APP_NAME)
        self.setAcceptDrops(True)
        self.resize(1400, 900)

        self.service = AnalysisService(self)
        self.view = ImageView(self)
        self.setCentralWidget(self.view)
        self.display = DisplayController(self.view, self.settings.user_presets(), self.settings.cam_visible,
                                         self.settings.overlay_opacity, self, lungs_visible=self.settings.lungs_visible)
        self.commands = Actions(self, self.device)  # not "actions": QWidget.actions() is a method
        self.analysis = AnalysisDock(self.display.cam_toggle, self.settings.overlay_opacity, self.commands.card, self)
        self.addDockWidget(Qt.DockWidgetArea.RightDockWidgetArea, self.analysis)
        self.study = StudyController(self.service, self)
        self.study.listedStudy.connect(lambda first: self._show_study(first, True))
        self.study.dock.setObjectName("studyDock")
        self.addDockWidget(Qt.DockWidgetArea.LeftDockWidgetArea, self.study.dock)
        self.tags = TagDock(self)
        self.addDockWidget(Qt.DockWidgetArea.LeftDockWidgetArea, self.tags)
        self.splitDockWidget(self.study.dock, self.tags, Qt.Orientation.Vertical)
        self.resizeDocks([self.study.dock, self.analysis], [380, 340], Qt.Orientation.Horizontal)
        self.resizeDocks([self.study.dock, self.tags], [300, 500], Qt.Orientation.Vertical)
        self.study.fileActivated.connect(self._open_one)
        self.commands.build_menus(self, self.display, self.study.dock.toggleViewAction(),
                                 self.analysis.toggleViewAction(), self.tags.toggleViewAction())
        self.commands.build_toolbar(self, self.display)
        self._make_status_bar()
        self._connect()
        self._connect_actions()
        self.analysis.cam.opacityChanged.connect(self._on_opacity)
        self.analysis.cam.classChanged.connect(self._on_cam_class)
        self.analysis.probs.showAnywayToggled.connect(self._show_anyway)
        self.display.cam_next.triggered.connect(self._next_cam_class)
        self.display.cam_less.triggered.connect(lambda: self.analysis.cam.step_opacity(-10))
        self.display.cam_more.triggered.connect(lambda: self.analysis.cam.step_opacity(10))
        geometry, state = self.settings.geometry(), self.settings.state()
        if geometry is not None:
            self.restoreGeometry(geometry)
        if state is not None:
            self.restoreState(state)
        self._start_model(model_path)

    # -- construction --------------------------------------------------------------------
    def _make_status_bar(self) -> None:
        sb = self.statusBar()
        self.wl_label = QLabel("")
        self.zoom_label = QLabel("")
        self.provider_label = QLabel("No model")
        self.provider_label.setObjectName("providerLabel")
        self.disclaimer_label = QLabel(DISCLAIMER)
        self.disclaimer_label.setObjectName("disclaimerLabel")
        self.disclaimer_label.setStyleSheet("QLabel#disclaimerLabel { color: white; background: #7a1020; "
                                            "font-weight: bold; padding: 1px 6px; }")
        for w in (self.wl_label, self.zoom_label, self.provider_label, self.disclaimer_label):
            sb.addPermanentWidget(w)
        self.display.windowChanged.connect(self.wl_label.setText)
        self.view.zoomChanged.connect(lambda s: self.zoom_label.setText(f"{s * 100:.0f}%"))

    def _connect(self) -> None:
        s = self.service
        s.imageReady.connect(self._on_image)
        s.analysed.connect(self._on_analysed)
        s.failed.connect(self._on_failed)
        s.tagsReady.connect(self._on_tags)
        s.modelReady.connect(self._on_model)
        self.view.navigate.connect(self.study.browser.move)

    def _connect_actions(self) -> None:
        a = self.commands
        a.open.triggered.connect(self.open_dialog)
        a.folder.triggered.connect(self.open_folder_dialog)
        a.batch.triggered.connect(lambda: self.batch_dialog())
        a.model.triggered.connect(self.load_model_dialog)
        a.quit.triggered.connect(self.close)
        a.card.triggered.connect(self.show_model_card)
        a.next.triggered.connect(lambda: self.study.browser.move(1))
        a.prev.triggered.connect(lambda: self.study.browser.move(-1))
        a.save_preset.triggered.connect(self.save_preset)
        a.fullscreen.toggled.connect(lambda on: self.showFullScreen() if on else self.showNormal())
        a.shortcuts.triggered.connect(self.show_shortcuts)
        a.about.triggered.connect(self.show_about)
        for dev, act in a.devices.items():
            act.triggered.connect(lambda _=False, d=dev: self.set_device(d))
        a.recent_menu.aboutToShow.connect(self._fill_recent)

    def _set_model_state(self, state: ModelState, reason: str = "") -> None:
        self.model_state = state
        self.model_reason = reason

    # -- model ---------------------------------------------------------------------------
    def _start_model(self, explicit: str | None) -> None:
        path = explicit or self.settings.model_path or str(default_model_path())
        if not explicit and self.settings.model_path and not Path(self.settings.model_path).is_file():
            path = str(default_model_path())  # a remembered model that went away: back to the default
        if not Path(path).is_file():
            self._set_no_model(ModelState.NONE, f"Analysis is off: no model file at {path}. "
                               "Use File > Load model… to choose a RadLens .onnx model; images can still be viewed.")
            return
        self._load_model(path, user=False)

    def _load_model(self, path: str, user: bool) -> None:
        self._model_user_request = user
        self._set_model_state(ModelState.LOADING, f"Loading the model {os.path.basename(path)}…")
        self.provider_label.setText("Loading model…")
        self.analysis.model.setText(self.model_reason)
        self.statusBar().showMessage(self.model_reason)
        self.service.load_model(path, self.device)

    def _set_no_model(self, state: ModelState, reason: str) -> None:
        self.classifier = None
        self._set_model_state(state, reason)
        self.provider_label.setText("No model: analysis off")
        self.provider_label.setToolTip(reason)
        self.analysis.model.setText(reason)
        self.commands.model_actions_enabled(False)
        if not self.current_path:
            self.analysis.idle(reason)
            self.analysis.probs.clear(reason)
        self.statusBar().showMessage(reason)
        self.modelChanged.emit()

    def _on_model(self, r: ModelReady) -> None:
        user = self._model_user_request
        self._model_user_request = False
        if r.classifier is None:
            msg = f"The model {os.path.basename(r.path)} was refused: {r.message}"
            if user:
                self.dialogs.error("Model refused", msg + ("\n\nThe previous model stays in use." if self.classifier else ""))
            if self.classifier is not None:
                self._set_model_state(ModelState.READY)
                self.statusBar().showMessage(msg + " The previous model stays in use.", 15000)
                self._show_model_info()
                self.modelChanged.emit()
                return
            self._set_no_model(ModelState.FAILED,
                               f"Analysis is off: {msg} Use File > Load model… to choose another model.")
            return
        self.classifier = r.classifier
        self.model_path = r.path
        if user:
            self.settings.model_path = r.path
        self._set_model_state(ModelState.READY)
        self._show_model_info()
        self.commands.model_actions_enabled(True)
        self.statusBar().showMessage(f"Model {r.classifier.card.name} {r.classifier.card.version} loaded in "
                                     f"{r.seconds:.1f} s on {r.classifier.device_label}.", 8000)
        self.modelChanged.emit()
        if self.current_path:
            self._open_one(self.current_path)
        self.study.restart(self.classifier)
        QTimer.singleShot(500, self.service.decoder.warm)  # DICOM decoding processes, off the start-up path

    def _show_model_info(self) -> None:
        c = self.classifier
        if c is None:
            return
        text = c.device_label if not c.provider_note else f"{c.device_label} (fallback)"
        self.provider_label.setText(f"Provider: {text}")
        self.provider_label.setToolTip(f"{c.provider}" + (f": {c.provider_note}" if c.provider_note else ""))
        info = (f"{c.card.name} {c.card.version}, classes {', '.join(c.labels)}.\nRunning on {c.device_label} "
                f"[{c.provider}]")
        if c.provider_note:
            info += f"\n{c.provider_note}"
        self.analysis.model.setText(info)

    def set_device(self, device: str) -> None:
        self.device = device
        self.settings.device = device
        if self.model_path or self.classifier is not None:
            # the same model on another device: the remembered model choice stays as it is
            self._load_model(self.model_path, user=False)

    def load_model_dialog(self) -> None:
        path = self.dialogs.open_model(os.path.dirname(self.model_path) or str(default_model_path().parent))
        if path:
            self._load_model(path, user=True)

    # -- opening ---------------------------------------------------------------------------
    def open_paths(self, paths: list[str]) -> None:
        """Open files and folders (command line, drop, dialogs) as the study. Folders are
        listed in a thread, so a large tree or a slow share never freezes the window."""
        if any(os.path.isdir(p) for p in paths):
            self.statusBar().showMessage(f"Listing {', '.join(os.path.basename(p.rstrip(os.sep)) or p for p in paths)}…")
            self.study.list_async(paths)
            return
        self._show_study(self.study.set_study(paths), bool(paths))

    def _show_study(self, first: str, asked: bool) -> None:
        if first:
            self._open_one(first)
        elif asked:
            self.statusBar().showMessage(self.study.last_message or "Nothing to open.", 10000)

    def open_file(self, path: str) -> None:
        """Open one file, keeping the study (adds it if it is not part of it)."""
        self.study.add(path)
        self._open_one(path)

    def _open_one(self, path: str) -> None:
        self.current_path = path
        self.prediction = None
        self._result = None
        self.study.browser.select_path(path)
        self.settings.add_recent(path)
        self.settings.last_folder = os.path.dirname(path)
        name = os.path.basename(path)
        self.setWindowTitle(f"{name} - {APP_NAME}")
        self.display.clear_heatmaps()
        self.display.set_lungs(None)
        self.view.set_banner("")
        self.analysis.cam.set_labels(())
        self.analysis.busy(f"Opening {name}…")
        self.analysis.probs.clear("Analysing…" if self.classifier else self.model_reason)
        self.tags.clear("Loading…")
        self.service.open(path, self.classifier)

    def _on_image(self, r: ImageReady) -> None:
        self.display.set_source(r.display)
        self.tags.set_meta(r.image.meta)
        self.study.image_loaded(r.path, r.thumb, analysed=self.classifier is not None)
        if self.classifier is None:
            self.analysis.idle(self.model_reason)
            self.analysisFinished.emit(r.path)
        else:
            self.analysis.busy(f"Analysing {os.path.basename(r.path)}…")

    def _on_analysed(self, r: AnalysisDone) -> None:
        p = r.prediction
        self.prediction = p
        self._result = r
        name = os.path.basename(r.path)
        probs = [float(x) for x in p.probs]
        self.display.set_lungs(p.lungs)
        if p.in_scope:
            self.view.set_banner("")
            self.analysis.probs.set_prediction(p.labels, probs, p.operating_points, call=p.call, flags=p.flags)
            self._show_heatmaps(r, "call")
            call_prob = probs[p.labels.index(p.call)] if p.call in p.labels else p.top_prob
            self.analysis.idle(f"{name}: {call_text(p.call, call_prob, p.flags)} ({r.seconds * 1000:.0f} ms)")
            self.study.analysed(r.path, p.call, call_prob)
        else:
            # no verdict: probabilities and heatmap stay hidden until the user asks (and are marked then)
            self.view.set_banner(f"Not analysed: {p.scope.reason}", "out")
            self.analysis.probs.set_out_of_scope(p.scope.reason, p.labels, probs, p.operating_points)
            self.analysis.cam.set_labels(())
            self.display.clear_heatmaps()
            self.analysis.idle(f"{name}: not analysed, out of scope ({r.seconds * 1000:.0f} ms).")
            self.study.analysed(r.path, "", 0.0, scope_reason=p.scope.reason or "out of scope")
        self.analysisFinished.emit(r.path)

    def _show_heatmaps(self, r: AnalysisDone, mark: str) -> None:
        p = r.prediction
        self.analysis.cam.set_labels(p.labels, p.top_index, mark)
        self.analysis.cam.set_scale(r.cam_scale)
        self.display.set_heatmaps(r.heat, p.top_index, r.evidence, p.labels)
        self.analysis.cam.set_evidence_note(self.display.cam_note())

    def _show_anyway(self, on: bool) -> None:
        """The user's explicit request to see an out-of-scope image's probabilities and heatmap."""
        r = self._result
        if r is None or r.prediction.in_scope:
            return
        if on:
            self._show_heatmaps(r, "top, NOT VALID")
            self.view.set_banner("NOT VALID for this image: probabilities and heatmap shown on request. "
                                 f"Not analysed: {r.prediction.scope.reason}", "invalid")
        else:
            self.analysis.cam.set_labels(())
            self.display.clear_heatmaps()
            self.view.set_banner(f"Not analysed: {r.prediction.scope.reason}", "out")

    def _on_cam_class(self, i: int) -> None:
        self.display.set_cam_class(i)
        self.analysis.cam.set_evidence_note(self.display.cam_note())

    def _on_failed(self, r: Failure) -> None:
        name = os.path.basename(r.path)
        if r.stage == "load":
            self.display.clear(f"Cannot show {name}.\n\n{r.message}")
            self.analysis.probs.clear("No analysis: the image could not be opened.")
            self.analysis.idle(f"Cannot open {name}.")
            self.tags.set_message(r.message)
        else:
            self.analysis.probs.clear(f"Analysis failed: {r.message}")
            self.analysis.idle(f"Analysis of {name} failed.")
        self.study.failed(r.path, r.message)
        self.statusBar().showMessage(r.message, 15000)
        self.analysisFinished.emit(r.path)

    def _on_tags(self, r: TagsReady) -> None:
        self.tags.set_rows(r.rows, r.message)

    # -- dialogs -------------------------------------------------------------------------
    def open_dialog(self) -> None:
        files = self.dialogs.open_files(self.settings.last_folder)
        if files:
            self.open_paths(files)

    def open_folder_dialog(self) -> None:
        folder = self.dialogs.open_folder(self.settings.last_folder)
        if folder:
            self.settings.last_folder = folder
            self.open_paths([folder])

    def _fill_recent(self) -> None:
        menu = self.commands.recent_menu
        menu.clear()
        recent = self.settings.recent_files()
        for p in recent:
            act = menu.addAction(os.path.basename(p))
            act.setToolTip(p)
            act.triggered.connect(lambda _=False, path=p: self.open_paths([path]))
        if not recent:
            menu.addAction("(none)").setEnabled(False)
        else:
            menu.addSeparator()
            menu.addAction("Clear list", self.settings.clear_recent)

    def batch_dialog(self, folder: str | None = None, start: bool = True) -> BatchDialog | None:
        if self.classifier is None:
            self.dialogs.error("No model", f"Batch analysis needs a model. {self.model_reason}")
            return None
        folder = folder or self.dialogs.open_folder(self.settings.last_folder, "Analyse folder")
        if not folder:
            return None
        dlg = BatchDialog(folder, self.classifier, self.dialogs, self)
        dlg.openRequested.connect(self.open_file)
        dlg.discarded.connect(lambda d=dlg: self._drop_batch_dialog(d))
        self.batch_dialogs.append(dlg)
        dlg.show()
        if start:
            dlg.start()
        return dlg

    def _drop_batch_dialog(self, dlg: BatchDialog) -> None:
        if dlg in self.batch_dialogs:
            self.batch_dialogs.remove(dlg)
            dlg.deleteLater()

    def show_model_card(self) -> ModelCardDialog | None:
        c = self.classifier
        if c is None:
            return None
        dlg = ModelCardDialog(c.card, c.sha256, str(c.path), f"{c.device_label} [{c.provider}]", c.provider_note, self)
        dlg.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
        dlg.show()
        return dlg

    def all_actions(self) -> list[QAction]:
        acts = [a for a in self.findChildren(QAction) if not a.shortcuts() == []]
        return acts + [a for a in self.display.findChildren(QAction) if a not in acts and a.shortcuts()]

    def show_shortcuts(self) -> ShortcutsDialog:
        dlg = ShortcutsDialog(self.all_actions(), self)
        dlg.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
        dlg.show()
        return dlg

    def show_about(self) -> None:
        import engine

        self.dialogs.info(f"About {APP_NAME}", f"{APP_NAME} {engine.__version__}: a viewer for chest radiographs "
                          f"with an AI classifier and Grad-CAM.\n\n{DISCLAIMER}.")

    def save_preset(self) -> None:
        w = self.display.effective_window()
        if w is None:
            return
        name = self.dialogs.text("Save window preset", "Name of the preset:", "My window")
        if name:
            preset = Window(w.center, w.width, w.function, name)
            self.settings.save_user_preset(preset)
            self.display.add_user_preset(preset)

    # -- Grad-CAM ------------------------------------------------------------------------
    def _on_opacity(self, v: float) -> None:
        self.view.set_overlay_opacity(v)
        self.settings.overlay_opacity = v

    def _next_cam_class(self) -> None:
        n = self.analysis.cam.classes.count()
        if n:
            self.analysis.cam.set_class_index((self.analysis.cam.class_index() + 1) % n)

    # -- drag and drop -------------------------------------------------------------------
    def dragEnterEvent(self, event: QDragEnterEvent) -> None:  # noqa: N802
        if local_paths(event.mimeData()):
            event.acceptProposedAction()
        else:
            event.ignore()

    def dragMoveEvent(self, event) -> None:  # noqa: ANN001, N802
        if local_paths(event.mimeData()):
            event.acceptProposedAction()

    def dropEvent(self, event: QDropEvent) -> None:  # noqa: N802
        paths = local_paths(event.mimeData())
        if not paths:
            event.ignore()
            return
        event.acceptProposedAction()
        QTimer.singleShot(0, lambda: self.open_paths(paths))  # return to the drag source at once

    # -- closing -------------------------------------------------------------------------
    def closeEvent(self, event: QCloseEvent) -> None:  # noqa: N802
        pending = [d for d in self.batch_dialogs if d.unexported() and not d.close_confirmed]
        if pending and not self.dialogs.confirm(
                "Quit RadLens?", f"{sum(d.unexported() for d in pending)} batch result(s) in {len(pending)} "
                "batch window(s) have not been exported to a CSV report. Quit and lose them?", "Quit"):
            event.ignore()
            return
        for dlg in pending:
            dlg.close_confirmed = True  # already asked
        self.settings.save_layout(self.saveGeometry(), self.saveState())
        self.settings.cam_visible = self.display.cam_toggle.isChecked()
        self.settings.lungs_visible = self.display.lung_toggle.isChecked()
        self.settings.sync()
        for dlg in self.batch_dialogs:
            dlg.shutdown()
        self.study.shutdown()
        self.service.shutdown()
        super().closeEvent(event)

