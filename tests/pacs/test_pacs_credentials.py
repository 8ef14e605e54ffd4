"""PACS secrets in a real keyring file backend, and the CLI's password prompt on a real terminal
(issue 24, item 5).

The keyring: keyrings.alt's PlaintextKeyring, its file under a temporary XDG_DATA_HOME, chosen
explicitly (PYTHON_KEYRING_BACKEND) as a user who wants it would. A secret is stored, read back
by another process (a later run), kept apart per URL and user, deleted; it never reaches the
settings file or a log. The same backend picked automatically (keyrings.alt installed, nothing
chosen) is not used: no password goes to a clear-text file unasked.

The prompt: ``radlens-batch --dicomweb ... --auth basic --user radlens`` runs on a pseudo-terminal
(``pty.fork``: the terminal is the child's controlling tty, so ``getpass`` opens /dev/tty, turns
echo off and prompts there, as for a user). The password typed there reaches the real Orthanc
with authentication (``orthanc_auth``); it is never echoed, printed or written to a file.
"""

from __future__ import annotations

import base64
import logging
import os
import pty
import select
import signal
import subprocess
import sys
import time
from pathlib import Path

import keyring
import pytest
from conftest import AUTH_USERS, REQUIRE, Orthanc, PacsData  # tests/pacs/conftest.py

from engine.pacs import credentials
from engine.pacs.servers import ServerConfig, save_servers

PLAINTEXT = "keyrings.alt.file.PlaintextKeyring"
PASSWORD = "Tr0ub4dor&3-keyring-test"
ROOT = Path(__file__).resolve().parents[2]


def _need_keyrings_alt() -> None:
    try:
        import keyrings.alt.file  # noqa: F401
    except ImportError:
        why = "keyrings.alt is not installed (pip install keyrings.alt; it is in the test extra)"
        if REQUIRE:
            pytest.fail(f"RADLENS_REQUIRE_PACS=1 but {why}")
        pytest.skip(why)


@pytest.fixture
def isolated(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    """Keyring data and configuration under tmp_path, this run's memory empty, the keyring
    restored afterwards. Returns the environment for a child process."""
    _need_keyrings_alt()
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "xdg-data"))
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "xdg-config"))  # no keyringrc.cfg of the user's
    monkeypatch.delenv("PYTHON_KEYRING_BACKEND", raising=False)
    monkeypatch.delenv("RADLENS_PACS_SECRET", raising=False)
    monkeypatch.setattr(credentials, "_memory", {})
    previous = keyring.get_keyring()
    yield dict(os.environ)
    keyring.set_keyring(previous)


