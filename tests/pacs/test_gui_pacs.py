"""The PACS screens against a real Orthanc, with the real bundled model: server settings
(secrets never in a file), Open from PACS (search, retrieve with progress, cancel), Send
results to PACS (after a confirmation naming the server; refused = nothing sent), a server
that is down, and Receive studies (Orthanc pushes a study by C-STORE)."""

from __future__ import annotations

import os

os.environ["QT_QPA_PLATFORM"] = "offscreen"  # before anything imports Qt

import shutil
import socket
import threading
import warnings
from collections.abc import Callable
from pathlib import Path

import pydicom
import pytest
import requests

pytest.importorskip("PySide6")
pytest.importorskip("pytestqt")

from conftest import ORTHANC_AE, RECEIVER_AE, free_port  # noqa: E402 - tests/pacs/conftest.py
from fake_dialogs import FakeDialogs  # noqa: E402 - tests/fake_dialogs.py
from PySide6.QtCore import QStandardPaths, Qt  # noqa: E402

from engine import default_model_path  # noqa: E402
from engine.pacs import credentials  # noqa: E402
from engine.pacs.cache import leftover_parts  # noqa: E402
from engine.pacs.servers import ServerConfig  # noqa: E402

QStandardPaths.setTestModeEnabled(True)
warnings.filterwarnings("ignore", category=UserWarning, module="pydicom")

SR_CLASSES = {"1.2.840.10008.5.1.4.1.1.88.22", "1.2.840.10008.5.1.4.1.1.88.33", "1.2.840.10008.5.1.4.1.1.88.34"}
SC_PREFIX = "1.2.840.10008.5.1.4.1.1.7"


class Answers(FakeDialogs):
    """The desktop tests' dialogs; a list to choose from is answered with its first item."""

    def choose(self, title: str, label: str, items: list[str]) -> str:
        return items[0] if items else ""


@pytest.fixture
def answers() -> Answers:
    return Answers()


@pytest.fixture
def rest(orthanc) -> str:
    """Orthanc's REST root (http://127.0.0.1:PORT)."""
    return str(orthanc.url)


@pytest.fixture
def server(orthanc) -> ServerConfig:
    return ServerConfig("Orthanc-test", orthanc.dicomweb, timeout_s=20)


@pytest.fixture
def make_window(qtbot, answers: Answers, tmp_path: Path) -> Callable:
    """make_window(servers, model=True) -> MainWindow with those PACS servers, a temporary
    settings file and cache, and (by default) the real bundled model loaded."""
    from desktop.main_window import MainWindow
    from desktop.settings import Settings

    def make(servers: list[ServerConfig], model: bool = True):
        settings = Settings(str(tmp_path / "radlens.ini"))
        settings.qs.setValue("pacs/cache_dir", str(tmp_path / "cache"))
        path = str(default_model_path()) if model else str(tmp_path / "no-model.onnx")
        win = MainWindow(settings, model_path=path, device="cpu", dialogs=answers)
        qtbot.addWidget(win)
        win.pacs.prefs.save_servers(servers)
        win.resize(1200, 800)
        win.show()
        qtbot.waitUntil(lambda: win.model_state.settled, timeout=60000)
        return win

    return make


def orthanc_instances(rest: str) -> set[str]:
    r = requests.get(f"{rest}/instances", timeout=10)
    r.raise_for_status()
    return set(r.json())


def orthanc_study_count(rest: str) -> int:
    return len(requests.get(f"{rest}/studies", timeout=10).json())


def search(qtbot, dlg, **fields: str) -> int:
    for k, v in fields.items():
        dlg.fields[k].setText(v)
    with qtbot.waitSignal(dlg.searched, timeout=20000) as sig:
        qtbot.mouseClick(dlg.search_button, Qt.MouseButton.LeftButton)
    return int(sig.args[0])


def select_patient(dlg, patient_id: str) -> None:
    for i in range(dlg.tree.topLevelItemCount()):
        item = dlg.tree.topLevelItem(i)
        if item.text(1) == patient_id:
            dlg.tree.setCurrentItem(item)
            return
    raise AssertionError(f"no study of patient {patient_id} listed")


