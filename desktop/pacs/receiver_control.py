"""File > Receive studies: a toggle that starts and stops the DICOM C-STORE receiver
(``engine.pacs.receiver.StoreReceiver``) with the AE title and port from the settings (off
by default). Each received instance lands in the cache (atomically, by the engine); its
study is counted, named in the status bar ("Received study … (n images)"), added to the
recent list, and File > Open received study opens the latest one."""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field
from pathlib import Path

from PySide6.QtCore import QObject, Signal
from PySide6.QtGui import QAction
from PySide6.QtWidgets import QMainWindow

from engine import RadLensError

from ..core.pacs_files import viewable
from ..core.pacs_text import received_text, receiver_settings_error
from ..dialogs import Dialogs
from ..viewer.display_control import action
from .pacs_prefs import PacsPrefs
from .pacs_task import Tasks

log = logging.getLogger(__name__)


@dataclass
class ReceivedStudy:
    study_uid: str
    folder: str
    label: str = ""
    paths: list[str] = field(default_factory=list)


def _label(path: str, study_uid: str) -> str:
    """Patient and study date of a received file, for the status bar (its UID if unreadable)."""
    try:
        import pydicom

        from ..core.pacs_text import person_name, show_date

        ds = pydicom.dcmread(path, stop_before_pixels=True,
                             specific_tags=["PatientName", "PatientID", "StudyDate", "StudyDescription"])
        bits = [person_name(ds.get("PatientName", "")) or str(ds.get("PatientID", "")),
                show_date(ds.get("StudyDate", "")), str(ds.get("StudyDescription", ""))]
        return " ".join(b for b in bits if b) or study_uid
    except Exception:  # noqa: BLE001 - a name is a nicety: the UID will do
        return study_uid


class ReceiverControl(QObject):
    received = Signal(str, str)  # path, study UID (queued from the receiver's threads)
    studyUpdated = Signal(str, int)  # study UID, images received so far

    def __init__(self, win: QMainWindow, prefs: PacsPrefs, dialogs: Dialogs) -> None:
        super().__init__(win)
        self.win, self.prefs, self.dialogs = win, prefs, dialogs
        self.receiver = None  # engine.pacs.receiver.StoreReceiver while running
        self.studies: dict[str, ReceivedStudy] = {}
        self.latest = ""
        self.tasks = Tasks(self)
        self.toggle = action(win, "Receive &studies", None,
                             "Listen for studies pushed by a PACS (DICOM C-STORE; AE title and port in "
                             "Settings > PACS servers)", checkable=True)
        self.open_latest: QAction = action(win, "Open received stud&y", None, "Open the study received last")
        self.open_latest.setEnabled(False)
        self.toggle.toggled.connect(self.set_running)
        self.open_latest.triggered.connect(self.open_received)
        self.received.connect(self._on_received)

    def restore(self) -> None:
        """Start the receiver at launch when the user left it on."""
        if self.prefs.receive_enabled:
            self.toggle.setChecked(True)

    @property
    def running(self) -> bool:
        return self.receiver is not None

    def set_running(self, on: bool) -> None:
        if on and self.receiver is None:
            if not self._start():
                self.toggle.blockSignals(True)
                self.toggle.setChecked(False)
                self.toggle.blockSignals(False)
                self.prefs.receive_enabled = False
                return
        elif not on and self.receiver is not None:
            self._stop()
            self.win.statusBar().showMessage("Receiving studies is off.", 10000)
        self.prefs.receive_enabled = on

    def _start(self) -> bool:
        ae, port = self.prefs.ae_title, self.prefs.port
        problem = receiver_settings_error(ae, port)
        if problem:
            self.dialogs.error("Cannot receive studies", f"{problem} Change it in Settings > PACS servers….")
            return False
        from engine.pacs.receiver import StoreReceiver

        cache = self.prefs.cache_dir
        try:
            cache.mkdir(parents=True, exist_ok=True)
            rx = StoreReceiver(ae, port, cache, on_received=lambda path, uid: self.received.emit(str(path), str(uid)))
            rx.start()
        except (RadLensError, OSError, RuntimeError, ValueError) as e:
            self.dialogs.error("Cannot receive studies",
                               f"The receiver could not listen on port {port} as {ae}: {e}. Choose another port in "
                               "Settings > PACS servers… (one no other program uses) and turn it on again.")
            return False
        self.receiver = rx
        self.win.statusBar().showMessage(f"Receiving studies as {ae} on port {port}; they go to {cache}.", 15000)
        return True

    def _stop(self) -> None:
        rx, self.receiver = self.receiver, None
        if rx is not None:
            try:
                rx.stop()
            except Exception as e:  # noqa: BLE001 - stopping must never keep the window from closing
                log.warning("the receiver did not stop cleanly: %s", e)

    def _on_received(self, path: str, study_uid: str) -> None:
        s = self.studies.get(study_uid)
        if s is None:
            s = self.studies[study_uid] = ReceivedStudy(study_uid, os.path.dirname(path), _label(path, study_uid))
        if path not in s.paths:
            s.paths.append(path)
        first = self.latest != study_uid or len(s.paths) == 1
        self.latest = study_uid
        self.open_latest.setEnabled(True)
        self.open_latest.setText(f"Open received stud&y ({s.label})")
        if first:
            self.prefs.settings.add_recent(s.folder)
        self.win.statusBar().showMessage(
            received_text(s.label, len(s.paths)) + ": File > Open received study shows it.", 30000)
        self.studyUpdated.emit(study_uid, len(s.paths))

    def open_received(self) -> None:
        """Open the latest received study: its image files, originals first (read off the GUI thread)."""
        s = self.studies.get(self.latest)
        if s is None:
            return
        paths = sorted(str(p) for p in Path(s.folder).glob("*.dcm"))

        def opened(out: object) -> None:
            images, others = out  # type: ignore[misc]
            if images:
                self.win.open_paths(images)
            else:
                self.dialogs.error("Nothing to show", f"The study received from the PACS ({s.label}) holds no image "
                                   f"({others} report(s) or other objects), so there is nothing to open.")

        self.tasks.start(lambda progress, cancel: viewable(paths), opened,
                         lambda msg, kind: self.dialogs.error("Cannot open the received study", msg))

    def shutdown(self) -> None:
        self._stop()
        self.tasks.shutdown()
