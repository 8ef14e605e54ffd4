"""A real Orthanc (Debian's ``orthanc`` + ``orthanc-dicomweb``) for the PACS tests.

``orthanc`` starts one per test session on free localhost ports with a generated configuration
and a temporary storage folder, loads the shared DICOM fixtures (../shared/data/dicom) and a few
studies derived from them (the same pixel data under new UIDs, so a study holds several series
and instances) through its REST API, and stops it afterwards. ``orthanc_auth`` is a second one
with HTTP authentication and a Lua filter that makes the 'reader' account read-only (HTTP 403
on a store). Without Orthanc the tests skip, saying why, unless RADLENS_REQUIRE_PACS=1 (CI),
which makes them fail instead.

Also here: small local servers for the failures a real PACS gives rarely on demand: one that
accepts and never answers (timeout), one that answers junk (malformed), and one that cuts a
WADO-RS answer short (partial)."""

from __future__ import annotations

import http.server
import json
import os
import shutil
import socket
import ssl
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pydicom
import pytest
import requests
from pydicom.uid import ImplicitVRLittleEndian, generate_uid

from engine.pacs.servers import ServerConfig

PLUGIN = Path("/usr/share/orthanc/plugins/libOrthancDicomWeb.so")
REQUIRE = os.environ.get("RADLENS_REQUIRE_PACS") == "1"
AUTH_USERS = {"radlens": "correct-horse-battery", "reader": "read-only-pass"}
RECEIVER_AE = "RADLENS"
ORTHANC_AE = "RLTESTPACS"  # the test Orthanc's own AE title: the calling AE title of its pushes

# Studies derived from the shared fixtures: (key, patient ID, name, accession, date, series: [[files]])
DERIVED = {
    "multi": ("RLTEST-MULTI", "Radlens^Multi", "RLACC0001", "20240115",
              [["CR-MONO1-10-chest.dcm", "RG1_J2KI.dcm"], ["nccid_nih_dx.dcm"],
               ["RG2_JPLY.dcm", "CR-ModalitySequenceLUT.dcm"]]),
    "stow": ("RLTEST-STOW", "Radlens^Stow", "RLACC0002", "20240116", [["RG1_J2KI.dcm"]]),
    "clistow": ("RLTEST-CLISTOW", "Radlens^Clistow", "RLACC0003", "20240117", [["nccid_nih_dx.dcm"]]),
}


def _missing(reason: str) -> None:
    if REQUIRE:
        pytest.fail(f"RADLENS_REQUIRE_PACS=1 but {reason}")
    pytest.skip(reason)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class DerivedStudy:
    study_uid: str
    series_uids: list[str]
    files: list[Path]  # the derived files, as uploaded
    patient_id: str
    patient_name: str
    accession: str
    date: str


@dataclass
class PacsData:
    fixtures: list[Path]  # the shared fixtures, as uploaded
    studies: dict[str, DerivedStudy]


def _derive(dicom_dir: Path, out: Path) -> dict[str, DerivedStudy]:
    """Studies with several series and instances: the shared fixtures' pixel data and headers
    under new, deterministic UIDs and patient/study attributes."""
    studies = {}
    for key, (pid, name, acc, date, series) in DERIVED.items():
        study_uid = generate_uid(entropy_srcs=["radlens-test", key])
        series_uids, files = [], []
        for s_no, names in enumerate(series, 1):
            series_uid = generate_uid(entropy_srcs=["radlens-test", key, str(s_no)])
            series_uids.append(series_uid)
            for i_no, src in enumerate(names, 1):
                ds = pydicom.dcmread(dicom_dir / src, force=True)
                if "TransferSyntaxUID" not in ds.file_meta:
                    ds.file_meta.TransferSyntaxUID = ImplicitVRLittleEndian
                ds.StudyInstanceUID, ds.SeriesInstanceUID = study_uid, series_uid
                ds.SOPInstanceUID = generate_uid(entropy_srcs=["radlens-test", key, str(s_no), src])
                ds.PatientID, ds.PatientName, ds.AccessionNumber, ds.StudyDate = pid, name, acc, date
                ds.SeriesNumber, ds.InstanceNumber = s_no, i_no
                path = out / key / f"{ds.SOPInstanceUID}.dcm"
                path.parent.mkdir(parents=True, exist_ok=True)
                ds.save_as(path, enforce_file_format=True)
                files.append(path)
        studies[key] = DerivedStudy(study_uid, series_uids, files, pid, name, acc, date)
    return studies


