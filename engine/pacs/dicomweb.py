"""DICOMweb client (QIDO-RS search, WADO-RS retrieve, STOW-RS store) on top of ``dicomweb-client``.

Every failure is a ``PacsError`` whose ``kind`` says what went wrong (see ``PACS_ERROR_KINDS``)
and whose message says what to do. Retrieved instances land atomically in
``<cache_dir>/<StudyInstanceUID>/<SOPInstanceUID>.dcm``. Thread use: one ``PacsClient`` per
thread (it holds a ``requests`` session); ``cancel`` may be set from any thread.
"""

from __future__ import annotations

import datetime as dt
import email.message
import os
import re
import threading
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from io import BytesIO
from pathlib import Path

import requests
from dicomweb_client.api import DICOMwebClient
from pydicom import dcmread
from pydicom.dataset import Dataset
from pydicom.errors import InvalidDicomError

from ..io.fileio import printable
from .cache import remove_stale_parts, study_folder
from .errors import PACS_ERROR_KINDS, PacsAnswerTooLarge, PacsError, PacsMalformedAnswer
from .http import _Session, make_session, read_capped, too_large, translate
from .retrieve import Progress, RetrieveResult, stream_to_cache
from .servers import ServerConfig
from .summaries import (
    SERIES_FIELDS,
    STUDY_FIELDS,
    SeriesSummary,
    StudySummary,
    check_uid,
    matches,
    parse_series,
    parse_studies,
    study_filters,
    wire_filters,
)

__all__ = ["PACS_ERROR_KINDS", "PacsAnswerTooLarge", "PacsClient", "PacsError", "PacsMalformedAnswer", "RetrieveResult",
           "SeriesSummary", "StoreResult", "StudySummary"]

ANY_TRANSFER_SYNTAX = (("application/dicom", "*"),)  # the stored bytes, no transcoding (lossy stays as it was)
STOW_BATCH = 16  # instances per STOW-RS request


RAW = "radlens_raw_part"  # attribute of a retrieved dataset: the bytes it was read from


def read_part(part: bytes) -> Dataset:
    """One instance of a WADO-RS answer, with its bytes as ``getattr(ds, RAW)``. Servers asked
    for any transfer syntax send what they were given, which may lack the DICOM preamble (as
    pydicom's CR-MONO1-10-chest.dcm does)."""
    try:
        ds = dcmread(BytesIO(part))
    except InvalidDicomError:
        ds = dcmread(BytesIO(part), force=True)
        if "SOPInstanceUID" not in ds:
            raise ValueError("a part of the answer is not a DICOM instance") from None
    object.__setattr__(ds, RAW, bytes(part))
    return ds


# RFC 2046 allows 1 to 70 of DIGIT ALPHA ' ( ) + _ , - . / : = ? and space (not last); some servers
# send longer ones, so up to 200 are accepted.
_BOUNDARY_RE = re.compile(r"[0-9A-Za-z'()+_,\-./:=? ]{0,199}[0-9A-Za-z'()+_,\-./:=?]")
PART_HEADER_BYTES = 64 * 1024  # the most a part's headers may add to its instance


def multipart_boundary(content_type: str, server_name: str, status: int | None = None) -> bytes:
    """The boundary of a ``multipart/related`` answer; ``PacsMalformedAnswer`` for another media
    type, or a boundary that is missing or malformed (without one the answer cannot be split into
    instances, and reading it whole would hold it all in memory)."""
    message = email.message.Message()
    message["Content-Type"] = content_type
    media = message.get_content_type()
    shown = printable(content_type)[:120]
    if media != "multipart/related":
        raise PacsMalformedAnswer(f"{server_name} answered a retrieve with the media type \"{shown}\", not "
                                  "multipart/related. Check that the URL is the DICOMweb root of a PACS.", status=status)
    boundary = message.get_param("boundary")
    if boundary is None:
        raise PacsMalformedAnswer(f"{server_name} sent a multipart answer without a boundary (Content-Type "
                                  f"\"{shown}\"), so its instances cannot be told apart; nothing was read. The "
                                  "server is not DICOMweb-conformant: ask its administrator.", status=status)
    value = boundary if isinstance(boundary, str) else ""  # an RFC 2231 (charset, language, value) is no boundary
    if not _BOUNDARY_RE.fullmatch(value):
        raise PacsMalformedAnswer(f"{server_name} sent a multipart answer with a malformed boundary (Content-Type "
                                  f"\"{shown}\"); nothing was read. The server is not DICOMweb-conformant: ask its "
                                  "administrator.", status=status)
    return value.encode("ascii")


