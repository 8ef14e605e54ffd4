"""Quitting RadLens while a PACS request still waits on a server (a silent PACS, a slow
network) ends the process cleanly and soon, instead of Qt aborting it ("QThread: Destroyed
while thread is still running", SIGABRT and a core dump)."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

pytest.importorskip("PySide6")

ROOT = Path(__file__).resolve().parents[2]

SCRIPT = textwrap.dedent("""
    import sys
    from PySide6.QtCore import QTimer
    from PySide6.QtWidgets import QApplication, QWidget
    from desktop.pacs.pacs_task import Tasks
    from engine.pacs.dicomweb import PacsClient
    from engine.pacs.servers import ServerConfig

    app = QApplication([])
    window = QWidget()
    tasks = Tasks(window)
    server = ServerConfig("Silent-PACS", sys.argv[1], timeout_s=60)  # answers only after a minute
    tasks.start(lambda progress, cancel: PacsClient(server).search_studies(), print, print)

    def quit_app() -> None:  # what PacsControl.shutdown does when the window closes
        tasks.shutdown(wait_ms=300)
        window.close()
        app.quit()

    QTimer.singleShot(500, quit_app)
    sys.exit(app.exec())
""")


def test_quitting_while_a_request_waits_on_the_server_exits_cleanly(silent_server: str) -> None:
    env = {**os.environ, "QT_QPA_PLATFORM": "offscreen", "PYTHONPATH": str(ROOT)}
    start = time.monotonic()
    done = subprocess.run([sys.executable, "-c", SCRIPT, silent_server], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=45)
    took = time.monotonic() - start
    assert done.returncode == 0, f"exit status {done.returncode}: {done.stderr[-1500:]}"
    assert "Destroyed while thread" not in done.stderr
    assert took < 30, f"quitting took {took:.1f} s: it waited for the server's 60 s timeout"
