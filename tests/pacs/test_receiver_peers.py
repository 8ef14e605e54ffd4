"""Who may push to the C-STORE receiver, where it listens, and whether it shows (issue 24, item 1).

Real pynetdicom associations against the real receiver, on this computer: an allowed peer's
C-STORE is stored; an unknown calling AE title and a known one from the wrong address
(127.0.0.2, the loopback's second address) are rejected and logged; "accept any caller"
accepts them; the listening address is the one asked for. In the window (pytest-qt,
offscreen): the status-bar indicator while it listens, gone when it stops; no start at launch
unless "Start the receiver when RadLens starts" is on (and then the status bar says so); the
settings dialog checks the address and the senders, and a running receiver takes new ones."""

from __future__ import annotations

import os

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")  # before anything imports Qt

import logging
import socket
from collections.abc import Callable, Iterator
from pathlib import Path

import pydicom
import pytest
from conftest import free_port  # tests/pacs/conftest.py
from pynetdicom import AE
from pynetdicom.sop_class import Verification  # type: ignore[attr-defined]

from desktop.core.pacs_text import (
    NO_PEERS_TEXT,
    NOT_RESTARTED_TEXT,
    peer_problem,
    receiver_indicator_text,
    receiver_indicator_tooltip,
)
from engine.pacs.receiver import Peer, ReceiverError, StoreReceiver, check_bind_address, parse_host

RADLENS = "RADLENS"
PACS = "TESTPACS"
OTHER_LOCAL = "127.0.0.2"  # Linux routes all of 127.0.0.0/8 to the loopback: a second "computer"


@pytest.fixture
def chest(dicom_dir: Path) -> pydicom.Dataset:
    return pydicom.dcmread(dicom_dir / "nccid_nih_dx.dcm")


def associate(port: int, calling: str = PACS, source: str = "127.0.0.1", host: str = "127.0.0.1",
              ds: pydicom.Dataset | None = None):
    """A pynetdicom association to the receiver as calling AE ``calling``, from address ``source``."""
    ae = AE(ae_title=calling)
    ae.acse_timeout = ae.network_timeout = 10
    ae.add_requested_context(Verification)
    if ds is not None:
        ae.add_requested_context(ds.SOPClassUID, ds.file_meta.TransferSyntaxUID)
    return ae.associate(host, port, ae_title=RADLENS, bind_address=(source, 0))


def store(port: int, ds: pydicom.Dataset, calling: str = PACS, source: str = "127.0.0.1") -> int | None:
    """C-STORE ``ds``: its status, or None when the association was rejected."""
    assoc = associate(port, calling, source, ds=ds)
    if not assoc.is_established:
        assert assoc.is_rejected
        return None
    try:
        return int(assoc.send_c_store(ds).Status)
    finally:
        assoc.release()


def rejection(assoc) -> tuple[int, int, int]:
    rj = assoc.acceptor.primitive
    return rj.result, rj.result_source, rj.diagnostic


# -- the engine: peers ---------------------------------------------------------------------------
def test_a_configured_peer_stores_and_anyone_else_is_rejected_and_logged(
        tmp_path: Path, chest: pydicom.Dataset, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="engine.pacs.receiver")
    with StoreReceiver(RADLENS, 0, tmp_path, peers=[Peer(PACS, "127.0.0.1")]) as rx:
        port = rx.address[1]
        assert store(port, chest) == 0x0000  # the allowed peer: stored
        assert rx.received == 1 and rx.rejected == 0
        unknown = associate(port, calling="INTRUDER")
        assert unknown.is_rejected and not unknown.is_established
        assert rejection(unknown) == (0x01, 0x01, 0x03)  # permanent, service user, calling AE title not recognised
        wrong_place = associate(port, source=OTHER_LOCAL)  # the right AE title from another address
        assert wrong_place.is_rejected
        assert store(port, chest, calling="INTRUDER") is None
        assert rx.rejected == 3 and rx.received == 1 and rx.echoes == 0
    assert [p.name for p in tmp_path.rglob("*.dcm")] == [f"{chest.SOPInstanceUID}.dcm"]
    rejected = [r.getMessage() for r in caplog.records if "rejected an association" in r.getMessage()]
    assert len(rejected) == 3
    assert "'INTRUDER' at 127.0.0.1" in rejected[0] and f"'{PACS}' at {OTHER_LOCAL}" in rejected[1]
    text = caplog.text  # machine identifiers only: nothing of the patient in the log
    for identifier in (str(chest.PatientID), str(chest.PatientName), str(chest.StudyInstanceUID)):
        assert identifier and identifier not in text


