"""Hostile or broken PACS answers cannot exhaust memory (issue 24, item 4): every read of an
answer is bounded, and each case is a typed ``PacsError`` with a short message.

Against real HTTP: ``http_stub`` (tests/pacs/conftest.py) serves each case from
``http.server`` in a thread on 127.0.0.1. The large bodies are streamed from one reused chunk,
so the server itself allocates nothing per byte and ``tracemalloc`` (which sees every thread)
measures the client. Printed figures (``-s``) are what docs/pacs.md quotes.
"""

from __future__ import annotations

import http.server
import json
import threading
import time
import tracemalloc
from collections.abc import Callable
from pathlib import Path

import pydicom
import pytest
import requests
from conftest import Orthanc, PacsData  # tests/pacs/conftest.py
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian, generate_uid

from engine.pacs.dicomweb import PacsAnswerTooLarge, PacsClient, PacsError, PacsMalformedAnswer
from engine.pacs.http import ERROR_BODY_BYTES, INSTANCE_ENV, MAX_INSTANCE_BYTES
from engine.pacs.servers import ServerConfig

Handler = Callable[[http.server.BaseHTTPRequestHandler], None]
Stub = Callable[[Handler], str]

MB = 1024 * 1024
BIG = 50 * MB  # the hostile body
CHUNK = b"x" * (256 * 1024)  # reused for every write: the server allocates nothing per byte
STUDY = "1.2.826.0.1.3680043.8.498.24004"
MAX_MESSAGE = 700  # characters: a message to read, not a quoted body


def _qido(h: http.server.BaseHTTPRequestHandler) -> None:
    """A valid QIDO-RS answer: one study of one instance (the retrieve searches first)."""
    body = (b'[{"0020000D": {"vr": "UI", "Value": ["' + STUDY.encode() + b'"]}, '
            b'"00201208": {"vr": "IS", "Value": [1]}}]')
    h.send_response(200)
    h.send_header("Content-Type", "application/dicom+json")
    h.send_header("Content-Length", str(len(body)))
    h.end_headers()
    h.wfile.write(body)


def _drain_request(h: http.server.BaseHTTPRequestHandler) -> None:
    n = int(h.headers.get("Content-Length") or 0)
    if n:
        h.rfile.read(n)


class Flood:
    """A handler that answers ``status`` with a ``size``-byte body, streamed in 256 KiB writes
    (``pace`` seconds apart), framed by Content-Length or by closing the connection. It records
    how many bytes it got out before the client hung up."""

    def __init__(self, status: int, content_type: str, size: int = BIG, *, framing: str = "content-length",
                 pace: float = 0.0, announce: int | None = None, prefix: bytes = b"", location: str = "",
                 searches: bool = True) -> None:
        self.status, self.content_type, self.size, self.framing = status, content_type, size, framing
        self.pace, self.announce, self.prefix, self.location, self.searches = pace, announce, prefix, location, searches
        self.sent: list[int] = []
        self.done = threading.Event()

    def __call__(self, h: http.server.BaseHTTPRequestHandler) -> None:
        if self.searches and "?" in h.path:
            _qido(h)
            return
        if h.path.endswith("/redirected"):
            h.send_response(200)
            h.send_header("Content-Type", "application/dicom+json")
            h.send_header("Content-Length", "2")
            h.end_headers()
            h.wfile.write(b"[]")
            return
        _drain_request(h)
        h.send_response(self.status)
        h.send_header("Content-Type", self.content_type)
        if self.location:
            h.send_header("Location", self.location)
        if self.framing == "content-length":
            h.send_header("Content-Length", str(self.announce if self.announce is not None else self.size))
        else:
            h.send_header("Connection", "close")
            h.close_connection = True
        h.end_headers()
        sent = 0
        try:
            if self.prefix:
                h.wfile.write(self.prefix)
                sent += len(self.prefix)
            while sent < self.size:
                n = min(len(CHUNK), self.size - sent)
                h.wfile.write(CHUNK if n == len(CHUNK) else CHUNK[:n])
                sent += n
                if self.pace:
                    time.sleep(self.pace)
            h.wfile.flush()
        except OSError:  # the client hung up: that is the point
            pass
        finally:
            self.sent.append(sent)
            self.done.set()


