"""The C-STORE receiver: Orthanc (a real PACS) echoes it and pushes a study to it."""

from __future__ import annotations

import socket
import threading
from pathlib import Path

import pydicom
import pytest
from conftest import ORTHANC_AE, RECEIVER_AE, Orthanc, PacsData  # tests/pacs/conftest.py

from engine.pacs.cache import leftover_parts
from engine.pacs.receiver import Peer, ReceiverError, StoreReceiver

ORTHANC = Peer(ORTHANC_AE, "127.0.0.1")  # the allowed sender: the test Orthanc, on this computer


def _orthanc_id(orthanc: Orthanc, study_uid: str) -> str:
    r = orthanc.session.post(f"{orthanc.url}/tools/lookup", data=study_uid, timeout=10)
    return str(r.json()[0]["ID"])


def test_orthanc_echoes_and_pushes_a_study(orthanc: Orthanc, pacs_data: PacsData, receiver_port: int,
                                           tmp_path: Path) -> None:
    multi = pacs_data.studies["multi"]
    got: list[tuple[Path, str]] = []
    lock = threading.Lock()

    def on_received(path: Path, study_uid: str) -> None:
        assert path.is_file()  # complete when announced
        with lock:
            got.append((path, study_uid))

    with StoreReceiver(RECEIVER_AE, receiver_port, tmp_path, on_received, host="127.0.0.1", peers=[ORTHANC]) as rx:
        assert rx.running and rx.address == ("127.0.0.1", receiver_port)
        echo = orthanc.session.post(f"{orthanc.url}/modalities/radlens/echo", data="{}", timeout=10)
        assert echo.ok, echo.text
        assert rx.echoes == 1
        push = orthanc.session.post(f"{orthanc.url}/modalities/radlens/store", timeout=60,
                                    json={"Resources": [_orthanc_id(orthanc, multi.study_uid)], "Synchronous": True})
        assert push.ok, push.text
        assert rx.received == 5 and rx.refused == 0 and rx.rejected == 0
    assert not rx.running
    folder = tmp_path / multi.study_uid
    assert sorted(p.name for p in folder.iterdir()) == sorted(f.name for f in multi.files)
    assert leftover_parts(folder) == []
    assert sorted(got) == sorted((folder / f.name, multi.study_uid) for f in multi.files)
    for src in multi.files:  # every instance whole, in the transfer syntax it was stored in
        a, b = pydicom.dcmread(src), pydicom.dcmread(folder / src.name)
        assert a.PixelData == b.PixelData and a.SOPInstanceUID == b.SOPInstanceUID
        assert b.file_meta.MediaStorageSOPInstanceUID == a.SOPInstanceUID


def test_a_push_to_another_ae_title_is_refused(orthanc: Orthanc, receiver_port: int, tmp_path: Path) -> None:
    with StoreReceiver("NOTRADLENS", receiver_port, tmp_path, host="127.0.0.1", accept_any=True) as rx:
        echo = orthanc.session.post(f"{orthanc.url}/modalities/radlens/echo", data="{}", timeout=10)
        assert not echo.ok  # the association is rejected: Orthanc calls AE RADLENS
        assert rx.echoes == 0
    assert not any(tmp_path.iterdir())


def test_bad_settings_and_a_busy_port_are_clear_errors(tmp_path: Path) -> None:
    with pytest.raises(ReceiverError, match="AE title"):
        StoreReceiver("A" * 17, 11112, tmp_path)
    with pytest.raises(ReceiverError, match="port"):
        StoreReceiver("RADLENS", 70000, tmp_path)
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen(1)
        port = busy.getsockname()[1]
        rx = StoreReceiver("RADLENS", port, tmp_path, host="127.0.0.1")
        with pytest.raises(ReceiverError, match=f"Cannot listen on port {port}"):
            rx.start()
        assert not rx.running


TESTPACS = Peer("TESTPACS")  # the calling AE title of ``_push``, from any address


def _push(port: int, ds: pydicom.Dataset) -> int:
    """C-STORE ``ds`` to RadLens's receiver with pynetdicom (as a PACS would); the status."""
    from pynetdicom import AE

    ae = AE(ae_title="TESTPACS")
    ae.add_requested_context(ds.SOPClassUID, ds.file_meta.TransferSyntaxUID)
    assoc = ae.associate("127.0.0.1", port, ae_title=RECEIVER_AE)
    assert assoc.is_established
    try:
        return int(assoc.send_c_store(ds).Status)
    finally:
        assoc.release()


def test_a_push_is_refused_when_the_disk_is_nearly_full_and_a_hostile_uid_never_leaves_the_cache(
        tmp_path: Path, dicom_dir: Path) -> None:
    import shutil

    cache = tmp_path / "cache"
    ds = pydicom.dcmread(dicom_dir / "nccid_nih_dx.dcm")
    free = shutil.disk_usage(tmp_path).free
    with StoreReceiver(RECEIVER_AE, 0, cache, host="127.0.0.1", peers=[TESTPACS], min_free_bytes=free * 2) as rx:
        assert _push(rx.address[1], ds) == 0xA700  # Out of Resources: the PACS keeps it and may retry
        assert rx.refused == 1 and not list(cache.rglob("*.dcm")) and not list(cache.rglob(".*"))
    with StoreReceiver(RECEIVER_AE, 0, cache, host="127.0.0.1", peers=[TESTPACS]) as rx:
        assert _push(rx.address[1], ds) == 0x0000
        hostile = pydicom.dcmread(dicom_dir / "nccid_nih_dx.dcm")
        hostile.StudyInstanceUID = "../../escaped"
        assert _push(rx.address[1], hostile) == 0xC000
    assert [p.relative_to(cache).parts[0] for p in cache.rglob("*.dcm")] == [ds.StudyInstanceUID]
    assert not (tmp_path / "escaped").exists() and not list(tmp_path.parent.glob("escaped*"))
