"""File > Open from PACS…: choose a server, search its studies (QIDO-RS) by patient, date
range, modality and accession, expand a study to its series, and retrieve (WADO-RS) the
chosen study or series into the local cache with progress and cancel. Every request runs
off the GUI thread; the window opens the cached folder when the retrieve is complete."""

from __future__ import annotations

import threading

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (
    QAbstractItemView,
    QComboBox,
    QDialog,
    QFormLayout,
    QGridLayout,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QLineEdit,
    QProgressBar,
    QPushButton,
    QTreeWidget,
    QTreeWidgetItem,
    QVBoxLayout,
    QWidget,
)

from engine import DISCLAIMER
from engine.pacs.servers import ServerConfig, ServersFileError
from engine.pacs.summaries import StudySummary

from ..core import pacs_secrets as secrets
from ..core.pacs_files import viewable
from ..core.pacs_text import (
    STUDY_COLUMNS,
    SearchForm,
    retrieve_outcome_text,
    series_row,
    study_label,
    study_row,
)
from ..dialogs import Dialogs
from .pacs_prefs import PacsPrefs
from .pacs_settings import ask_secret
from .pacs_task import Progress, Tasks, TaskThread

SEARCH_LIMIT = 200
UID_ROLE = Qt.ItemDataRole.UserRole
SERIES_ROLE = Qt.ItemDataRole.UserRole + 1


def client_for(server: ServerConfig, secret: str):  # noqa: ANN201 - engine.pacs.dicomweb.PacsClient
    from engine.pacs.dicomweb import PacsClient

    return PacsClient(server, secret)


