"""The receiver's part of Settings > PACS servers…: AE title, port, the address it listens on
(127.0.0.1, this computer only, by default; checked against this computer's interfaces), the
allowed senders (calling AE title and optional IP address or network), "Accept any caller" and
"Start the receiver when RadLens starts" (both off by default)."""

from __future__ import annotations

from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QFormLayout,
    QGroupBox,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QLineEdit,
    QPushButton,
    QSpinBox,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from ..core.pacs_text import receiver_problem
from ..dialogs import Dialogs
from .pacs_prefs import PacsPrefs

LISTEN_CHOICES = ("127.0.0.1", "0.0.0.0")  # this computer only; every network interface


class ReceiverBox(QGroupBox):
    """The receiver's settings, read from and saved to ``prefs`` (``save``, when the dialog closes)."""

    def __init__(self, prefs: PacsPrefs, dialogs: Dialogs, parent: QWidget | None = None) -> None:
        super().__init__("Receive studies (DICOM C-STORE; turn on with File > Receive studies)", parent)
        self.prefs, self.dialogs = prefs, dialogs
        self.ae_title = QLineEdit(prefs.ae_title)
        self.port = QSpinBox()
        self.port.setRange(1, 65535)
        self.port.setValue(prefs.port)
        self.bind_address = QComboBox()
        self.bind_address.setEditable(True)
        self.bind_address.addItems(list(LISTEN_CHOICES))
        self.bind_address.setCurrentText(prefs.bind_address)
        self.bind_address.setToolTip("The IP address the receiver listens on")
        self.bind_note = QLabel("127.0.0.1: this computer only (the safe choice). 0.0.0.0: every network "
                                "interface, needed when the PACS is another computer. Or type one of this "
                                "computer's addresses.")
        self.bind_note.setWordWrap(True)
        self.peers = QTableWidget(0, 2)
        self.peers.setHorizontalHeaderLabels(["Calling AE title", "IP address (optional)"])
        self.peers.horizontalHeader().setSectionResizeMode(QHeaderView.ResizeMode.Stretch)
        self.peers.verticalHeader().setVisible(False)
        self.peers.setToolTip("The PACS that may push studies: the AE title it calls from and, optionally, its IP "
                              "address or network (e.g. 192.168.1.0/24). Anyone else is rejected.")
        for ae, addr in prefs.peers:
            self.add_peer(ae, addr, edit=False)
        self.add_peer_button = QPushButton("Add sende&r")
        self.remove_peer_button = QPushButton("Remo&ve sender")
        self.accept_any = QCheckBox("Accept any caller (not only the allowed senders)")
        self.accept_any.setToolTip("Any program that can reach the address and port and calls RadLens's AE title "
                                   "may push studies. Off by default.")
        self.accept_any.setChecked(prefs.accept_any)
        self.start_at_launch = QCheckBox("Start the receiver when RadLens starts")
        self.start_at_launch.setToolTip("Off by default: the receiver runs only after File > Receive studies. When "
                                        "on, the status bar says that it started.")
        self.start_at_launch.setChecked(prefs.start_at_launch)
        self.peers_note = QLabel()
        self.peers_note.setWordWrap(True)
        self.add_peer_button.clicked.connect(lambda: self.add_peer())
        self.remove_peer_button.clicked.connect(self.remove_peer)
        self.accept_any.toggled.connect(self._peers_changed)
        self.peers.itemChanged.connect(self._peers_changed)
        self._peers_changed()
        self._layout()

    def _layout(self) -> None:
        rform = QFormLayout()
        rform.addRow("AE title:", self.ae_title)
        rform.addRow("Port:", self.port)
        rform.addRow("Listen on:", self.bind_address)
        rform.addRow("", self.bind_note)
        rform.addRow("", self.accept_any)
        rform.addRow("", self.start_at_launch)
        peers = QVBoxLayout()
        peers.addWidget(QLabel("Allowed senders (only they may push studies):"))
        peers.addWidget(self.peers)
        prow = QHBoxLayout()
        prow.addWidget(self.add_peer_button)
        prow.addWidget(self.remove_peer_button)
        prow.addStretch(1)
        peers.addLayout(prow)
        peers.addWidget(self.peers_note)
        rrow = QHBoxLayout(self)
        rrow.addLayout(rform, 1)
        rrow.addLayout(peers, 1)

    def add_peer(self, ae_title: str = "", address: str = "", edit: bool = True) -> None:
        row = self.peers.rowCount()
        self.peers.insertRow(row)
        self.peers.setItem(row, 0, QTableWidgetItem(ae_title))
        self.peers.setItem(row, 1, QTableWidgetItem(address))
        if edit:
            self.peers.setCurrentCell(row, 0)
            self.peers.editItem(self.peers.item(row, 0))

    def remove_peer(self) -> None:
        row = self.peers.currentRow()
        if 0 <= row < self.peers.rowCount():
            self.peers.removeRow(row)
            self._peers_changed()

    def peer_rows(self) -> list[tuple[str, str]]:
        """The allowed senders as typed: (AE title, address), empty rows left out."""
        rows = []
        for r in range(self.peers.rowCount()):
            ae, addr = (self.peers.item(r, c) for c in (0, 1))
            pair = ((ae.text() if ae else "").strip(), (addr.text() if addr else "").strip())
            if any(pair):
                rows.append(pair)
        return rows

    def _peers_changed(self, *_: object) -> None:
        n = len(self.peer_rows())
        if self.accept_any.isChecked():
            text = "Any caller may push studies: the list above is not used while 'Accept any caller' is on."
        elif n:
            text = f"Only {'this sender' if n == 1 else f'these {n} senders'} may push studies; anyone else is rejected."
        else:
            text = ("No sender is allowed yet: add the PACS's AE title (and its IP address) before turning the "
                    "receiver on.")
        self.peers_note.setText(text)

    def save(self) -> bool:
        """Check and store the settings (an error dialog and False when one is wrong)."""
        peers = self.peer_rows()
        problem = receiver_problem(self.ae_title.text(), self.port.value(), peers)
        host = self.bind_address.currentText().strip()
        if not problem and host != self.prefs.bind_address:  # a new address: can this computer listen on it?
            from engine.pacs.receiver import ReceiverError, check_bind_address

            try:
                host = check_bind_address(host)
            except ReceiverError as e:
                problem = str(e)
        if problem:
            self.dialogs.error("Receiver settings not saved", problem)
            return False
        self.prefs.ae_title = self.ae_title.text()
        self.prefs.port = self.port.value()
        self.prefs.bind_address = host
        self.prefs.peers = peers
        self.prefs.accept_any = self.accept_any.isChecked()
        self.prefs.start_at_launch = self.start_at_launch.isChecked()
        self.prefs.receiver_saved()
        return True
