"""Fixtures for the desktop tests: offscreen Qt, isolated settings, dialogs that answer
without blocking, and a main window with the tiny test model loaded."""

from __future__ import annotations

import os

os.environ["QT_QPA_PLATFORM"] = "offscreen"  # before anything imports Qt

import shutil
import warnings
from collections.abc import Callable
from pathlib import Path

import pytest

pytest.importorskip("PySide6")
pytest.importorskip("pytestqt")

from fake_dialogs import FakeDialogs  # noqa: E402 - tests/fake_dialogs.py
from PySide6.QtCore import QStandardPaths  # noqa: E402

QStandardPaths.setTestModeEnabled(True)  # logs and data go to a test location, never the user's
warnings.filterwarnings("ignore", category=UserWarning, module="pydicom")

DEVICE = "cpu"  # the CUDA probe is tested by the engine; here it would only cost time


@pytest.fixture
def dialogs() -> FakeDialogs:
    return FakeDialogs()


@pytest.fixture
def settings_path(tmp_path: Path) -> str:
    return str(tmp_path / "radlens-settings.ini")


@pytest.fixture
def make_window(qtbot, dialogs: FakeDialogs, settings_path: str, tiny_model_path: Path) -> Callable:
    """make_window(model=..., wait_model=True) -> MainWindow (closed at teardown)."""
    from desktop.main_window import MainWindow
    from desktop.settings import Settings

    def make(model: str | Path | None = "tiny", wait_model: bool = True, device: str = DEVICE):
        path = str(tiny_model_path) if model == "tiny" else (str(model) if model else None)
        win = MainWindow(Settings(settings_path), model_path=path, device=device, dialogs=dialogs)
        qtbot.addWidget(win)
        win.resize(1200, 800)
        win.show()
        if wait_model and path and Path(path).is_file():
            qtbot.waitUntil(lambda: win.model_state.settled, timeout=20000)
        return win

    return make


@pytest.fixture
def window(make_window):
    return make_window()


@pytest.fixture
def open_wait(qtbot) -> Callable:
    """open_wait(win, path): open ``path`` and wait until its result (or error) is on screen."""

    def run(win, path: str | Path, timeout: int = 20000) -> None:
        with qtbot.waitSignal(win.analysisFinished, timeout=timeout,
                              check_params_cb=lambda p: os.path.abspath(p) == os.path.abspath(str(path))):
            win.open_paths([str(path)])

    return run


@pytest.fixture
def study_folder(tmp_path: Path, cxr_samples: dict[str, list[Path]]) -> Path:
    """A folder with real radiographs (two per class), a zero-byte file and a text file
    named .dcm."""
    folder = tmp_path / "study"
    folder.mkdir()
    for label, paths in cxr_samples.items():
        for p in paths[:2]:
            shutil.copy(p, folder / f"{label}_{p.name}")
    (folder / "empty.png").write_bytes(b"")
    (folder / "notes.dcm").write_text("this is not a DICOM file\n")
    return folder
