"""Issue 24 in the viewer: item 18 (File > Open shows DICOM files without an extension by
default: "All files (*)" is offered and chosen, the images filter kept) and item 7's other side
(``radlens --self-test`` still runs without a display: it uses Qt's offscreen platform)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


def test_open_filter_offers_all_files_and_images() -> None:
    from desktop import dialogs

    entries = dialogs.IMAGE_FILTER.split(";;")
    assert "All files (*)" in entries
    assert any(e.startswith("Images (") and "*.dcm" in e and "*.png" in e for e in entries)
    assert dialogs.OPEN_DEFAULT_FILTER == "All files (*)" == entries[0]


def test_file_open_shows_all_files_by_default(monkeypatch: pytest.MonkeyPatch) -> None:
    """An extensionless DICOM (WG04 samples, PACS exports) is visible in the dialog as it opens;
    the engine decides from the content what the chosen file is."""
    from PySide6.QtWidgets import QFileDialog

    from desktop.dialogs import Dialogs

    calls: list[tuple[object, ...]] = []

    def fake(*args: object, **kwargs: object) -> tuple[list[str], str]:
        calls.append(args + tuple(kwargs.values()))
        return ["/data/IM000001"], "All files (*)"

    monkeypatch.setattr(QFileDialog, "getOpenFileNames", staticmethod(fake))
    assert Dialogs().open_files("/data") == ["/data/IM000001"]
    (args,) = calls
    filters, selected = args[3], args[4]
    assert "All files (*)" in str(filters).split(";;") and selected == "All files (*)"


def test_extensionless_dicom_opens_by_its_content(dicom_dir: Path, tmp_path: Path) -> None:
    from engine.io import load_image

    path = tmp_path / "IM000001"
    path.write_bytes((dicom_dir / "CR-MONO1-10-chest.dcm").read_bytes())
    assert load_image(path).meta.format == "dicom"


def test_self_test_runs_without_a_display(monkeypatch: pytest.MonkeyPatch) -> None:
    """``radlens --self-test`` goes to the self-test before the display check (it uses offscreen)."""
    import desktop.selftest
    from desktop import app

    for name in ("DISPLAY", "WAYLAND_DISPLAY", "QT_QPA_PLATFORM"):
        monkeypatch.delenv(name, raising=False)
    seen: list[list[str]] = []
    monkeypatch.setattr(desktop.selftest, "run_self_test", lambda argv: seen.append(argv) or 0)
    assert app.main(["--self-test"]) == 0 and seen == [["--self-test"]]


def test_self_test_process_without_a_display(tmp_path: Path) -> None:
    """The real thing, as an installer runs it on a machine with no display."""
    env = {k: v for k, v in os.environ.items() if k not in ("DISPLAY", "WAYLAND_DISPLAY", "QT_QPA_PLATFORM")}
    r = subprocess.run([sys.executable, "-m", "desktop", "--self-test", "--device", "cpu", "--report",
                        str(tmp_path / "self-test.txt")], cwd=REPO, env=env, capture_output=True, text=True,
                       timeout=300)
    assert "no display" not in r.stderr
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
