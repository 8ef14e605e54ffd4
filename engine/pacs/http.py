"""The HTTP side of DICOMweb: a ``requests`` session with the server's authentication and TLS
setting, and the translation of every transport failure into a ``PacsError`` whose message says
what happened and what to do.

Every answer is read bounded, so a hostile or broken server cannot exhaust memory: the session
always streams, and

- an error or redirect answer (HTTP 3xx to 5xx) is read up to ``ERROR_BODY_BYTES`` (64 KiB), never
  drained, and the connection is closed; its message quotes at most 200 characters of it;
- an answer read whole (a search or a store answer; a single ``application/dicom`` instance) is
  refused with ``PacsAnswerTooLarge`` when its Content-Length exceeds its ceiling, before a byte
  of it is read, and a read without Content-Length stops at the ceiling;
- a multipart retrieve answer is read part by part (``engine.pacs.dicomweb``): no part may exceed
  the instance ceiling, so memory holds at most one instance (the whole answer of a study may be
  larger than the ceiling).

The instance ceiling is ``PacsClient(max_instance_bytes=...)``, else ``RADLENS_PACS_MAX_INSTANCE_MB``,
else 2 GiB; search and store answers are held to ``MAX_JSON_BYTES`` (64 MiB) or the instance
ceiling, whichever is smaller."""

from __future__ import annotations

import json
import math
import os
import re
import warnings

import requests
import urllib3
from pydicom.errors import InvalidDicomError

from ..io.fileio import printable
from .errors import PacsAnswerTooLarge, PacsError
from .servers import ServerConfig

ERROR_BODY_BYTES = 64 * 1024  # what is read of an error or redirect answer
MAX_INSTANCE_BYTES = 2 * 1024**3  # default ceiling of one instance (a large multi-frame image fits)
MAX_JSON_BYTES = 64 * 1024**2  # ceiling of a search or store answer (a 100-study search is about 100 KB)
INSTANCE_ENV = "RADLENS_PACS_MAX_INSTANCE_MB"

# Percent-escapes of characters that RFC 3986 allows as they are in a query. dicomweb-client
# escapes them; Orthanc 1.10 with its DICOMweb plugin 1.7 (Debian 12) does not decode query values,
# so "PatientName=SMITH%2A" matched nothing there. Sent as they are, they mean the same to every server.
_UNESCAPE = {"%2A": "*", "%3F": "?", "%5E": "^", "%2C": ",", "%2D": "-"}
_ESCAPE_RE = re.compile("|".join(_UNESCAPE), re.IGNORECASE)


def instance_ceiling(value: int | None = None) -> int:
    """The instance ceiling in bytes: ``value``, else ``RADLENS_PACS_MAX_INSTANCE_MB`` (MiB), else
    ``MAX_INSTANCE_BYTES``. ``PacsError('invalid')`` for a value that is not a positive number."""
    if value is not None:
        if int(value) < 1:
            raise PacsError("invalid", f"The instance size ceiling must be at least 1 byte, got {value}.")
        return int(value)
    text = os.environ.get(INSTANCE_ENV, "").strip()
    if not text:
        return MAX_INSTANCE_BYTES
    try:
        mib = float(text)
    except ValueError:
        mib = 0.0
    if not (mib > 0 and math.isfinite(mib)):
        raise PacsError("invalid", f"{INSTANCE_ENV}={printable(text)[:40]} is not a size in MiB (e.g. 2048). Fix or "
                                   "unset it.")
    return max(1, int(mib * 1024 * 1024))


def size_text(n: int) -> str:
    """``n`` bytes for a message: "50.0 MB", "2.1 GB", "900 bytes"."""
    if n >= 10**9:
        return f"{n / 1e9:.1f} GB"
    if n >= 10**6:
        return f"{n / 1e6:.1f} MB"
    if n >= 10**3:
        return f"{n / 1e3:.1f} kB"
    return f"{n} bytes"


def read_capped(response: requests.Response, limit: int, chunk: int = 1 << 16) -> tuple[bytes, bool]:
    """Up to ``limit`` bytes of ``response``'s (decoded) body, read in chunks; True when the body
    holds more. Memory: ``limit`` plus one chunk."""
    buf = bytearray()
    for piece in response.iter_content(chunk_size=max(1, min(chunk, limit + 1))):
        buf += piece
        if len(buf) > limit:
            del buf[limit:]
            return bytes(buf), True
    return bytes(buf), False


def announced_length(response: requests.Response) -> int | None:
    """The Content-Length of ``response`` (None when absent or not a number)."""
    text = response.headers.get("Content-Length", "").strip()
    return int(text) if text.isdigit() else None


