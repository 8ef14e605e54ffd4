"""Image decoding off the GUI process's GIL.

The pylibjpeg decoders (JPEG 2000, JPEG-LS, JPEG) hold Python's GIL for the whole decode:
about 150 ms for a 2k x 2k chest radiograph on this machine. In a worker *thread* that
freezes the GUI thread just as long. So DICOM files are decoded in a small process pool
(started in the background at launch by ``warm_async``, shared by the viewer's workers);
PNG and JPEG stay in the calling thread because OpenCV releases the GIL while it decodes.
If the pool cannot be used (no multiprocessing in this environment, a crashed child)
decoding falls back to the calling thread: slower to feel, never wrong.

``prefetch(path)`` starts a DICOM decode at once (the file given on the command line is
decoded while the model loads); ``load`` then waits for it instead of decoding again. The
last few decodes are kept (keyed by path, size and modification time), so opening the
same file twice in a row (before and after the model loaded) decodes it once.
"""

from __future__ import annotations

import atexit
import logging
import multiprocessing
import os
import threading
from collections import OrderedDict
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool

from engine import CorruptImageError, LoadedImage, load_image
from engine.io import sniff_format

log = logging.getLogger(__name__)
WORKERS = 2
DECODER_NICE = 5
RECENT = 2  # decodes kept for a second look (a 2k x 2k radiograph: about 32 MB each)


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
    try:
        os.nice(DECODER_NICE)  # the viewer's GUI thread gets a core first
    except (AttributeError, OSError):
        pass


def _quiet() -> None:
    import warnings

    warnings.filterwarnings("ignore", category=UserWarning, module="pydicom")  # odd tags: not the user's problem


def _warm() -> int:
    _quiet()
    import engine.io.dicom  # noqa: F401 - import pydicom and the decoders once, ahead of the first file

    return os.getpid()


def _load(path: str) -> LoadedImage:
    _quiet()
    return load_image(path)


def wants_decoder(paths: list[str]) -> bool:
    """Whether ``paths`` (the command line) hold a DICOM file or a folder (that may hold some)."""
    for p in paths:
        if os.path.isdir(p):
            return True
        try:
            with open(p, "rb") as f:
                if sniff_format(f.read(132)) in ("dicom", "dicom-raw"):
                    return True
        except OSError:
            continue
    return False


class Decoder:
    def __init__(self, workers: int = WORKERS, use_processes: bool = True) -> None:
        self.workers = workers
        self.use_processes = use_processes and os.environ.get("RADLENS_DECODE_IN_THREAD", "") != "1"
        self._pool: ProcessPoolExecutor | None = None
        self._lock = threading.Lock()
        self._worked = False  # the pool has returned at least one result
        self._warming: threading.Thread | None = None
        self._recent: OrderedDict[tuple[str, int, int], Future[LoadedImage]] = OrderedDict()

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

    def warm(self, processes: int | None = None) -> None:
        """Start ``processes`` of the pool's processes (all by default) and import the DICOM
        decoders in them (blocks while they are spawned: call ``warm_async`` from the GUI)."""
        pool = self._get_pool()
        if pool is not None:
            for _ in range(min(self.workers, processes or self.workers)):
                pool.submit(_warm)

    def warm_async(self) -> threading.Thread | None:
        """One decoding process started in a background thread, once: at launch, while the
        app imports Qt on one core, so the first DICOM opened (a double-click) does not wait
        for it. The pool's other process starts when two files are decoded at once."""
        with self._lock:
            if self._warming is not None or not self.use_processes:
                return self._warming
            self._warming = threading.Thread(target=self._warm_quietly, name="radlens-decoder-warm", daemon=True)
        self._warming.start()
        return self._warming

    def _warm_quietly(self) -> None:
        try:
            self.warm(1)
            self._lower_children()
        except Exception as e:  # noqa: BLE001 - no pool now: the first DICOM starts it, or decodes in a thread
            log.warning("could not start the decoding processes in the background: %s", e)

    def _lower_children(self) -> None:
        """The pool's processes yield to the viewer from their start (their own ``nice``
        comes only after their imports): start-up work in the window goes first."""
        pool = self._pool
        for pid in list(getattr(pool, "_processes", None) or ()):
            try:
                os.setpriority(os.PRIO_PROCESS, pid, DECODER_NICE)
            except (AttributeError, OSError):
                pass

    def prefetch(self, path: str) -> None:
        """Start decoding ``path`` now if it is a DICOM (in a short-lived thread: spawning a
        pool process must not block the caller); ``load(path)`` picks the result up."""
        def run() -> None:
            self._submit(path)
            self._lower_children()

        threading.Thread(target=run, name="radlens-prefetch", daemon=True).start()

    def _submit(self, path: str) -> tuple[Future[LoadedImage], ProcessPoolExecutor] | None:
        """The pool's future for ``path`` (a recent one if the file is unchanged), or None
        when the file is not a DICOM or there is no pool."""
        try:
            with open(path, "rb") as f:
                kind = sniff_format(f.read(132))
            st = os.stat(path)
        except OSError:
            return None  # let load_image raise its own, user-facing error
        pool = self._get_pool() if kind in ("dicom", "dicom-raw") else None
        if pool is None:
            return None
        key = (os.path.abspath(path), st.st_size, st.st_mtime_ns)
        with self._lock:
            fut = self._recent.get(key)
            if fut is not None:
                self._recent.move_to_end(key)
                return fut, pool
        try:
            fut = pool.submit(_load, path)  # outside the lock: it may spawn a process
        except RuntimeError:  # the pool was shut down or broke meanwhile
            return None
        with self._lock:
            self._recent[key] = fut
            while len(self._recent) > RECENT:
                self._recent.popitem(last=False)
        return fut, pool

    def load(self, path: str) -> LoadedImage:
        """``engine.load_image(path)``; DICOM decoded in a child process."""
        submitted = self._submit(path)
        if submitted is None:
            return load_image(path)
        fut, pool = submitted
        try:
            image = fut.result()
        except BrokenProcessPool:
            with self._lock:
                self._recent.clear()  # every future of the dead pool is broken
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
            self._recent.clear()
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
