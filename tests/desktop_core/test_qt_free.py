"""desktop.core stays free of Qt and torch (the import-linter contract checks the same
statically; this checks what really gets imported)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from desktop.core.model_state import ModelState

REPO = Path(__file__).resolve().parents[2]


def test_core_imports_neither_qt_nor_torch() -> None:
    code = ("import sys\n"
            "import desktop.core.decoder, desktop.core.messages, desktop.core.model_state, desktop.core.windowing\n"
            "bad = sorted(m for m in sys.modules if m.split('.')[0] in ('PySide6', 'shiboken6', 'torch', 'training'))\n"
            "print(bad)\n")
    r = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "[]"


def test_only_loading_is_unsettled() -> None:
    assert [s for s in ModelState if not s.settled] == [ModelState.LOADING]