class Orthanc:
    """One Orthanc process with a generated configuration in ``root``."""

    def __init__(self, root: Path, name: str, *, users: dict[str, str] | None = None,
                 modalities: dict[str, list[object]] | None = None, lua: str = "") -> None:
        exe = shutil.which("Orthanc") or ("/usr/sbin/Orthanc" if Path("/usr/sbin/Orthanc").exists() else None)
        if exe is None:
            _missing("Orthanc is not installed (apt-get install orthanc orthanc-dicomweb)")
        if not PLUGIN.exists():
            _missing(f"the Orthanc DICOMweb plugin is not installed ({PLUGIN}; apt-get install orthanc-dicomweb)")
        self.root = root
        self.http_port, self.dicom_port = free_port(), free_port()
        self.users = users or {}
        storage = root / "storage"
        storage.mkdir(parents=True)
        config = {
            "Name": name, "DicomAet": name.upper()[:16], "StorageDirectory": str(storage),
            "IndexDirectory": str(storage), "HttpPort": self.http_port, "DicomPort": self.dicom_port,
            "RemoteAccessAllowed": False, "AuthenticationEnabled": bool(self.users),
            "RegisteredUsers": self.users, "Plugins": [str(PLUGIN)],
            "DicomWeb": {"Enable": True, "Root": "/dicom-web/"}, "DicomModalities": modalities or {},
            "HttpServerThreads": 8, "DicomScuTimeout": 5, "StableAge": 1, "ConcurrentJobs": 1,
        }
        if lua:
            (root / "filter.lua").write_text(lua)
            config["LuaScripts"] = [str(root / "filter.lua")]
        (root / "orthanc.json").write_text(json.dumps(config, indent=2))
        self.log = root / "orthanc.log"
        with open(self.log, "wb") as log:
            self.proc = subprocess.Popen([exe, str(root / "orthanc.json")], stdout=log, stderr=subprocess.STDOUT)
        _RUNNING.append(self)
        self.url = f"http://127.0.0.1:{self.http_port}"
        self.dicomweb = f"{self.url}/dicom-web"
        self.session = requests.Session()
        if self.users:
            self.session.auth = next(iter(self.users.items()))
        deadline = time.monotonic() + 30
        while True:
            if self.proc.poll() is not None:
                pytest.fail(f"Orthanc exited at start (status {self.proc.returncode}):\n{self.log.read_text()[-2000:]}")
            try:
                if self.session.get(f"{self.url}/system", timeout=1).ok:
                    break
            except requests.ConnectionError:
                pass
            if time.monotonic() > deadline:
                self.stop()
                pytest.fail(f"Orthanc did not answer /system within 30 s:\n{self.log.read_text()[-2000:]}")
            time.sleep(0.1)

    def upload(self, path: Path) -> str:
        r = self.session.post(f"{self.url}/instances", data=path.read_bytes(), timeout=30)
        assert r.ok, f"upload of {path.name} failed: {r.status_code} {r.text[:200]}"
        return str(r.json()["ID"])

    def server(self, **kw: object) -> ServerConfig:
        return ServerConfig(name=f"Orthanc {self.http_port}", url=self.dicomweb, **kw)  # type: ignore[arg-type]

    def stop(self) -> None:
        """Stop this Orthanc and every other one still running: each takes about 3 s to shut
        down, so they are all told at once (terminate; kill after 10 s)."""
        self.session.close()
        running = [o for o in _RUNNING if o.proc.poll() is None]
        for o in running:
            o.proc.terminate()
        for o in running:
            try:
                o.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                o.proc.kill()
                o.proc.wait(timeout=10)
        self.proc.wait(timeout=10)