def too_large(server_name: str, what: str, limit: int, size: int | None, announced: bool,
              status: int | None = None, *, instances: bool = True) -> PacsAnswerTooLarge:
    """The error for ``what`` ("one instance", "an answer") over ``limit``; ``instances``: the
    limit is the instance ceiling (the message says how to raise it)."""
    if announced and size is not None:
        how = f"announced {size_text(size)}; nothing of it was read"
    else:
        how = "reading stopped there"
    hint = (f" If the study really holds such large instances, raise {INSTANCE_ENV} (MiB)." if instances
            else " Check that the URL is the DICOMweb root of a PACS.")
    return PacsAnswerTooLarge(f"{server_name} sent {what} larger than RadLens reads ({size_text(limit)}; {how}); it "
                              f"was refused.{hint}", limit=limit, size=size, status=status)


def _hold(response: requests.Response, body: bytes) -> None:
    """Make ``body`` the content of ``response`` (for ``.text``, ``.json()``, ``raise_for_status``)."""
    response._content = body  # noqa: SLF001 - requests' own cache of the body
    response._content_consumed = True  # noqa: SLF001


def _bound_error_answer(response: requests.Response, **_: object) -> requests.Response:
    """Response hook: an error or redirect answer keeps at most ``ERROR_BODY_BYTES`` of its body;
    the rest is never read (the connection is closed, not drained)."""
    if response.status_code >= 300:
        try:
            body, _more = read_capped(response, ERROR_BODY_BYTES)
        except (requests.RequestException, urllib3.exceptions.HTTPError, OSError):
            body = b""  # the body broke off: the status is what matters
        response.close()  # before _hold: closes the connection (the rest is never read) rather than pooling it
        _hold(response, body)
    return response


class _Session(requests.Session):
    """Streams every answer and reads it bounded (see the module docstring)."""

    server_name = "The server"
    max_instance_bytes = MAX_INSTANCE_BYTES

    def __init__(self) -> None:
        super().__init__()
        self.hooks["response"].append(_bound_error_answer)

    @property
    def max_json_bytes(self) -> int:
        return min(MAX_JSON_BYTES, self.max_instance_bytes)

    def request(self, method: str | bytes, url: str | bytes, *args, **kwargs) -> requests.Response:  # type: ignore[no-untyped-def, override]
        stream = bool(kwargs.pop("stream", False))
        response = super().request(method, url, *args, stream=True, **kwargs)
        if response.status_code >= 300 or response._content_consumed:  # noqa: SLF001 - bounded by the hook
            return response
        try:
            self._bound(response, stream)
        except BaseException:
            response.close()
            raise
        return response

    def _bound(self, response: requests.Response, stream: bool) -> None:
        ctype = response.headers.get("Content-Type", "").split(";")[0].strip().lower()
        if stream and ctype.startswith("multipart/"):
            return  # read part by part, each part bounded (engine.pacs.dicomweb)
        single = ctype in ("application/dicom", "application/octet-stream")
        instances = single or ctype.startswith("multipart/")  # (a multipart answer read whole: not ours)
        limit = self.max_instance_bytes if instances else self.max_json_bytes
        what = "one instance" if single else "a multipart answer" if instances else "an answer"
        size = announced_length(response)
        if size is not None and size > limit:
            raise too_large(self.server_name, what, limit, size, True, response.status_code, instances=instances)
        if stream:
            return  # the caller reads it: with read_capped
        body, more = read_capped(response, limit)
        if more:
            raise too_large(self.server_name, what, limit, None, False, response.status_code, instances=instances)
        _hold(response, body)

    def prepare_request(self, request: requests.Request) -> requests.PreparedRequest:
        prepared = super().prepare_request(request)
        url = prepared.url or ""
        if "?" in url:
            base, query = url.split("?", 1)
            prepared.url = base + "?" + _ESCAPE_RE.sub(lambda m: _UNESCAPE[m.group(0).upper()], query)
        return prepared

    def merge_environment_settings(self, url, proxies, stream, verify, cert):  # type: ignore[no-untyped-def]
        # requests lets REQUESTS_CA_BUNDLE / CURL_CA_BUNDLE override ``session.verify = False``
        # (psf/requests#3829); a server set not to verify TLS must not be verified.
        settings = super().merge_environment_settings(url, proxies, stream, verify, cert)
        if self.verify is False:
            settings["verify"] = False
        return settings


def make_session(server: ServerConfig, secret: str | None, max_instance_bytes: int | None = None) -> _Session:
    """A session that authenticates as ``server`` says, verifies TLS unless told not to, and reads
    every answer bounded (``max_instance_bytes``: see ``instance_ceiling``)."""
    session = _Session()
    session.server_name = printable(server.name)
    session.max_instance_bytes = instance_ceiling(max_instance_bytes)
    session.verify = bool(server.verify_tls)
    if not server.verify_tls:  # the user chose this for this server; say it once (CLI/GUI), not per request
        warnings.filterwarnings("ignore", category=urllib3.exceptions.InsecureRequestWarning)
    session.headers["User-Agent"] = "RadLens (research use only, not for diagnosis)"
    if server.auth == "basic":
        session.auth = (server.username, secret or "")
    elif server.auth == "bearer":
        session.headers["Authorization"] = f"Bearer {secret or ''}"
    return session