class _Client(DICOMwebClient):
    """dicomweb-client, with its multipart reader replaced by a bounded one: the boundary is
    checked first, no part may exceed the session's instance ceiling (the reader stops there), each
    part is read with ``read_part``, and ``cancel`` is checked between the chunks of a streamed
    answer (so a cancel does not wait for a large instance)."""

    cancel: threading.Event | None = None
    _session: _Session

    def _decode_multipart_message(self, response: requests.Response, stream: bool) -> Iterator[bytes]:
        session = self._session
        name, limit = session.server_name, session.max_instance_bytes
        try:
            boundary = multipart_boundary(response.headers.get("Content-Type", ""), name, response.status_code)
        except PacsError:
            response.close()  # nothing of the body is read
            raise
        return self._parts(response, stream, b"\r\n--" + boundary, name, limit)

    def _parts(self, response: requests.Response, stream: bool, delimiter: bytes, name: str,
               limit: int) -> Iterator[bytes]:
        cancel = self.cancel
        data = bytearray(b"\r\n")  # so a boundary at the very start is a delimiter too
        search, preamble = 0, True
        with response:
            chunks = response.iter_content(chunk_size=self._chunk_size) if stream else iter([response.content])
            for chunk in chunks:
                if cancel is not None and cancel.is_set():
                    response.close()
                    raise PacsError("cancelled", "Retrieve cancelled.")
                data += chunk
                start = 0
                while (end := data.find(delimiter, search)) >= 0:
                    content = None if preamble else _part_content(data, start, end, name)
                    preamble = False
                    start = search = end + len(delimiter)
                    if content is not None:
                        yield content
                if start:
                    del data[:start]
                search = max(0, len(data) - len(delimiter) + 1)
                if len(data) > limit + PART_HEADER_BYTES:
                    response.close()
                    raise too_large(name, "one instance", limit, len(data), False, response.status_code)
        if preamble:
            if data.strip():
                raise PacsMalformedAnswer(f"{name} sent a multipart answer in which its boundary never occurs "
                                          f"({len(data) - 2} bytes); the answer is not valid DICOMweb. Check that "
                                          "the URL is the DICOMweb root of a PACS.")
            return
        content = _part_content(data, 0, len(data), name)
        if content is not None:  # a last part without its closing delimiter: a cut answer, read_part judges
            yield content

    def _http_get_multipart_application_dicom(self, url: str, media_types: tuple | None = None,  # type: ignore[override]
                                              params: dict | None = None, stream: bool = False) -> Iterator[Dataset]:
        accept = 'multipart/related; type="application/dicom"'
        if media_types and any(isinstance(m, tuple) and m[1:] == ("*",) for m in media_types):
            accept += "; transfer-syntax=*"
        response = self._http_get(url, params=params, headers={"Accept": accept}, stream=stream)
        if response.headers.get("Content-Type", "").startswith("application/dicom"):
            with response:
                limit = self._session.max_instance_bytes
                body, more = read_capped(response, limit)
            if more:
                raise too_large(self._session.server_name, "one instance", limit, None, False, response.status_code)
            return iter([read_part(body)])
        return (read_part(part) for part in self._decode_multipart_message(response, stream=stream))


