"""PACS server settings (a JSON file, atomic, never a secret) and their secrets (keyring when
usable, else memory for the run)."""

from __future__ import annotations

import json
from pathlib import Path

import keyring
import pytest

from engine.pacs import credentials
from engine.pacs.servers import ServerConfig, ServersFileError, default_cache_dir, load_servers, save_servers


def test_servers_round_trip_and_no_secret_in_file(tmp_path: Path) -> None:
    servers = [ServerConfig("Orthanc", "http://pacs.local:8042/dicom-web"),
               ServerConfig("Hospital", "https://pacs.example.org/dicomweb", auth="basic", username="dr.who",
                            verify_tls=True, timeout_s=12.5),
               ServerConfig("Cloud", "https://dicom.example.com/v1", auth="bearer")]
    path = tmp_path / "cfg" / "pacs-servers.json"
    save_servers(path, servers)
    assert load_servers(path) == servers
    credentials.set_secret(servers[1], "s3cret-password", persist=False)
    save_servers(path, servers)
    text = path.read_text()
    assert "s3cret-password" not in text and "password" not in json.loads(text)["servers"][1]
    assert not [p for p in path.parent.iterdir() if p.name != path.name], "a temp file was left behind"


def test_a_hand_edited_secret_is_ignored_and_never_written_back(tmp_path: Path) -> None:
    path = tmp_path / "s.json"
    path.write_text(json.dumps({"servers": [{"name": "A", "url": "http://a:8042/dicom-web", "auth": "basic",
                                             "username": "u", "password": "plain-text"}]}))
    (server,) = load_servers(path)
    assert not hasattr(server, "password")
    save_servers(path, [server])
    assert "plain-text" not in path.read_text()


@pytest.mark.parametrize("content, words", [
    ("{not json", "not valid JSON"),
    ('{"servers": {"a": 1}}', "list of servers"),
    ('{"servers": [{"name": "x"}]}', "'name' and a 'url'"),
    ('{"servers": [{"name": "x", "url": "ftp://host/"}]}', "not an http"),
    ('{"servers": [{"name": "x", "url": "http://h/", "auth": "kerberos"}]}', "Unknown authentication"),
    ('{"servers": [{"name": "x", "url": "http://h/"}, {"name": "x", "url": "http://g/"}]}', "unique"),
])
def test_bad_settings_file_says_what_is_wrong(tmp_path: Path, content: str, words: str) -> None:
    path = tmp_path / "s.json"
    path.write_text(content)
    with pytest.raises(ServersFileError, match=words):
        load_servers(path)


def test_missing_file_is_no_servers_and_a_failed_save_leaves_no_temp_file(tmp_path: Path) -> None:
    assert load_servers(tmp_path / "none.json") == []
    target = tmp_path / "taken"
    (target / "inside").mkdir(parents=True)  # a folder where the file should go: the rename fails
    with pytest.raises(ServersFileError, match="cannot write"):
        save_servers(target, [ServerConfig("B", "http://b/dicom-web")])
    assert sorted(p.name for p in tmp_path.iterdir()) == ["taken"]
    assert [p.name for p in target.iterdir()] == ["inside"]


def test_secret_falls_back_to_memory_without_a_keyring(monkeypatch: pytest.MonkeyPatch) -> None:
    server = ServerConfig("Mem", "http://mem.local/dicom-web", auth="bearer")
    if credentials.keyring_available():
        pytest.skip(f"a real keyring backend is configured here ({keyring.get_keyring()!r})")
    assert credentials.get_secret(server) is None
    assert credentials.set_secret(server, "tok-123", persist=True) is False  # kept in memory, not persisted
    assert credentials.get_secret(server) == "tok-123"
    other_user = ServerConfig("Mem", "http://mem.local/dicom-web", auth="basic", username="someone")
    assert credentials.get_secret(other_user) is None
    credentials.forget_secret(server)
    assert credentials.get_secret(server) is None


def test_default_cache_dir_is_a_platform_cache_and_configurable(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv("RADLENS_PACS_CACHE", raising=False)
    assert default_cache_dir().parts[-2:] == ("radlens", "pacs") or "RadLens" in default_cache_dir().parts
    monkeypatch.setenv("RADLENS_PACS_CACHE", str(tmp_path))
    assert default_cache_dir() == tmp_path


@pytest.mark.parametrize("url", ["http://dr.who:s3cret-pw@pacs.local:8042/dicom-web",
                                 "https://token-s3cret-pw@pacs.example.org/dicomweb"])
def test_a_password_in_the_url_is_refused_and_never_written(tmp_path: Path, url: str) -> None:
    server = ServerConfig("Hospital", url)
    problem = server.problem()
    assert problem is not None and "s3cret-pw" not in problem and "user name" in problem
    path = tmp_path / "s.json"  # a hand-edited file with one: refused, and the secret is not echoed
    path.write_text(json.dumps({"servers": [{"name": "A", "url": url}]}))
    with pytest.raises(ServersFileError) as e:
        load_servers(path)
    assert "s3cret-pw" not in str(e.value)
