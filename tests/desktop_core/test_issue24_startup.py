"""Issue 24, first run of ``radlens`` on Linux: item 6 (every system library Qt needs is checked
before PySide6 is imported: a missing libEGL.so.1 is a friendly message, not a traceback) and
item 7 (no display: a plain message and exit 1, not Qt's abort with exit 134). Qt-free: these
run where PySide6 is not installed, as the checks must."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import types
from pathlib import Path

import pytest

from desktop import app

REPO = Path(__file__).resolve().parents[2]
NO_DISPLAY_WORDS = "no display: run RadLens on the workstation's desktop, or use radlens-batch for folders"


def _env(**values: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("DISPLAY", "WAYLAND_DISPLAY", "QT_QPA_PLATFORM")}
    env.update(values)
    return env


def _run(code: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-c", code], cwd=REPO, env=env, capture_output=True, text=True,
                          timeout=120)


# -- item 6: libraries ----------------------------------------------------------------------------
def test_importing_the_entry_point_loads_no_qt() -> None:
    r = _run("import sys, desktop.app\n"
             "print(sorted(m for m in sys.modules if m.split('.')[0] in ('PySide6', 'shiboken6')))\n", _env())
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "[]"


# PySide6 made unimportable as a system without libEGL.so.1 makes it, and the loader told so
MISSING_EGL = r"""
import sys
from importlib.abc import MetaPathFinder