def test_accept_any_accepts_every_caller_and_no_peer_accepts_no_one(tmp_path: Path, chest: pydicom.Dataset) -> None:
    with StoreReceiver(RADLENS, 0, tmp_path) as rx:  # the engine's default: nobody is allowed
        assert associate(rx.address[1]).is_rejected and rx.rejected == 1
    with StoreReceiver(RADLENS, 0, tmp_path, host="0.0.0.0", accept_any=True) as rx:
        assert store(rx.address[1], chest, calling="WHOEVER", source=OTHER_LOCAL) == 0x0000
        assert rx.received == 1 and rx.rejected == 0


def test_peers_by_address_network_or_any_address_and_changed_while_running(tmp_path: Path) -> None:
    with StoreReceiver(RADLENS, 0, tmp_path, peers=[Peer(PACS)]) as rx:  # an AE title from any address
        port = rx.address[1]
        for source in ("127.0.0.1", OTHER_LOCAL):
            assoc = associate(port, source=source)
            assert assoc.is_established
            assert int(assoc.send_c_echo().Status) == 0
            assoc.release()
        rx.set_peers([Peer(PACS, "127.0.0.0/30")])  # a network: 127.0.0.0-3
        ok = associate(port, source=OTHER_LOCAL)
        assert ok.is_established
        ok.release()
        rx.set_peers([Peer("OTHERPACS", "127.0.0.1")])  # applies to the next association
        assert associate(port).is_rejected
        assert rx.echoes == 2 and rx.rejected == 1
    assert Peer(" ORTHANC ", " 10.1.2.3 ") == Peer("ORTHANC", "10.1.2.3")
    assert Peer("X", "::ffff:10.1.2.3").matches("X", "10.1.2.3") is False  # an IPv6 peer is an IPv6 address
    assert Peer("X", "10.1.2.3").matches("X", "::ffff:10.1.2.3")  # a dual-stack socket's IPv4 caller
    assert not Peer("X", "10.1.2.3").matches("x", "10.1.2.3")  # AE titles are case-sensitive
    with pytest.raises(ReceiverError, match="not an IP address"):
        Peer("X", "pacs.example.org")
    with pytest.raises(ReceiverError, match="AE title"):
        Peer("A" * 17)


# -- the engine: the listening address -----------------------------------------------------------
def test_the_bind_address_is_honoured(tmp_path: Path) -> None:
    with StoreReceiver(RADLENS, 0, tmp_path, peers=[Peer(PACS)]) as rx:  # the default: 127.0.0.1
        host, port = rx.address
        assert host == "127.0.0.1"
        socket.create_connection(("127.0.0.1", port), timeout=5).close()
        with pytest.raises(ConnectionRefusedError):  # not listening on the loopback's other addresses
            socket.create_connection((OTHER_LOCAL, port), timeout=5).close()
    with StoreReceiver(RADLENS, 0, tmp_path, host="0.0.0.0", peers=[Peer(PACS)]) as rx:
        assert rx.address[0] == "0.0.0.0"
        socket.create_connection((OTHER_LOCAL, rx.address[1]), timeout=5).close()


def test_a_bind_address_must_be_an_ip_address_of_this_computer(tmp_path: Path) -> None:
    assert check_bind_address("127.0.0.1") == "127.0.0.1"
    assert check_bind_address(" 0.0.0.0 ") == "0.0.0.0" and parse_host("") == "0.0.0.0"
    with pytest.raises(ReceiverError, match="not an IP address to listen on"):
        check_bind_address("radlens.example.org")
    with pytest.raises(ReceiverError, match="no network interface with the address 192.0.2.1"):
        check_bind_address("192.0.2.1")  # TEST-NET-1: never a local address
    rx = StoreReceiver(RADLENS, 0, tmp_path, host="192.0.2.1", accept_any=True)
    with pytest.raises(ReceiverError, match="no network interface"):
        rx.start()
    assert not rx.running


