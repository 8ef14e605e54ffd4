"""PACS server settings: a JSON file of ``ServerConfig`` entries, written atomically and never
holding a secret (passwords and tokens live in the OS keyring, see ``credentials``), and the
platform folders for these settings and the local cache of retrieved studies."""

from __future__ import annotations

import json
import os
import sys
import tempfile
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Literal
from urllib.parse import urlparse

from ..errors import RadLensError

Auth = Literal["none", "basic", "bearer"]
AUTH_KINDS: tuple[str, ...] = ("none", "basic", "bearer")
#: keys that look like secrets: never written, and ignored when a hand-edited file has them
SECRET_KEYS = frozenset({"password", "secret", "token", "bearer_token", "api_key", "apikey"})


class ServersFileError(RadLensError):
    """The server settings file cannot be read or written."""


@dataclass
class ServerConfig:
    """One DICOMweb server. ``url`` is the DICOMweb root (e.g. ``http://host:8042/dicom-web``).
    ``username`` is used with basic auth; the password or bearer token is not part of it."""

    name: str
    url: str
    auth: Auth = "none"
    username: str = ""
    verify_tls: bool = True
    timeout_s: float = 30.0

    def problem(self) -> str | None:
        """What is wrong with these settings (a sentence saying what to change), or None."""
        if not self.name.strip():
            return "The server needs a name."
        parsed = urlparse(self.url.strip())
        if "@" in parsed.netloc:  # never echo it: it may hold a password
            return ("The URL holds a user name or password (before '@'). Remove it from the URL and choose basic "
                    "authentication with the user name instead: the password then goes to the keyring (or is "
                    "asked for), never into the settings file, a report or a message.")
        if parsed.scheme not in ("http", "https") or not parsed.hostname:
            return (f"The URL {self.url!r} is not an http:// or https:// address. Enter the DICOMweb root, "
                    "e.g. http://pacs.example.org:8042/dicom-web.")
        if self.auth not in AUTH_KINDS:
            return f"Unknown authentication {self.auth!r}; choose none, basic or bearer."
        if self.auth == "basic" and not self.username.strip():
            return "Basic authentication needs a user name."
        if not (0 < float(self.timeout_s) <= 3600):
            return f"The timeout must be between 0 and 3600 seconds, got {self.timeout_s}."
        return None


def _app_dir(kind: Literal["config", "cache"]) -> Path:
    home = Path.home()
    if sys.platform == "win32":
        base = Path(os.environ.get("LOCALAPPDATA" if kind == "cache" else "APPDATA") or home / "AppData" / "Local")
        return base / "RadLens" / ("Cache" if kind == "cache" else "")
    if sys.platform == "darwin":
        return home / "Library" / ("Caches" if kind == "cache" else "Application Support") / "RadLens"
    env = os.environ.get("XDG_CACHE_HOME" if kind == "cache" else "XDG_CONFIG_HOME")
    return (Path(env) if env else home / (".cache" if kind == "cache" else ".config")) / "radlens"


def default_cache_dir() -> Path:
    """Where retrieved and received studies go unless told otherwise (``RADLENS_PACS_CACHE`` overrides):
    ``~/.cache/radlens/pacs`` on Linux, ``~/Library/Caches/RadLens/pacs`` on macOS,
    ``%LOCALAPPDATA%\\RadLens\\Cache\\pacs`` on Windows."""
    env = os.environ.get("RADLENS_PACS_CACHE")
    return Path(env) if env else _app_dir("cache") / "pacs"


def default_servers_path() -> Path:
    """The server settings file: ``~/.config/radlens/pacs-servers.json`` on Linux (and the
    platform's settings folder elsewhere)."""
    return _app_dir("config") / "pacs-servers.json"


def _server_from(entry: object, where: str) -> ServerConfig:
    if not isinstance(entry, dict):
        raise ServersFileError(f"{where}: each server must be a JSON object. Fix or delete the file.")
    known = {f.name for f in fields(ServerConfig)}
    values = {k: v for k, v in entry.items() if k in known and k not in SECRET_KEYS}
    if not isinstance(values.get("name"), str) or not isinstance(values.get("url"), str):
        raise ServersFileError(f"{where}: a server needs a 'name' and a 'url'. Fix or delete the file.")
    try:
        server = ServerConfig(**values)
        server.verify_tls = bool(server.verify_tls)
        server.timeout_s = float(server.timeout_s)
    except (TypeError, ValueError) as e:
        raise ServersFileError(f"{where}: {e}. Fix or delete the file.") from None
    problem = server.problem()
    if problem:
        raise ServersFileError(f"{where}: server {server.name!r}: {problem}")
    return server


def load_servers(path: str | os.PathLike[str]) -> list[ServerConfig]:
    """The servers in ``path`` (``[]`` when the file does not exist). Keys holding secrets are
    ignored. Raises ``ServersFileError`` for an unreadable or malformed file."""
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except FileNotFoundError:
        return []
    except OSError as e:
        raise ServersFileError(f"cannot read the PACS server settings {p} ({e.strerror or e}).") from None
    try:
        data = json.loads(text)
    except json.JSONDecodeError as e:
        raise ServersFileError(f"{p} is not valid JSON (line {e.lineno}: {e.msg}). Fix or delete the file.") from None
    entries = data.get("servers") if isinstance(data, dict) else data
    if not isinstance(entries, list):
        raise ServersFileError(f"{p}: expected a list of servers under 'servers'. Fix or delete the file.")
    servers = [_server_from(e, f"{p}, server {i + 1}") for i, e in enumerate(entries)]
    names = [s.name for s in servers]
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        raise ServersFileError(f"{p}: server names must be unique ({', '.join(dupes)}). Rename one.")
    return servers


def save_servers(path: str | os.PathLike[str], servers: list[ServerConfig]) -> None:
    """Write ``servers`` to ``path`` atomically (temp file + rename). No secret is ever written:
    ``ServerConfig`` has no field for one."""
    p = Path(path)
    payload = {"servers": [asdict(s) for s in servers],
               "note": "RadLens PACS servers. Passwords and tokens are kept in the OS keyring, never here."}
    try:
        p.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{p.name}.", suffix=".tmp", dir=p.parent)
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as f:
                json.dump(payload, f, indent=2)
                f.write("\n")
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, p)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
    except OSError as e:
        raise ServersFileError(f"cannot write the PACS server settings {p} ({e.strerror or e}). "
                               "Check that the folder is writable.") from None