class NoEGL(MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in ("PySide6", "shiboken6"):
            raise ImportError("libEGL.so.1: cannot open shared object file: No such file or directory")
        return None

sys.meta_path.insert(0, NoEGL())
from desktop import app
real = app._loadable
app._loadable = lambda soname: soname not in ("libEGL.so.1", "libGL.so.1") and real(soname)
sys.exit(app.main(ARGV))
"""


@pytest.mark.parametrize("platform", ["xcb", "offscreen"])
def test_missing_egl_and_gl_are_named_before_pyside6_is_imported(platform: str) -> None:
    r = _run(MISSING_EGL.replace("ARGV", "[]"), _env(QT_QPA_PLATFORM=platform, DISPLAY=":0"))
    assert r.returncode == app.XCB_MISSING, r.stderr
    assert "Traceback" not in r.stderr
    assert "libEGL.so.1 (package libegl1), libGL.so.1 (package libgl1)" in r.stderr
    assert re.search(r"sudo apt-get install .*\blibegl1\b.*\blibgl1\b", r.stderr), r.stderr
    assert "radlens-batch" in r.stderr  # what works without a window


def test_each_library_is_checked_and_named_with_its_package(monkeypatch: pytest.MonkeyPatch) -> None:
    xcb = app.qt_libraries("linux", {"DISPLAY": ":0"})
    for soname, package in {"libEGL.so.1": "libegl1", "libGL.so.1": "libgl1", "libxcb-icccm.so.4": "libxcb-icccm4",
                            "libxcb-keysyms.so.1": "libxcb-keysyms1", "libxcb-shape.so.0": "libxcb-shape0",
                            "libxcb-cursor.so.0": "libxcb-cursor0", "libxkbcommon-x11.so.0": "libxkbcommon-x11-0",
                            "libfontconfig.so.1": "libfontconfig1", "libdbus-1.so.3": "libdbus-1-3",
                            "libglib-2.0.so.0": "libglib2.0-0", "libfreetype.so.6": "libfreetype6"}.items():
        assert xcb.get(soname) == package, soname
        checked: list[str] = []
        message = app.check_qt_libraries("linux", {"DISPLAY": ":0"},
                                         loadable=lambda s, gone=soname, seen=checked: seen.append(s) or s != gone)
        assert f"{soname} (package {package})" in message and f" {package}" in message.split("apt-get install")[1]
        assert set(checked) == set(xcb)
    # offscreen: QtGui's libraries still, the xcb plugin's not; Windows and macOS: none
    offscreen = app.qt_libraries("linux", {"QT_QPA_PLATFORM": "offscreen"})
    assert "libEGL.so.1" in offscreen and "libxcb-cursor.so.0" not in offscreen
    assert app.qt_libraries("win32", {}) == {} and app.check_qt_libraries("darwin", {}, loadable=lambda s: False) == ""
    assert app.check_qt_libraries("linux", {"DISPLAY": ":0"}, loadable=lambda s: True) == ""


def test_main_stops_with_the_message_when_the_loader_finds_a_library_missing(
        monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setattr(app, "_loadable", lambda soname: soname != "libxcb-shape.so.0")
    monkeypatch.setenv("QT_QPA_PLATFORM", "xcb")
    monkeypatch.setenv("DISPLAY", ":0")
    assert app.main([]) == app.XCB_MISSING
    err = capsys.readouterr().err
    assert "libxcb-shape.so.0 (package libxcb-shape0)" in err and "libxcb-shape0" in err.split("apt-get install")[1]


def _needed(path: Path) -> list[str]:
    out = subprocess.run(["readelf", "-d", str(path)], capture_output=True, text=True, timeout=60).stdout
    return re.findall(r"\(NEEDED\)\s+Shared library: \[([^\]]+)\]", out)


def test_the_table_covers_what_the_qt_libraries_link() -> None:
    """Every library PySide6's QtCore/QtGui/QtDBus and the xcb plugin link (readelf), less the C/C++
    runtime and what the wheel bundles, is in the table, with a package."""
    if not sys.platform.startswith("linux") or shutil.which("readelf") is None:
        pytest.skip("needs Linux and readelf (binutils)")
    try:
        import importlib.util

        spec = importlib.util.find_spec("PySide6")
    except ImportError:
        spec = None
    if spec is None or not spec.submodule_search_locations:
        pytest.skip("PySide6 is not installed")
    qt = Path(next(iter(spec.submodule_search_locations))) / "Qt"
    binaries = [qt / "plugins" / "platforms" / "libqxcb.so",
                *(qt / "lib" / f"libQt6{m}.so.6" for m in ("Core", "Gui", "DBus", "Widgets", "XcbQpa"))]
    bundled = {p.name for p in (qt / "lib").iterdir()}
    runtime = re.compile(r"^(libc|libm|libdl|libpthread|librt|libstdc\+\+|libgcc_s|ld-linux.*)\.so")
    needed = {s for b in binaries if b.exists() for s in _needed(b)}
    assert needed, "readelf found nothing: the wheel's layout changed"
    table = app.qt_libraries("linux", {"DISPLAY": ":0"})
    missing = sorted(s for s in needed if s not in bundled and not runtime.match(s) and s not in table)
    assert missing == []


# -- item 7: no display --------------------------------------------------------------------------
@pytest.mark.parametrize(("env", "problem"), [
    ({}, True),
    ({"DISPLAY": ":0"}, False),
    ({"DISPLAY": ""}, True),
    ({"WAYLAND_DISPLAY": "wayland-0"}, False),
    ({"QT_QPA_PLATFORM": "xcb"}, True),
    ({"QT_QPA_PLATFORM": "xcb", "WAYLAND_DISPLAY": "wayland-0"}, True),
    ({"QT_QPA_PLATFORM": "xcb", "DISPLAY": "localhost:10.0"}, False),
    ({"QT_QPA_PLATFORM": "offscreen"}, False),
    ({"QT_QPA_PLATFORM": "minimal"}, False),
    ({"QT_QPA_PLATFORM": "vnc:size=1600x1000"}, False),
    ({"QT_QPA_PLATFORM": "wayland;xcb"}, False),
])
def test_display_problem(env: dict[str, str], problem: bool) -> None:
    message = app.display_problem("linux", env)
    assert bool(message) is problem
    if problem:
        assert NO_DISPLAY_WORDS in message
    assert app.display_problem("win32", env) == "" and app.display_problem("darwin", env) == ""


def test_no_display_is_a_message_and_exit_1_not_an_abort() -> None:
    """As in an ssh session: no DISPLAY, no WAYLAND_DISPLAY, no QT_QPA_PLATFORM. Qt used to abort (134)."""
    if not sys.platform.startswith("linux"):
        pytest.skip("Linux only")
    r = _run("import sys\nfrom desktop import app\napp._loadable = lambda s: True\nsys.exit(app.main([]))\n", _env())
    assert r.returncode == 1, r.stderr  # Qt's abort was 134
    assert app.NO_DISPLAY == 1
    assert NO_DISPLAY_WORDS in r.stderr and "Traceback" not in r.stderr


def test_no_display_in_process(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    for name in ("DISPLAY", "WAYLAND_DISPLAY", "QT_QPA_PLATFORM"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setattr(app, "_loadable", lambda soname: True)
    monkeypatch.setattr(sys, "platform", "linux")
    qtapp = types.ModuleType("desktop.qtapp")  # were the check missed, no QApplication: Qt would abort pytest
    qtapp.make_app = qtapp.ErrorReporter = lambda *a, **k: pytest.fail("Qt started without a display")
    monkeypatch.setitem(sys.modules, "desktop.qtapp", qtapp)
    assert app.main([]) == 1
    assert NO_DISPLAY_WORDS in capsys.readouterr().err