def _measured(fn: Callable[[], object]) -> tuple[PacsError, float, int]:
    """The ``PacsError`` ``fn`` raises, the seconds it took, and the peak of memory traced meanwhile."""
    tracemalloc.start()
    start = time.perf_counter()
    try:
        with pytest.raises(PacsError) as e:
            fn()
        elapsed = time.perf_counter() - start
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    err = e.value
    assert str(err).endswith((".", ")")), "a message is sentences"
    assert len(str(err)) < MAX_MESSAGE, f"a long message ({len(str(err))} characters): {str(err)[:300]}"
    return err, elapsed, peak


def _small_instance() -> Dataset:
    ds = Dataset()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.SOPClassUID = "1.2.840.10008.5.1.4.1.1.7"
    ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID = generate_uid()
    ds.file_meta.MediaStorageSOPClassUID = ds.SOPClassUID
    ds.StudyInstanceUID, ds.SeriesInstanceUID = STUDY, generate_uid()
    ds.PatientID, ds.Modality = "HOSTILE", "OT"
    return ds


# --- (1) multipart/related without a usable boundary ------------------------------------------

@pytest.mark.parametrize("content_type, words", [
    ('multipart/related; type="application/dicom"', "without a boundary"),
    ("multipart/related", "without a boundary"),
    ('multipart/related; type="application/dicom"; boundary=""', "malformed boundary"),
    ('multipart/related; type="application/dicom"; boundary="two words "', "malformed boundary"),
    ('multipart/related; type="application/dicom"; boundary="<script>"', "malformed boundary"),
    ('multipart/related; type="application/dicom"; boundary=' + "b" * 300, "malformed boundary"),
    ("text/html; charset=utf-8", "not multipart/related"),
])
def test_multipart_without_a_usable_boundary_is_a_typed_error(http_stub: Stub, tmp_path: Path, content_type: str,
                                                              words: str) -> None:
    flood = Flood(200, content_type, pace=0.02)  # 50 MB would take > 4 s: it must not be read
    client = PacsClient(ServerConfig("Hostile", http_stub(flood), timeout_s=10))
    err, elapsed, peak = _measured(lambda: client.retrieve(STUDY, tmp_path))
    assert isinstance(err, PacsMalformedAnswer) and err.kind == "malformed", err
    assert words in str(err) and "Hostile" in str(err)
    assert err.result is None
    assert elapsed < 2.0, f"{elapsed:.2f} s: the body was read"
    assert peak < 4 * MB, f"peak {peak / MB:.1f} MiB"
    assert flood.done.wait(10)
    assert flood.sent[0] < BIG // 2, "the client read the body"
    assert not [p for p in tmp_path.rglob("*") if p.is_file()]


def test_a_well_formed_multipart_still_parses_with_preamble_and_padding(orthanc: Orthanc, pacs_data: PacsData,
                                                                        http_stub: Stub, tmp_path: Path) -> None:
    """The bounded reader keeps what the library's did: a preamble, transport padding after the
    boundary, a quoted boundary, the close delimiter and an epilogue."""
    stow = pacs_data.studies["stow"]
    part = stow.files[0].read_bytes()
    body = (b"This is the preamble.\r\n--b:1=(x)?\t \r\nContent-Type: application/dicom\r\n\r\n" + part
            + b"\r\n--b:1=(x)?--\r\nepilogue\r\n")
    found = requests.get(f"{orthanc.dicomweb}/studies?StudyInstanceUID={stow.study_uid}&includefield=00201208",
                         timeout=10).json()
    found[0]["00201208"]["Value"] = [1]  # this answer holds one instance (other tests add results to the study)
    qido = json.dumps(found).encode()

    def answer(h: http.server.BaseHTTPRequestHandler) -> None:
        data, ctype = (qido, "application/dicom+json") if "?" in h.path else (
            body, 'multipart/related; type="application/dicom"; boundary="b:1=(x)?"')
        h.send_response(200)
        h.send_header("Content-Type", ctype)
        h.send_header("Content-Length", str(len(data)))
        h.end_headers()
        h.wfile.write(data)

    result = PacsClient(ServerConfig("Padded", http_stub(answer))).retrieve(stow.study_uid, tmp_path)
    assert result.complete and result.fetched == 1
    assert pydicom.dcmread(result.paths[0]).SOPInstanceUID == pydicom.dcmread(stow.files[0]).SOPInstanceUID