DX_PATIENT = "Covid0000"  # the chest DX among the shared fixtures (nccid_nih_dx.dcm)


# -- settings ----------------------------------------------------------------------------------
def test_server_settings_keep_the_password_out_of_every_file(qtbot, make_window, answers, orthanc, server,
                                                             tmp_path: Path) -> None:
    win = make_window([], model=False)
    dlg = win.pacs.servers_dialog()
    assert dlg.verify.isChecked()  # TLS verification on by default
    dlg.name.setText("Orthanc-basic")
    dlg.url.setText(server.url)
    dlg.auth.setCurrentIndex(dlg.auth.findData("basic"))
    dlg.username.setText("radiologist")
    password = "s3cret-Pa55word-xyz"
    dlg.secret.setText(password)
    qtbot.mouseClick(dlg.save_button, Qt.MouseButton.LeftButton)
    assert answers.errors == []
    saved = win.pacs.prefs.servers()
    assert [(s.name, s.auth, s.username, s.verify_tls) for s in saved] == [("Orthanc-basic", "basic", "radiologist",
                                                                           True)]
    # the secret is known for this run (no keyring here), and no file has it
    assert credentials.get_secret(saved[0]) == password
    dlg.done(0)
    win.settings.sync()
    for f in tmp_path.rglob("*"):
        if f.is_file():
            assert password.encode() not in f.read_bytes(), f
    # a connection test runs off the GUI thread and says it worked (Orthanc here has no authentication)
    dlg = win.pacs.servers_dialog()
    dlg.list.setCurrentRow(0)
    with qtbot.waitSignal(dlg.tested, timeout=20000) as sig:
        qtbot.mouseClick(dlg.test_button, Qt.MouseButton.LeftButton)
    assert sig.args[0] is True and "Connected to Orthanc-basic" in sig.args[1]
    dlg.done(0)
    credentials.forget_secret(saved[0])


def test_secret_is_asked_once_per_run_without_a_keyring(qtbot, make_window, answers, server) -> None:
    if credentials.keyring_available():
        pytest.skip("a real keyring is configured here: secrets are not asked for")
    basic = ServerConfig("Orthanc-ask", server.url, auth="basic", username="asked-user", timeout_s=20)
    credentials.forget_secret(basic)
    win = make_window([basic], model=False)
    answers.passwords = ["typed-once"]
    dlg = win.pacs.open_dialog()
    assert search(qtbot, dlg) > 0
    assert search(qtbot, dlg) > 0  # the second search does not ask again
    assert [a for a in answers.asked if "password" in a[0]] == [answers.asked[0]] and len(answers.asked) == 1
    assert credentials.get_secret(basic) == "typed-once"
    credentials.forget_secret(basic)


# -- open from PACS ----------------------------------------------------------------------------
def test_search_lists_the_servers_studies(qtbot, make_window, server, rest) -> None:
    win = make_window([server], model=False)
    dlg = win.pacs.open_dialog()
    n = search(qtbot, dlg)
    assert n == dlg.tree.topLevelItemCount() == orthanc_study_count(rest)
    assert DX_PATIENT in [dlg.tree.topLevelItem(i).text(1) for i in range(n)]
    # narrowed by patient ID and modality; expanded to its series
    assert search(qtbot, dlg, patient_id=DX_PATIENT, modality="DX") == 1
    item = dlg.tree.topLevelItem(0)
    assert item.text(1) == DX_PATIENT and "DX" in item.text(3).split("/")  # (results sent earlier add SR, OT)
    with qtbot.waitSignal(dlg.seriesListed, timeout=20000):
        item.setExpanded(True)
    assert item.childCount() == int(item.text(6)) >= 1
    assert "DX" in [item.child(i).text(3) for i in range(item.childCount())]
    # a reversed date range is refused before anything is sent
    dlg.fields["date_from"].setText("2024-02-02")
    dlg.fields["date_to"].setText("2024-02-01")
    qtbot.mouseClick(dlg.search_button, Qt.MouseButton.LeftButton)
    assert "swap" in win.dialogs.errors[-1][1]