_RUNNING: list[Orthanc] = []


@pytest.fixture(scope="session")
def pacs_data(tmp_path_factory: pytest.TempPathFactory, dicom_dir: Path) -> PacsData:
    fixtures = sorted(dicom_dir.glob("*.dcm"))
    return PacsData(fixtures, _derive(dicom_dir, tmp_path_factory.mktemp("derived")))


@pytest.fixture(scope="session")
def receiver_port() -> int:
    """The port the RadLens receiver listens on in the push test (Orthanc knows it as 'radlens')."""
    return free_port()


@pytest.fixture(scope="session")
def orthanc(tmp_path_factory: pytest.TempPathFactory, pacs_data: PacsData, receiver_port: int) -> Iterator[Orthanc]:
    server = Orthanc(tmp_path_factory.mktemp("orthanc"), ORTHANC_AE,
                     modalities={"radlens": [RECEIVER_AE, "127.0.0.1", receiver_port]})
    try:
        for path in pacs_data.fixtures + [f for s in pacs_data.studies.values() for f in s.files]:
            server.upload(path)
        yield server
    finally:
        server.stop()


FORBID_READER_WRITES = """
function IncomingHttpRequestFilter(method, uri, ip, username, httpHeaders)
  -- the 'reader' account may search and retrieve, never store or delete (HTTP 403)
  if username == 'reader' and method ~= 'GET' then
    return false
  end
  return true
end
"""


@pytest.fixture(scope="session")
def orthanc_auth(tmp_path_factory: pytest.TempPathFactory, pacs_data: PacsData) -> Iterator[Orthanc]:
    server = Orthanc(tmp_path_factory.mktemp("orthanc-auth"), "RLTESTAUTH", users=AUTH_USERS,
                     lua=FORBID_READER_WRITES)
    try:
        server.upload(pacs_data.studies["stow"].files[0])
        yield server
    finally:
        server.stop()


# --- local servers for failures ------------------------------------------------------------------

@pytest.fixture
def silent_server() -> Iterator[str]:
    """A URL whose server accepts connections and never answers (for timeouts)."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(8)
    listener.settimeout(0.2)
    held: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        while not stop.is_set():
            try:
                conn, _ = listener.accept()
                held.append(conn)
            except OSError:
                continue

    t = threading.Thread(target=accept, daemon=True)
    t.start()
    yield f"http://127.0.0.1:{listener.getsockname()[1]}/dicom-web"
    stop.set()
    t.join(timeout=2)
    for c in held:
        c.close()
    listener.close()


Handler = Callable[[http.server.BaseHTTPRequestHandler], None]


@pytest.fixture
def http_stub() -> Iterator[Callable[[Handler], str]]:
    """``start(handler, tls=None)`` serves every GET/POST with ``handler(request)`` on a free port
    (HTTPS with an ``ssl.SSLContext``); returns the DICOMweb URL. Used for answers a real server
    gives only when broken."""
    servers: list[http.server.ThreadingHTTPServer] = []

    def start(handler: Handler, tls: ssl.SSLContext | None = None) -> str:
        class H(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_GET(self) -> None:  # noqa: N802
                handler(self)

            do_POST = do_GET  # noqa: N815

            def log_message(self, *a: object) -> None:
                pass

        srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), H)
        srv.daemon_threads = True
        if tls is not None:
            srv.socket = tls.wrap_socket(srv.socket, server_side=True)
        threading.Thread(target=srv.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
        servers.append(srv)
        return f"{'https' if tls else 'http'}://127.0.0.1:{srv.server_address[1]}/dicom-web"

    yield start
    for srv in servers:
        srv.shutdown()
        srv.server_close()
