"""Send results to PACS: the SR and the Secondary Capture of analysed DICOM images, stored
(STOW-RS) on a server after a confirmation that names it. Building the objects and sending
them run off the GUI thread; only the question and the answer are on it.

``send_results(parent, server, items)`` serves the current image (File > Send results to
PACS…) and a finished batch (``batch_items`` makes the items from its rows)."""

from __future__ import annotations

import os
import shutil
import tempfile
import threading
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from pydicom.dataset import Dataset
from pydicom.uid import UID
from PySide6.QtCore import QObject, Signal
from PySide6.QtWidgets import QMainWindow, QWidget

from engine import Classifier, Prediction, RadLensError, classify, load_image
from engine.pacs.servers import ServerConfig

from ..core import pacs_secrets as secrets
from ..core.pacs_text import confirm_send_text, send_outcome_text
from ..dialogs import Dialogs
from .pacs_settings import ask_secret
from .pacs_task import Progress, Tasks


@dataclass(frozen=True)
class SendItem:
    """One analysed image: its prediction when the viewer has it (the current image), else
    it is analysed again from ``path`` (a batch row keeps no pixels)."""

    path: str
    classifier: Classifier
    prediction: Prediction | None = None


@dataclass(frozen=True)
class Built:
    files: tuple[str, ...]  # the objects, written to a folder: a batch's captures need not fit in memory
    kinds: tuple[str, ...]  # "SR", "SC", ... of each file, for the confirmation
    sources: tuple[str, ...]  # file names of the images the objects are for
    skipped: tuple[str, ...]  # "name: why" for images that give no objects


def object_kind(ds: Dataset) -> str:
    """'SR', 'SC' or the object's modality, for the confirmation."""
    if str(ds.get("Modality", "")) == "SR":
        return "SR"
    name = UID(str(ds.get("SOPClassUID", ""))).name
    return "SC" if "Secondary Capture" in name else str(ds.get("Modality", "") or "object")


def build_objects(items: Sequence[SendItem], progress: Progress, cancel: threading.Event, folder: str) -> Built:
    """The SR and SC of each item (engine.results.dicom_results), written to ``folder`` as they are made;
    an item that cannot give them (not DICOM, header lacking, unreadable, disk full) is listed in
    ``skipped`` with the reason."""
    from engine.results.dicom_results import results_for, write_results

    files: list[str] = []
    kinds: list[str] = []
    sources: list[str] = []
    skipped: list[str] = []
    for i, item in enumerate(items):
        if cancel.is_set():
            break
        name = os.path.basename(item.path)
        try:
            pred = item.prediction or classify(load_image(item.path), item.classifier)
            objects = results_for(pred.image, pred, item.classifier)
            files += [str(p) for p in write_results(objects, Path(folder))]
            kinds += [object_kind(d) for d in objects]
            sources.append(name)
        except RadLensError as e:
            skipped.append(str(e) if str(e).startswith(name) else f"{name}: {e}")
        progress(i + 1, len(items))
    return Built(tuple(files), tuple(kinds), tuple(sources), tuple(skipped))


def batch_items(paths: Iterable[str], classifier: Classifier) -> list[SendItem]:
    """Items for a finished batch: the analysed files' paths (rows with status "ok")."""
    return [SendItem(p, classifier) for p in paths]


class SendJob(QObject):
    """Build -> confirm -> store -> report. ``finished(sent, message)`` ends it either way."""

    finished = Signal(bool, str)

    def __init__(self, parent: QWidget, server: ServerConfig, items: Sequence[SendItem], dialogs: Dialogs) -> None:
        super().__init__(parent)
        self.parent_widget, self.server, self.items, self.dialogs = parent, server, list(items), dialogs
        self.tasks = Tasks(self)
        self.built: Built | None = None
        self.folder = ""  # the built objects wait here until they are sent; removed at the end

    def start(self) -> None:
        self._status(f"Preparing the results of {len(self.items)} image(s) for {self.server.name}…")
        self.folder = tempfile.mkdtemp(prefix="radlens-send-")
        self.tasks.start(lambda p, c: build_objects(self.items, p, c, self.folder), self._confirm,
                         lambda msg, kind: self._end(False, f"The results could not be prepared: {msg}"))

    def _confirm(self, built: Built) -> None:
        self.built = built
        skipped = ("\n\nNot sent (no DICOM results for these):\n" + "\n".join(built.skipped[:10])
                   + ("\n…" if len(built.skipped) > 10 else "")) if built.skipped else ""
        if not built.files:
            self._end(False, "Nothing to send." + skipped)
            return
        text = confirm_send_text(list(built.kinds), built.sources, self.server.name,
                                 self.server.url) + skipped
        if not self.dialogs.confirm("Send results to PACS?", text, "Send"):
            self._end(False, "", quiet=True)
            return
        secret = secrets.secret_for(self.server, lambda s: ask_secret(self.dialogs, s))
        if secret is None:
            self._end(False, "", quiet=True)
            return
        self._status(f"Sending {len(built.files)} object(s) to {self.server.name}…")
        server, files = self.server, list(built.files)

        def job(progress: Progress, cancel: threading.Event) -> object:
            from engine.pacs.dicomweb import PacsClient

            return PacsClient(server, secret).store_files(files)

        self.tasks.start(job, self._stored, self._store_failed)

    def _stored(self, r: object) -> None:
        def count(v: object) -> int:
            return v if isinstance(v, int) else len(v or ())  # type: ignore[arg-type]

        stored, failed = count(getattr(r, "stored", 0)), count(getattr(r, "failed", 0))
        text = send_outcome_text(stored, failed, self.server.name, str(getattr(r, "message", "") or ""))
        self._end(failed == 0 and stored > 0, text)

    def _store_failed(self, message: str, kind: str) -> None:
        if kind in ("unauthorized", "forbidden"):
            secrets.forget(self.server)
        self._end(False, f"Nothing was confirmed as stored on {self.server.name}: {message}")

    def _status(self, text: str) -> None:
        w = self.parent_widget
        if isinstance(w, QMainWindow):
            w.statusBar().showMessage(text, 15000)

    def _end(self, ok: bool, message: str, quiet: bool = False) -> None:
        if self.folder:
            shutil.rmtree(self.folder, ignore_errors=True)
        if not quiet:
            self._status(message.split("\n")[0])
            if ok:
                self.dialogs.info("Results sent", message)
            else:
                self.dialogs.error("Results not sent", message)
        else:
            self._status("Nothing sent.")
        self.finished.emit(ok, message)

    def shutdown(self) -> None:
        self.tasks.shutdown()
        if self.folder:  # the objects hold patient data: never left behind in the temp folder
            shutil.rmtree(self.folder, ignore_errors=True)


def send_results(parent: QWidget, server: ServerConfig, items: Sequence[SendItem],
                 dialogs: Dialogs | None = None) -> SendJob:
    """Build the results of ``items``, ask before sending them to ``server``, send, and say
    how it went (``dialogs``: the parent's when it has them). Returns the running job."""
    dialogs = dialogs or getattr(parent, "dialogs", None) or Dialogs(parent)
    job = SendJob(parent, server, items, dialogs)
    job.finished.connect(lambda *_: (job.shutdown(), job.deleteLater()))  # its thread is returning: wait for it
    job.start()
    return job
