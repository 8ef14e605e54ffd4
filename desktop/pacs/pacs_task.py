"""One PACS job (search, series list, retrieve, store, test) off the GUI thread. The job
is a plain function ``fn(progress, cancel)`` (Orange3's habit): it reports progress with
``progress(done, total)`` and checks ``cancel`` (a threading.Event); the thread only runs
it and hands back its result, or a message, by queued signals."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

from PySide6.QtCore import QObject, QThread, Signal

from engine import RadLensError

log = logging.getLogger(__name__)

Progress = Callable[[int, int | None], None]  # done, total (None: not known)
Job = Callable[[Progress, threading.Event], object]


def error_text(e: BaseException) -> str:
    """What the user is told about a failed job: the engine's own message for the errors
    it names (PacsError is a RadLensError), else a bug report hint."""
    if isinstance(e, (RadLensError, OSError)):
        return str(e)
    log.error("unexpected error in a PACS job", exc_info=e)
    return f"unexpected error ({type(e).__name__}: {e}). Details are in the log file; please report it."


class TaskThread(QThread):
    """Runs one job; ``succeeded(result)`` or ``failed(message, kind)`` arrive on the GUI thread."""

    progressed = Signal(int, object)  # done, total or None
    succeeded = Signal(object)
    failed = Signal(str, str)

    def __init__(self, job: Job, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.job = job
        self.cancel = threading.Event()
        self.abandon = threading.Event()  # set by Tasks.shutdown: stop waiting for the job
        self.error: BaseException | None = None

    def run(self) -> None:  # the worker thread
        # The job runs in a daemon thread this one waits for: a request blocked on a server (up to
        # its timeout) cannot be interrupted, and Qt aborts the process when a QThread still runs
        # as the application quits. On shutdown this thread stops waiting; the daemon ends with the process.
        results: list[object] = []
        errors: list[BaseException] = []

        def progress(done: int, total: int | None) -> None:
            if not self.abandon.is_set():
                self.progressed.emit(done, total)

        def work() -> None:
            try:
                results.append(self.job(progress, self.cancel))
            except BaseException as e:  # noqa: BLE001 - every failure becomes a message, never a dead thread
                errors.append(e)

        worker = threading.Thread(target=work, name="radlens-pacs-job", daemon=True)
        worker.start()
        while worker.is_alive() and not self.abandon.is_set():
            worker.join(0.05)
        if worker.is_alive():
            return
        if errors:
            self.error = errors[0]
            self.failed.emit(error_text(errors[0]), str(getattr(errors[0], "kind", "")))
            return
        self.succeeded.emit(results[0] if results else None)


class Tasks(QObject):
    """The jobs a screen started; keeps each thread alive until it finished and stops
    them all on ``shutdown``. ``idle`` is emitted when the last running job has ended."""

    idle = Signal()

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.running: list[TaskThread] = []

    def start(self, job: Job, on_done: Callable[[object], None], on_failed: Callable[[str, str], None],
              on_progress: Progress | None = None) -> TaskThread:
        t = TaskThread(job, self)
        t.succeeded.connect(on_done)
        t.failed.connect(on_failed)
        if on_progress is not None:
            t.progressed.connect(on_progress)
        t.finished.connect(lambda: self._drop(t))
        self.running.append(t)
        t.start()
        return t

    def _drop(self, t: TaskThread) -> None:
        if t in self.running:
            self.running.remove(t)
        t.deleteLater()
        if not self.running:
            self.idle.emit()

    def cancel_all(self) -> None:
        for t in self.running:
            t.cancel.set()

    def busy(self) -> bool:
        return any(t.isRunning() for t in self.running)

    def shutdown(self, wait_ms: int = 5000) -> None:
        """Cancel every job and wait for its thread (when the application quits)."""
        self.cancel_all()
        for t in list(self.running):
            if not t.wait(wait_ms):
                log.warning("a PACS job did not stop within %d ms; it is left to end with the process", wait_ms)
                t.abandon.set()
                t.wait(1000)


def delete_when_idle(obj: QObject, tasks: Tasks) -> None:
    """Delete a closed screen now, or once its last job has ended (a request that is still
    waiting on a server cannot be interrupted; its thread must not be destroyed while it runs)."""
    tasks.cancel_all()
    if tasks.busy():
        tasks.idle.connect(obj.deleteLater)
    else:
        obj.deleteLater()
