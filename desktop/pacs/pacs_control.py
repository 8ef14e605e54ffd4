"""The window's PACS commands: File > Open from PACS… (Ctrl+Alt+P: Ctrl+Shift+P is View >
Compare with previous), File > Send results to PACS…, File > Receive studies and Open
received study, Settings > PACS servers…, and the batch window's "Send results to PACS…".
The window makes one ``PacsControl`` and calls ``shutdown`` when it closes; the screens are
``pacs_dialog``, ``pacs_send``, ``pacs_settings`` and ``receiver_control``."""

from __future__ import annotations

from PySide6.QtCore import QObject
from PySide6.QtGui import QAction
from PySide6.QtWidgets import QDialog, QHBoxLayout, QMainWindow, QMenu, QPushButton

from engine.pacs.servers import ServerConfig, ServersFileError

from ..viewer.display_control import action
from .pacs_dialog import OpenFromPacsDialog
from .pacs_prefs import PacsPrefs
from .pacs_send import SendItem, SendJob, batch_items, send_results
from .pacs_settings import PacsServersDialog
from .pacs_task import delete_when_idle
from .receiver_control import ReceiverControl


def _menu(win: QMainWindow, title: str) -> QMenu | None:
    for a in win.menuBar().actions():
        if a.menu() is not None and a.text().replace("&", "") == title:
            return a.menu()
    return None


