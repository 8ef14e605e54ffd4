"""Retrieve speed from a real Orthanc: ``PacsClient.retrieve`` (parse, check and write each
instance atomically into the cache) against a bare download of the same WADO-RS answer.

    python bench/bench_pacs.py [N]       # N instances in one study (default 100)

Needs Debian's orthanc and orthanc-dicomweb and ../shared/data/dicom. Prints MB/s and the ratio."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pydicom
import requests
from pydicom.uid import generate_uid

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from engine.pacs.dicomweb import PacsClient  # noqa: E402
from engine.pacs.servers import ServerConfig  # noqa: E402

DICOM = Path(__file__).resolve().parents[2] / "shared" / "data" / "dicom"
SOURCES = ["nccid_nih_dx.dcm", "RG1_J2KI.dcm", "CR-MONO1-10-chest.dcm"]  # uncompressed, JPEG 2000, no preamble


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def main(n: int) -> None:
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        port = free_port()
        cfg = {"StorageDirectory": str(tmp / "db"), "IndexDirectory": str(tmp / "db"), "HttpPort": port,
               "DicomPort": free_port(), "RemoteAccessAllowed": False, "AuthenticationEnabled": False,
               "Plugins": ["/usr/share/orthanc/plugins/libOrthancDicomWeb.so"], "DicomWeb": {"Enable": True}}
        (tmp / "orthanc.json").write_text(json.dumps(cfg))
        proc = subprocess.Popen(["Orthanc", str(tmp / "orthanc.json")], stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL)
        url = f"http://127.0.0.1:{port}"
        try:
            for _ in range(100):
                try:
                    if requests.get(f"{url}/system", timeout=1).ok:
                        break
                except requests.ConnectionError:
                    time.sleep(0.1)
            study = generate_uid()
            for i in range(n):
                ds = pydicom.dcmread(DICOM / SOURCES[i % len(SOURCES)], force=True)
                if "TransferSyntaxUID" not in ds.file_meta:
                    ds.file_meta.TransferSyntaxUID = pydicom.uid.ImplicitVRLittleEndian
                ds.StudyInstanceUID, ds.SeriesInstanceUID, ds.SOPInstanceUID = study, study + ".1", generate_uid()
                ds.PatientID, ds.PatientName = "BENCH", "Bench^Retrieve"  # one patient: Orthanc keys studies by both
                path = tmp / "in.dcm"
                ds.save_as(path, enforce_file_format=True)
                requests.post(f"{url}/instances", data=path.read_bytes(), timeout=30).raise_for_status()

            start = time.perf_counter()
            raw = requests.get(f"{url}/dicom-web/studies/{study}", stream=True, timeout=60, headers={
                "Accept": 'multipart/related; type="application/dicom"; transfer-syntax=*'})
            size = sum(len(c) for c in raw.iter_content(1 << 20))
            t_raw = time.perf_counter() - start

            client = PacsClient(ServerConfig("bench", f"{url}/dicom-web", timeout_s=60))
            start = time.perf_counter()
            result = client.retrieve(study, tmp / "cache")
            t_ours = time.perf_counter() - start
            assert result.complete and result.fetched == n

            start = time.perf_counter()
            found = client.search_studies(patient_id=str(ds.PatientID))
            t_search = time.perf_counter() - start
        finally:
            proc.terminate()
            proc.wait(timeout=20)
    mb = size / 1e6
    print(f"{n} instances, {mb:.1f} MB in one study (Orthanc {url}, localhost)")
    print(f"bare download of the WADO-RS answer : {t_raw:6.2f} s  {mb / t_raw:7.1f} MB/s")
    print(f"PacsClient.retrieve into the cache  : {t_ours:6.2f} s  {mb / t_ours:7.1f} MB/s "
          f"({n / t_ours:.0f} instances/s)")
    print(f"ratio retrieve / bare download      : {t_ours / t_raw:.2f}x the time")
    print(f"QIDO study search ({len(found)} hit)         : {t_search * 1000:.0f} ms")


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 100)
