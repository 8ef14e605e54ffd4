"""PACS passwords and tokens as the viewer uses them: ``engine.pacs.credentials`` keeps them
in the OS keyring when one is available, otherwise in memory for this run; the user is
asked once per run when none is known. Never in the settings or the server file."""

from __future__ import annotations

from collections.abc import Callable

from engine.pacs import credentials
from engine.pacs.servers import ServerConfig

Ask = Callable[[ServerConfig], str]  # asks the user; "" = cancelled


def keyring_available() -> bool:
    return bool(credentials.keyring_available())


def needs_secret(server: ServerConfig) -> bool:
    return server.auth != "none"


def known_secret(server: ServerConfig) -> str:
    """The secret already known for ``server`` (this run's memory, then the keyring), or ""."""
    return (credentials.get_secret(server) or "") if needs_secret(server) else ""


def remember(server: ServerConfig, secret: str) -> bool:
    """Keep ``secret``: in the keyring when there is one (True), else for this run only (False)."""
    return bool(credentials.set_secret(server, secret, persist=True))


def secret_for(server: ServerConfig, ask: Ask) -> str | None:
    """The secret to connect with: "" for no authentication; the known one; else asked for
    (and remembered). None when the user was asked and cancelled."""
    if not needs_secret(server):
        return ""
    found = known_secret(server)
    if found:
        return found
    typed = ask(server)
    if not typed:
        return None
    remember(server, typed)
    return typed


def forget(server: ServerConfig) -> None:
    """The kept secret is wrong (401/403) or its server was removed: ask again next time."""
    credentials.forget_secret(server)