class PacsControl(QObject):
    def __init__(self, win: QMainWindow) -> None:
        super().__init__(win)
        self.win = win
        self.dialogs = win.dialogs
        self.prefs = PacsPrefs(win.settings)
        self.open_action = action(win, "Open from &PACS…", "Ctrl+Alt+P",
                                  "Search a PACS (DICOMweb) and open a study from it")
        self.send_action = action(win, "Send results to PA&CS…", None,
                                  "Store this image's results (SR and heatmap capture) on a PACS, after asking")
        self.servers_action = action(win, "&PACS servers…", None, "DICOMweb servers and the study receiver")
        self.receiver = ReceiverControl(win, self.prefs, self.dialogs)
        self.open_action.triggered.connect(self.open_dialog)
        self.send_action.triggered.connect(self.send_current)
        self.servers_action.triggered.connect(self.servers_dialog)
        self.dialog: OpenFromPacsDialog | None = None
        self.settings_dialog: PacsServersDialog | None = None
        self.closing: list[OpenFromPacsDialog] = []  # closed, a request still running
        self.jobs: list[SendJob] = []
        self._place()
        self.receiver.restore()

    def _place(self) -> None:
        win = self.win
        f = _menu(win, "File")
        commands = getattr(win, "commands", None)
        if f is not None and commands is not None:
            f.insertAction(commands.recent_menu.menuAction(), self.open_action)
            f.insertActions(commands.model, [self.send_action, self.receiver.toggle, self.receiver.open_latest])
            f.insertSeparator(commands.model)
        settings = _menu(win, "Settings")
        if settings is None:
            settings = QMenu("&Settings", win)
            help_menu = _menu(win, "Help")
            win.menuBar().insertMenu(help_menu.menuAction() if help_menu else QAction(), settings)
        settings.addAction(self.servers_action)

    # -- servers -----------------------------------------------------------------------------
    def servers(self) -> list[ServerConfig]:
        try:
            return self.prefs.servers()
        except ServersFileError as e:
            self.dialogs.error("PACS servers not read", str(e))
            return []

    def choose_server(self) -> ServerConfig | None:
        """The one server; with several, the user chooses (the one used last comes first). None
        (and a message) without one, or when the user cancels."""
        servers = self.servers()
        if not servers:
            self.dialogs.error("No PACS server", "No PACS server is set up yet: add one with Settings > PACS "
                               "servers… (its DICOMweb URL), then try again.")
            return None
        servers.sort(key=lambda s: s.name != self.prefs.last_server)
        choose = getattr(self.dialogs, "choose", None)
        if len(servers) == 1 or choose is None:
            return servers[0]
        names = [f"{s.name} ({s.url})" for s in servers]
        picked = choose("Send results to PACS", "Server:", names)
        return servers[names.index(picked)] if picked in names else None

    def servers_dialog(self) -> PacsServersDialog:
        dlg = PacsServersDialog(self.prefs, self.dialogs, self.win)
        dlg.setModal(True)
        dlg.saved.connect(lambda: self.dialog.reload_servers() if self.dialog is not None else None)
        dlg.finished.connect(lambda *_: delete_when_idle(dlg, dlg.tasks))
        self.settings_dialog = dlg
        dlg.show()
        return dlg

    # -- open ------------------------------------------------------------------------------------
    def open_dialog(self) -> OpenFromPacsDialog:
        if self.dialog is not None:
            self.dialog.raise_()
            self.dialog.activateWindow()
            return self.dialog
        dlg = OpenFromPacsDialog(self.prefs, self.dialogs, self.win)
        dlg.retrieved.connect(self.win.open_paths)
        dlg.finished.connect(lambda *_: self._dialog_closed(dlg))
        self.dialog = dlg
        dlg.show()
        return dlg

    def _dialog_closed(self, dlg: OpenFromPacsDialog) -> None:
        if self.dialog is dlg:
            self.dialog = None
        self.closing.append(dlg)
        dlg.tasks.idle.connect(lambda: self.closing.remove(dlg) if dlg in self.closing else None)
        delete_when_idle(dlg, dlg.tasks)

    # -- send ------------------------------------------------------------------------------------
    def send_current(self) -> SendJob | None:
        pred, clf = self.win.prediction, self.win.classifier
        if pred is None or clf is None:
            self.dialogs.error("No results to send", "There is no analysed image to send results for: open a DICOM "
                               "image and wait for its analysis, then try again.")
            return None
        server = self.choose_server()
        if server is None:
            return None
        return self._track(send_results(self.win, server, [SendItem(pred.path, clf, pred)], self.dialogs))

    def attach_batch(self, dlg: QDialog) -> QPushButton | None:
        """A "Send results to PACS…" button in a batch window, next to its export button; it
        sends the SR and SC of every analysed DICOM file once the batch has finished."""
        export = getattr(dlg, "export_button", None)
        row = next((lay for lay in dlg.findChildren(QHBoxLayout) if export is not None and lay.indexOf(export) >= 0),
                   None)
        if row is None or not hasattr(dlg, "finished_batch"):
            return None
        button = QPushButton("Send results to PACS…")
        button.setToolTip("Store the SR and heatmap capture of every analysed DICOM file on a PACS, after asking")
        button.setEnabled(False)
        row.insertWidget(row.indexOf(export), button)
        dlg.finished_batch.connect(lambda *_: button.setEnabled(bool(self.batch_paths(dlg))))
        button.clicked.connect(lambda: self.send_batch(dlg))
        return button

    @staticmethod
    def batch_paths(dlg: QDialog) -> list[str]:
        """The batch's analysed DICOM files (in scope or not: the SR records the scope verdict)."""
        return [r.path for r in dlg.model.rows() if r.status in ("ok", "out_of_scope") and r.format == "dicom"]

    def send_batch(self, dlg: QDialog) -> SendJob | None:
        paths = self.batch_paths(dlg)
        server = self.choose_server() if paths else None
        if server is None:
            return None
        return self._track(send_results(self.win, server, batch_items(paths, dlg.classifier), self.dialogs))

    def _track(self, job: SendJob) -> SendJob:
        self.jobs.append(job)
        job.finished.connect(lambda *_: self.jobs.remove(job) if job in self.jobs else None)
        return job

    def shutdown(self) -> None:
        """The window closes: cancel what runs and wait for its threads."""
        if self.dialog is not None:
            self.dialog.done(0)
        for dlg in [*self.closing, self.settings_dialog]:
            try:
                if dlg is not None:
                    dlg.tasks.shutdown()
            except RuntimeError:  # already deleted
                pass
        for job in list(self.jobs):
            job.shutdown()
        self.receiver.shutdown()
