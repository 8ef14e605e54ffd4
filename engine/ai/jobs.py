"""What every caller that runs the per-image job over many files shares: the batch generator
(``engine.batch``), a Dask worker's chunk and site adaptation (``engine.adapt.site``).

A bad file never ends a run, whatever its decoder raises (a Rust panic from a pylibjpeg plugin
is a BaseException): ``error_text`` is that file's message and ``is_fatal`` names the few
exceptions that do end the run. ``Cancel`` is how a caller stops a run (a ``threading.Event``
or any callable returning True); ``default_workers`` is the number of decoding threads, and
``default_lanes``/``lane_threads``/``lanes_for`` share the cores out between the chunks a local batch
analyses at once and onnxruntime's threads within each.
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


MAX_LANES = 4  # chunks in flight at once bound the decoded images held: (lanes + 1) x batch size


def default_lanes() -> int:
    """Chunks a local batch analyses at once: one per core, at most ``MAX_LANES``."""
    return max(1, min(MAX_LANES, os.cpu_count() or 1))


def lane_threads(lanes: int | None = None) -> int:
    """onnxruntime threads per model run when ``lanes`` chunks run at once: the cores shared out,
    at least one. On 2 cores: 2 lanes of 1 thread. Two single-threaded runs side by side beat one
    run on two threads for these small networks (bench/bench_batch.py: 1.5x), and a lane's Python
    steps (lung post-processing, ``prepare``) then run while the other lane's network runs."""
    return max(1, (os.cpu_count() or 1) // (lanes or default_lanes()))


def lanes_for(classifier: object) -> int:
    """How many chunks to analyse at once with this classifier: on the CPU, as many as its
    onnxruntime threads leave cores for (a classifier on every core gets one lane, as before);
    on a GPU, ``default_lanes`` so that the CPU steps of one chunk overlap the GPU run of another."""
    cores = os.cpu_count() or 1
    if getattr(classifier, "provider", "CPUExecutionProvider") != "CPUExecutionProvider":
        return default_lanes()
    threads = getattr(classifier, "threads", 0) or cores
    return max(1, min(MAX_LANES, cores // threads))