def test_retrieve_shows_progress_opens_the_study_and_the_model_analyses_it(qtbot, make_window, server) -> None:
    win = make_window([server])
    dlg = win.pacs.open_dialog()
    assert search(qtbot, dlg, patient_id=DX_PATIENT) == 1
    select_patient(dlg, DX_PATIENT)
    progress: list[tuple[int, object]] = []
    dlg.retrieveProgress.connect(lambda d, t: progress.append((d, t)))
    with qtbot.waitSignal(win.analysisFinished, timeout=60000) as opened:
        qtbot.mouseClick(dlg.retrieve_button, Qt.MouseButton.LeftButton)
        assert dlg.progress.isVisible() and dlg.cancel_button.isEnabled() and not dlg.retrieve_button.isEnabled()
    files = sorted(win.pacs.prefs.cache_dir.glob("*/*.dcm"))
    assert progress and progress[-1] == (len(files), len(files))  # counted up to the server's number
    assert [d for d, _ in progress] == sorted(d for d, _ in progress)
    path = Path(opened.args[0])
    assert path.parent.parent == win.pacs.prefs.cache_dir and path.suffix == ".dcm"
    assert pydicom.dcmread(path, stop_before_pixels=True).PatientID == DX_PATIENT
    pred = win.prediction
    assert pred is not None and pred.in_scope and pred.call in pred.labels
    assert win.current_path == str(path)
    assert not leftover_parts(path.parent)


def test_cancel_mid_retrieve_keeps_no_half_file_and_says_what_was_fetched(qtbot, make_window, server,
                                                                          pacs_data) -> None:
    multi = pacs_data.studies["multi"]  # 5 real radiographs in 2 series
    study_uid, n = multi.study_uid, len(multi.files)
    win = make_window([server], model=False)
    dlg = win.pacs.open_dialog()
    assert search(qtbot, dlg, patient_id=multi.patient_id) == 1
    select_patient(dlg, multi.patient_id)
    clicked = threading.Event()

    def hold(done: int, total: object) -> None:  # the retrieve's thread: wait for the user's click
        if done == 2:
            assert clicked.wait(20)

    def click(done: int, total: object) -> None:  # the GUI thread
        if done == 2 and not clicked.is_set():
            qtbot.mouseClick(dlg.cancel_button, Qt.MouseButton.LeftButton)
            clicked.set()

    with qtbot.waitSignal(dlg.retrieveEnded, timeout=60000) as ended:
        qtbot.mouseClick(dlg.retrieve_button, Qt.MouseButton.LeftButton)
        dlg.retrieving.progressed.connect(click)  # first: queued before ``hold`` blocks the emit
        dlg.retrieving.progressed.connect(hold, Qt.ConnectionType.DirectConnection)
    complete, message = ended.args
    assert not complete
    folder = win.pacs.prefs.cache_dir / study_uid
    files = sorted(folder.glob("*.dcm"))
    assert 2 <= len(files) < n
    assert message.startswith(f"Retrieve cancelled: {len(files)} of {n} images fetched.")
    assert win.dialogs.errors[-1] == ("Study not opened", message)
    assert not leftover_parts(folder) and [p for p in folder.iterdir() if p.suffix != ".dcm"] == []
    originals = {pydicom.dcmread(f).SOPInstanceUID: f for f in multi.files}
    for f in files:  # each kept file is whole: the same pixel data as the original
        ds = pydicom.dcmread(f)
        assert ds.PixelData == pydicom.dcmread(originals[ds.SOPInstanceUID]).PixelData
    assert win.current_path == "" and dlg.isVisible()  # nothing opened; the dialog stays for another try
    assert dlg.retrieve_button.isEnabled() and not dlg.cancel_button.isEnabled()


# -- send results ------------------------------------------------------------------------------
@pytest.fixture
def chest_dcm(dicom_dir: Path, tmp_path: Path) -> Path:
    out = tmp_path / "chest.dcm"
    shutil.copy(dicom_dir / "nccid_nih_dx.dcm", out)
    return out


def open_and_analyse(qtbot, win, path: Path) -> None:
    with qtbot.waitSignal(win.analysisFinished, timeout=60000):
        win.open_paths([str(path)])
    assert win.prediction is not None


