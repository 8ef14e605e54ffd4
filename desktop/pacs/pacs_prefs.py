"""The PACS preferences: the server list (a JSON file beside the settings, written by
``engine.pacs.servers``; never a password or token), the local cache folder, the last
server used, and the receiver's AE title, port and on/off (off by default)."""

from __future__ import annotations

import os
from pathlib import Path

from PySide6.QtCore import QSettings

from engine.pacs.servers import ServerConfig, default_cache_dir, default_servers_path, load_servers, save_servers

from ..settings import Settings, _flag

DEFAULT_AE_TITLE = "RADLENS"
DEFAULT_PORT = 11112


class PacsPrefs:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.qs = settings.qs
        self._get = settings._get  # what ``_flag`` reads through

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
    receive_enabled = _flag("pacs/receive", False, "Receive studies (C-STORE); off by default.")

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