# --- (2) an error answer with a 50 MB body --------------------------------------------------

@pytest.mark.parametrize("framing", ["content-length", "connection-close"])
@pytest.mark.parametrize("call", ["search", "retrieve", "store"])
def test_a_huge_error_body_is_read_only_up_to_a_cap(http_stub: Stub, tmp_path: Path, call: str,
                                                    framing: str) -> None:
    flood = Flood(500, "text/html", framing=framing, pace=0.02, searches=call == "retrieve",
                  prefix=b"<html><body><h1>Internal Server Error</h1>" + b"<p>boom</p>" * 20)
    client = PacsClient(ServerConfig("Hostile", http_stub(flood), timeout_s=10))
    do = {"search": client.search_studies, "retrieve": lambda: client.retrieve(STUDY, tmp_path),
          "store": lambda: client.store([_small_instance()])}[call]
    err, elapsed, peak = _measured(do)
    assert err.kind == "server" and err.status == 500, err
    assert "HTTP 500" in str(err) and "Internal Server Error" in str(err)  # the body is quoted, cut short
    assert '..."' in str(err)
    assert elapsed < 2.0, f"{elapsed:.2f} s: the 50 MB body was read (it takes > 4 s to send)"
    assert peak < ERROR_BODY_BYTES * 16, f"peak {peak / MB:.2f} MiB for a {BIG // MB} MB body"
    assert flood.done.wait(10)
    assert flood.sent[0] < BIG // 2, f"the server got {flood.sent[0] / MB:.0f} MB out: the client drained it"
    print(f"\n{call}/{framing}: HTTP 500 with a {BIG // MB} MB body -> PacsError({err.kind!r}) in "
          f"{elapsed * 1000:.0f} ms, tracemalloc peak {peak / 1024:.0f} KiB, server sent "
          f"{flood.sent[0] / MB:.1f} MB before the client hung up, message {len(str(err))} characters")


def test_a_huge_error_body_at_full_speed_keeps_memory_bounded(http_stub: Stub) -> None:
    flood = Flood(503, "application/json", prefix=b'{"Message": "overloaded, go away"}', searches=False)
    client = PacsClient(ServerConfig("Hostile", http_stub(flood), timeout_s=10))
    err, elapsed, peak = _measured(client.search_studies)
    assert err.kind == "server" and err.status == 503
    assert peak < ERROR_BODY_BYTES * 16, f"peak {peak / MB:.2f} MiB"
    print(f"\nunpaced HTTP 503 with a {BIG // MB} MB body: {elapsed * 1000:.0f} ms, peak {peak / 1024:.0f} KiB")


def test_a_redirect_with_a_huge_body_is_not_drained(http_stub: Stub) -> None:
    flood = Flood(302, "text/html", pace=0.02, location="/dicom-web/redirected", searches=False)
    client = PacsClient(ServerConfig("Hostile", http_stub(flood), timeout_s=10))
    tracemalloc.start()
    start = time.perf_counter()
    try:
        assert client.search_studies() == []
        elapsed = time.perf_counter() - start
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert elapsed < 2.0 and peak < ERROR_BODY_BYTES * 16, (elapsed, peak)


# --- (3) answers larger than the ceiling ----------------------------------------------------

def test_default_ceiling() -> None:
    assert MAX_INSTANCE_BYTES == 2 * 1024**3


@pytest.mark.parametrize("call, content_type", [
    ("search", "application/dicom+json"),
    ("retrieve", "application/dicom"),
    ("store", "application/dicom+json"),
])
def test_a_content_length_over_the_ceiling_is_refused_before_reading(http_stub: Stub, tmp_path: Path, call: str,
                                                                     content_type: str) -> None:
    """The default ceiling (2 GiB for an instance, 64 MiB for a search or store answer): an answer
    that announces 3 GiB is refused from its headers; the server's first megabytes are not read."""
    announced = 3 * 1024**3
    flood = Flood(200, content_type, size=8 * MB, announce=announced, pace=0.02, searches=call == "retrieve")
    client = PacsClient(ServerConfig("Hostile", http_stub(flood), timeout_s=10))
    do = {"search": client.search_studies, "retrieve": lambda: client.retrieve(STUDY, tmp_path),
          "store": lambda: client.store([_small_instance()])}[call]
    err, elapsed, peak = _measured(do)
    assert isinstance(err, PacsAnswerTooLarge) and err.kind == "too_large", err
    assert err.size == announced and err.limit == (MAX_INSTANCE_BYTES if call == "retrieve" else 64 * MB)
    assert "announced 3.2 GB; nothing of it was read" in str(err) and "Hostile" in str(err)
    assert (INSTANCE_ENV in str(err)) == (call == "retrieve")
    assert elapsed < 1.0 and peak < 2 * MB, (elapsed, peak)
    assert not [p for p in tmp_path.rglob("*") if p.is_file()]


