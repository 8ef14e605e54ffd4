"""Passwords and bearer tokens of PACS servers: in the OS keyring (through ``keyring``) when a
usable backend exists, otherwise in memory for this run only. Never in the settings file."""

from __future__ import annotations

import threading

import keyring
import keyring.errors

from .servers import ServerConfig

SERVICE = "RadLens PACS"
_memory: dict[tuple[str, str], str] = {}
_lock = threading.Lock()


def _key(server: ServerConfig) -> tuple[str, str]:
    """(service, user) under which ``server``'s secret is kept: one per server URL and user, so
    renaming a server keeps its password and two accounts on one server stay apart."""
    user = server.username if server.auth == "basic" else f"{server.auth} token"
    return f"{SERVICE} {server.url.rstrip('/')}", user or "(no user)"


def keyring_available() -> bool:
    """True when ``keyring`` has a backend that really stores secrets (not the 'fail' or 'null' one)."""
    try:
        backend = keyring.get_keyring()
    except Exception:  # noqa: BLE001 - a broken keyring configuration is no keyring
        return False
    name = f"{type(backend).__module__}.{type(backend).__name__}"
    if name.startswith(("keyring.backends.fail.", "keyring.backends.null.")):
        return False
    if hasattr(backend, "backends"):  # the chainer: usable when it chains a real backend
        return bool(getattr(backend, "backends", ()))
    try:
        return float(getattr(backend, "priority", 1)) > 0
    except Exception:  # noqa: BLE001 - a backend whose priority raises is not viable
        return False


def get_secret(server: ServerConfig) -> str | None:
    """The secret known for ``server``: this run's memory first, then the keyring; None if none
    (also when the keyring is locked or fails)."""
    key = _key(server)
    with _lock:
        if key in _memory:
            return _memory[key]
    if not keyring_available():
        return None
    try:
        return keyring.get_password(*key)
    except Exception:  # noqa: BLE001 - a locked or broken keyring has nothing for us
        return None


def set_secret(server: ServerConfig, secret: str, persist: bool = True) -> bool:
    """Remember ``secret`` for ``server`` for this run and, with ``persist`` and a usable keyring,
    in the keyring. Returns True when it went into the keyring, False when it is kept in memory
    only (no keyring, keyring failure, or ``persist=False``)."""
    with _lock:
        _memory[_key(server)] = secret
    if not persist or not keyring_available():
        return False
    try:
        keyring.set_password(*_key(server), secret)
    except Exception:  # noqa: BLE001 - locked or read-only keyring: keep it for this run
        return False
    return True


def forget_secret(server: ServerConfig) -> None:
    """Remove the secret for ``server`` from memory and from the keyring (if it is there)."""
    with _lock:
        _memory.pop(_key(server), None)
    if keyring_available():
        try:
            keyring.delete_password(*_key(server))
        except Exception:  # noqa: BLE001 - nothing stored, or a keyring that refuses: nothing to forget
            pass