@pytest.fixture
def file_keyring(isolated: dict[str, str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path):  # noqa: ANN201
    """keyrings.alt's PlaintextKeyring in tmp_path, chosen explicitly."""
    from keyrings.alt.file import PlaintextKeyring

    monkeypatch.setenv("PYTHON_KEYRING_BACKEND", PLAINTEXT)
    isolated["PYTHON_KEYRING_BACKEND"] = PLAINTEXT
    backend = PlaintextKeyring()
    assert Path(backend.file_path).is_relative_to(tmp_path)
    keyring.set_keyring(backend)
    return backend


def _in_file(service: str, user: str) -> str | None:
    """What the keyring's file holds for (service, user), read by a new backend object."""
    from keyrings.alt.file import PlaintextKeyring

    return PlaintextKeyring().get_password(service, user)


def _files_holding(folder: Path, secret: str) -> list[Path]:
    """Files under ``folder`` holding ``secret`` as it is, or base64-encoded (as keyrings.alt's
    file backends write it)."""
    forms = [secret.encode(), base64.b64encode(secret.encode()).rstrip(b"=")]
    return [p for p in folder.rglob("*") if p.is_file() and any(f in p.read_bytes() for f in forms)]


def _child_secret(env: dict[str, str], server: ServerConfig) -> str:
    """``credentials.get_secret(server)`` in a new process: what a later run finds."""
    code = ("import sys; from engine.pacs import credentials; from engine.pacs.servers import ServerConfig; "
            "s = ServerConfig(sys.argv[1], sys.argv[2], auth=sys.argv[3], username=sys.argv[4]); "
            "print(repr(credentials.get_secret(s)))")
    out = subprocess.run([sys.executable, "-c", code, server.name, server.url, server.auth, server.username],
                         env=env, cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    return out.stdout.strip()


def test_store_read_back_and_delete_in_a_file_keyring(file_keyring, isolated: dict[str, str], tmp_path: Path,
                                                      monkeypatch: pytest.MonkeyPatch,
                                                      caplog: pytest.LogCaptureFixture,
                                                      capsys: pytest.CaptureFixture[str]) -> None:
    caplog.set_level(logging.DEBUG)
    server = ServerConfig("Hospital", "https://pacs.example.org/dicom-web/", auth="basic", username="dr.who")
    assert credentials.keyring_available() and credentials.backend() is file_keyring
    assert credentials.get_secret(server) is None
    assert credentials.set_secret(server, PASSWORD) is True  # persisted
    assert Path(file_keyring.file_path).is_file()
    service = "RadLens PACS https://pacs.example.org/dicom-web"  # one per URL (without the last "/") and user
    assert _in_file(service, "dr.who") == PASSWORD, "the secret is in the keyring's file"

    monkeypatch.setattr(credentials, "_memory", {})  # not this run's memory: the keyring
    assert credentials.get_secret(server) == PASSWORD
    assert _child_secret(isolated, server) == repr(PASSWORD), "a later run finds it"
    renamed = ServerConfig("Renamed", "https://pacs.example.org/dicom-web", auth="basic", username="dr.who")
    assert credentials.get_secret(renamed) == PASSWORD  # one per URL and user, whatever the name
    other_user = ServerConfig("Hospital", server.url, auth="basic", username="someone.else")
    token = ServerConfig("Hospital", server.url, auth="bearer")
    assert credentials.get_secret(other_user) is None and credentials.get_secret(token) is None
    assert credentials.set_secret(token, "tok-" + PASSWORD) is True
    assert credentials.get_secret(server) == PASSWORD and credentials.get_secret(token) == "tok-" + PASSWORD

    settings = tmp_path / "cfg" / "pacs-servers.json"
    save_servers(settings, [server, token])
    assert PASSWORD not in settings.read_text()

    credentials.forget_secret(server)
    assert credentials.get_secret(server) is None
    assert _child_secret(isolated, server) == "None"
    assert _in_file(service, "dr.who") is None
    assert _in_file(service, "bearer token") == "tok-" + PASSWORD  # the other entry stays
    credentials.forget_secret(token)
    credentials.forget_secret(token)  # nothing left to forget: no error
    assert _in_file(service, "bearer token") is None
    assert not _files_holding(tmp_path, PASSWORD) and not _files_holding(tmp_path, "tok-" + PASSWORD)

    captured = capsys.readouterr()
    logged = "\n".join(r.getMessage() for r in caplog.records)
    assert PASSWORD not in captured.out + captured.err + logged


def test_persist_false_stays_in_memory(file_keyring, isolated: dict[str, str]) -> None:
    """A secret typed for one run (the CLI's prompt) is not written to the keyring."""
    server = ServerConfig("Once", "http://once.local/dicom-web", auth="basic", username="u")
    assert credentials.set_secret(server, PASSWORD, persist=False) is False
    assert credentials.get_secret(server) == PASSWORD
    assert _child_secret(isolated, server) == "None"
    assert _in_file("RadLens PACS http://once.local/dicom-web", "u") is None
    assert not _files_holding(Path(file_keyring.file_path).parents[1], PASSWORD)


def test_an_unwritable_keyring_keeps_the_secret_for_this_run(file_keyring, tmp_path: Path) -> None:
    root = Path(file_keyring.file_path).parent
    root.parent.mkdir(parents=True, exist_ok=True)
    root.write_text("a file where the keyring's folder should be")  # refuses even root
    server = ServerConfig("Broken", "http://broken.local/dicom-web", auth="bearer")
    assert credentials.set_secret(server, PASSWORD) is False
    assert credentials.get_secret(server) == PASSWORD
    credentials.forget_secret(server)  # no error either
    assert credentials.get_secret(server) is None


def test_an_automatically_picked_plain_text_keyring_is_not_used(isolated: dict[str, str], tmp_path: Path) -> None:
    """With keyrings.alt installed and no keyring chosen, keyring itself picks PlaintextKeyring
    (a later run does too): RadLens does not store a password in that clear-text file."""
    from keyrings.alt.file import PlaintextKeyring

    code = ("import keyring; from engine.pacs import credentials; from engine.pacs.servers import ServerConfig; "
            "s = ServerConfig('A', 'http://a.local/dicom-web', auth='basic', username='u'); "
            f"print(type(keyring.get_keyring()).__name__, credentials.keyring_available(), "
            f"credentials.set_secret(s, {PASSWORD!r}), credentials.get_secret(s) == {PASSWORD!r})")
    out = subprocess.run([sys.executable, "-c", code], env=isolated, cwd=ROOT, capture_output=True, text=True,
                         timeout=60)
    assert out.returncode == 0, out.stderr
    picked, available, stored, in_memory = out.stdout.split()
    assert (available, stored, in_memory) == ("False", "False", "True"), out.stdout
    keyring.set_keyring(PlaintextKeyring())  # the same in this process, whatever keyring picked here
    server = ServerConfig("B", "http://b.local/dicom-web", auth="bearer")
    assert not credentials.keyring_available()
    assert credentials.set_secret(server, PASSWORD) is False and credentials.get_secret(server) == PASSWORD
    assert not [p for p in tmp_path.rglob("*") if p.is_file()], "nothing was written"
    print(f"\nkeyring picks {picked} on its own here; RadLens keeps the secret in memory")


# --- the CLI's password prompt on a pseudo-terminal ----------------------------------------

def _in_terminal(argv: list[str], env: dict[str, str], typed: bytes | None, prompt: bytes,
                 timeout: float = 240) -> tuple[int, str, bool]:
    """Run ``argv`` with a pseudo-terminal as its controlling terminal; type ``typed`` when
    ``prompt`` appears. Returns the exit status, everything the terminal showed, and whether
    the prompt came."""
    pid, fd = pty.fork()
    if pid == 0:  # the child: its stdin, stdout, stderr and /dev/tty are the terminal
        try:
            os.chdir(ROOT)
            os.execve(argv[0], argv, env)
        finally:
            os._exit(127)
    shown, asked = b"", False
    deadline = time.monotonic() + timeout
    try:
        while True:
            if time.monotonic() > deadline:
                os.kill(pid, signal.SIGKILL)
                pytest.fail(f"radlens-batch did not finish in {timeout:.0f} s:\n{shown.decode(errors='replace')}")
            ready, _, _ = select.select([fd], [], [], 0.5)
            if not ready:
                continue
            try:
                data = os.read(fd, 4096)
            except OSError:  # EIO: the child has closed the terminal
                break
            if not data:
                break
            shown += data
            if not asked and prompt in shown:
                asked = True
                if typed is not None:
                    time.sleep(0.2)  # as a user would; echo is already off
                    os.write(fd, typed)
    finally:
        os.close(fd)
    _, status = os.waitpid(pid, 0)
    return os.waitstatus_to_exitcode(status), shown.decode(errors="replace"), asked


def _cli(orthanc_auth: Orthanc, pacs_data: PacsData, tmp_path: Path) -> list[str]:
    exe = Path(sys.executable).with_name("radlens-batch")
    head = [str(exe)] if exe.exists() else [sys.executable, "-c",
                                             "import sys; from engine.batch.cli import main; sys.exit(main())"]
    return [*head, "--dicomweb", orthanc_auth.dicomweb, "--study", pacs_data.studies["stow"].study_uid,
            "--auth", "basic", "--user", "radlens", "-o", str(tmp_path / "r.csv"),
            "--cache", str(tmp_path / "cache"), "--no-progress", "--device", "cpu"]


def test_cli_asks_for_the_password_on_the_terminal_and_uses_it(file_keyring, isolated: dict[str, str],
                                                               orthanc_auth: Orthanc, pacs_data: PacsData,
                                                               tmp_path: Path) -> None:
    password = AUTH_USERS["radlens"]
    env = {**isolated, "TERM": "dumb"}
    start = time.perf_counter()
    code, shown, asked = _in_terminal(_cli(orthanc_auth, pacs_data, tmp_path), env, password.encode() + b"\n",
                                      b"Password for radlens: ")
    elapsed = time.perf_counter() - start
    assert asked, f"no password prompt:\n{shown}"
    assert code in (0, 1), f"exit {code}:\n{shown}"
    assert "Retrieved 1 instance(s) of 1 study(ies)" in shown, shown
    assert password not in shown, "the password was echoed or printed"
    lines = (tmp_path / "r.csv").read_text().splitlines()
    assert len(lines) == 2, lines  # the header and the retrieved image
    assert not _files_holding(tmp_path, password), "the password was written to a file (report, cache, keyring)"
    # the control: this terminal does show what is typed at a prompt that leaves echo on
    _, echoed, _ = _in_terminal([sys.executable, "-c", "input('Password for radlens: ')"], env,
                                password.encode() + b"\n", b"Password for radlens: ", timeout=30)
    assert password in echoed
    print(f"\nprompted, authenticated and analysed in {elapsed:.1f} s; exit {code}")


@pytest.mark.parametrize("typed, status, words", [
    (b"not-the-password\n", 2, "refused the credentials"),
    (b"\x04", 130, "no secret entered"),  # Ctrl-D at the prompt
])
def test_cli_prompt_wrong_password_and_end_of_input(file_keyring, isolated: dict[str, str], orthanc_auth: Orthanc,
                                                    pacs_data: PacsData, tmp_path: Path, typed: bytes, status: int,
                                                    words: str) -> None:
    code, shown, asked = _in_terminal(_cli(orthanc_auth, pacs_data, tmp_path), {**isolated, "TERM": "dumb"}, typed,
                                      b"Password for radlens: ")
    assert asked and code == status, f"exit {code}:\n{shown}"
    assert words in shown
    assert "not-the-password" not in shown
    assert not (tmp_path / "r.csv").exists()
