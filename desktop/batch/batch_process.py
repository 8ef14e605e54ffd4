"""The viewer's side of a batch run in its own process (``desktop.core.batch_child``).

``BatchWorker`` lives in a QThread of the viewer: it spawns the child, then waits on the
pipe (the wait releases the GIL) and turns each message into a queued signal, so the GUI
thread only adds a chunk of rows to the table ten times a second. Cancel is a
multiprocessing Event the child checks between rows. If the child dies, the rows so far
are kept and the end says what happened.
"""

from __future__ import annotations

import logging
import multiprocessing
import time
from dataclasses import dataclass

from PySide6.QtCore import QObject, Signal, Slot

from engine import Classifier

from ..core.batch_child import BatchSpec, run_batch

log = logging.getLogger(__name__)
JOIN_S = 5.0  # how long to wait for the child to exit once it has said "end"


@dataclass(frozen=True)
class BatchEnd:
    done: int
    total: int
    cancelled: bool
    seconds: float
    error: str = ""  # the batch could not run at all (folder missing, empty, ...)


def spec_for(folder: str, classifier: Classifier, batch_size: int) -> BatchSpec:
    """The child rebuilds the viewer's model on the device it actually runs on."""
    device = "cuda" if classifier.provider == "CUDAExecutionProvider" else "cpu"
    return BatchSpec(folder, str(classifier.path), device, classifier.sha256, batch_size)


class BatchWorker(QObject):
    rows = Signal(object)  # list[BatchRow]
    progress = Signal(int, int, float)  # done, total, elapsed seconds
    finished = Signal(object)  # BatchEnd

    def __init__(self, folder: str, classifier: Classifier, batch_size: int = 16) -> None:
        super().__init__()
        self.folder = folder
        self.spec = spec_for(folder, classifier, batch_size)
        self._ctx = multiprocessing.get_context("spawn")
        self.cancel = self._ctx.Event()  # set from the GUI thread; the child checks it between rows
        self.process: multiprocessing.process.BaseProcess | None = None

    @Slot()
    def run(self) -> None:
        t0 = time.perf_counter()
        done = total = 0
        receiver, sender = self._ctx.Pipe(duplex=False)
        try:
            proc = self._ctx.Process(target=run_batch, args=(sender, self.cancel, self.spec), name="radlens-batch",
                                     daemon=True)
            proc.start()
        except (OSError, ValueError, RuntimeError) as e:
            self.finished.emit(BatchEnd(0, 0, False, 0.0, f"the batch process could not start ({e})."))
            return
        self.process = proc
        sender.close()  # only the child writes: a closed pipe then means the child is gone
        end: BatchEnd | None = None
        try:
            while end is None:
                try:
                    msg = receiver.recv()
                except (EOFError, OSError):
                    proc.join(JOIN_S)
                    end = BatchEnd(done, total, False, time.perf_counter() - t0,
                                   f"the batch process stopped unexpectedly (exit code {proc.exitcode}). "
                                   "The rows so far are kept; try again, or analyse the folder with radlens-batch.")
                    break
                kind = msg[0]
                if kind == "started":
                    total = msg[1]
                    self.progress.emit(0, total, 0.0)
                elif kind == "rows":
                    _, chunk, done, elapsed = msg
                    if chunk:
                        self.rows.emit(chunk)
                    self.progress.emit(done, total, elapsed)
                elif kind == "end":
                    _, done, total, cancelled, seconds, error = msg
                    end = BatchEnd(done, total, cancelled, seconds, error)
        finally:
            receiver.close()
        proc.join(JOIN_S)
        if proc.is_alive():
            log.warning("the batch process did not exit; terminating it")
            proc.terminate()
        self.finished.emit(end)