def test_the_texts() -> None:
    assert receiver_indicator_text("127.0.0.1", 11113, RADLENS, 2, False) == \
        "Receiving on 127.0.0.1:11113 as RADLENS · from 2 peers"
    assert receiver_indicator_text("::1", 11113, RADLENS, 1, True) == "Receiving on [::1]:11113 as RADLENS · from any caller"
    tip = receiver_indicator_tooltip("0.0.0.0", 11113, RADLENS, [("ORTHANC", "10.1.2.3"), (PACS, "")], False, "/c")
    assert "every network interface" in tip and "ORTHANC at 10.1.2.3; TESTPACS (any address)" in tip and "/c" in tip
    assert peer_problem("ORTHANC", "") == "" and peer_problem("ORTHANC", "10.0.0.0/8") == ""
    assert "AE title" in peer_problem("", "10.1.2.3") and "not an IP address" in peer_problem("ORTHANC", "10.0.0.300")


# -- the window ------------------------------------------------------------------------------------
@pytest.fixture
def window(qtbot, tmp_path: Path) -> Iterator[Callable]:
    """window(**settings) -> a MainWindow (no model) on a temporary settings file whose "pacs/..."
    keys are set first; the same file for every window of a test, as at each launch."""
    pytest.importorskip("pytestqt")
    from fake_dialogs import FakeDialogs  # tests/fake_dialogs.py
    from PySide6.QtCore import QStandardPaths

    from desktop.main_window import MainWindow
    from desktop.settings import Settings

    QStandardPaths.setTestModeEnabled(True)
    made = []

    def make(**values: object):
        settings = Settings(str(tmp_path / "radlens.ini"))
        settings.qs.setValue("pacs/cache_dir", str(tmp_path / "cache"))
        for k, v in values.items():
            settings.qs.setValue(f"pacs/{k}", v)
        settings.sync()
        win = MainWindow(settings, model_path=str(tmp_path / "no-model.onnx"), device="cpu", dialogs=FakeDialogs())
        qtbot.addWidget(win)
        win.resize(1200, 800)
        win.show()
        qtbot.waitUntil(lambda: win.model_state.settled, timeout=60000)
        made.append(win)
        return win

    yield make
    for win in made:
        win.pacs.receiver.shutdown()


def indicator(win):
    from PySide6.QtWidgets import QLabel

    label = win.statusBar().findChild(QLabel, "receiverIndicator")
    assert label is win.pacs.receiver.indicator  # a permanent widget of the window's status bar
    return label


def test_the_indicator_shows_while_listening_and_goes_when_stopped(qtbot, window, chest: pydicom.Dataset) -> None:
    port = free_port()
    win = window(port=port, peers='[{"ae_title": "TESTPACS", "address": "127.0.0.1"}, {"ae_title": "MODALITY"}]')
    rx = win.pacs.receiver
    assert not rx.running and not indicator(win).isVisible()  # off by default
    rx.toggle.trigger()
    assert rx.running and rx.receiver.address == ("127.0.0.1", port)
    assert indicator(win).isVisible()
    assert indicator(win).text() == f"Receiving on 127.0.0.1:{port} as RADLENS · from 2 peers"
    tip = indicator(win).toolTip()
    assert "this computer only" in tip and "TESTPACS at 127.0.0.1; MODALITY (any address)" in tip
    with qtbot.waitSignal(rx.studyUpdated, timeout=20000):
        assert store(port, chest) == 0x0000
    assert store(port, chest, calling="INTRUDER") is None
    rx.toggle.trigger()
    assert not rx.running and not indicator(win).isVisible()
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.1", port), timeout=2).close()
    # any caller: said in the indicator
    win.pacs.prefs.accept_any = True
    rx.toggle.trigger()
    assert indicator(win).text() == f"Receiving on 127.0.0.1:{port} as RADLENS · from any caller"
    assert store(port, chest, calling="INTRUDER", source=OTHER_LOCAL) == 0x0000
    rx.toggle.trigger()
    assert not indicator(win).isVisible()


def test_without_allowed_senders_it_does_not_start_and_says_what_to_do(window) -> None:
    win = window(port=free_port())
    rx = win.pacs.receiver
    rx.toggle.trigger()
    assert not rx.running and not rx.toggle.isChecked() and not indicator(win).isVisible()
    assert win.dialogs.errors[-1] == ("Cannot receive studies", NO_PEERS_TEXT)


