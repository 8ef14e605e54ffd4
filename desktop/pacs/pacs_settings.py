"""Settings > PACS servers…: add, edit and remove DICOMweb servers (name, URL,
authentication, user name, TLS verification), test a connection, and the receiver's
settings (``receiver_settings.ReceiverBox``, saved when the dialog closes). Passwords and tokens
go to the OS keyring (or memory for this run), never to the settings or the server file."""

from __future__ import annotations

import threading

from PySide6.QtCore import Signal
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QDialog,
    QDialogButtonBox,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QListWidget,
    QPushButton,
    QSpinBox,
    QVBoxLayout,
    QWidget,
)

from engine import DISCLAIMER
from engine.pacs.servers import ServerConfig, ServersFileError

from ..core import pacs_secrets as secrets
from ..core.pacs_text import (
    AUTH_KINDS,
    AUTH_NAMES,
    secret_label,
    server_problem,
)
from ..dialogs import Dialogs
from .pacs_prefs import PacsPrefs
from .pacs_task import Progress, Tasks
from .receiver_settings import ReceiverBox

DEFAULT_TIMEOUT_S = 30


def ask_secret(dialogs: Dialogs, server: ServerConfig) -> str:
    """Ask for a server's password or token (hidden typing where the dialogs can)."""
    label = f"{secret_label(server.auth)} for {server.name} ({server.url})" + (
        f", user {server.username}" if server.username else "") + ":"
    ask = getattr(dialogs, "password", None) or dialogs.text
    return ask(f"{server.name}: {secret_label(server.auth).lower()}", label)


def new_server(name: str, url: str, auth: str, username: str, verify_tls: bool, timeout_s: float) -> ServerConfig:
    return ServerConfig(name=name.strip(), url=url.strip().rstrip("/"), auth=auth, username=username.strip(),
                        verify_tls=bool(verify_tls), timeout_s=float(timeout_s))


