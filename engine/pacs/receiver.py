"""A DICOM C-STORE receiver (storage SCP, pynetdicom) for PACS that can only push.

Off until ``start()``. It accepts every storage SOP class in any transfer syntax, answers
C-ECHO, and writes each received instance atomically to
``<cache_dir>/<StudyInstanceUID>/<SOPInstanceUID>.dcm`` (temp file + rename), then calls
``on_received(path, study_uid)`` from the receiver's own thread (a GUI must hand it over to its
own thread, e.g. with a queued signal)."""

from __future__ import annotations

import logging
import shutil
import threading
from collections.abc import Callable
from pathlib import Path

from pynetdicom import AE, ALL_TRANSFER_SYNTAXES, AllStoragePresentationContexts, evt
from pynetdicom.sop_class import Verification  # type: ignore[attr-defined]

from ..errors import RadLensError
from ..io.fileio import printable
from .cache import study_folder, write_instance
from .summaries import UID_RE

log = logging.getLogger(__name__)

OnReceived = Callable[[Path, str], None]

# C-STORE status codes (PS3.4 B.2.3, PS3.7 C.4.2)
STATUS_SUCCESS = 0x0000
STATUS_OUT_OF_RESOURCES = 0xA700
STATUS_CANNOT_UNDERSTAND = 0xC000
MIN_FREE_BYTES = 512 * 2**20  # a push stops being accepted before it fills the disk


class ReceiverError(RadLensError):
    """The receiver cannot start (bad AE title or port, port in use, no permission)."""


def check_ae_title(ae_title: str) -> str:
    """``ae_title`` stripped, if it is a valid AE title (1-16 printable ASCII characters, no backslash)."""
    t = (ae_title or "").strip()
    if not (1 <= len(t) <= 16) or not all(32 <= ord(c) < 127 for c in t) or "\\" in t:
        raise ReceiverError(f"The AE title {ae_title!r} is not valid: use 1 to 16 letters, digits or spaces "
                            "(e.g. RADLENS), the same one that is configured on the PACS.")
    return t


class StoreReceiver:
    """Receive pushed studies. ``host`` "" listens on every network interface (a PACS on another
    machine must reach it); pass "127.0.0.1" to accept only this computer. An instance that
    arrives when the cache's disk has less than ``min_free_bytes`` free is refused with "Out of
    Resources" (the PACS keeps it and may send it again), so a large push cannot fill the disk."""

    def __init__(self, ae_title: str, port: int, cache_dir: Path, on_received: OnReceived | None = None,
                 *, host: str = "", min_free_bytes: int = MIN_FREE_BYTES) -> None:
        self.ae_title = check_ae_title(ae_title)
        if not isinstance(port, int) or not 0 <= port <= 65535:
            raise ReceiverError(f"The port {port!r} is not valid: use a number from 1024 to 65535 (e.g. 11112).")
        self.port = port
        self.host = host
        self.cache_dir = Path(cache_dir)
        self.on_received = on_received
        self.min_free_bytes = int(min_free_bytes)
        self.received = 0  # instances written
        self.refused = 0  # instances answered with a failure status
        self.echoes = 0
        self._lock = threading.Lock()
        self._server: object | None = None
        self._ae: AE | None = None

    @property
    def running(self) -> bool:
        return self._server is not None

    @property
    def address(self) -> tuple[str, int]:
        """(host, port) it listens on (the real port when it was started with port 0)."""
        if self._server is not None:
            host, port = self._server.server_address[:2]  # type: ignore[attr-defined]
            return str(host), int(port)
        return self.host, self.port

    def start(self) -> None:
        """Start listening (in background threads). Raises ``ReceiverError`` when the port cannot be used."""
        if self._server is not None:
            return
        try:
            self.cache_dir.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise ReceiverError(f"Cannot create the cache folder {printable(str(self.cache_dir))} "
                                f"({e.strerror or e}). Choose a writable folder.") from None
        ae = AE(ae_title=self.ae_title)
        for context in AllStoragePresentationContexts:
            ae.add_supported_context(context.abstract_syntax, ALL_TRANSFER_SYNTAXES)
        ae.add_supported_context(Verification)
        ae.require_called_aet = True  # only associations addressed to our AE title
        handlers = [(evt.EVT_C_STORE, self._on_store), (evt.EVT_C_ECHO, self._on_echo)]
        try:
            self._server = ae.start_server((self.host, self.port), block=False, evt_handlers=handlers)
        except OSError as e:
            hint = ("ports under 1024 need administrator rights; use e.g. 11112" if self.port and self.port < 1024
                    else "another program (or another RadLens) is using it; choose another port")
            raise ReceiverError(f"Cannot listen on port {self.port} ({e.strerror or e}): {hint}.") from None
        self._ae = ae
        log.info("DICOM receiver %s listening on %s", self.ae_title, self.address)

    def stop(self) -> None:
        """Stop listening and close open associations. Files already written stay."""
        server, self._server = self._server, None
        if server is not None:
            server.shutdown()  # type: ignore[attr-defined]
        if self._ae is not None:
            self._ae.shutdown()
            self._ae = None

    def __enter__(self) -> StoreReceiver:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _on_echo(self, event: evt.Event) -> int:
        with self._lock:
            self.echoes += 1
        return STATUS_SUCCESS

    def _on_store(self, event: evt.Event) -> int:
        try:
            ds = event.dataset
            ds.file_meta = event.file_meta
        except Exception:  # noqa: BLE001 - a dataset pydicom cannot decode is refused, never a crash
            log.warning("refused an instance that cannot be decoded", exc_info=True)
            return self._refuse(STATUS_CANNOT_UNDERSTAND)
        study = str(ds.get("StudyInstanceUID", "")).strip()
        if not UID_RE.match(study) or len(study) > 64:
            log.warning("refused an instance without a valid Study Instance UID (%r)", study)
            return self._refuse(STATUS_CANNOT_UNDERSTAND)
        try:
            free = shutil.disk_usage(self.cache_dir).free
        except OSError:
            free = None  # the write below will say what is wrong
        if free is not None and free < self.min_free_bytes:
            log.error("refused an instance: %s has %.0f MB free, under the %.0f MB kept free", self.cache_dir,
                      free / 1e6, self.min_free_bytes / 1e6)
            return self._refuse(STATUS_OUT_OF_RESOURCES)
        try:
            path = write_instance(ds, study_folder(self.cache_dir, study))
        except ValueError as e:
            log.warning("refused an instance: %s", e)
            return self._refuse(STATUS_CANNOT_UNDERSTAND)
        except OSError as e:
            log.error("cannot write a received instance to %s: %s", self.cache_dir, e)
            return self._refuse(STATUS_OUT_OF_RESOURCES)
        with self._lock:
            self.received += 1
        if self.on_received is not None:
            try:
                self.on_received(path, study)
            except Exception:  # noqa: BLE001 - the file is stored; a failing listener must not fail the C-STORE
                log.exception("the on_received callback failed for %s", path)
        return STATUS_SUCCESS

    def _refuse(self, status: int) -> int:
        with self._lock:
            self.refused += 1
        return status
