"""Persistent settings (QSettings): last folder, recent files, window presets, overlay
opacity, heatmap and lung outline visibility, device preference, model path, window
geometry and dock layout."""

from __future__ import annotations

import json

from PySide6.QtCore import QByteArray, QSettings

from engine import Window
from engine.ai.model import DEVICES

from . import APP_NAME, ORG_NAME

MAX_RECENT = 10


def _flag(key: str, default: bool, doc: str | None = None) -> property:
    """A boolean setting stored under ``key``."""

    def get(self: Settings) -> bool:
        return bool(self._get(key, default, bool))

    def put(self: Settings, v: bool) -> None:
        self.qs.setValue(key, bool(v))

    return property(get, put, doc=doc)


class Settings:
    """Typed access to QSettings. ``path`` gives an INI file (tests use a temporary one)."""

    def __init__(self, path: str | None = None) -> None:
        if path:
            self.qs = QSettings(path, QSettings.Format.IniFormat)
        else:
            self.qs = QSettings(ORG_NAME, APP_NAME)

    def _get(self, key: str, default, typ=None):  # noqa: ANN001, ANN202 - QSettings values are untyped
        v = self.qs.value(key, default)
        if v is None:
            return default
        if typ is bool:
            return v in (True, "true", "1", 1)
        if typ is not None:
            try:
                return typ(v)
            except (TypeError, ValueError):
                return default
        return v

    def sync(self) -> None:
        self.qs.sync()

    # -- files ---------------------------------------------------------------------------
    @property
    def last_folder(self) -> str:
        return str(self._get("files/last_folder", ""))

    @last_folder.setter
    def last_folder(self, folder: str) -> None:
        self.qs.setValue("files/last_folder", folder)

    def recent_files(self) -> list[str]:
        v = self.qs.value("files/recent", [])
        if isinstance(v, str):
            v = [v] if v else []
        return [str(x) for x in (v or [])][:MAX_RECENT]

    def add_recent(self, path: str) -> list[str]:
        items = [path] + [p for p in self.recent_files() if p != path]
        self.qs.setValue("files/recent", items[:MAX_RECENT])
        return items[:MAX_RECENT]

    def clear_recent(self) -> None:
        self.qs.setValue("files/recent", [])

    # -- model ---------------------------------------------------------------------------
    @property
    def device(self) -> str:
        d = str(self._get("model/device", "auto"))
        return d if d in DEVICES else "auto"

    @device.setter
    def device(self, device: str) -> None:
        self.qs.setValue("model/device", device if device in DEVICES else "auto")

    @property
    def model_path(self) -> str:
        """A model the user loaded with File > Load model ("" = the bundled default)."""
        return str(self._get("model/path", ""))

    @model_path.setter
    def model_path(self, path: str) -> None:
        self.qs.setValue("model/path", path)

    # -- display -------------------------------------------------------------------------
    @property
    def overlay_opacity(self) -> float:
        return min(1.0, max(0.0, float(self._get("display/overlay_opacity", 0.45, float))))

    @overlay_opacity.setter
    def overlay_opacity(self, v: float) -> None:
        self.qs.setValue("display/overlay_opacity", float(v))

    cam_visible = _flag("display/cam_visible", True)
    lungs_visible = _flag("display/lungs_visible", False)
    corner_text = _flag("display/corner_text", False)
    show_identifiers = _flag("privacy/show_identifiers", False,
                             "Patient name, ID, age and sex on the image (corner text), for the running session "
                             "only: the window turns it off at every launch (``corner_text.CornerText``).")
    sort_probs = _flag("display/sort_probs", False,
                       "Probability bars sorted highest first (default: the model card's class order).")

    def user_presets(self) -> list[Window]:
        """Window presets saved by the user (centre/width in the image's value units)."""
        try:
            items = json.loads(str(self._get("display/presets", "[]")))
            return [Window(float(d["center"]), float(d["width"]), str(d.get("function", "LINEAR_EXACT")), str(d["name"]))
                    for d in items]
        except (ValueError, KeyError, TypeError):
            return []

    def save_user_preset(self, w: Window) -> None:
        items = [p for p in self.user_presets() if p.name != w.name] + [w]
        self.qs.setValue("display/presets", json.dumps(
            [{"name": p.name, "center": p.center, "width": p.width, "function": p.function} for p in items]))

    def remove_user_preset(self, name: str) -> None:
        items = [p for p in self.user_presets() if p.name != name]
        self.qs.setValue("display/presets", json.dumps(
            [{"name": p.name, "center": p.center, "width": p.width, "function": p.function} for p in items]))

    # -- window layout -------------------------------------------------------------------
    def geometry(self) -> QByteArray | None:
        v = self.qs.value("window/geometry")
        return v if isinstance(v, QByteArray) and not v.isEmpty() else None

    def state(self) -> QByteArray | None:
        v = self.qs.value("window/state")
        return v if isinstance(v, QByteArray) and not v.isEmpty() else None

    def save_layout(self, geometry: QByteArray, state: QByteArray) -> None:
        self.qs.setValue("window/geometry", geometry)
        self.qs.setValue("window/state", state)