def _body(response: requests.Response | None) -> str:
    if response is None:
        return ""
    try:
        text = response.text.strip()
    except Exception:  # noqa: BLE001 - an unreadable body adds nothing
        return ""
    try:  # Orthanc and others send {"Message": ...}
        data = json.loads(text)
        if isinstance(data, dict):
            text = str(data.get("Message") or data.get("message") or data.get("error") or text)
    except ValueError:
        pass
    text = " ".join(text.split())
    return printable(text[:200] + ("..." if len(text) > 200 else ""))


def http_error(server: ServerConfig, exc: requests.HTTPError, what: str, missing: str = "") -> PacsError:
    """``PacsError`` for an HTTP error answer to ``what`` (e.g. "the study search"). ``missing``
    names the thing a 404 means is not there."""
    response = exc.response
    status = response.status_code if response is not None else None
    body = _body(response)
    said = f' The server said: "{body}".' if body else ""
    name = printable(server.name)
    if status == 401:
        how = {"basic": f"the user name ({printable(server.username)}) and password",
               "bearer": "the access token"}.get(server.auth, "the authentication setting (none is set)")
        return PacsError("unauthorized", f"{name} refused the credentials for {what} (HTTP 401). Check {how} "
                                         f"in the server settings.{said}", status=401)
    if status == 403:
        return PacsError("forbidden", f"{name} does not allow this account {what} (HTTP 403). Ask the PACS "
                                      f"administrator for access, or use another account.{said}", status=403)
    if status == 404:
        thing = missing or "the requested resource"
        return PacsError("not_found", f"{name} does not have {thing} (HTTP 404). Check the UID; if every request "
                                      f"fails this way, check that {printable(server.url)} is the DICOMweb root."
                                      f"{said}", status=404)
    if status in (406, 415):
        return PacsError("server", f"{name} cannot send or accept the DICOM format RadLens asked for {what} "
                                   f"(HTTP {status}).{said}", status=status)
    kind_of = "a server error" if status and status >= 500 else "an error"
    return PacsError("server", f"{name} answered {what} with {kind_of} (HTTP {status}). Try again later or ask "
                               f"the PACS administrator.{said}", status=status)


def translate(server: ServerConfig, exc: BaseException, what: str, missing: str = "") -> PacsError:
    """``PacsError`` for any failure while doing ``what`` (a phrase like "the study search")."""
    if isinstance(exc, PacsError):
        return exc
    name, url = printable(server.name), printable(server.url)
    if isinstance(exc, requests.HTTPError):
        return http_error(server, exc, what, missing)
    if isinstance(exc, requests.exceptions.SSLError):
        return PacsError("unreachable", f"The TLS certificate of {name} ({url}) could not be verified during {what}. "
                                        "Install the hospital's CA certificate on this computer, or (only on a "
                                        "trusted network) turn off TLS verification for this server.")
    if isinstance(exc, requests.exceptions.ConnectTimeout):
        return PacsError("timeout", f"{name} ({url}) did not accept a connection within {server.timeout_s:g} s "
                                    f"during {what}. Check the address and the network, or raise the timeout.")
    if isinstance(exc, requests.exceptions.Timeout):
        return PacsError("timeout", f"{name} ({url}) accepted the connection but did not answer within "
                                    f"{server.timeout_s:g} s during {what}. The server may be overloaded; try "
                                    "again later or raise the timeout in the server settings.")
    if isinstance(exc, requests.exceptions.ChunkedEncodingError):
        return PacsError("partial", f"The connection to {name} broke off during {what}. Try again.")
    if isinstance(exc, requests.ConnectionError):
        text = str(exc)
        if "timed out" in text.lower():
            return PacsError("timeout", f"{name} ({url}) stopped answering for {server.timeout_s:g} s during {what}. "
                                        "Try again later or raise the timeout in the server settings.")
        return PacsError("unreachable", f"Cannot reach {name} at {url} during {what}: the server is down, or the "
                                        "host or port is wrong. Check the URL and that the server is running.")
    if isinstance(exc, (requests.exceptions.InvalidURL, requests.exceptions.MissingSchema,
                        requests.exceptions.InvalidSchema)):
        return PacsError("invalid", f"The URL of {name} ({url}) is not usable: {printable(str(exc))}. "
                                    "Fix it in the server settings.")
    if isinstance(exc, (ValueError, KeyError, InvalidDicomError, EOFError, TypeError)):
        # requests' JSONDecodeError is a ValueError; dicomweb-client's multipart decoder raises ValueError
        return PacsError("malformed", f"{name} sent an answer to {what} that is not valid DICOMweb "
                                      f"({printable(str(exc))[:160]}). Check that {url} is the DICOMweb root "
                                      "(e.g. http://host:8042/dicom-web) and not a web page or another service.")
    if isinstance(exc, requests.RequestException):
        return PacsError("unreachable", f"The request to {name} ({url}) failed during {what}: "
                                        f"{printable(str(exc))[:200]}.")
    raise exc
