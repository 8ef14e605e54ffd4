"""Every failure a PACS gives is a PacsError of the right kind with a message that says what to
do; a retrieve that fails or is cancelled part-way leaves no half-written file, lists what it
fetched, and leaves what was in the cache before untouched."""

from __future__ import annotations

import http.server
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pydicom
import pytest
import requests
from conftest import AUTH_USERS, Orthanc, PacsData, free_port  # tests/pacs/conftest.py

from engine.pacs.cache import leftover_parts
from engine.pacs.dicomweb import PacsClient, PacsError
from engine.pacs.servers import ServerConfig

Stub = Callable[[Callable[[http.server.BaseHTTPRequestHandler], None]], str]


def _kind(fn: Callable[[], object]) -> PacsError:
    with pytest.raises(PacsError) as e:
        fn()
    assert str(e.value).endswith((".", ")")), "a message is sentences"
    return e.value


def _snapshot(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.fixture
def earlier_cache(tmp_path: Path, orthanc: Orthanc, pacs_data: PacsData) -> tuple[Path, dict[str, bytes]]:
    """A cache that already holds a retrieved study and a file from earlier work in the study
    that is about to be retrieved again."""
    cache = tmp_path / "cache"
    with PacsClient(orthanc.server()) as c:
        c.retrieve(pacs_data.studies["stow"].study_uid, cache)
    multi = cache / pacs_data.studies["multi"].study_uid
    multi.mkdir(parents=True)
    (multi / "1.2.3.4.5.6.7.8.9.dcm").write_bytes(pacs_data.studies["multi"].files[2].read_bytes())
    return cache, _snapshot(cache)


def test_server_down(tmp_path: Path, pacs_data: PacsData) -> None:
    client = PacsClient(ServerConfig("Down", f"http://127.0.0.1:{free_port()}/dicom-web", timeout_s=5))
    ds = pydicom.dcmread(pacs_data.studies["multi"].files[0])
    start = time.perf_counter()
    for call in (client.search_studies, lambda: client.retrieve("1.2.3", tmp_path), lambda: client.store([ds])):
        err = _kind(call)
        assert err.kind == "unreachable", err
        assert "Cannot reach Down" in str(err) and "server is running" in str(err)
    assert time.perf_counter() - start < 5, "no retry back-off on a refused connection"
    assert not [p for p in tmp_path.rglob("*") if p.is_file()]


def test_timeout_is_bounded(silent_server: str) -> None:
    client = PacsClient(ServerConfig("Silent", silent_server, timeout_s=0.5))
    start = time.perf_counter()
    err = _kind(client.search_studies)
    elapsed = time.perf_counter() - start
    assert err.kind == "timeout" and "did not answer within 0.5 s" in str(err) and "raise the timeout" in str(err)
    assert elapsed < 3, f"the timeout took {elapsed:.1f} s"


def test_401_wrong_password_and_no_password(orthanc_auth: Orthanc, pacs_data: PacsData) -> None:
    server = orthanc_auth.server(auth="basic", username="radlens")
    err = _kind(lambda: PacsClient(server, "wrong-password").search_studies())
    assert err.kind == "unauthorized" and err.status == 401
    assert "user name (radlens) and password" in str(err)
    assert _kind(lambda: PacsClient(server, None)).kind == "unauthorized"  # asked for, never sent empty
    (found,) = PacsClient(server, AUTH_USERS["radlens"]).search_studies()
    assert found.study_uid == pacs_data.studies["stow"].study_uid
    token = orthanc_auth.server(auth="bearer")
    assert _kind(lambda: PacsClient(token, "not-a-token").search_studies()).kind == "unauthorized"


def test_403_read_only_account_cannot_store(orthanc_auth: Orthanc, pacs_data: PacsData) -> None:
    reader = PacsClient(orthanc_auth.server(auth="basic", username="reader"), AUTH_USERS["reader"])
    assert len(reader.search_studies()) == 1  # it may read
    ds = pydicom.dcmread(pacs_data.studies["multi"].files[0])
    err = _kind(lambda: reader.store([ds]))
    assert err.kind == "forbidden" and err.status == 403 and "Ask the PACS administrator" in str(err)
    assert "0 instance(s) were stored before this" in str(err)


def test_404_unknown_study_and_wrong_root(orthanc: Orthanc, tmp_path: Path) -> None:
    client = PacsClient(orthanc.server())
    err = _kind(lambda: client.retrieve("1.2.826.0.1.3680043.8.498.1", tmp_path))
    assert err.kind == "not_found" and "has no study 1.2.826.0.1.3680043.8.498.1" in str(err)
    wrong_root = PacsClient(ServerConfig("Wrong", f"{orthanc.url}/not-dicom-web"))
    err = _kind(wrong_root.search_studies)
    assert err.kind == "not_found" and err.status == 404 and "is the DICOMweb root" in str(err)
    assert not list(tmp_path.rglob("*.dcm"))


@pytest.mark.parametrize("body, content_type", [
    (b"{this is not json", "application/dicom+json"),
    (b'[{"00100010": "not an element"}]', "application/dicom+json"),
    (b"<html><body>Login page</body></html>", "text/html"),
])
def test_malformed_search_answer(http_stub: Stub, body: bytes, content_type: str) -> None:
    def answer(h: http.server.BaseHTTPRequestHandler) -> None:
        h.send_response(200)
        h.send_header("Content-Type", content_type)
        h.send_header("Content-Length", str(len(body)))
        h.end_headers()
        h.wfile.write(body)

    err = _kind(PacsClient(ServerConfig("Junk", http_stub(answer))).search_studies)
    assert err.kind == "malformed" and "Junk" in str(err)


def _recorded(orthanc: Orthanc, study_uid: str) -> tuple[bytes, bytes, str]:
    """Orthanc's real QIDO answer and WADO-RS multipart answer for a study."""
    qido = requests.get(f"{orthanc.dicomweb}/studies?StudyInstanceUID={study_uid}&includefield=00201208", timeout=10)
    wado = requests.get(f"{orthanc.dicomweb}/studies/{study_uid}", timeout=10,
                        headers={"Accept": 'multipart/related; type="application/dicom"; transfer-syntax=*'})
    assert qido.ok and wado.ok
    return qido.content, wado.content, wado.headers["Content-Type"]


def _replay(qido: bytes, body: bytes, ctype: str, cut: int, announce_full: bool):
    def answer(h: http.server.BaseHTTPRequestHandler) -> None:
        is_search = "?" in h.path
        data = qido if is_search else body[:cut]
        h.send_response(200)
        h.send_header("Content-Type", "application/dicom+json" if is_search else ctype)
        if is_search or announce_full:
            h.send_header("Content-Length", str(len(qido) if is_search else len(body)))
        else:
            h.send_header("Connection", "close")
        h.end_headers()
        h.wfile.write(data)
        h.wfile.flush()
        if not is_search:
            h.close_connection = True
    return answer


@pytest.mark.parametrize("announce_full", [True, False], ids=["content-length", "connection-close"])
def test_partial_retrieve_when_the_server_drops_mid_multipart(
        orthanc: Orthanc, pacs_data: PacsData, http_stub: Stub, earlier_cache: tuple[Path, dict[str, bytes]],
        announce_full: bool) -> None:
    cache, before = earlier_cache
    multi = pacs_data.studies["multi"]
    qido, body, ctype = _recorded(orthanc, multi.study_uid)
    client = PacsClient(ServerConfig("Dropping", http_stub(_replay(qido, body, ctype, int(len(body) * 0.6),
                                                                   announce_full))))
    err = _kind(lambda: client.retrieve(multi.study_uid, cache))
    assert err.kind == "partial", err
    result = err.result
    assert result is not None and not result.complete and 1 <= result.fetched < 5
    assert f"{result.fetched} of 5 instance(s)" in str(err) and "retrieve again" in str(err)
    folder = cache / multi.study_uid
    assert leftover_parts(folder) == []
    for p in result.paths:  # what it kept is whole
        assert p.parent == folder and pydicom.dcmread(p).PixelData
    after = _snapshot(cache)
    assert {k: v for k, v in after.items() if k in before} == before, "earlier cache content changed"
    assert set(after) - set(before) == {str(p.relative_to(cache)) for p in result.paths}


def test_cancel_mid_way_keeps_what_was_fetched(orthanc: Orthanc, pacs_data: PacsData,
                                               earlier_cache: tuple[Path, dict[str, bytes]]) -> None:
    cache, before = earlier_cache
    multi = pacs_data.studies["multi"]
    cancel = threading.Event()

    def progress(done: int, total: int | None) -> None:
        if done == 2:
            cancel.set()

    err = _kind(lambda: PacsClient(orthanc.server()).retrieve(multi.study_uid, cache, progress=progress,
                                                              cancel=cancel))
    assert err.kind == "cancelled" and "2 of 5 instance(s)" in str(err)
    assert err.result is not None and err.result.fetched == 2 and not err.result.complete
    assert leftover_parts(cache / multi.study_uid) == []
    after = _snapshot(cache)
    assert {k: v for k, v in after.items() if k in before} == before
    assert len(after) == len(before) + 2
    cancel_first = threading.Event()
    cancel_first.set()
    err = _kind(lambda: PacsClient(orthanc.server()).retrieve(multi.study_uid, cache, cancel=cancel_first))
    assert err.kind == "cancelled" and "nothing was fetched" in str(err)


def test_a_junk_multipart_part_is_malformed(http_stub: Stub, orthanc: Orthanc, pacs_data: PacsData,
                                           tmp_path: Path) -> None:
    multi = pacs_data.studies["multi"]
    qido, _, _ = _recorded(orthanc, multi.study_uid)
    junk = b"--XyZ\r\nContent-Type: application/dicom\r\n\r\nthis is not DICOM at all\r\n--XyZ--\r\n"
    client = PacsClient(ServerConfig("Junk", http_stub(_replay(qido, junk, 'multipart/related; '
                                                                'type="application/dicom"; boundary=XyZ',
                                                                len(junk), True))))
    err = _kind(lambda: client.retrieve(multi.study_uid, tmp_path))
    assert err.kind == "malformed"
    assert not [p for p in tmp_path.rglob("*") if p.is_file()]



def test_tls_is_verified_by_default(http_stub: Stub, tmp_path: Path) -> None:
    import shutil
    import ssl
    import subprocess

    if shutil.which("openssl") is None:
        pytest.skip("openssl is needed to make a self-signed certificate")
    key, cert = tmp_path / "key.pem", tmp_path / "cert.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=127.0.0.1",
                    "-keyout", str(key), "-out", str(cert)], check=True, capture_output=True)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)

    def answer(h: http.server.BaseHTTPRequestHandler) -> None:
        h.send_response(200)
        h.send_header("Content-Type", "application/dicom+json")
        h.send_header("Content-Length", "2")
        h.end_headers()
        h.wfile.write(b"[]")

    url = http_stub(answer, context)  # type: ignore[call-arg]
    assert url.startswith("https://")
    err = _kind(PacsClient(ServerConfig("Self-signed", url, timeout_s=5)).search_studies)
    assert err.kind == "unreachable" and "TLS certificate" in str(err) and "CA certificate" in str(err)
    assert PacsClient(ServerConfig("Self-signed", url, verify_tls=False, timeout_s=5)).search_studies() == []