def test_it_starts_at_launch_only_when_that_setting_is_on(qtbot, window) -> None:
    port = free_port()
    peers = '[{"ae_title": "TESTPACS", "address": "127.0.0.1"}]'
    # a user of an earlier RadLens left it on: it stays off, and the status bar says how to turn it on
    win = window(port=port, peers=peers, receive=True)
    rx = win.pacs.receiver
    assert not rx.running and not rx.toggle.isChecked() and not indicator(win).isVisible()
    assert rx.launch_message == NOT_RESTARTED_TEXT
    qtbot.waitUntil(lambda: win.statusBar().currentMessage() == NOT_RESTARTED_TEXT, timeout=5000)
    assert not win.pacs.prefs.receive_enabled  # said once
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.1", port), timeout=2).close()
    win.close()
    win2 = window()
    assert not win2.pacs.receiver.running and win2.pacs.receiver.launch_message == ""
    win2.close()
    # "Start the receiver when RadLens starts": it starts, and both the message and the indicator say so
    win3 = window(receive_at_launch=True)
    rx = win3.pacs.receiver
    assert rx.running and rx.toggle.isChecked() and indicator(win3).isVisible()
    assert indicator(win3).text() == f"Receiving on 127.0.0.1:{port} as RADLENS · from 1 peer"
    assert rx.launch_message.startswith(f"Study receiver started with RadLens: listening on 127.0.0.1:{port} as "
                                        "RADLENS, from 1 peer ('Start the receiver when RadLens starts' is on in "
                                        "Settings > PACS servers…).")
    qtbot.waitUntil(lambda: win3.statusBar().currentMessage() == rx.launch_message, timeout=5000)
    socket.create_connection(("127.0.0.1", port), timeout=5).close()


def test_the_settings_dialog_checks_and_saves_and_a_running_receiver_takes_them(qtbot, window,
                                                                                 chest: pydicom.Dataset) -> None:
    port = free_port()
    win = window(port=port)
    prefs, rx, errors = win.pacs.prefs, win.pacs.receiver, win.dialogs.errors
    assert prefs.bind_address == "127.0.0.1" and prefs.peers == [] and not prefs.accept_any
    assert not prefs.start_at_launch
    dlg = win.pacs.servers_dialog()
    assert dlg.receiver.bind_address.currentText() == "127.0.0.1" and dlg.receiver.peers.rowCount() == 0
    assert not dlg.receiver.accept_any.isChecked() and not dlg.receiver.start_at_launch.isChecked()
    assert "No sender is allowed yet" in dlg.receiver.peers_note.text()
    dlg.receiver.bind_address.setCurrentText("192.0.2.1")  # not an address of this computer
    dlg.done(0)
    assert errors[-1][0] == "Receiver settings not saved" and "no network interface" in errors[-1][1]
    assert dlg.isVisible() and prefs.bind_address == "127.0.0.1"
    dlg.receiver.bind_address.setCurrentText("127.0.0.1")
    dlg.receiver.add_peer(PACS, "127.0.0.300", edit=False)
    dlg.done(0)
    assert "not an IP address" in errors[-1][1] and dlg.isVisible()
    dlg.receiver.peers.item(0, 1).setText("127.0.0.1")
    dlg.receiver.add_peer(edit=False)  # an empty row is left out
    assert dlg.receiver.peer_rows() == [(PACS, "127.0.0.1")] and "Only this sender" in dlg.receiver.peers_note.text()
    dlg.done(0)
    assert not dlg.isVisible() and prefs.peers == [(PACS, "127.0.0.1")]
    n_errors = len(errors)
    rx.toggle.trigger()
    assert rx.running and store(port, chest) == 0x0000
    # new senders apply to the running receiver at once
    dlg = win.pacs.servers_dialog()
    dlg.receiver.peers.item(0, 0).setText("OTHERPACS")
    dlg.done(0)
    assert rx.running and rx.receiver.peers == (Peer("OTHERPACS", "127.0.0.1"),)
    assert store(port, chest) is None  # TESTPACS is no longer allowed
    assert win.statusBar().currentMessage().startswith("The receiver took the new settings")
    # a new address restarts it there
    dlg = win.pacs.servers_dialog()
    dlg.receiver.bind_address.setCurrentText("0.0.0.0")
    dlg.receiver.accept_any.setChecked(True)
    dlg.receiver.start_at_launch.setChecked(True)
    dlg.done(0)
    assert prefs.bind_address == "0.0.0.0" and prefs.accept_any and prefs.start_at_launch
    assert rx.running and rx.receiver.address == ("0.0.0.0", port)
    assert indicator(win).text() == f"Receiving on 0.0.0.0:{port} as RADLENS · from any caller"
    assert "every network interface" in indicator(win).toolTip()
    assert store(port, chest, calling="WHOEVER", source=OTHER_LOCAL) == 0x0000
    assert len(errors) == n_errors