def analyse_and_send(qtbot, win, answers: Answers, rest: str, path: Path, confirm: bool) -> tuple:
    """Open and analyse ``path``, answer the send confirmation with ``confirm``, send; returns
    (the send job, its finished signal's arguments, Orthanc's instances before)."""
    open_and_analyse(qtbot, win, path)
    before = orthanc_instances(rest)
    answers.confirms = [confirm]
    job = win.pacs.send_current()
    with qtbot.waitSignal(job.finished, timeout=60000) as sent:
        pass
    return job, sent.args, before


def test_send_results_after_confirmation_stores_sr_and_sc(qtbot, make_window, answers, server, rest,
                                                          chest_dcm: Path) -> None:
    job, sent, before = analyse_and_send(qtbot, make_window([server]), answers, rest, chest_dcm, True)
    assert sent[0] is True, sent[1]
    assert job.folder and not Path(job.folder).exists()  # the objects waited on disk; they hold patient data
    title, text = answers.asked[-1]
    assert text.startswith(f"Send 2 objects (SR, SC) for chest.dcm to Orthanc-test at {server.url}?")
    assert answers.infos[-1] == ("Results sent", "Sent 2 objects to Orthanc-test.")
    new = orthanc_instances(rest) - before
    assert len(new) == 2
    source = pydicom.dcmread(chest_dcm, stop_before_pixels=True)
    classes = set()
    for oid in new:
        tags = requests.get(f"{rest}/instances/{oid}/simplified-tags", timeout=10).json()
        assert tags["StudyInstanceUID"] == source.StudyInstanceUID
        assert tags["PatientID"] == source.PatientID
        assert tags["SOPInstanceUID"] != source.SOPInstanceUID
        classes.add(tags["SOPClassUID"])
        if tags["SOPClassUID"] in SR_CLASSES:
            assert tags["VerificationFlag"] == "UNVERIFIED"
    assert len(classes & SR_CLASSES) == 1 and any(c.startswith(SC_PREFIX) for c in classes)


def test_a_finished_batch_sends_the_results_of_its_dicom_files(qtbot, make_window, answers, server, rest,
                                                               chest_dcm: Path, png_path: Path) -> None:
    from PySide6.QtWidgets import QPushButton

    folder = chest_dcm.parent / "batch"
    folder.mkdir()
    shutil.copy(chest_dcm, folder / "chest.dcm")
    shutil.copy(png_path, folder / "chest.png")  # not DICOM: analysed, but nothing to send for it
    win = make_window([server])
    dlg = win.batch_dialog(str(folder))
    button = next(b for b in dlg.findChildren(QPushButton) if b.text() == "Send results to PACS…")
    assert not button.isEnabled()  # not before the batch has finished
    qtbot.waitUntil(lambda: dlg.end is not None, timeout=120000)
    assert button.isEnabled()
    before = orthanc_instances(rest)
    answers.confirms = [True]
    qtbot.mouseClick(button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: bool(answers.infos or answers.errors), timeout=60000)
    assert answers.errors == [] and answers.infos[-1] == ("Results sent", "Sent 2 objects to Orthanc-test.")
    assert answers.asked[-1][1].startswith(f"Send 2 objects (SR, SC) for chest.dcm to Orthanc-test at {server.url}?")
    assert len(orthanc_instances(rest) - before) == 2
    dlg.close_confirmed = True
    dlg.close()


def test_refusing_the_confirmation_sends_nothing(qtbot, make_window, answers, server, rest, chest_dcm) -> None:
    job, sent, before = analyse_and_send(qtbot, make_window([server]), answers, rest, chest_dcm, False)
    assert sent[0] is False and "Orthanc-test" in answers.asked[-1][1]
    assert job.folder and not Path(job.folder).exists()
    assert orthanc_instances(rest) == before
    assert answers.errors == [] and answers.infos == []


