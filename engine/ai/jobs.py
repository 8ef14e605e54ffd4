"""What every caller that runs the per-image job over many files shares: the batch generator
(``engine.batch``), a Dask worker's chunk and site adaptation (``engine.adapt.site``).

A bad file never ends a run, whatever its decoder raises (a Rust panic from a pylibjpeg plugin
is a BaseException): ``error_text`` is that file's message and ``is_fatal`` names the few
exceptions that do end the run. ``Cancel`` is how a caller stops a run (a ``threading.Event``
or any callable returning True); ``default_workers`` is the number of decoding threads.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from pathlib import Path

from ..errors import RadLensError
from ..io.fileio import printable

Cancel = threading.Event | Callable[[], bool] | None


def error_text(exc: BaseException, path: Path | None = None) -> str:
    """The message for a file the job could not analyse (a typed engine error says it all)."""
    if isinstance(exc, RadLensError):
        return printable(str(exc))
    name = f"{path.name}: " if path is not None else ""
    first = (str(exc).splitlines() or [""])[0][:300]
    return printable(f"{name}unexpected error ({type(exc).__name__}: {first}). The file was skipped; "
                     "please report it with this message.")


def is_fatal(exc: BaseException) -> bool:
    """Exceptions that must end the run: the user's Ctrl+C and an interpreter exit.
    Everything else raised for one file (a decoder's Rust panic is a BaseException,
    MemoryError included) becomes that file's error."""
    return isinstance(exc, (KeyboardInterrupt, SystemExit, GeneratorExit))


def is_cancelled(cancel: Cancel) -> bool:
    if cancel is None:
        return False
    if isinstance(cancel, threading.Event):
        return cancel.is_set()
    return bool(cancel())


def default_workers() -> int:
    """Decoding threads: one per core, at least one, at most four."""
    return max(1, min(4, os.cpu_count() or 1))
