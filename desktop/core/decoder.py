"""Image decoding off the GUI process's GIL.

The pylibjpeg decoders (JPEG 2000, JPEG-LS, JPEG) hold Python's GIL for the whole decode:
about 150 ms for a 2k x 2k chest radiograph on this machine. In a worker *thread* that
freezes the GUI thread just as long. So DICOM files are decoded in a small process pool
(spawned on first use, shared by the viewer's workers); PNG and JPEG stay in the
calling thread because OpenCV releases the GIL while it decodes. If the pool cannot be
used (no multiprocessing in this environment, a crashed child) decoding falls back to
the calling thread: slower to feel, never wrong.
"""

from __future__ import annotations

import atexit
import logging
import multiprocessing
import os
import threading
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool

from engine import CorruptImageError, LoadedImage, load_image
from engine.io import sniff_format

log = logging.getLogger(__name__)
WORKERS = 2


def _watch_parent(parent: int) -> None:
    """In a decoding process: exit when the app is gone, even if it was killed (a pool's
    workers keep each other's pipes open, so they would never see the parent leave)."""
    import time

    def watch() -> None:
        while True:
            time.sleep(1.0)
            if os.getppid() != parent:
                os._exit(0)

    threading.Thread(target=watch, name="radlens-parent-watch", daemon=True).start()


def _quiet() -> None:
    import warnings

    warnings.filterwarnings("ignore", category=UserWarning, module="pydicom")  # odd tags: not the user's problem


def _warm() -> int:
    _quiet()
    import engine.dicom  # noqa: F401 - import pydicom and the decoders once, ahead of the first file

    return os.getpid()


def _load(path: str) -> LoadedImage:
    _quiet()
    return load_image(path)


class Decoder:
    def __init__(self, workers: int = WORKERS, use_processes: bool = True) -> None:
        self.workers = workers
        self.use_processes = use_processes and os.environ.get("RADLENS_DECODE_IN_THREAD", "") != "1"
        self._pool: ProcessPoolExecutor | None = None
        self._lock = threading.Lock()
        self._worked = False  # the pool has returned at least one result

    def _get_pool(self) -> ProcessPoolExecutor | None:
        with self._lock:
            if self._pool is None and self.use_processes:
                try:
                    self._pool = ProcessPoolExecutor(self.workers, mp_context=multiprocessing.get_context("spawn"),
                                                     initializer=_watch_parent, initargs=(os.getpid(),))
                except (OSError, ValueError, NotImplementedError) as e:
                    log.warning("no process pool for decoding (%s); decoding in threads", e)
                    self.use_processes = False
            return self._pool

    def warm(self) -> None:
        """Start the pool in the background (call once the window is up)."""
        pool = self._get_pool()
        if pool is not None:
            for _ in range(self.workers):
                pool.submit(_warm)

    def load(self, path: str) -> LoadedImage:
        """``engine.load_image(path)``; DICOM decoded in a child process."""
        try:
            with open(path, "rb") as f:
                kind = sniff_format(f.read(132))
        except OSError:
            kind = None  # let load_image raise its own, user-facing error
        pool = self._get_pool() if kind in ("dicom", "dicom-raw") else None
        if pool is None:
            return load_image(path)
        try:
            image = pool.submit(_load, path).result()
        except BrokenProcessPool:
            with self._lock:
                if self._pool is pool:
                    self._pool = None
            if not self._worked:  # the pool never worked here: an environment problem
                log.warning("decoding processes cannot start; decoding in threads from now on")
                self.use_processes = False
                return load_image(path)
            log.error("the decoding process died on %s", path)
            raise CorruptImageError(
                f"{os.path.basename(path)}: the image decoder crashed on this file; it is probably damaged. "
                "Re-export it, or convert it to an uncompressed transfer syntax.") from None
        self._worked = True
        return image

    def shutdown(self) -> None:
        with self._lock:
            pool, self._pool = self._pool, None
        if pool is not None:
            pool.shutdown(wait=False, cancel_futures=True)


_shared: Decoder | None = None


def shared_decoder() -> Decoder:
    """One decoding pool per process, shared by every window and worker."""
    global _shared
    if _shared is None:
        _shared = Decoder()
        atexit.register(_shared.shutdown)
    return _shared
