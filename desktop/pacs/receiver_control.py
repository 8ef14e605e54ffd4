"""File > Receive studies: a toggle that starts and stops the DICOM C-STORE receiver
(``engine.pacs.receiver.StoreReceiver``) with the settings of Settings > PACS servers: AE
title, port, the address it listens on (127.0.0.1 by default) and its allowed senders (only
they may send, unless "accept any caller" is on). Off by default; it starts with RadLens only
when "Start the receiver when RadLens starts" is on, and the status bar then says so. While
it listens, a permanent status-bar label says where, as what and from whom
("Receiving on 127.0.0.1:11112 as RADLENS · from 2 peers"). Settings saved while it runs
apply at once (a new address, port or AE title restarts it). Each received instance lands in
the cache (atomically, by the engine); its study is counted, named in the status bar
("Received study … (n images)"), added to the recent list, and File > Open received study
opens the latest one."""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field
from pathlib import Path

from PySide6.QtCore import QObject, QTimer, Signal
from PySide6.QtGui import QAction
from PySide6.QtWidgets import QLabel, QMainWindow

from engine import RadLensError

from ..core.pacs_files import viewable
from ..core.pacs_text import (
    NO_PEERS_TEXT,
    NOT_RESTARTED_TEXT,
    endpoint,
    received_text,
    receiver_indicator_text,
    receiver_indicator_tooltip,
    receiver_problem,
    receiver_started_text,
)
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


