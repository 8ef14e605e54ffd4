"""File > Save results as DICOM…: the current image's Structured Report and heatmap Secondary
Capture (``engine.results.dicom_results``) written to a folder the user chooses.

Enabled when the current image is DICOM and analysed (in or out of scope: an out-of-scope
image gets an SR with the scope verdict and no call). The objects are built and written on a
worker thread; the answer comes back by a queued signal and is shown as a message."""

from __future__ import annotations

import os
import threading
from dataclasses import dataclass
from pathlib import Path

from PySide6.QtCore import QObject, Signal
from PySide6.QtWidgets import QMainWindow

from engine import DISCLAIMER, RadLensError

from ..viewer.display_control import action


@dataclass(frozen=True)
class SaveOutcome:
    """What one save did: the files written, or the message of what went wrong."""

    source: str  # the image's file name
    folder: str
    paths: tuple[str, ...] = ()
    error: str = ""

    @property
    def ok(self) -> bool:
        return not self.error


def save_results(prediction: object, classifier: object, folder: str) -> SaveOutcome:
    """Build and write the SR and SC of one analysed image (runs on the worker thread)."""
    from engine.results.dicom_results import results_for, write_results

    image = prediction.image  # type: ignore[attr-defined]
    name = os.path.basename(image.meta.path)
    try:
        paths = write_results(results_for(image, prediction, classifier), Path(folder))  # type: ignore[arg-type]
    except RadLensError as e:
        return SaveOutcome(name, folder, error=str(e))
    except Exception as e:  # noqa: BLE001 - never lost silently: shown as the outcome
        return SaveOutcome(name, folder, error=f"{name}: results as DICOM could not be saved "
                                              f"({type(e).__name__}: {e}). Please report this message.")
    return SaveOutcome(name, folder, tuple(str(p) for p in paths))


def outcome_text(outcome: SaveOutcome) -> str:
    """The message shown after a save."""
    names = "\n".join(f"  {Path(p).name}" for p in outcome.paths)
    return (f"The results of {outcome.source} were saved as DICOM in {outcome.folder}:\n"
            f"a Structured Report (the call, probabilities, scope verdict, model) and a Secondary Capture "
            f"of the heatmap, both in the image's study:\n{names}\n\n{DISCLAIMER}.")


class SaveResults(QObject):
    """The window's File > Save results as DICOM… command. ``saved`` carries each ``SaveOutcome``."""

    saved = Signal(object)

    def __init__(self, win: QMainWindow) -> None:
        super().__init__(win)
        self.win = win
        self.folder = ""  # the folder chosen last (this session)
        self.busy = False
        self.action = action(win, "Save results as &DICOM…", None,
                             "Write this image's results as a DICOM Structured Report and a heatmap Secondary "
                             "Capture in its study (DICOM images that were analysed)")
        self.action.setEnabled(False)
        self.action.triggered.connect(self.save_current)
        self.saved.connect(self._show)
        win.analysisFinished.connect(lambda _path: self.refresh())
        menu = next((a.menu() for a in win.menuBar().actions()
                     if a.menu() is not None and a.text().replace("&", "") == "File"), None)
        if menu is not None:  # after File > Export…, before Analyse folder
            menu.aboutToShow.connect(self.refresh)
            batch = getattr(getattr(win, "commands", None), "batch", None)
            if batch is not None and batch in menu.actions():
                menu.insertAction(batch, self.action)
            else:
                menu.addAction(self.action)

    def available(self) -> str:
        """"" when the current image can be saved as DICOM results, else why not."""
        pred = self.win.prediction
        if self.win.classifier is None:
            return "No model is loaded, so there are no results to save."
        if pred is None:
            return "Open a DICOM image and wait for its analysis, then save its results as DICOM."
        if pred.image.meta.format != "dicom":
            return (f"{os.path.basename(pred.path)} is not a DICOM image: results as DICOM join the image's "
                    "patient and study, which only a DICOM image has.")
        if self.busy:
            return "Results are being saved; wait for the message."
        return ""

    def refresh(self) -> None:
        self.action.setEnabled(not self.available())

    def save_current(self) -> None:
        why = self.available()
        if why:
            self.win.dialogs.error("Cannot save results as DICOM", why)
            return
        pred, classifier = self.win.prediction, self.win.classifier
        start = self.folder or str(Path.home())
        folder = self.win.dialogs.open_folder(start, "Save results as DICOM: choose a folder")
        if not folder:
            return
        self.folder = folder
        self.busy = True
        self.refresh()
        self.win.statusBar().showMessage(f"Saving the results of {os.path.basename(pred.path)} as DICOM…")
        threading.Thread(target=lambda: self.saved.emit(save_results(pred, classifier, folder)),
                         name="radlens-save-dicom", daemon=True).start()

    def _show(self, outcome: SaveOutcome) -> None:
        self.busy = False
        self.refresh()
        if outcome.ok:
            self.win.statusBar().showMessage(f"Saved the results of {outcome.source} as DICOM in {outcome.folder}.",
                                             15000)
            self.win.dialogs.info("Results saved as DICOM", outcome_text(outcome))
        else:
            self.win.statusBar().showMessage("Results were not saved as DICOM.", 15000)
            self.win.dialogs.error("Results not saved as DICOM", outcome.error)
