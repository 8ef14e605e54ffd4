"""The PACS preferences: the server list (a JSON file beside the settings, written by
``engine.pacs.servers``; never a password or token), the local cache folder, the last
server used, and the receiver's settings: AE title, port, the address it listens on
(127.0.0.1 by default), its allowed senders (calling AE title and optional IP address; only
they may send unless "accept any caller" is on, off by default) and whether it starts
with RadLens (off by default)."""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path

from PySide6.QtCore import QSettings

from engine.pacs.servers import ServerConfig, default_cache_dir, default_servers_path, load_servers, save_servers

from ..settings import Settings, _flag

DEFAULT_AE_TITLE = "RADLENS"
DEFAULT_PORT = 11112
DEFAULT_BIND_ADDRESS = "127.0.0.1"  # this computer only, until the user chooses a network address


class PacsPrefs:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.qs = settings.qs
        self._get = settings._get  # what ``_flag`` reads through
        self.receiver_listeners: list[Callable[[], None]] = []  # told when the receiver settings are saved

    def receiver_saved(self) -> None:
        """The settings dialog saved the receiver settings: a running receiver picks them up."""
        for listener in list(self.receiver_listeners):
            listener()

    # -- servers -------------------------------------------------------------------------
    @property
    def servers_path(self) -> Path:
        """The engine's server file (shared with radlens-batch); beside the settings file when
        the settings were opened from an explicit file (tests, portable installs)."""
        if self.qs.format() == QSettings.Format.IniFormat:
            return Path(os.path.dirname(os.path.abspath(self.qs.fileName()))) / "pacs-servers.json"
        return default_servers_path()

    def servers(self) -> list[ServerConfig]:
        return list(load_servers(self.servers_path))

    def save_servers(self, servers: list[ServerConfig]) -> None:
        save_servers(self.servers_path, servers)

    @property
    def last_server(self) -> str:
        return str(self._get("pacs/last_server", ""))

    @last_server.setter
    def last_server(self, name: str) -> None:
        self.qs.setValue("pacs/last_server", name)

    # -- cache ---------------------------------------------------------------------------
    @property
    def cache_dir(self) -> Path:
        """Where retrieved and received studies go."""
        chosen = str(self._get("pacs/cache_dir", ""))
        return Path(chosen) if chosen else default_cache_dir()

    @cache_dir.setter
    def cache_dir(self, folder: str) -> None:
        self.qs.setValue("pacs/cache_dir", str(folder))

    # -- receiver ------------------------------------------------------------------------
    receive_enabled = _flag("pacs/receive", False,
                            "The receiver was on when RadLens last closed. That alone never restarts it (RadLens "
                            "before ``start_at_launch`` did, silently): the next launch only says how to turn it on.")
    start_at_launch = _flag("pacs/receive_at_launch", False,
                            "Start the receiver when RadLens starts (off by default; the status bar says so).")
    accept_any = _flag("pacs/accept_any", False,
                       "Accept associations from any caller, not only the allowed senders (off by default).")

    @property
    def bind_address(self) -> str:
        """The IP address the receiver listens on (127.0.0.1: this computer only)."""
        return str(self._get("pacs/bind_address", DEFAULT_BIND_ADDRESS)).strip() or DEFAULT_BIND_ADDRESS

    @bind_address.setter
    def bind_address(self, address: str) -> None:
        self.qs.setValue("pacs/bind_address", address.strip())

    @property
    def peers(self) -> list[tuple[str, str]]:
        """The allowed senders: (calling AE title, IP address or network; "" = any address)."""
        try:
            items = json.loads(str(self._get("pacs/peers", "[]")))
            return [(str(d["ae_title"]).strip(), str(d.get("address", "")).strip()) for d in items]
        except (ValueError, KeyError, TypeError):
            return []

    @peers.setter
    def peers(self, peers: list[tuple[str, str]]) -> None:
        self.qs.setValue("pacs/peers", json.dumps([{"ae_title": ae.strip(), "address": addr.strip()}
                                                   for ae, addr in peers]))

    @property
    def ae_title(self) -> str:
        return str(self._get("pacs/ae_title", DEFAULT_AE_TITLE)) or DEFAULT_AE_TITLE

    @ae_title.setter
    def ae_title(self, ae: str) -> None:
        self.qs.setValue("pacs/ae_title", ae.strip())

    @property
    def port(self) -> int:
        return int(self._get("pacs/port", DEFAULT_PORT, int))

    @port.setter
    def port(self, port: int) -> None:
        self.qs.setValue("pacs/port", int(port))
