"""The batch's work in its own process: ``engine.batch.analyze_folder`` run there, its rows
streamed back over a pipe.

In a thread of the viewer's process, the batch's Python steps (preparing each chunk,
concluding each row) hold the GIL for tens of milliseconds at a time and the window
stutters. In a spawned process they cannot: the viewer only receives small messages and
adds rows to the table. This module is what the child runs; it imports no Qt.

Messages, child to viewer (tuples, so nothing Qt-side has to be importable here):

- ``("started", total, provider, provider_note)``: the model is loaded and the folder listed;
- ``("rows", [BatchRow, ...], done, elapsed_s)``: at most every ``EMIT_INTERVAL`` seconds;
- ``("end", done, total, cancelled, elapsed_s, error)``: the last message, always sent
  unless the process itself dies (the viewer treats a closed pipe as an error).
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from multiprocessing.connection import Connection
from typing import Any, Protocol

EMIT_INTERVAL = 0.1  # seconds: rows reach the viewer in chunks, at most ten times a second
CHILD_NICE = 10  # the viewer's GUI thread gets a core at once when it needs one


class EventLike(Protocol):
    def is_set(self) -> bool: ...


@dataclass(frozen=True)
class BatchSpec:
    """What the child needs to rebuild the viewer's classifier and run the batch."""

    folder: str
    model_path: str
    device: str  # "cpu" or "cuda": where the viewer's classifier actually runs
    sha256: str  # the viewer's model: the child refuses a file that changed since
    batch_size: int = 16


def error_text(e: BaseException) -> str:
    """A user-facing message (as ``desktop.workers.describe_error``, without Qt)."""
    from engine import RadLensError

    if isinstance(e, RadLensError):
        return str(e)
    first = (str(e).splitlines() or [""])[0][:300]
    return f"unexpected error in the batch process ({type(e).__name__}: {first}). Please report it."


def _lower_priority() -> None:
    import signal

    try:
        signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl+C in a terminal is for the viewer, which cancels
        os.nice(CHILD_NICE)
    except (AttributeError, OSError, ValueError):  # not on this OS, or refused: still a separate GIL
        pass


def run_batch(conn: Connection, cancel: EventLike, spec: BatchSpec) -> None:
    """The child process's entry point (spawned by ``desktop.batch.batch_process``)."""
    _lower_priority()
    import warnings

    warnings.filterwarnings("ignore", category=UserWarning, module="pydicom")
    done = total = 0
    t0 = time.perf_counter()

    def send(*msg: Any) -> None:
        conn.send(msg)

    try:
        from engine import Classifier, ModelError
        from engine.ai.jobs import lane_threads
        from engine.batch import analyze_folder

        clf = Classifier(spec.model_path, device=spec.device, threads=lane_threads())  # chunks side by side
        if clf.sha256 != spec.sha256:
            raise ModelError(f"the model file {spec.model_path} changed on disk since the viewer loaded it. "
                             "Load the model again (File > Load model…), then start the batch again.")
        job = analyze_folder(spec.folder, clf, batch_size=spec.batch_size, cancel=cancel.is_set)
        total = job.total
        send("started", total, clf.provider, clf.provider_note)
        t0 = time.perf_counter()
        chunk: list = []
        last = t0
        for row in job:
            chunk.append(row)
            done = row.done
            now = time.perf_counter()
            if now - last >= EMIT_INTERVAL:
                send("rows", chunk, done, now - t0)
                chunk, last = [], now
        send("rows", chunk, done, time.perf_counter() - t0)
        send("end", done, total, cancel.is_set() and done < total, time.perf_counter() - t0, "")
    except (BrokenPipeError, EOFError):  # the viewer went away: nothing to tell
        return
    except BaseException as e:  # noqa: BLE001 - errors are values for the viewer
        try:
            send("end", done, total, cancel.is_set(), time.perf_counter() - t0, error_text(e))
        except (BrokenPipeError, EOFError, OSError):
            return
    finally:
        conn.close()
