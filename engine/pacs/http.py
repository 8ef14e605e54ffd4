"""The HTTP side of DICOMweb: a ``requests`` session with the server's authentication and TLS
setting, and the translation of every transport failure into a ``PacsError`` whose message says
what happened and what to do."""

from __future__ import annotations

import json
import re
import warnings

import requests
import urllib3
from pydicom.errors import InvalidDicomError

from ..io.fileio import printable
from .errors import PacsError
from .servers import ServerConfig

# Percent-escapes of characters that RFC 3986 allows as they are in a query. dicomweb-client
# escapes them; Orthanc 1.10 with its DICOMweb plugin 1.7 (Debian 12) does not decode query values,
# so "PatientName=SMITH%2A" matched nothing there. Sent as they are, they mean the same to every server.
_UNESCAPE = {"%2A": "*", "%3F": "?", "%5E": "^", "%2C": ",", "%2D": "-"}
_ESCAPE_RE = re.compile("|".join(_UNESCAPE), re.IGNORECASE)


class _Session(requests.Session):
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


def make_session(server: ServerConfig, secret: str | None) -> requests.Session:
    """A session that authenticates as ``server`` says and verifies TLS unless told not to."""
    session = _Session()
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