@dataclass(frozen=True)
class ReceiverConfig:
    """What the receiver is started with, read from the settings."""

    ae_title: str
    port: int
    host: str
    peers: tuple[tuple[str, str], ...]
    accept_any: bool

    @property
    def listening(self) -> tuple[str, int, str]:
        """The settings whose change needs a restart (the senders can change while it runs)."""
        return self.ae_title.strip(), self.port, self.host.strip()


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
                             "Listen for studies pushed by a PACS (DICOM C-STORE; AE title, port, address and "
                             "allowed senders in Settings > PACS servers)", checkable=True)
        self.open_latest: QAction = action(win, "Open received stud&y", None, "Open the study received last")
        self.open_latest.setEnabled(False)
        self.toggle.toggled.connect(self.set_running)
        self.open_latest.triggered.connect(self.open_received)
        self.received.connect(self._on_received)
        self.config: ReceiverConfig | None = None  # what the running receiver was started with
        self.launch_message = ""  # what the status bar said about the receiver at launch
        self.indicator = QLabel()
        self.indicator.setObjectName("receiverIndicator")
        self.indicator.setStyleSheet("QLabel#receiverIndicator { padding: 0 6px; font-weight: bold; }")
        self.indicator.hide()
        win.statusBar().addPermanentWidget(self.indicator)
        prefs.receiver_listeners.append(self.apply_settings)

    def restore(self) -> None:
        """At launch: start the receiver only when "Start the receiver when RadLens starts" is on,
        and say so in the status bar. A receiver that was merely left on (RadLens before this
        setting restarted it silently) stays off, and the status bar says how to turn it on."""
        if self.prefs.start_at_launch:
            self.toggle.setChecked(True)
            if self.receiver is not None and self.config is not None:
                self.launch_message = self._started_text(at_launch=True)
        elif self.prefs.receive_enabled:
            self.prefs.receive_enabled = False  # said once
            self.launch_message = NOT_RESTARTED_TEXT
        if self.launch_message:
            self._say_after_model(self.launch_message)

    def _say_after_model(self, text: str) -> None:
        """Show ``text`` in the status bar once the window's model has loaded (or failed to): the
        model's own "Loading…" message would hide it at once otherwise."""
        models, state = getattr(self.win, "models", None), getattr(self.win, "model_state", None)

        def say() -> None:
            self.win.statusBar().showMessage(text, 30000)

        if models is None or state is None or state.settled:
            say()
            return

        def settled() -> None:
            models.changed.disconnect(settled)
            QTimer.singleShot(0, say)  # after the model's own message

        models.changed.connect(settled)

    @property
    def running(self) -> bool:
        return self.receiver is not None

    def set_running(self, on: bool) -> None:
        if on and self.receiver is None:
            if not self._start():
                self._untick()
                return
        elif not on and self.receiver is not None:
            self._stop()
            self.win.statusBar().showMessage("Receiving studies is off.", 10000)
        self.prefs.receive_enabled = on

    def read_config(self) -> ReceiverConfig:
        p = self.prefs
        return ReceiverConfig(p.ae_title, p.port, p.bind_address, tuple(p.peers), p.accept_any)

    def _config_problem(self, c: ReceiverConfig) -> str:
        problem = receiver_problem(c.ae_title, c.port, c.peers)
        if problem:
            return f"{problem} Change it in Settings > PACS servers…."
        if not c.peers and not c.accept_any:
            return NO_PEERS_TEXT
        return ""

    def _start(self) -> bool:
        c = self.read_config()
        problem = self._config_problem(c)
        if problem:
            self.dialogs.error("Cannot receive studies", problem)
            return False
        from engine.pacs.receiver import Peer, StoreReceiver

        cache = self.prefs.cache_dir
        try:
            cache.mkdir(parents=True, exist_ok=True)
            rx = StoreReceiver(c.ae_title, c.port, cache,
                               on_received=lambda path, uid: self.received.emit(str(path), str(uid)),
                               host=c.host, peers=[Peer(ae, addr) for ae, addr in c.peers], accept_any=c.accept_any)
            rx.start()
        except (RadLensError, OSError, RuntimeError, ValueError) as e:
            self.dialogs.error("Cannot receive studies",
                               f"The receiver could not listen on {endpoint(c.host, c.port)} as {c.ae_title}: {e} "
                               "Change the address or port in Settings > PACS servers… (a port no other program "
                               "uses) and turn it on again.")
            return False
        self.receiver, self.config = rx, c
        self._show_indicator()
        self.win.statusBar().showMessage(self._started_text(), 15000)
        return True

    def _started_text(self, at_launch: bool = False) -> str:
        c, rx = self.config, self.receiver
        assert c is not None and rx is not None
        host, port = rx.address
        return receiver_started_text(host, port, c.ae_title, len(c.peers), c.accept_any, str(self.prefs.cache_dir),
                                     at_launch)

    def _show_indicator(self) -> None:
        c, rx = self.config, self.receiver
        if c is None or rx is None:
            self.indicator.hide()
            return
        host, port = rx.address
        self.indicator.setText(receiver_indicator_text(host, port, c.ae_title, len(c.peers), c.accept_any))
        self.indicator.setToolTip(receiver_indicator_tooltip(host, port, c.ae_title, c.peers, c.accept_any,
                                                             str(self.prefs.cache_dir)))
        self.indicator.show()

    def apply_settings(self) -> None:
        """The receiver settings were saved: a running receiver takes them. New senders apply at
        once; a new AE title, port or address restarts it (off, with a message, if that fails)."""
        rx, old = self.receiver, self.config
        if rx is None or old is None:
            return
        new = self.read_config()
        if new == old:
            return
        problem = self._config_problem(new)
        if not problem and new.listening == old.listening:
            from engine.pacs.receiver import Peer

            rx.set_peers([Peer(ae, addr) for ae, addr in new.peers], new.accept_any)
            self.config = new
            self._show_indicator()
            self.win.statusBar().showMessage("The receiver took the new settings: " +
                                             self.indicator.text().replace("Receiving", "receiving", 1) + ".", 15000)
            return
        self._stop()
        if not self._start():
            self._untick()

    def _untick(self) -> None:
        self.toggle.blockSignals(True)
        self.toggle.setChecked(False)
        self.toggle.blockSignals(False)
        self.prefs.receive_enabled = False

    def _stop(self) -> None:
        rx, self.receiver, self.config = self.receiver, None, None
        self.indicator.hide()
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
