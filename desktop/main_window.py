"""The RadLens main window: view, study browser, analysis and tag docks, menus, status
bar. It starts work and shows results; the work itself runs in ``workers``, the model is
loaded and its state kept by ``model_control``, an analysis is shown by ``result_view``."""

from __future__ import annotations

import logging
import os

from PySide6.QtCore import QMimeData, Qt, QTimer, Signal
from PySide6.QtGui import QAction, QCloseEvent, QDragEnterEvent, QDropEvent
from PySide6.QtWidgets import QLabel, QMainWindow

from engine import DISCLAIMER, Classifier, Prediction, Window

from . import APP_NAME
from .actions import Actions
from .analysis.adapt_dialog import AdaptDialog
from .analysis.analysis_dock import AnalysisDock
from .analysis.model_card import ModelCardDialog
from .analysis.model_control import ModelControl
from .analysis.result_view import ResultView
from .batch.batch_dialog import BatchDialog
from .batch.batch_windows import BatchWindows
from .compare.compare import CompareMode
from .core.messages import AnalysisDone, Failure, ImageReady, TagsReady
from .core.model_state import ModelState
from .dialogs import Dialogs
from .dock_layout import DockFitter
from .export.export import Exporter
from .export.save_results import SaveResults
from .pacs.pacs_control import PacsControl
from .settings import DEVICES, Settings
from .shortcuts import ShortcutsDialog
from .study import StudyController
from .viewer.corner_text import attach as attach_corner_text
from .viewer.display_control import DisplayController
from .viewer.image_view import ImageView
from .viewer.measure_tools import attach as attach_measure_tools
from .viewer.tag_dock import TagDock
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
        device = device if device in DEVICES else self.settings.device
        self.current_path = ""
        self._error_message = ""  # the last error shown in the status bar (cleared by the next image)
        self._shown_path = ""  # the image on screen
        self.batches = BatchWindows(self)  # File > Analyse folder: its windows
        self.setWindowTitle(APP_NAME)
        self.setAcceptDrops(True)
        self.resize(1400, 900)

        self.service = AnalysisService(self)
        self.view = ImageView(self)
        self.setCentralWidget(self.view)
        self.display = DisplayController(self.view, self.settings.user_presets(), self.settings.cam_visible,
                                         self.settings.overlay_opacity, self, lungs_visible=self.settings.lungs_visible)
        self.commands = Actions(self, device)  # not "actions": QWidget.actions() is a method
        self.analysis = AnalysisDock(self.display.cam_toggle, self.settings.overlay_opacity, self.commands.card, self)
        self.analysis.probs.bind_settings(self.settings)  # card order, or sorted: the user's choice, kept
        self.display.bind_image_controls(self.analysis.cam)  # no image: no Grad-CAM controls
        self.addDockWidget(Qt.DockWidgetArea.RightDockWidgetArea, self.analysis)
        self.models = ModelControl(self.service, self.settings, self.dialogs, self.analysis, self.commands, device, self)
        self.study = StudyController(self.service, self)
        self.study.listedStudy.connect(lambda first: self._show_study(first, True))
        self.study.dock.setObjectName("studyDock")
        self.addDockWidget(Qt.DockWidgetArea.LeftDockWidgetArea, self.study.dock)
        self.tags = TagDock(self)
        self.addDockWidget(Qt.DockWidgetArea.LeftDockWidgetArea, self.tags)
        self.splitDockWidget(self.study.dock, self.tags, Qt.Orientation.Vertical)
        self.resizeDocks([self.study.dock, self.analysis], [380, 340], Qt.Orientation.Horizontal)
        self.resizeDocks([self.study.dock, self.tags], [520, 280], Qt.Orientation.Vertical)
        self.dock_fit = DockFitter(self, self.study.dock, self.analysis)  # a small window: the image keeps most of it
        self.study.fileActivated.connect(self._open_one)
        self.commands.build_menus(self, self.display, self.study.dock.toggleViewAction(),
                                 self.analysis.toggleViewAction(), self.tags.toggleViewAction())
        self.commands.build_toolbar(self, self.display)
        self._make_status_bar()
        self._connect()
        self._connect_actions()
        self.results = ResultView(self.view, self.display, self.analysis, self.study, self.settings, self)
        self.compare = CompareMode(self)  # View > Compare: two images side by side
        self.exporter = Exporter(self)  # File > Export view as PNG / report as PDF
        self.commands.place_compare_export(self.compare.actions(), [self.exporter.png, self.exporter.pdf])
        self.measure = attach_measure_tools(self)  # distance, angle, Cobb: per-image, in the view's scene
        self.corner = attach_corner_text(self)  # View > Corner text
        self.pacs = PacsControl(self)  # File > Open from PACS, Send results, Receive studies; Settings > PACS
        self.save_dicom = SaveResults(self)  # File > Save results as DICOM…
        geometry, state = self.settings.geometry(), self.settings.state()
        if geometry is not None:
            self.restoreGeometry(geometry)
        if state is not None and self.restoreState(state):
            self.dock_fit.restored()  # docks squeezed in a small window's session: readable again
        self.models.start(model_path)

    # -- the model's and the current result's state (kept by ModelControl and ResultView) --
    @property
    def classifier(self) -> Classifier | None:
        return self.models.classifier

    @property
    def model_state(self) -> ModelState:
        return self.models.state

    @property
    def model_reason(self) -> str:
        """What the model state means for the user ("" when READY)."""
        return self.models.reason

    @property
    def prediction(self) -> Prediction | None:
        return self.results.prediction

    @property
    def _result(self) -> AnalysisDone | None:
        return self.results.result

    # -- construction --------------------------------------------------------------------
    def _make_status_bar(self) -> None:
        sb = self.statusBar()
        self.wl_label = QLabel("")
        self.zoom_label = QLabel("")
        self.provider_label = self.models.label
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
        self.models.changed.connect(self.modelChanged)
        self.models.loaded.connect(self._on_model_loaded)
        self.models.turnedOff.connect(self._on_model_off)
        self.view.navigate.connect(self.study.browser.move)

    def _connect_actions(self) -> None:
        a = self.commands
        a.open.triggered.connect(self.open_dialog)
        a.folder.triggered.connect(self.open_folder_dialog)
        a.batch.triggered.connect(lambda: self.batch_dialog())
        a.model.triggered.connect(self.load_model_dialog)
        a.quit.triggered.connect(self.close)
        a.card.triggered.connect(self.show_model_card)
        a.adapt.triggered.connect(self.adapt_dialog)
        a.bundled.triggered.connect(self.models.use_bundled)
        a.next.triggered.connect(lambda: self.study.browser.move(1))
        a.prev.triggered.connect(lambda: self.study.browser.move(-1))
        a.save_preset.triggered.connect(self.save_preset)
        a.fullscreen.toggled.connect(lambda on: self.showFullScreen() if on else self.showNormal())
        a.shortcuts.triggered.connect(self.show_shortcuts)
        a.about.triggered.connect(self.show_about)
        for dev, act in a.devices.items():
            act.triggered.connect(lambda _=False, d=dev: self.set_device(d))
        a.recent_menu.aboutToShow.connect(self._fill_recent)

    # -- model ---------------------------------------------------------------------------
    def _on_model_off(self, reason: str) -> None:
        if not self.current_path:
            self.analysis.idle(reason)
            self.analysis.probs.clear(reason)

    def _on_model_loaded(self) -> None:
        if self.current_path:
            self._open_one(self.current_path)
        self.study.restart(self.classifier)

    def set_device(self, device: str) -> None:
        self.models.set_device(device)

    def load_model_dialog(self) -> None:
        self.models.load_dialog()

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
        self.statusBar().clearMessage()  # "Listing …" is over
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
        self.study.browser.select_path(path)
        self.settings.add_recent(path)
        self.settings.last_folder = os.path.dirname(path)
        name = os.path.basename(path)
        self.setWindowTitle(f"{name} - {APP_NAME}")
        self.results.clear()
        self.analysis.busy(f"Opening {name}…", name)
        self.analysis.probs.clear("Analysing…" if self.classifier else self.model_reason)
        self.tags.clear("Loading…")
        self.service.open(path, self.classifier)

    def _on_image(self, r: ImageReady) -> None:
        if self.statusBar().currentMessage() == self._error_message:
            self.statusBar().clearMessage()  # another image is shown: the last one's error is stale
        same = r.path == self._shown_path  # the same image again (another model or device): keep zoom and W/L
        self.display.set_source(r.display, r.image.meta.format == "dicom", keep_view=same)
        self._shown_path = r.path
        self.tags.set_meta(r.image.meta)
        self.study.image_loaded(r.path, r.thumb, analysed=self.classifier is not None)
        if self.classifier is None:
            self.analysis.idle(self.model_reason)
            self.analysisFinished.emit(r.path)
        else:
            name = os.path.basename(r.path)
            self.analysis.busy(f"Analysing {name}…", name)

    def _on_analysed(self, r: AnalysisDone) -> None:
        self.results.show(r)
        self.analysisFinished.emit(r.path)

    def _on_failed(self, r: Failure) -> None:
        name = os.path.basename(r.path)
        if r.stage == "load":
            self.display.clear(f"Cannot show {name}.\n\n{r.message}")
            self._shown_path = ""
            self.analysis.probs.clear("No analysis: the image could not be opened.")
            self.analysis.idle(f"Cannot open {name}.", name)
            self.tags.set_message(r.message)
            self.zoom_label.setText("")
        else:
            self.analysis.probs.clear(f"Analysis failed: {r.message}")
            self.analysis.idle(f"Analysis of {name} failed.", name)
        self.study.failed(r.path, r.message)
        self._error_message = r.message
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
        return self.batches.open(folder, start)

    @property
    def batch_dialogs(self) -> list[BatchDialog]:
        return self.batches.windows

    def show_model_card(self) -> ModelCardDialog | None:
        c = self.classifier
        if c is None:
            return None
        dlg = ModelCardDialog(c.card, c.sha256, str(c.path), f"{c.device_label} [{c.provider}]", c.provider_note, self)
        dlg.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
        dlg.show()
        return dlg

    def adapt_dialog(self) -> AdaptDialog | None:
        """Analysis > Adapt to this site…; the adapted model is loaded when the user chooses it."""
        c = self.classifier
        if c is None:
            return None
        dlg = AdaptDialog(c, self.dialogs, self)
        dlg.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
        dlg.useModel.connect(lambda path: self.models.load(path, user=True))
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
        if not self.batches.may_quit():
            event.ignore()
            return
        self.settings.save_layout(self.saveGeometry(), self.saveState())
        self.settings.cam_visible = self.display.cam_toggle.isChecked()
        self.settings.lungs_visible = self.display.lung_toggle.isChecked()
        self.settings.sync()
        self.batches.shutdown()
        self.study.shutdown()
        self.service.shutdown()
        self.compare.shutdown()
        self.pacs.shutdown()
        super().closeEvent(event)