def test_temp_files_of_a_killed_process_are_cleaned_up(orthanc: Orthanc, pacs_data: PacsData, tmp_path: Path) -> None:
    import os

    stow = pacs_data.studies["stow"]
    folder = tmp_path / stow.study_uid
    folder.mkdir()
    stale, fresh = folder / ".1.2.3.dead.part", folder / ".1.2.4.busy.part"
    stale.write_bytes(b"half a file")
    fresh.write_bytes(b"another process is writing this")
    os.utime(stale, (time.time() - 7200, time.time() - 7200))
    PacsClient(orthanc.server()).retrieve(stow.study_uid, tmp_path)
    assert not stale.exists() and fresh.exists()


def test_cancel_is_seen_within_a_large_instance(orthanc: Orthanc, pacs_data: PacsData, http_stub: Stub,
                                                tmp_path: Path) -> None:
    """A slow link (the real answer sent at about 1 MB/s): a cancel does not wait for the
    instance being received to finish."""
    multi = pacs_data.studies["multi"]
    qido, body, ctype = _recorded(orthanc, multi.study_uid)

    def slow(h: http.server.BaseHTTPRequestHandler) -> None:
        if "?" in h.path:
            _replay(qido, body, ctype, len(body), True)(h)
            return
        h.send_response(200)
        h.send_header("Content-Type", ctype)
        h.send_header("Content-Length", str(len(body)))
        h.end_headers()
        try:
            for i in range(0, len(body), 32768):
                h.wfile.write(body[i:i + 32768])
                h.wfile.flush()
                time.sleep(0.03)
        except OSError:  # the client hung up: that is the point
            pass

    cancel = threading.Event()
    threading.Timer(0.4, cancel.set).start()
    start = time.perf_counter()
    err = _kind(lambda: PacsClient(ServerConfig("Slow", http_stub(slow))).retrieve(multi.study_uid, tmp_path,
                                                                                    cancel=cancel))
    elapsed = time.perf_counter() - start
    assert err.kind == "cancelled" and err.result is not None and err.result.fetched < 5
    assert elapsed < 1.5, f"the cancel took {elapsed - 0.4:.2f} s to be seen (the whole answer takes ~4 s)"
    print(f"\ncancel seen {elapsed - 0.4:.3f} s after it was set")
    assert leftover_parts(tmp_path / multi.study_uid) == []
    assert f"{err.result.fetched} of 5 instance(s)" in str(err)
