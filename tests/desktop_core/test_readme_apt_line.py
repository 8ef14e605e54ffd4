"""The README's apt line names every package `radlens` checks for before Qt starts (issue 24 item 8)."""

from __future__ import annotations

import re
from pathlib import Path

from desktop.app import QT_GUI_LIBRARIES, QT_XCB_LIBRARIES
from desktop.core.system_libs import USUAL_PACKAGES, XCB_LIBRARIES

README = Path(__file__).resolve().parents[2] / "README.md"


def test_readme_apt_line_covers_the_qt_libraries() -> None:
    text = README.read_text(encoding="utf-8")
    line = re.search(r"`sudo apt-get install (lib[^`]*)`", text.split("System packages (Linux)", 1)[1])
    assert line, "no apt line after 'System packages (Linux)'"
    listed = set(line.group(1).split())
    needed = set(QT_GUI_LIBRARIES.values()) | set(QT_XCB_LIBRARIES.values()) | set(XCB_LIBRARIES.values()) \
        | set(USUAL_PACKAGES)
    assert needed <= listed, sorted(needed - listed)
