"""Passwords and bearer tokens of PACS servers: in the OS keyring (through ``keyring``) when a
usable backend exists, otherwise in memory for this run only. Never in the settings file.

A backend that is no keyring is not used: the 'fail' and 'null' ones, and the file backends of
``keyrings.alt`` (PlaintextKeyring keeps the password in clear text in a file; EncryptedKeyring
asks for a master password on the terminal, which a GUI cannot answer) unless the user chose one
explicitly, with ``PYTHON_KEYRING_BACKEND`` or keyring's ``keyringrc.cfg``. Installing
``keyrings.alt`` (the test extra does) therefore never sends a password to a plain-text file
silently. A chain of backends is used whole when every member is secure; otherwise only its first
secure member is (a secret kept in a later one is not found)."""

from __future__ import annotations

import configparser
import os
import threading

import keyring
import keyring.errors
from keyring.backend import KeyringBackend

from .servers import ServerConfig

SERVICE = "RadLens PACS"
_memory: dict[tuple[str, str], str] = {}
_lock = threading.Lock()
NOT_KEYRINGS = ("keyring.backends.fail.", "keyring.backends.null.")
OPT_IN = ("keyrings.alt.",)  # used only when chosen explicitly (see the module docstring)


def _key(server: ServerConfig) -> tuple[str, str]:
    """(service, user) under which ``server``'s secret is kept: one per server URL and user, so
    renaming a server keeps its password and two accounts on one server stay apart."""
    user = server.username if server.auth == "basic" else f"{server.auth} token"
    return f"{SERVICE} {server.url.rstrip('/')}", user or "(no user)"


def _class_name(backend: object) -> str:
    return f"{type(backend).__module__}.{type(backend).__qualname__}"


def chosen_backend() -> str:
    """The backend the user named explicitly (``PYTHON_KEYRING_BACKEND``, else ``default-keyring``
    in keyring's ``keyringrc.cfg``), or ""."""
    name = os.environ.get("PYTHON_KEYRING_BACKEND", "").strip()
    if name:
        return name
    try:
        from keyring.util import platform_

        config = configparser.RawConfigParser()
        config.read(os.path.join(platform_.config_root(), "keyringrc.cfg"), encoding="utf-8")
        return config.get("backend", "default-keyring", fallback="").strip()
    except Exception:  # noqa: BLE001 - an unreadable configuration chooses nothing
        return ""


def _allowed(backend: object) -> bool:
    """A single backend that really stores secrets and is one to use (see the module docstring)."""
    name = _class_name(backend)
    if name.startswith(NOT_KEYRINGS):
        return False
    if name.startswith(OPT_IN) and chosen_backend() != name:
        return False
    try:
        return float(getattr(backend, "priority", 1)) > 0
    except Exception:  # noqa: BLE001 - a backend whose priority raises is not viable
        return False


def backend() -> KeyringBackend | None:
    """The keyring backend secrets go to, or None when there is none to use."""
    try:
        current = keyring.get_keyring()
    except Exception:  # noqa: BLE001 - a broken keyring configuration is no keyring
        return None
    chained = getattr(current, "backends", None)
    if chained is not None:  # the chainer: its secure members only
        members = [b for b in chained if _allowed(b)]
        if not members:
            return None
        return current if len(members) == len(list(chained)) else members[0]
    return current if _allowed(current) else None


def keyring_available() -> bool:
    """True when there is a keyring backend that really (and safely) stores secrets."""
    return backend() is not None


def get_secret(server: ServerConfig) -> str | None:
    """The secret known for ``server``: this run's memory first, then the keyring; None if none
    (also when the keyring is locked or fails)."""
    key = _key(server)
    with _lock:
        if key in _memory:
            return _memory[key]
    store = backend()
    if store is None:
        return None
    try:
        return store.get_password(*key)
    except Exception:  # noqa: BLE001 - a locked or broken keyring has nothing for us
        return None


def set_secret(server: ServerConfig, secret: str, persist: bool = True) -> bool:
    """Remember ``secret`` for ``server`` for this run and, with ``persist`` and a usable keyring,
    in the keyring. Returns True when it went into the keyring, False when it is kept in memory
    only (no keyring, keyring failure, or ``persist=False``)."""
    with _lock:
        _memory[_key(server)] = secret
    store = backend() if persist else None
    if store is None:
        return False
    try:
        store.set_password(*_key(server), secret)
    except Exception:  # noqa: BLE001 - locked or read-only keyring: keep it for this run
        return False
    return True


def forget_secret(server: ServerConfig) -> None:
    """Remove the secret for ``server`` from memory and from the keyring (if it is there)."""
    with _lock:
        _memory.pop(_key(server), None)
    store = backend()
    if store is not None:
        try:
            store.delete_password(*_key(server))
        except Exception:  # noqa: BLE001 - nothing stored, or a keyring that refuses: nothing to forget
            pass
