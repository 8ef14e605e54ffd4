"""Guard against a Qt binding that drops references to None (PySide6 6.12.0 on CPython < 3.12:
every Qt call that returns nothing decrements None's reference count, and the viewer aborts
with "Fatal Python error: none_dealloc" after a few thousand calls, e.g. when a large folder is
opened). Run in a child process so that a bad binding fails this test instead of killing pytest."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

pytest.importorskip("PySide6")

REPO = Path(__file__).resolve().parents[2]

SCRIPT = textwrap.dedent(
    """
    import sys
    from PySide6.QtWidgets import QApplication, QLabel
    from desktop.study_browser import StudyBrowser

    app = QApplication([])
    label = QLabel()
    browser = StudyBrowser()
    paths = [f"/study/image_{i:05d}.dcm" for i in range(3000)]
    before = sys.getrefcount(None)
    for _ in range(20000):
        label.setText("x")            # a Qt call that returns nothing
    browser.set_paths(paths)          # the real path that aborted: opening a 3,000-file folder
    browser.set_paths(paths[:10])
    after = sys.getrefcount(None)
    print(f"refcount(None) {before} -> {after}")
    sys.exit(0 if after >= before - 1000 else 3)
    """
)


def test_qt_calls_keep_references_to_none() -> None:
    env = {**os.environ, "QT_QPA_PLATFORM": "offscreen", "PYTHONPATH": str(REPO)}
    proc = subprocess.run([sys.executable, "-c", SCRIPT], capture_output=True, text=True, timeout=120, env=env, cwd=REPO)
    import PySide6

    assert proc.returncode == 0, (
        f"PySide6 {PySide6.__version__} on Python {sys.version.split()[0]} loses references to None "
        f"(exit {proc.returncode}); pin a working version in pyproject.toml.\n{proc.stdout}\n{proc.stderr[-2000:]}"
    )
