"""The model in use: loading it (at start, from File > Load model…, on another device), where
it stands (``ModelState``) and what that means for the user, shown in the status bar's
provider label and the analysis dock. The loading itself runs in ``workers``; the window
owns one ``ModelControl`` and reacts to its signals."""

from __future__ import annotations

import os
from pathlib import Path

from PySide6.QtCore import QObject, Signal
from PySide6.QtWidgets import QLabel, QMainWindow

from engine import Classifier, default_model_path

from ..actions import Actions
from ..core.messages import ModelReady
from ..core.model_state import ModelState
from ..dialogs import Dialogs
from ..settings import Settings
from ..workers import AnalysisService
from .analysis_dock import AnalysisDock

NO_CUDA = "No usable CUDA GPU: running on CPU"


class ModelControl(QObject):
    changed = Signal()  # the model or its state settled: loaded, refused (old one kept), or none
    loaded = Signal()  # a new classifier is in use
    turnedOff = Signal(str)  # no classifier: analysis is off, and why

    def __init__(self, service: AnalysisService, settings: Settings, dialogs: Dialogs, analysis: AnalysisDock,
                 commands: Actions, device: str, window: QMainWindow) -> None:
        super().__init__(window)
        self.service = service
        self.settings = settings
        self.dialogs = dialogs
        self.analysis = analysis
        self.commands = commands
        self.status = window.statusBar()
        self.device = device
        self.classifier: Classifier | None = None
        self.path = ""
        self.state = ModelState.LOADING
        self.reason = "Loading the model…"  # what the state means for the user ("" when READY)
        self._user_request = False
        self._asked_device = ""  # a device the user chose in Analysis > Device, until its model loads
        self.label = QLabel("No model")  # the status bar's provider label
        self.label.setObjectName("providerLabel")
        service.modelReady.connect(self._on_model)

    def _set_state(self, state: ModelState, reason: str = "") -> None:
        self.state = state
        self.reason = reason

    def start(self, explicit: str | None) -> None:
        path = explicit or self.settings.model_path or str(default_model_path())
        if not explicit and self.settings.model_path and not Path(self.settings.model_path).is_file():
            path = str(default_model_path())  # a remembered model that went away: back to the default
        if not Path(path).is_file():
            self._set_no_model(ModelState.NONE, f"Analysis is off: no model file at {path}. "
                               "Use File > Load model… to choose a RadLens .onnx model; images can still be viewed.")
            return
        self.load(path, user=False)

    def load(self, path: str, user: bool) -> None:
        self._user_request = user
        self._set_state(ModelState.LOADING, f"Loading the model {os.path.basename(path)}…")
        self.label.setText("Loading model…")
        self.analysis.model.setText(self.reason)
        self.status.showMessage(self.reason)
        self.service.load_model(path, self.device)

    def _set_no_model(self, state: ModelState, reason: str) -> None:
        self.classifier = None
        self._set_state(state, reason)
        self.label.setText("No model: analysis off")
        self.label.setToolTip(reason)
        self.analysis.model.setText(reason)
        self.commands.model_actions_enabled(False)
        self.turnedOff.emit(reason)
        self.status.showMessage(reason)
        self.changed.emit()

    def _on_model(self, r: ModelReady) -> None:
        user = self._user_request
        self._user_request = False
        if r.classifier is None:
            msg = f"The model {os.path.basename(r.path)} was refused: {r.message}"
            if user:
                self.dialogs.error("Model refused", msg + ("\n\nThe previous model stays in use." if self.classifier else ""))
            if self.classifier is not None:
                self._set_state(ModelState.READY)
                self.status.showMessage(msg + " The previous model stays in use.", 15000)
                self._show_info()
                self.changed.emit()
                return
            self._set_no_model(ModelState.FAILED,
                               f"Analysis is off: {msg} Use File > Load model… to choose another model.")
            return
        self.classifier = r.classifier
        self.path = r.path
        if user:
            self.settings.model_path = r.path
        self._set_state(ModelState.READY)
        self._show_info()
        self.commands.model_actions_enabled(True)
        asked, self._asked_device = self._asked_device, ""
        if self.device == "cuda" and r.classifier.provider != "CUDAExecutionProvider":
            note = r.classifier.provider_note or "onnxruntime found no CUDA device."
            msg = f"{NO_CUDA}. {note}"
            self.status.showMessage(msg, 20000)  # the saved choice at start: said in the status bar
            if asked == "cuda":  # just chosen in Analysis > Device: said in a dialog too
                self.dialogs.info("No usable CUDA GPU", msg)
        else:
            self.status.showMessage(f"Model {r.classifier.card.name} {r.classifier.card.version} loaded in "
                                    f"{r.seconds:.1f} s on {r.classifier.device_label}.", 8000)
        self.changed.emit()
        self.loaded.emit()

    def _show_info(self) -> None:
        c = self.classifier
        if c is None:
            return
        text = c.device_label if not c.provider_note else f"{c.device_label} (fallback)"
        self.label.setText(f"Provider: {text}")
        self.label.setToolTip(f"{c.provider}" + (f": {c.provider_note}" if c.provider_note else ""))
        info = (f"{c.card.name} {c.card.version}, classes {', '.join(c.labels)}.\nRunning on {c.device_label} "
                f"[{c.provider}]")
        if c.provider_note:
            info += f"\n{c.provider_note}"
        if c.card.parent:
            site = (c.card.site_adaptation or {}).get("site", {}).get("name", "")
            info += (f"\nAdapted to site '{site}' from {c.card.parent['name']} {c.card.parent['version']}. "
                     "Analysis > Use the bundled model switches back.")
        self.analysis.model.setText(info)

    def set_device(self, device: str) -> None:
        self.device = device
        self._asked_device = device
        self.settings.device = device
        if self.path or self.classifier is not None:
            # the same model on another device: the remembered model choice stays as it is
            self.load(self.path, user=False)

    def use_bundled(self) -> None:
        """Analysis > Use the bundled model: back to the model that ships with RadLens."""
        self.settings.model_path = ""
        self.load(str(default_model_path()), user=False)

    def load_dialog(self) -> None:
        path = self.dialogs.open_model(os.path.dirname(self.path) or str(default_model_path().parent))
        if path:
            self.load(path, user=True)
