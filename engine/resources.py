"""Where the bundled resources live, in a source checkout and in a frozen (PyInstaller) app."""

from __future__ import annotations

import sys
from pathlib import Path


def resource_dir() -> Path:
    base = getattr(sys, "_MEIPASS", None)
    if base:
        return Path(base) / "resources"
    return Path(__file__).resolve().parent.parent / "resources"