class PacsServersDialog(QDialog):
    saved = Signal()  # the server list was written
    tested = Signal(bool, str)  # a connection test ended: ok, message

    def __init__(self, prefs: PacsPrefs, dialogs: Dialogs, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle("PACS servers")
        self.resize(960, 680)
        self.prefs, self.dialogs = prefs, dialogs
        try:
            self.servers: list[ServerConfig] = prefs.servers()
        except ServersFileError as e:
            self.servers = []
            dialogs.error("PACS servers not read", str(e))
        self.tasks = Tasks(self)
        self.list = QListWidget()
        self.add_button = QPushButton("&Add")
        self.remove_button = QPushButton("&Remove")
        self.name, self.url, self.username = QLineEdit(), QLineEdit(), QLineEdit()
        self.url.setPlaceholderText("https://pacs.example.org/dicom-web")
        self.auth = QComboBox()
        for k in AUTH_KINDS:
            self.auth.addItem(AUTH_NAMES[k], k)
        self.secret = QLineEdit()
        self.secret.setEchoMode(QLineEdit.EchoMode.Password)
        self.secret_note = QLabel()
        self.secret_note.setWordWrap(True)
        self.verify = QCheckBox("Verify the server's TLS certificate (keep on unless told otherwise)")
        self.verify.setChecked(True)
        self.timeout = QSpinBox()
        self.timeout.setRange(1, 600)
        self.timeout.setSuffix(" s")
        self.timeout.setValue(DEFAULT_TIMEOUT_S)
        self.save_button = QPushButton("&Save server")
        self.test_button = QPushButton("&Test connection")
        self.test_result = QLabel("")
        self.test_result.setWordWrap(True)
        self.receiver = ReceiverBox(prefs, dialogs)
        self._layout()
        self.list.currentRowChanged.connect(self._show_row)
        self.add_button.clicked.connect(self.add_server)
        self.remove_button.clicked.connect(self.remove_server)
        self.save_button.clicked.connect(self.save_server)
        self.test_button.clicked.connect(self.test_connection)
        self.auth.currentIndexChanged.connect(self._auth_changed)
        self._fill_list()
        if self.servers:
            self.list.setCurrentRow(0)
        else:
            self.add_server()

    def _layout(self) -> None:
        left = QVBoxLayout()
        left.addWidget(self.list)
        row = QHBoxLayout()
        row.addWidget(self.add_button)
        row.addWidget(self.remove_button)
        left.addLayout(row)
        form = QFormLayout()
        form.addRow("Name:", self.name)
        form.addRow("DICOMweb URL:", self.url)
        form.addRow("Authentication:", self.auth)
        form.addRow("User name:", self.username)
        form.addRow("Password / token:", self.secret)
        form.addRow("", self.secret_note)
        form.addRow("", self.verify)
        form.addRow("Timeout:", self.timeout)
        buttons = QHBoxLayout()
        buttons.addWidget(self.save_button)
        buttons.addWidget(self.test_button)
        buttons.addStretch(1)
        right = QVBoxLayout()
        right.addLayout(form)
        right.addLayout(buttons)
        right.addWidget(self.test_result)
        top = QHBoxLayout()
        top.addLayout(left, 1)
        top.addLayout(right, 2)
        box = QDialogButtonBox(QDialogButtonBox.StandardButton.Close)
        box.rejected.connect(self.reject)
        disclaimer = QLabel(DISCLAIMER)
        disclaimer.setStyleSheet("color: #7a1020; font-weight: bold;")
        main = QVBoxLayout(self)
        main.addLayout(top)
        main.addWidget(self.receiver)
        main.addWidget(disclaimer)
        main.addWidget(box)

    # -- the list --------------------------------------------------------------------------
    def _fill_list(self) -> None:
        self.list.blockSignals(True)
        self.list.clear()
        for s in self.servers:
            self.list.addItem(s.name)
        self.list.blockSignals(False)

    def _show_row(self, row: int) -> None:
        s = self.servers[row] if 0 <= row < len(self.servers) else None
        self.name.setText(s.name if s else "")
        self.url.setText(s.url if s else "")
        self.auth.setCurrentIndex(max(0, AUTH_KINDS.index(s.auth) if s and s.auth in AUTH_KINDS else 0))
        self.username.setText((s.username or "") if s else "")
        self.verify.setChecked(bool(s.verify_tls) if s else True)
        self.timeout.setValue(int(round(float(s.timeout_s or DEFAULT_TIMEOUT_S))) if s else DEFAULT_TIMEOUT_S)
        self.secret.clear()
        self.test_result.clear()
        self._auth_changed()

    def _auth_changed(self) -> None:
        auth = str(self.auth.currentData())
        self.username.setEnabled(auth == "basic")
        self.secret.setEnabled(auth != "none")
        if auth == "none":
            self.secret_note.setText("")
            return
        where = ("Kept in the OS keyring." if secrets.keyring_available() else
                 "No OS keyring here: kept in memory, asked for once per run.")
        row = self.list.currentRow()
        known = 0 <= row < len(self.servers) and bool(secrets.known_secret(self.servers[row]))
        self.secret.setPlaceholderText("(kept; type to change)" if known else "")
        self.secret_note.setText(f"Never written to a file. {where}")

    def add_server(self) -> None:
        base, n = "New server", 1
        names = {s.name for s in self.servers}
        name = base
        while name in names:
            n += 1
            name = f"{base} {n}"
        self.servers.append(new_server(name, "", "none", "", True, DEFAULT_TIMEOUT_S))
        self._fill_list()
        self.list.setCurrentRow(len(self.servers) - 1)
        self.name.selectAll()
        self.name.setFocus()

    def remove_server(self) -> None:
        row = self.list.currentRow()
        if not 0 <= row < len(self.servers):
            return
        s = self.servers[row]
        if s.url and not self.dialogs.confirm("Remove server?", f"Remove {s.name} ({s.url}) from RadLens? "
                                              "Studies already retrieved stay in the cache.", "Remove"):
            return
        del self.servers[row]
        secrets.forget(s)
        self.prefs.save_servers([x for x in self.servers if x.url])
        self._fill_list()
        self.list.setCurrentRow(min(row, len(self.servers) - 1))
        self.saved.emit()

    def form_server(self) -> tuple[ServerConfig | None, str]:
        """The server the form describes, or None and what is wrong with it."""
        row = self.list.currentRow()
        taken = [s.name for i, s in enumerate(self.servers) if i != row]
        auth = str(self.auth.currentData())
        s = new_server(self.name.text(), self.url.text(), auth, self.username.text() if auth == "basic" else "",
                       self.verify.isChecked(), self.timeout.value())
        problem = server_problem(s.problem(), s.name, taken)
        return (None, problem) if problem else (s, "")

    def save_server(self) -> bool:
        s, problem = self.form_server()
        if s is None:
            self.dialogs.error("PACS server not saved", problem)
            return False
        row = self.list.currentRow()
        if 0 <= row < len(self.servers):
            self.servers[row] = s
        else:
            self.servers.append(s)
            row = len(self.servers) - 1
        typed = self.secret.text()
        if typed and s.auth != "none":
            secrets.remember(s, typed)
        self.secret.clear()
        try:
            self.prefs.save_servers([x for x in self.servers if x.url])
        except ServersFileError as e:
            self.dialogs.error("PACS servers not saved", str(e))
            return False
        self._fill_list()
        self.list.setCurrentRow(row)
        self.test_result.setText(f"Saved {s.name}.")
        self.saved.emit()
        return True

    # -- test ------------------------------------------------------------------------------
    def test_connection(self) -> None:
        s, problem = self.form_server()
        if s is None:
            self.dialogs.error("Cannot test the connection", problem)
            return
        secret = self.secret.text() or secrets.secret_for(s, lambda srv: ask_secret(self.dialogs, srv))
        if secret is None:
            return
        self.test_button.setEnabled(False)
        self.test_result.setText(f"Connecting to {s.url}…")

        def job(progress: Progress, cancel: threading.Event) -> int:
            from engine.pacs.dicomweb import PacsClient

            return len(PacsClient(s, secret).search_studies(limit=1))

        self.tasks.start(job, lambda n: self._tested(True, f"Connected to {s.name}: the server answered a study "
                                                           f"search ({'it has studies' if n else 'no studies yet'})."),
                         lambda msg, kind: self._tested(False, f"Cannot connect to {s.name}: {msg}"))

    def _tested(self, ok: bool, message: str) -> None:
        self.test_button.setEnabled(True)
        self.test_result.setText(message)
        self.test_result.setStyleSheet("" if ok else "color: #a01010;")
        self.tested.emit(ok, message)

    def done(self, result: int) -> None:  # noqa: D102 - closing saves the receiver settings
        if not self.receiver.save():
            return
        self.tasks.cancel_all()
        self.prefs.settings.sync()
        super().done(result)