@pytest.mark.parametrize("framing", ["content-length", "connection-close"])
def test_a_streamed_instance_stops_at_the_ceiling(http_stub: Stub, tmp_path: Path, framing: str) -> None:
    """A multipart part that never ends (20 MB, no closing boundary) under a 1 MiB ceiling: the
    read stops at about the ceiling, whatever the Content-Length says of the whole answer."""
    head = b"--XyZ\r\nContent-Type: application/dicom\r\n\r\n"
    flood = Flood(200, 'multipart/related; type="application/dicom"; boundary=XyZ', size=20 * MB, prefix=head,
                  framing=framing)
    client = PacsClient(ServerConfig("Hostile", http_stub(flood), timeout_s=10), max_instance_bytes=MB)
    err, elapsed, peak = _measured(lambda: client.retrieve(STUDY, tmp_path))
    assert isinstance(err, PacsAnswerTooLarge) and err.limit == MB, err
    assert "reading stopped there" in str(err) and "1.0 MB" in str(err) and INSTANCE_ENV in str(err)
    assert err.size is not None and MB < err.size < 2 * MB
    assert peak < 6 * MB, f"peak {peak / MB:.1f} MiB"
    # the server got only part of the 20 MB out (loopback socket buffers hold up to ~14 MB of it here)
    assert flood.done.wait(10) and flood.sent[0] < 18 * MB
    assert not [p for p in tmp_path.rglob("*") if p.is_file()]
    print(f"\n{framing}: a 20 MB part under a 1 MiB ceiling -> too_large after {err.size / MB:.2f} MiB, "
          f"{elapsed * 1000:.0f} ms, peak {peak / MB:.2f} MiB")


def test_a_search_answer_without_length_stops_at_its_ceiling(http_stub: Stub) -> None:
    flood = Flood(200, "application/dicom+json", size=30 * MB, framing="connection-close", prefix=b'[{"x": "',
                  searches=False)
    client = PacsClient(ServerConfig("Hostile", http_stub(flood), timeout_s=10), max_instance_bytes=2 * MB)
    err, _, peak = _measured(client.search_studies)
    assert isinstance(err, PacsAnswerTooLarge) and err.limit == 2 * MB and err.size is None
    assert peak < 8 * MB, f"peak {peak / MB:.1f} MiB"


def test_the_ceiling_against_a_real_orthanc(orthanc: Orthanc, pacs_data: PacsData, tmp_path: Path,
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    """A real instance of 0.68 MB: refused under a 0.25 MiB ceiling (argument or environment),
    fetched under the default; an unusable environment value is an 'invalid' error."""
    stow = pacs_data.studies["stow"]
    size = stow.files[0].stat().st_size
    assert size > MB // 4
    err = pytest.raises(PacsAnswerTooLarge, PacsClient(orthanc.server(), max_instance_bytes=MB // 4).retrieve,
                        stow.study_uid, tmp_path / "a").value
    assert err.kind == "too_large" and err.result is None
    monkeypatch.setenv(INSTANCE_ENV, "0.25")
    err = pytest.raises(PacsAnswerTooLarge, PacsClient(orthanc.server()).retrieve, stow.study_uid, tmp_path / "b").value
    assert err.limit == MB // 4
    assert not [p for p in tmp_path.rglob("*.dcm")]
    monkeypatch.setenv(INSTANCE_ENV, "lots")
    err = pytest.raises(PacsError, PacsClient, orthanc.server()).value
    assert err.kind == "invalid" and INSTANCE_ENV in str(err)
    monkeypatch.delenv(INSTANCE_ENV)
    result = PacsClient(orthanc.server()).retrieve(stow.study_uid, tmp_path / "c")
    assert result.complete and result.fetched == result.expected >= 1  # other tests may add results to it