class OpenFromPacsDialog(QDialog):
    retrieved = Signal(list)  # the retrieved image files to open as the study, originals first
    searched = Signal(int)  # studies listed (-1: the search failed)
    seriesListed = Signal(str)  # study UID whose series are listed
    retrieveEnded = Signal(bool, str)  # complete, the message shown
    retrieveProgress = Signal(int, object)  # images fetched, images expected (None: not known)

    def __init__(self, prefs: PacsPrefs, dialogs: Dialogs, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle("Open from PACS")
        self.resize(1000, 640)
        self.prefs, self.dialogs = prefs, dialogs
        self.tasks = Tasks(self)
        self.retrieving: TaskThread | None = None
        self.studies: dict[str, StudySummary] = {}  # study UID -> its row
        self._total = 0  # images the running retrieve expects (from its progress)
        self._was_cancelled = False
        self._series_uid: str | None = None
        self.listing = 0  # bumped by each search result: older series answers are dropped
        self.server = QComboBox()
        self.fields = {k: QLineEdit() for k in ("patient_id", "patient_name", "date_from", "date_to", "modality",
                                                "accession")}
        self.fields["date_from"].setPlaceholderText("YYYY-MM-DD")
        self.fields["date_to"].setPlaceholderText("YYYY-MM-DD")
        self.fields["modality"].setPlaceholderText("CR, DX, …")
        self.fields["patient_name"].setPlaceholderText("Doe* (wildcards allowed)")
        self.search_button = QPushButton("&Search")
        self.search_button.setDefault(True)
        self.tree = QTreeWidget()
        self.tree.setHeaderLabels(list(STUDY_COLUMNS))
        self.tree.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.tree.setUniformRowHeights(True)
        self.tree.header().setSectionResizeMode(QHeaderView.ResizeMode.ResizeToContents)
        self.tree.header().setStretchLastSection(False)
        self.tree.header().setSectionResizeMode(4, QHeaderView.ResizeMode.Stretch)
        self.status = QLabel("")
        self.status.setWordWrap(True)
        self.progress = QProgressBar()
        self.progress.setVisible(False)
        self.retrieve_button = QPushButton("&Retrieve and open")
        self.retrieve_button.setEnabled(False)
        self.cancel_button = QPushButton("&Cancel retrieve")
        self.cancel_button.setEnabled(False)
        self.close_button = QPushButton("Close")
        self._layout()
        self._fill_servers()
        for f in self.fields.values():
            f.returnPressed.connect(self.search)
        self.search_button.clicked.connect(self.search)
        self.tree.itemExpanded.connect(self._expanded)
        self.tree.itemSelectionChanged.connect(self._selection_changed)
        self.tree.itemDoubleClicked.connect(lambda *_: self.retrieve())
        self.retrieve_button.clicked.connect(self.retrieve)
        self.cancel_button.clicked.connect(self.cancel_retrieve)
        self.close_button.clicked.connect(self.reject)

    def _layout(self) -> None:
        top = QFormLayout()
        top.addRow("Server:", self.server)
        grid = QGridLayout()
        labels = {"patient_id": "Patient ID:", "patient_name": "Patient name:", "date_from": "Study date from:",
                  "date_to": "to:", "modality": "Modality:", "accession": "Accession:"}
        for i, (k, label) in enumerate(labels.items()):
            grid.addWidget(QLabel(label), i // 2, (i % 2) * 2)
            grid.addWidget(self.fields[k], i // 2, (i % 2) * 2 + 1)
        grid.addWidget(self.search_button, 2, 4)
        bottom = QHBoxLayout()
        bottom.addWidget(self.progress, 1)
        bottom.addWidget(self.retrieve_button)
        bottom.addWidget(self.cancel_button)
        bottom.addWidget(self.close_button)
        disclaimer = QLabel(DISCLAIMER)
        disclaimer.setStyleSheet("color: #7a1020; font-weight: bold;")
        main = QVBoxLayout(self)
        main.addLayout(top)
        main.addLayout(grid)
        main.addWidget(self.tree, 1)
        main.addWidget(self.status)
        main.addLayout(bottom)
        main.addWidget(disclaimer)

    def reload_servers(self) -> None:
        """The server list again (after Settings > PACS servers… changed it)."""
        self._fill_servers()

    def _fill_servers(self) -> None:
        try:
            servers = self.prefs.servers()
        except ServersFileError as e:
            servers = []
            self.status.setText(str(e))
        self.servers = servers
        self.server.clear()
        for s in servers:
            self.server.addItem(f"{s.name} ({s.url})", s.name)
        last = self.server.findData(self.prefs.last_server)
        if last >= 0:
            self.server.setCurrentIndex(last)
        if not servers:
            self.status.setText(self.status.text() or "No PACS server yet: add one with Settings > PACS servers….")
        self.search_button.setEnabled(bool(servers))

    def current_server(self) -> ServerConfig | None:
        i = self.server.currentIndex()
        return self.servers[i] if 0 <= i < len(self.servers) else None

    def _secret(self, server: ServerConfig) -> str | None:
        return secrets.secret_for(server, lambda s: ask_secret(self.dialogs, s))

    def _failed(self, server: ServerConfig, kind: str) -> None:
        if kind in ("unauthorized", "forbidden"):
            secrets.forget(server)  # a wrong password or token: ask again next time

    # -- search ----------------------------------------------------------------------------------
    def search(self) -> None:
        server = self.current_server()
        if server is None:
            return
        try:
            criteria = SearchForm(**{k: f.text() for k, f in self.fields.items()}).criteria()
        except ValueError as e:
            self.dialogs.error("Cannot search", str(e))
            return
        secret = self._secret(server)
        if secret is None:
            return
        self.prefs.last_server = server.name
        self.search_button.setEnabled(False)
        self.status.setText(f"Searching {server.name}…")

        def job(progress: Progress, cancel: threading.Event) -> list:
            return list(client_for(server, secret).search_studies(**criteria, limit=SEARCH_LIMIT))

        self.tasks.start(job, lambda found: self._listed(server, found),
                         lambda msg, kind: self._search_failed(server, msg, kind))

    def _listed(self, server: ServerConfig, found: list) -> None:
        self.search_button.setEnabled(True)
        self.listing += 1  # series requests for the rows about to go are now stale
        self.tree.clear()
        self.studies.clear()
        for s in found:
            uid = s.study_uid
            self.studies[uid] = s
            item = QTreeWidgetItem(list(study_row(s)))
            item.setData(0, UID_ROLE, uid)
            item.setChildIndicatorPolicy(QTreeWidgetItem.ChildIndicatorPolicy.ShowIndicator)
            item.setToolTip(0, f"Study UID {uid}")
            self.tree.addTopLevelItem(item)
        more = f" (the first {SEARCH_LIMIT}: narrow the search)" if len(found) >= SEARCH_LIMIT else ""
        self.status.setText(f"{len(found)} stud{'y' if len(found) == 1 else 'ies'} on {server.name}{more}."
                            if found else f"No study on {server.name} matches: widen the search.")
        if found:
            self.tree.setCurrentItem(self.tree.topLevelItem(0))
        self.searched.emit(len(found))

    def _search_failed(self, server: ServerConfig, message: str, kind: str) -> None:
        self._failed(server, kind)
        self.search_button.setEnabled(True)
        self.status.setText(f"Search failed: {message}")
        if self.isVisible():
            self.dialogs.error("Search failed", f"{server.name} ({server.url}): {message}")
        self.searched.emit(-1)

    # -- series ----------------------------------------------------------------------------------
    def _expanded(self, item: QTreeWidgetItem) -> None:
        if item.parent() is not None or item.childCount() or item.data(0, SERIES_ROLE) == "loading":
            return
        server = self.current_server()
        secret = self._secret(server) if server else None
        if server is None or secret is None:
            return
        uid, listing = str(item.data(0, UID_ROLE)), self.listing
        item.setData(0, SERIES_ROLE, "loading")

        def job(progress: Progress, cancel: threading.Event) -> list:
            return list(client_for(server, secret).search_series(uid))

        def failed(msg: str, kind: str) -> None:
            self._failed(server, kind)
            if listing == self.listing:
                item.setData(0, SERIES_ROLE, None)
                self.status.setText(f"Cannot list the series of this study: {msg}")

        self.tasks.start(job, lambda found: self._series(item, uid, found, listing), failed)

    def _series(self, item: QTreeWidgetItem, uid: str, found: list, listing: int) -> None:
        if listing != self.listing:  # a newer search replaced the rows
            return
        item.setData(0, SERIES_ROLE, None)
        for s in found:
            child = QTreeWidgetItem(list(series_row(s)))
            child.setData(0, UID_ROLE, uid)
            child.setData(0, SERIES_ROLE, s.series_uid)
            item.addChild(child)
        if not found:
            item.setChildIndicatorPolicy(QTreeWidgetItem.ChildIndicatorPolicy.DontShowIndicator)
        self.seriesListed.emit(uid)

    # -- retrieve --------------------------------------------------------------------------------
    def _selection_changed(self) -> None:
        self.retrieve_button.setEnabled(self.retrieving is None and bool(self.tree.selectedItems()))

    def selected(self) -> tuple[str, str | None]:
        """(study UID, series UID or None) of the selected row; ("", None) without one."""
        items = self.tree.selectedItems()
        if not items:
            return "", None
        item = items[0]
        series = item.data(0, SERIES_ROLE) if item.parent() is not None else None
        return str(item.data(0, UID_ROLE) or ""), (str(series) if series else None)

    def retrieve(self) -> None:
        server = self.current_server()
        study_uid, series_uid = self.selected()
        if server is None or not study_uid or self.retrieving is not None:
            return
        secret = self._secret(server)
        if secret is None:
            return
        cache = self.prefs.cache_dir
        study = self.studies.get(study_uid)
        label = study_label(study) if study else study_uid
        what = f"series of {label}" if series_uid else label

        def job(progress: Progress, cancel: threading.Event) -> object:
            cache.mkdir(parents=True, exist_ok=True)
            r = client_for(server, secret).retrieve(study_uid, cache, series_uid=series_uid, progress=progress,
                                                    cancel=cancel)
            return r, viewable([str(p) for p in r.paths])

        self._total = 0
        self._series_uid = series_uid
        self.progress.setRange(0, 0)  # busy until the first progress report
        self.progress.setVisible(True)
        self.retrieve_button.setEnabled(False)
        self.cancel_button.setEnabled(True)
        self.search_button.setEnabled(False)
        self.status.setText(f"Retrieving {what} from {server.name} into {cache}…")
        self.retrieving = self.tasks.start(job, lambda r: self._retrieved(server, r),
                                           lambda msg, kind: self._retrieve_failed(server, msg, kind),
                                           self._progress)

    def _progress(self, done: int, total: int | None) -> None:
        self.retrieveProgress.emit(done, total)
        if total:
            self._total = total
            self.progress.setRange(0, total)
            self.progress.setValue(done)
            self.progress.setFormat("%v of %m images")
        else:  # the server did not say how many: count what arrived
            self.progress.setRange(0, 0)
            self.status.setText(f"Retrieving… {done} image{'s' if done != 1 else ''} so far")

    def cancel_retrieve(self) -> None:
        if self.retrieving is not None:
            self.retrieving.cancel.set()
            self.cancel_button.setEnabled(False)
            self.status.setText("Cancelling the retrieve…")

    def _retrieve_done(self) -> None:
        cancelled = self.retrieving is not None and self.retrieving.cancel.is_set()
        self.retrieving = None
        self.progress.setVisible(False)
        self.cancel_button.setEnabled(False)
        self.search_button.setEnabled(bool(self.servers))
        self._selection_changed()
        self._was_cancelled = cancelled

    def _retrieved(self, server: ServerConfig, out: tuple) -> None:
        self._retrieve_done()
        r, (images, others) = out
        paths = [str(p) for p in r.paths]
        if r.complete and images:
            msg = retrieve_outcome_text(len(paths), len(paths), True, False)
            if others:
                msg += f" {others} without an image (a report or other object) stay in the cache, not shown."
            self.status.setText(msg)
            self.retrieveEnded.emit(True, msg)
            self.retrieved.emit(images)
            self.accept()
            return
        if r.complete:
            msg = (f"Retrieved {len(paths)} object(s), but none holds an image to show (reports or other objects "
                   "only). Choose another study or series.")
        else:
            msg = retrieve_outcome_text(len(paths), r.expected or self._total, False, self._was_cancelled, r.message)
        self._report_incomplete(msg)

    def _retrieve_failed(self, server: ServerConfig, message: str, kind: str) -> None:
        t = self.retrieving
        self._retrieve_done()
        self._failed(server, kind)
        result = getattr(t.error, "result", None) if t is not None else None
        n = len(result.paths) if result is not None else 0
        total = (result.expected if result is not None else None) or self._total
        msg = retrieve_outcome_text(n, total, False, kind == "cancelled" or self._was_cancelled, message)
        self._report_incomplete(msg)

    def _report_incomplete(self, msg: str) -> None:
        self.status.setText(msg)
        self.retrieveEnded.emit(False, msg)
        if self.isVisible():  # closed while it ran: the user already walked away
            self.dialogs.error("Study not opened", msg)

    def done(self, result: int) -> None:  # noqa: D102 - closing cancels what is still running, without waiting
        self.tasks.cancel_all()
        super().done(result)