def _part_content(data: bytearray, start: int, end: int, name: str) -> bytes | None:
    """The body of the multipart part ``data[start:end]`` (what follows its headers), copied once
    (``read_part`` then copies nothing); None after the close delimiter."""
    if data.startswith(b"--", start, end):  # the close delimiter "--boundary--", and the epilogue after it
        return None
    idx = data.find(b"\r\n\r\n", start, end)
    if idx < 0:
        if not data[start:end].strip():
            return None
        raise PacsMalformedAnswer(f"{name} sent a multipart part without headers ({end - start} bytes); the answer "
                                  "is not valid DICOMweb. Check that the URL is the DICOMweb root of a PACS.")
    with memoryview(data) as view:  # released before the buffer is trimmed
        return bytes(view[idx + 4:end])


@dataclass(frozen=True)
class StoreResult:
    """What a STOW-RS store did: instances the server accepted and refused, and a sentence to show."""

    stored: int
    failed: int
    message: str


class PacsClient:
    """A connection to one DICOMweb server. ``secret`` is the password (basic) or token (bearer).
    ``max_instance_bytes``: the ceiling of one instance (default ``RADLENS_PACS_MAX_INSTANCE_MB``,
    else 2 GiB); a larger one gives ``PacsAnswerTooLarge`` (see ``engine.pacs.http``)."""

    def __init__(self, server: ServerConfig, secret: str | None = None, *,
                 max_instance_bytes: int | None = None) -> None:
        problem = server.problem()
        if problem:
            raise PacsError("invalid", f"The settings of server {printable(server.name)!r} are not usable: {problem}")
        if server.auth != "none" and not secret:
            what = "password" if server.auth == "basic" else "access token"
            raise PacsError("unauthorized", f"{printable(server.name)} needs a {what}, and none was given. Enter it "
                                            "when asked, or store it in the server settings.")
        self.server = server
        self._session = make_session(server, secret, max_instance_bytes)
        timeout = float(server.timeout_s)
        try:
            self._client = _Client(server.url.strip().rstrip("/"), session=self._session,
                                          timeout=(min(timeout, 10.0), timeout))
        except ValueError as e:
            raise PacsError("invalid", f"The URL of {printable(server.name)} ({printable(server.url)}) is not "
                                       f"usable: {e}. Fix it in the server settings.") from None
        # fail fast and clearly: no silent exponential back-off (up to a minute) on 503/504
        self._client.set_http_retry_params(retry=False)
        self._client.set_chunk_size(1 << 18)  # 256 KiB: a cancel is seen within one chunk

    @property
    def name(self) -> str:
        return printable(self.server.name)

    def close(self) -> None:
        self._session.close()

    def __enter__(self) -> PacsClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _call(self, what: str, fn: Callable[[], object], missing: str = "") -> object:
        try:
            return fn()
        except Exception as e:  # noqa: BLE001 - every transport failure becomes a PacsError
            raise translate(self.server, e, what, missing) from None

    # QIDO-RS -------------------------------------------------------------------------------

    def search_studies(self, patient_id: str | None = None, patient_name: str | None = None,
                       date_from: dt.date | str | None = None, date_to: dt.date | str | None = None,
                       modality: str | None = None, accession: str | None = None,
                       limit: int = 100) -> list[StudySummary]:
        """Studies matching every filter given (none given: the server's most recent ``limit``)."""
        filters = study_filters(patient_id, patient_name, date_from, date_to, modality, accession)
        payload = self._call("the study search", lambda: self._client.search_for_studies(
            search_filters=wire_filters(filters), fields=list(STUDY_FIELDS), limit=max(1, int(limit))))
        return [s for s in parse_studies(payload, self.name) if matches(filters, s)]

    def find_study(self, study_uid: str) -> StudySummary:
        """The study with this UID; ``PacsError('not_found')`` when the server has none."""
        uid = check_uid(study_uid, "Study Instance UID")
        payload = self._call("the study search", lambda: self._client.search_for_studies(
            search_filters={"StudyInstanceUID": uid}, fields=list(STUDY_FIELDS)))
        found = [s for s in parse_studies(payload, self.name) if s.study_uid == uid]
        if not found:
            raise PacsError("not_found", f"{self.name} has no study {uid}. Check the UID, or search for the study "
                                         "by patient or accession number.")
        return found[0]

    def search_series(self, study_uid: str) -> list[SeriesSummary]:
        """The series of one study, by series number."""
        uid = check_uid(study_uid, "Study Instance UID")
        payload = self._call("the series search", lambda: self._client.search_for_series(
            study_instance_uid=uid, fields=list(SERIES_FIELDS)), missing=f"study {uid}")
        return parse_series(payload, uid, self.name)

    # WADO-RS -------------------------------------------------------------------------------

    def _expected(self, study_uid: str, series_uid: str | None) -> int | None:
        if series_uid is None:
            return self.find_study(study_uid).n_instances
        for s in self.search_series(study_uid):
            if s.series_uid == series_uid:
                return s.n_instances
        raise PacsError("not_found", f"{self.name} has no series {series_uid} in study {study_uid}. Check the UIDs "
                                     "or search the study's series again.")

    def _instances(self, study_uid: str, series_uid: str | None, what: str) -> Iterator[Dataset]:
        def get(media_types: tuple[tuple[str, str], ...] | None) -> Iterator[Dataset]:
            if series_uid is None:
                return self._client.iter_study(study_uid, media_types=media_types)
            return self._client.iter_series(study_uid, series_uid, media_types=media_types)

        missing = f"series {series_uid}" if series_uid else f"study {study_uid}"
        try:
            return get(ANY_TRANSFER_SYNTAX)
        except requests.HTTPError as e:
            status = e.response.status_code if e.response is not None else None
            if status not in (400, 406):
                raise translate(self.server, e, what, missing) from None
        except Exception as e:  # noqa: BLE001
            raise translate(self.server, e, what, missing) from None
        # the server cannot send "any transfer syntax": ask for its default (explicit VR little endian)
        return self._call(what, lambda: get(None), missing)  # type: ignore[return-value]

    def retrieve(self, study_uid: str, cache_dir: str | os.PathLike[str], series_uid: str | None = None,
                 progress: Progress = None, cancel: threading.Event | None = None) -> RetrieveResult:
        """Fetch a study (or one of its series) into ``cache_dir/<StudyInstanceUID>/``, instance by
        instance, each written atomically. ``progress(done, total)`` is called after each instance
        (``total`` from the server's search, None when it does not say). A cancel or a failure
        part-way raises ``PacsError`` (kind ``cancelled`` or ``partial``) whose ``result`` lists
        what was fetched; no half-written file is left and files already in the cache stay."""
        study = check_uid(study_uid, "Study Instance UID")
        series = check_uid(series_uid, "Series Instance UID") if series_uid else None
        what = f"series {series} of study {study}" if series else f"study {study}"
        folder = study_folder(cache_dir, study)
        try:
            folder.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise PacsError("invalid", f"Cannot create the cache folder {printable(str(folder))} "
                                       f"({e.strerror or e}). Choose a writable cache folder.") from None
        remove_stale_parts(folder)  # left by a process killed mid-write (kill -9, power cut)
        if cancel is not None and cancel.is_set():
            raise PacsError("cancelled", f"Retrieve of {what} cancelled before it started; nothing was fetched.",
                            result=RetrieveResult(folder, (), False, "Nothing was fetched."))
        expected = self._expected(study, series)
        self._client.cancel = cancel
        try:
            instances = self._instances(study, series, f"the retrieve of {what}")
            return stream_to_cache(instances, folder, study, what=what, source=self.name, expected=expected,
                                   progress=progress, cancel=cancel,
                                   translate=lambda e: translate(self.server, e, f"the retrieve of {what}"))
        finally:
            self._client.cancel = None

    # STOW-RS -------------------------------------------------------------------------------

    def store(self, datasets: Sequence[Dataset]) -> StoreResult:
        """Send ``datasets`` to the server (STOW-RS, ``STOW_BATCH`` per request). The result counts
        the instances the server accepted and refused; a transport failure raises ``PacsError``
        whose message says how many were stored before it."""
        items = list(datasets)
        for ds in items:
            if "SOPInstanceUID" not in ds or "SOPClassUID" not in ds:
                raise PacsError("invalid", "A dataset to store has no SOP Class or SOP Instance UID; nothing was "
                                           "sent. This is a bug in the code that made it.")
        return self._store_batches((items[i:i + STOW_BATCH] for i in range(0, len(items), STOW_BATCH)), len(items))

    def store_files(self, paths: Sequence[str | os.PathLike[str]]) -> StoreResult:
        """``store`` for DICOM files, read ``STOW_BATCH`` at a time (so a batch's captures, each
        the size of its image, need not fit in memory together)."""
        def batches() -> Iterator[list[Dataset]]:
            for i in range(0, len(paths), STOW_BATCH):
                try:
                    yield [dcmread(p) for p in paths[i:i + STOW_BATCH]]
                except (OSError, InvalidDicomError) as e:
                    raise PacsError("invalid", f"A result file cannot be read again ({printable(str(e))}).") from None

        return self._store_batches(batches(), len(paths))

    def _store_batches(self, batches: Iterator[list[Dataset]], total: int) -> StoreResult:
        stored, failed, reasons = 0, 0, []
        while True:
            try:
                batch = next(batches)
            except StopIteration:
                break
            except PacsError as e:
                raise e.with_message(f"{e} {stored} instance(s) were stored before this.") from None
            try:
                answer = self._client.store_instances(batch)
            except requests.HTTPError as e:
                answer = _stow_failure_answer(e)
                if answer is None:
                    err = translate(self.server, e, "storing results")
                    raise err.with_message(f"{err} {stored} instance(s) were stored before this.") from None
            except Exception as e:  # noqa: BLE001
                err = translate(self.server, e, "storing results")
                raise err.with_message(f"{err} {stored} instance(s) were stored before this.") from None
            ok = len(answer.get("ReferencedSOPSequence", []))
            bad = answer.get("FailedSOPSequence", [])
            if not ok and not bad and "ReferencedSOPSequence" not in answer:
                ok = len(batch)  # an empty 200 answer: the server accepted the request as a whole
            stored += ok
            failed += len(bad)
            reasons += [f"{printable(str(x.get('ReferencedSOPInstanceUID', '?')))} (reason "
                        f"{x.get('FailureReason', '?')})" for x in bad]
        message = f"{stored} of {total} instance(s) stored on {self.name}."
        if failed:
            message += (f" {failed} refused: {', '.join(reasons[:3])}{' ...' if len(reasons) > 3 else ''}. "
                        "Ask the PACS administrator whether it accepts these SOP classes.")
        return StoreResult(stored, failed, message)


def _stow_failure_answer(exc: requests.HTTPError) -> Dataset | None:
    """The STOW-RS answer inside an HTTP 409/4xx, when it lists the failed instances (PS3.18 10.5.3)."""
    response = exc.response
    if response is None or response.status_code not in (202, 400, 409):
        return None
    try:
        answer = Dataset.from_json(response.json())
    except Exception:  # noqa: BLE001 - no parseable answer: treat as a plain HTTP error
        return None
    return answer if "FailedSOPSequence" in answer else None


def instances_in(folder: Path) -> list[Path]:
    """The cached instance files of one study folder (not temporary files)."""
    return sorted(p for p in folder.glob("*.dcm") if p.is_file()) if folder.is_dir() else []
