"""The study: which files the browser lists (from a folder, a drop or the command line)
and their background thumbnails and predictions."""

from __future__ import annotations

import os
import threading

import numpy as np
from PySide6.QtCore import QObject, Signal
from PySide6.QtWidgets import QDockWidget, QWidget

from engine import Classifier
from engine.batch import FolderError, list_images
from engine.io.fileio import looks_like_image

from .study_browser import StudyBrowser
from .workers import AnalysisService, StudyItem

MAX_STUDY_FILES = 2000  # the browser lists at most this many; batch analysis has no limit


def expand(paths: list[str], limit: int = MAX_STUDY_FILES) -> tuple[list[str], str]:
    """Files to list for ``paths``: folders are searched recursively (image-like files
    only); files given one by one are always kept. Returns (files, message)."""
    out: list[str] = []
    notes: list[str] = []
    for p in paths:
        if os.path.isdir(p):
            try:
                found = [str(f) for f in list_images(p) if looks_like_image(f)]
            except FolderError as e:
                notes.append(str(e))
                continue
            if not found:
                notes.append(f"no PNG, JPEG or DICOM files in {p}.")
            out.extend(found)
        else:
            out.append(p)
    seen: set[str] = set()
    unique = [p for p in out if not (os.path.abspath(p) in seen or seen.add(os.path.abspath(p)))]
    if len(unique) > limit:
        notes.append(f"the study browser lists the first {limit:,} of {len(unique):,} files; "
                     "use File > Analyse folder for all of them.")
        unique = unique[:limit]
    return unique, " ".join(notes)


class StudyController(QObject):
    fileActivated = Signal(str)
    listed = Signal(int, list, str)  # generation, files, message (from list_async's thread)
    listedStudy = Signal(str)  # a listing that is still current became the study: its first file ("" if none)

    def __init__(self, service: AnalysisService, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.service = service
        self.classifier: Classifier | None = None
        self.browser = StudyBrowser()
        self.dock = QDockWidget("Study", parent)
        self.dock.setWidget(self.browser)
        self.last_message = ""
        self.generation = 0
        self.done: set[str] = set()  # analysed by the viewer already: the study worker skips them
        self.browser.fileActivated.connect(self.fileActivated)
        self.listed.connect(self._on_listed)
        service.studyItem.connect(self._on_item)

    def list_async(self, paths: list[str]) -> None:
        """Expand ``paths`` off the GUI thread (a folder tree on a network share can take
        seconds); ``listedStudy`` gives the first file once the study is set. A newer
        call (or ``set_files``) makes an older listing stale: it is dropped."""
        self.generation += 1
        gen = self.generation

        def run() -> None:
            try:
                files, message = expand(paths)
            except Exception as e:  # noqa: BLE001 - reported in the status bar, never raised in a thread
                files, message = [], f"could not list {', '.join(paths)}: {e}"
            try:
                self.listed.emit(gen, files, message)
            except RuntimeError:  # the window was closed while listing
                pass

        threading.Thread(target=run, name="radlens-list", daemon=True).start()

    def _on_listed(self, generation: int, files: list, message: str) -> None:
        if generation == self.generation:  # else something else was opened since
            self.listedStudy.emit(self.set_files(files, message))

    def set_study(self, paths: list[str]) -> str:
        """List ``paths`` (folders expanded, on this thread); returns the first file ("" if none)."""
        files, message = expand(paths)
        return self.set_files(files, message)

    def set_files(self, files: list[str], message: str, current: str = "") -> str:
        """Make ``files`` the study; returns the file the viewer opens: ``current`` if it is
        one of them, else the first ("" if none)."""
        self.generation += 1  # a listing still running for an older request is now stale
        self.last_message = message
        if self.last_message:
            self.browser.summary.setToolTip(self.last_message)
        if not files:
            return ""
        self.browser.set_paths(files)
        first = current if current and self.browser.row_of(current) >= 0 else files[0]
        self.done = {os.path.abspath(first)}  # the viewer opens it right away
        self._process()
        return first

    def open_batch_row(self, path: str, batch_files: list[str], folder: str) -> str:
        """A batch result row was clicked: the image opens in its own study, the batch's
        files (never added to an unrelated open study). Returns the file to open."""
        if self.browser.row_of(path) >= 0 and {os.path.abspath(p) for p in self.browser.paths()} <= \
                {os.path.abspath(p) for p in batch_files}:
            return path  # the study is already this batch's: just move to the image
        files = list(batch_files) or [path]
        if path not in files:
            files.append(path)
        note = ""
        if len(files) > MAX_STUDY_FILES:  # a window of the batch around the clicked row
            i = files.index(path)
            lo = max(0, min(i - MAX_STUDY_FILES // 2, len(files) - MAX_STUDY_FILES))
            note = (f"the study browser lists {MAX_STUDY_FILES:,} of the batch's {len(files):,} files "
                    f"(those around {os.path.basename(path)}).")
            files = files[lo:lo + MAX_STUDY_FILES]
        self.last_message = note or f"Study: the batch of {folder} ({len(files)} files)."
        return self.set_files(files, note, current=path)

    def add(self, path: str) -> None:
        if self.browser.row_of(path) < 0:
            self.browser.add_path(path)
            self._process()

    def restart(self, classifier: Classifier | None) -> None:
        """A new model: everything is pending again."""
        self.classifier = classifier
        current = self.browser.current_path()
        self.done = {os.path.abspath(current)} if current else set()
        keep = os.path.abspath(current) if current else None
        self.browser.set_pending([row for row, p in enumerate(self.browser.paths()) if os.path.abspath(p) != keep])
        self._process()

    def _process(self) -> None:
        paths = self.browser.paths()
        todo = tuple(i for i in range(len(paths)) if self.browser.status(i) == "pending")
        self.service.study(paths, self.classifier, todo, skip=self.done)

    def _on_item(self, item: StudyItem) -> None:
        row = self.browser.row_of(item.path)
        if row < 0 or os.path.abspath(item.path) in self.done:
            return
        reason = (item.scope_reason or "out of scope") if item.out_of_scope else ""
        self.browser.set_status(row, item.status, item.label, item.prob, item.message, item.thumb, scope_reason=reason)

    # -- the viewer's own results ---------------------------------------------------------
    def image_loaded(self, path: str, thumb: np.ndarray, analysed: bool) -> None:
        row = self.browser.row_of(path)
        if row >= 0:
            self.browser.set_thumbnail(row, thumb)
            if not analysed:
                self.done.add(os.path.abspath(path))
                self.browser.set_status(row, "loaded")

    def analysed(self, path: str, label: str, prob: float, scope_reason: str = "") -> None:
        """The viewer's result; ``scope_reason``: why the image is out of scope ("" in scope)."""
        self.done.add(os.path.abspath(path))
        row = self.browser.row_of(path)
        if row >= 0:
            self.browser.set_status(row, "analysed", label, prob, scope_reason=scope_reason)

    def failed(self, path: str, message: str) -> None:
        self.done.add(os.path.abspath(path))
        row = self.browser.row_of(path)
        if row >= 0:
            self.browser.set_status(row, "error", message=message)

    def shutdown(self) -> None:
        self.service.study([], None)