def test_a_server_that_is_down_gives_messages_not_crashes(qtbot, make_window, answers, chest_dcm) -> None:
    down = ServerConfig("Down-PACS", f"http://127.0.0.1:{free_port()}/dicom-web", timeout_s=5)
    win = make_window([down])
    dlg = win.pacs.open_dialog()
    assert search(qtbot, dlg) == -1
    title, text = answers.errors[-1]
    assert title == "Search failed" and "Down-PACS" in text and dlg.status.text().startswith("Search failed")
    assert dlg.search_button.isEnabled()
    dlg.done(0)
    open_and_analyse(qtbot, win, chest_dcm)
    answers.confirms = [True]
    with qtbot.waitSignal(win.pacs.send_current().finished, timeout=60000) as sent:
        pass
    assert sent.args[0] is False and answers.errors[-1][0] == "Results not sent"
    assert "Down-PACS" in answers.errors[-1][1]
    assert win.isVisible() and win.prediction is not None  # earlier work is still there


def test_a_server_that_never_answers_times_out_and_closing_does_not_wait(qtbot, make_window, answers,
                                                                         silent_server: str) -> None:
    silent = ServerConfig("Silent-PACS", silent_server, timeout_s=1)
    win = make_window([silent], model=False)
    dlg = win.pacs.open_dialog()
    assert search(qtbot, dlg) == -1
    assert answers.errors[-1][0] == "Search failed" and "did not answer within 1 s" in answers.errors[-1][1]
    # a search still waiting on the server when the dialog closes: the window is not held up, nothing crashes
    qtbot.mouseClick(dlg.search_button, Qt.MouseButton.LeftButton)
    tasks = dlg.tasks
    dlg.close()
    assert win.pacs.dialog is None and tasks.busy()  # closed at once, the request still running
    qtbot.waitUntil(lambda: not win.pacs.closing, timeout=15000)  # it ended; the dialog went with it
    assert len(answers.errors) == 1  # no message from a dialog the user closed
    assert win.pacs.open_dialog().isVisible()


# -- receive studies ---------------------------------------------------------------------------
def test_receive_toggle_gets_a_study_pushed_by_orthanc(qtbot, make_window, server, rest, receiver_port) -> None:
    win = make_window([server])
    rx = win.pacs.receiver
    assert not rx.toggle.isChecked() and not rx.running  # off by default
    port = receiver_port  # Orthanc knows RadLens as modality 'radlens' at this port
    win.pacs.prefs.ae_title, win.pacs.prefs.port = RECEIVER_AE, port
    win.pacs.prefs.peers = [(ORTHANC_AE, "127.0.0.1")]  # only Orthanc, from this computer, may push
    rx.toggle.trigger()
    assert rx.running and win.pacs.prefs.receive_enabled
    assert rx.indicator.isVisible() and rx.indicator.text() == f"Receiving on 127.0.0.1:{port} as {RECEIVER_AE} · from 1 peer"
    study = requests.post(f"{rest}/tools/find", json={"Level": "Study", "Query": {"PatientID": DX_PATIENT}},
                          timeout=10).json()[0]
    with qtbot.waitSignal(rx.studyUpdated, timeout=30000) as got:
        push = requests.post(f"{rest}/modalities/radlens/store", json={"Resources": [study], "Synchronous": True},
                             timeout=30)
        push.raise_for_status()
    uid, n = got.args
    pushed = len(requests.get(f"{rest}/studies/{study}/instances", timeout=10).json())
    qtbot.waitUntil(lambda: len(rx.studies[uid].paths) == pushed, timeout=10000)  # every instance, counted
    message = win.statusBar().currentMessage()
    assert message.startswith("Received study Covid0000") and f"({pushed} image" in message
    folder = win.pacs.prefs.cache_dir / uid
    assert not leftover_parts(folder) and len(list(folder.glob("*.dcm"))) == pushed
    assert str(folder) in win.settings.recent_files() and rx.open_latest.isEnabled()
    with qtbot.waitSignal(win.analysisFinished, timeout=60000) as opened:
        rx.open_latest.trigger()
    shown = Path(opened.args[0])
    assert shown.parent == folder and pydicom.dcmread(shown, stop_before_pixels=True).Modality == "DX"
    assert win.prediction is not None and win.prediction.in_scope
    rx.toggle.trigger()
    assert not rx.running and not win.pacs.prefs.receive_enabled and not rx.indicator.isVisible()
    with pytest.raises(ConnectionRefusedError):  # nothing listens any more
        socket.create_connection(("127.0.0.1", port), timeout=2).close()
