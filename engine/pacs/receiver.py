"""A DICOM C-STORE receiver (storage SCP, pynetdicom) for PACS that can only push.

Off until ``start()``. It listens on one address (127.0.0.1, this computer only, unless told
otherwise) and accepts associations only from its allowed peers (``Peer``: a calling AE title
and, optionally, the IP address or network it must come from), unless ``accept_any`` is set;
any other caller is rejected ("calling AE title not recognised") and logged with its AE title
and address. It accepts every storage SOP class in any transfer syntax, answers
C-ECHO, and writes each received instance atomically to
``<cache_dir>/<StudyInstanceUID>/<SOPInstanceUID>.dcm`` (temp file + rename), then calls
``on_received(path, study_uid)`` from the receiver's own thread (a GUI must hand it over to its
own thread, e.g. with a queued signal)."""

from __future__ import annotations

import errno
import ipaddress
import logging
import shutil
import socket
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass
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
LOCALHOST = "127.0.0.1"
# A-ASSOCIATE-RJ for a caller that is not allowed: rejected-permanent, service user, calling AE title not recognised
REJECT_UNKNOWN_CALLER = (0x01, 0x01, 0x03)


class ReceiverError(RadLensError):
    """The receiver cannot start (bad AE title or port, port in use, no permission)."""


def check_ae_title(ae_title: str) -> str:
    """``ae_title`` stripped, if it is a valid AE title (1-16 printable ASCII characters, no backslash)."""
    t = (ae_title or "").strip()
    if not (1 <= len(t) <= 16) or not all(32 <= ord(c) < 127 for c in t) or "\\" in t:
        raise ReceiverError(f"The AE title {ae_title!r} is not valid: use 1 to 16 letters, digits or spaces "
                            "(e.g. RADLENS), the same one that is configured on the PACS.")
    return t


def parse_host(host: str) -> str:
    """``host`` as the IP address to listen on ("0.0.0.0" or "::" for every interface; "" means
    "0.0.0.0"). Raises ``ReceiverError`` for anything that is not an IP address (a host name
    would depend on the name service)."""
    text = (host or "").strip()
    if not text:
        return "0.0.0.0"
    try:
        return str(ipaddress.ip_address(text.strip("[]")))
    except ValueError:
        raise ReceiverError(f"{text!r} is not an IP address to listen on: use 127.0.0.1 (this computer only), "
                            "0.0.0.0 (every network interface) or one of this computer's addresses, "
                            "e.g. 192.168.1.20.") from None


def check_bind_address(host: str) -> str:
    """``parse_host(host)``, after checking that this computer can listen on it (it has a network
    interface with that address). Raises ``ReceiverError`` saying what to use otherwise."""
    addr = parse_host(host)
    family = socket.AF_INET6 if ipaddress.ip_address(addr).version == 6 else socket.AF_INET
    try:
        with socket.socket(family, socket.SOCK_STREAM) as probe:
            probe.bind((addr, 0))
    except OSError as e:
        raise ReceiverError(_bind_problem(addr, e)) from None
    return addr


def _bind_problem(addr: str, e: OSError) -> str:
    if e.errno in (errno.EADDRNOTAVAIL, errno.EAFNOSUPPORT):
        return (f"This computer has no network interface with the address {addr}: use 127.0.0.1 (this computer "
                "only), 0.0.0.0 (every network interface) or one of this computer's own addresses.")
    return f"Cannot listen on {addr} ({e.strerror or e})."


@dataclass(frozen=True)
class Peer:
    """A caller the receiver accepts: its calling AE title and, optionally, the IP address (or
    network, e.g. 10.1.2.0/24) its association must come from ("" = any address)."""

    ae_title: str
    address: str = ""

    def __post_init__(self) -> None:
        object.__setattr__(self, "ae_title", check_ae_title(self.ae_title))
        object.__setattr__(self, "address", check_peer_address(self.address))

    def matches(self, ae_title: str, address: str) -> bool:
        if ae_title.strip() != self.ae_title:
            return False
        if not self.address:
            return True
        ip = _caller_ip(address)
        return ip is not None and ip in ipaddress.ip_network(self.address, strict=False)

    def __str__(self) -> str:
        return f"{self.ae_title} at {self.address}" if self.address else f"{self.ae_title} (any address)"


def check_peer_address(address: str) -> str:
    """A peer's address ("" for any), normalised: an IP address or a network (10.1.2.0/24)."""
    text = (address or "").strip()
    if not text:
        return ""
    try:
        net = ipaddress.ip_network(text, strict=False)
    except ValueError:
        raise ReceiverError(f"{text!r} is not an IP address: give the sender's address (e.g. 192.168.1.10), a "
                            "network (e.g. 192.168.1.0/24), or leave it empty to accept that AE title from any "
                            "address.") from None
    return str(net.network_address) if net.num_addresses == 1 else str(net)


def _caller_ip(address: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        ip = ipaddress.ip_address((address or "").split("%")[0])
    except ValueError:
        return None
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        return ip.ipv4_mapped  # a dual-stack socket reports IPv4 callers as ::ffff:a.b.c.d
    return ip


class StoreReceiver:
    """Receive pushed studies. ``host`` is the IP address to listen on: "127.0.0.1" (the default)
    accepts only this computer; "0.0.0.0" listens on every network interface (a PACS on another
    machine must reach it), or give one of this computer's addresses. Only associations from
    ``peers`` are accepted, unless ``accept_any`` (every caller that addresses our AE title);
    with neither, every association is rejected. An instance that arrives when the cache's disk
    has less than ``min_free_bytes`` free is refused with "Out of Resources" (the PACS keeps it
    and may send it again), so a large push cannot fill the disk."""

    def __init__(self, ae_title: str, port: int, cache_dir: Path, on_received: OnReceived | None = None,
                 *, host: str = LOCALHOST, peers: Iterable[Peer] = (), accept_any: bool = False,
                 min_free_bytes: int = MIN_FREE_BYTES) -> None:
        self.ae_title = check_ae_title(ae_title)
        if not isinstance(port, int) or not 0 <= port <= 65535:
            raise ReceiverError(f"The port {port!r} is not valid: use a number from 1024 to 65535 (e.g. 11112).")
        self.port = port
        self.host = parse_host(host)
        self.peers: tuple[Peer, ...] = tuple(peers)
        self.accept_any = bool(accept_any)
        self.cache_dir = Path(cache_dir)
        self.on_received = on_received
        self.min_free_bytes = int(min_free_bytes)
        self.received = 0  # instances written
        self.refused = 0  # instances answered with a failure status
        self.echoes = 0
        self.rejected = 0  # associations rejected: the caller is not an allowed peer
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

    def set_peers(self, peers: Iterable[Peer], accept_any: bool = False) -> None:
        """Change who may send, also while running (the next association is checked against it)."""
        with self._lock:
            self.peers, self.accept_any = tuple(peers), bool(accept_any)

    def allows(self, ae_title: str, address: str) -> bool:
        """Whether a caller with this calling AE title and IP address may associate."""
        with self._lock:
            peers, accept_any = self.peers, self.accept_any
        return accept_any or any(p.matches(ae_title, address) for p in peers)

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
        handlers = [(evt.EVT_REQUESTED, self._on_requested), (evt.EVT_C_STORE, self._on_store),
                    (evt.EVT_C_ECHO, self._on_echo)]
        try:
            self._server = ae.start_server((self.host, self.port), block=False, evt_handlers=handlers)
        except OSError as e:
            if e.errno in (errno.EADDRNOTAVAIL, errno.EAFNOSUPPORT):
                raise ReceiverError(_bind_problem(self.host, e)) from None
            hint = ("ports under 1024 need administrator rights; use e.g. 11112" if self.port and self.port < 1024
                    else "another program (or another RadLens) is using it; choose another port")
            raise ReceiverError(f"Cannot listen on port {self.port} ({e.strerror or e}): {hint}.") from None
        self._ae = ae
        with self._lock:
            who = "any caller" if self.accept_any else (", ".join(map(str, self.peers)) or "nobody (no peer set)")
        log.info("DICOM receiver %s listening on %s, accepting %s", self.ae_title, self.address, who)

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

    def _on_requested(self, event: evt.Event) -> None:
        """An association request: reject it unless its calling AE title and address are allowed.
        (AE titles and addresses identify machines, not patients: they are logged.)"""
        assoc = event.assoc
        primitive = assoc.requestor.primitive
        calling = str(getattr(primitive, "calling_ae_title", "") or "").strip()
        try:
            address = str(assoc.requestor.address)
        except ValueError:
            address = ""
        if self.allows(calling, address):
            return
        with self._lock:
            self.rejected += 1
        log.warning("rejected an association from AE title %r at %s: not an allowed peer of %s", calling,
                    address or "an unknown address", self.ae_title)
        assoc.acse.send_reject(*REJECT_UNKNOWN_CALLER)
        evt.trigger(assoc, evt.EVT_REJECTED, {})
        assoc.kill()

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
