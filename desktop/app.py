"""Entry point: ``radlens`` / ``python -m desktop [--model PATH] [--device D] [FILE|FOLDER ...]``.

Before anything loads Qt, checks (Linux) that the system libraries Qt links are installed and
that there is a display to draw on, and says in plain words what to do if not: a missing
libEGL.so.1 would otherwise stop the import of PySide6 with a traceback, a missing display
abort Qt with a core dump. So this module imports no PySide6 at its top: Qt is imported only
once the checks pass (``ErrorReporter`` lives in ``qtapp`` and is reachable from here).

Then sets up the QApplication, logging to a file in the user's data folder, and an exception
hook that shows a dialog and logs the traceback instead of killing the app.
``--screenshot OUT.png`` renders the window once the given image is analysed, saves it
and exits (works offscreen too: it uses QWidget.grab).
"""

from __future__ import annotations

import argparse
import ctypes
import logging
import os
import sys
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from PySide6.QtCore import QTimer
    from PySide6.QtWidgets import QApplication

    from .qtapp import ErrorReporter  # noqa: F401 - desktop.app.ErrorReporter, for type checkers

log = logging.getLogger("radlens")
SELF_TEST_FLAGS = ("--self-test", "--startup-time", "--write-expected")
XCB_MISSING = 3  # exit status: the system libraries Qt needs are not installed
NO_DISPLAY = 1  # exit status: no display to open the window on (an ssh session)

# soname -> Debian/Ubuntu package, for what PySide6's libQt6Core, libQt6Gui and libQt6DBus link
# (``readelf -d``/``ldd``, less the C/C++ runtime and the libraries PySide6 bundles, such as ICU):
# needed to import QtGui at all, whatever the platform plugin (offscreen too).
QT_GUI_LIBRARIES: dict[str, str] = {
    "libEGL.so.1": "libegl1",
    "libGL.so.1": "libgl1",
    "libfontconfig.so.1": "libfontconfig1",
    "libfreetype.so.6": "libfreetype6",
    "libglib-2.0.so.0": "libglib2.0-0",
    "libgthread-2.0.so.0": "libglib2.0-0",
    "libdbus-1.so.3": "libdbus-1-3",
    "libX11.so.6": "libx11-6",
    "libxkbcommon.so.0": "libxkbcommon0",
    "libz.so.1": "zlib1g",
    "libzstd.so.1": "libzstd1",
}
# what the xcb platform plugin (plugins/platforms/libqxcb.so, libQt6XcbQpa.so.6) links beyond
# desktop.core.system_libs.XCB_LIBRARIES (which it also needs)
QT_XCB_LIBRARIES: dict[str, str] = {
    "libxcb.so.1": "libxcb1",
    "libxcb-render.so.0": "libxcb-render0",
    "libxcb-shm.so.0": "libxcb-shm0",
    "libxcb-sync.so.1": "libxcb-sync1",
    "libxcb-xfixes.so.0": "libxcb-xfixes0",
}
# QT_QPA_PLATFORM values that draw on an X11 display; the others (offscreen, minimal, vnc,
# eglfs, linuxfb, wayland...) need no DISPLAY
X11_PLATFORMS = ("xcb",)
NO_DISPLAY_MESSAGE = (
    "RadLens: no display: run RadLens on the workstation's desktop, or use radlens-batch for folders "
    "(radlens-batch FOLDER -o report.csv).\n(Neither DISPLAY nor WAYLAND_DISPLAY is set, as in an ssh session.)"
)


def _loadable(soname: str) -> bool:
    """Whether the dynamic loader finds ``soname``, as Qt's libraries will look it up."""
    try:
        ctypes.CDLL(soname)
    except OSError:
        return False
    return True


def qt_libraries(platform: str | None = None, env: Mapping[str, str] = os.environ) -> dict[str, str]:
    """soname -> package of every system library Qt will load here: QtGui's (Linux), and the
    xcb platform plugin's when Qt will start it."""
    platform = platform or sys.platform
    if not platform.startswith("linux"):
        return {}
    from .core import system_libs

    libs = dict(QT_GUI_LIBRARIES)
    if system_libs.uses_xcb(platform, env):
        libs.update(system_libs.XCB_LIBRARIES)
        libs.update(QT_XCB_LIBRARIES)
    return libs


def missing_libraries_message(missing: Iterable[str], packages: Mapping[str, str]) -> str:
    """What to tell the user (``desktop.core.system_libs.missing_message``, with this table)."""
    from .core.system_libs import missing_message

    return missing_message(missing, packages)


def check_qt_libraries(platform: str | None = None, env: Mapping[str, str] = os.environ,
                       loadable: Callable[[str], bool] | None = None) -> str:
    """"" when every system library Qt needs here loads, else the message for the user. Runs
    before any PySide6 import: importing QtGui without libEGL.so.1 is a traceback."""
    libs = qt_libraries(platform, env)
    check = loadable or _loadable
    missing = [s for s in libs if not check(s)]
    return missing_libraries_message(missing, libs) if missing else ""


def display_problem(platform: str | None = None, env: Mapping[str, str] = os.environ) -> str:
    """"" when Qt has somewhere to draw, else the message for the user: on Linux, Qt's X11
    (xcb) platform without DISPLAY aborts the process (exit 134). QT_QPA_PLATFORM naming a
    platform that needs no X11 display (offscreen, minimal, vnc, wayland...) is left to Qt."""
    platform = platform or sys.platform
    if not platform.startswith("linux"):
        return ""
    qpa = env.get("QT_QPA_PLATFORM", "").strip()
    if qpa:  # "wayland;xcb" is a list Qt tries in turn; "xcb:option" gives the plugin options
        names = [p.split(":")[0].strip().lower() for p in qpa.split(";") if p.strip()]
        if any(n not in X11_PLATFORMS for n in names):
            return ""
        return "" if env.get("DISPLAY", "").strip() else NO_DISPLAY_MESSAGE
    if env.get("DISPLAY", "").strip() or env.get("WAYLAND_DISPLAY", "").strip():
        return ""
    return NO_DISPLAY_MESSAGE


def __getattr__(name: str) -> object:
    """``ErrorReporter`` (a QObject) is defined in ``qtapp``: importing this module loads no Qt."""
    if name == "ErrorReporter":
        from .qtapp import ErrorReporter

        return ErrorReporter
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def window_size(text: str) -> tuple[int, int]:
    """argparse type for WxH, e.g. 1600x1000."""
    try:
        w, h = (int(x) for x in text.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected WIDTHxHEIGHT, e.g. 1600x1000, not {text!r}") from None
    if not (200 <= w <= 20000 and 200 <= h <= 20000):
        raise argparse.ArgumentTypeError(f"window size {w}x{h} is out of range (200 to 20000 pixels per side)")
    return w, h


def build_parser() -> argparse.ArgumentParser:
    from engine import DISCLAIMER
    from engine.ai.model import DEVICES

    p = argparse.ArgumentParser(prog="radlens", description=f"RadLens: chest radiograph viewer with AI. {DISCLAIMER}.")
    p.add_argument("paths", nargs="*", metavar="PATH", help="images or folders to open")
    p.add_argument("--model", metavar="PATH", help="RadLens .onnx model (default: the bundled model)")
    p.add_argument("--device", choices=DEVICES, help="where the model runs (default: saved setting)")
    p.add_argument("--settings", metavar="FILE.ini", help="use this settings file instead of the user's")
    p.add_argument("--screenshot", metavar="OUT.png", help="save the window after the first image is analysed, then exit")
    p.add_argument("--size", type=window_size, metavar="WxH", help="window size (default: the saved layout; 1500x950 for --screenshot)")
    p.add_argument("--cam-class", metavar="LABEL", help="with --screenshot: show this class's heatmap")
    p.add_argument("--window-preset", metavar="NAME", help="with --screenshot: apply this window/level preset")
    return p


def log_dir() -> Path:
    from PySide6.QtCore import QStandardPaths

    base = QStandardPaths.writableLocation(QStandardPaths.StandardLocation.AppDataLocation)
    return Path(base or Path.home() / ".radlens")


def setup_logging() -> Path | None:
    """Log to <AppDataLocation>/radlens.log (and stderr). Returns the log file path."""
    path: Path | None = log_dir() / "radlens.log"
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        handler: logging.Handler = logging.FileHandler(path, encoding="utf-8")
    except OSError:
        path, handler = None, logging.StreamHandler()
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s [%(threadName)s]: %(message)s"))
    root = logging.getLogger()
    if not any(getattr(h, "_radlens", False) for h in root.handlers):
        handler._radlens = True  # type: ignore[attr-defined]
        root.addHandler(handler)
    root.setLevel(logging.INFO)
    return path


def screenshot_when_done(win, out: str, cam_class: str | None, preset: str | None) -> None:  # noqa: ANN001 - MainWindow
    """Save ``win`` to ``out`` once the first image is analysed (or failed), then quit."""
    from PySide6.QtCore import Qt, QTimer
    from PySide6.QtWidgets import QApplication

    def grab(_path: str = "") -> None:
        if cam_class and win.prediction is not None and cam_class in win.prediction.labels:
            win.analysis.cam.set_class_index(win.prediction.labels.index(cam_class))
        if preset:
            win.display.apply_preset(preset)
        win.display.flush()
        QTimer.singleShot(300, finish)

    def finish() -> None:
        QApplication.processEvents()
        ok = win.grab().save(out)
        print(f"screenshot {'saved to' if ok else 'FAILED:'} {out}")
        win.close()
        QApplication.quit()

    win.analysisFinished.connect(grab, Qt.ConnectionType.SingleShotConnection)


def settle_gc() -> None:
    """Move everything alive after start-up (Qt wrappers, numpy, onnxruntime, the model)
    out of the cyclic collector's reach: a full collection then walks only new objects,
    so it no longer pauses the event loop for tens of milliseconds."""
    import gc

    gc.collect()
    gc.freeze()


def quit_on_signals(app: QApplication) -> QTimer:
    """SIGINT/SIGTERM close the window normally (settings saved, workers stopped). Python
    runs signal handlers only between bytecodes, so a timer wakes the interpreter."""
    import signal

    from PySide6.QtCore import QTimer

    def handler(signum: int, _frame: object) -> None:
        log.info("signal %d: quitting", signum)
        for w in app.topLevelWidgets():
            w.close()
        app.quit()

    for sig in (signal.SIGINT, signal.SIGTERM):
        try:
            signal.signal(sig, handler)
        except (ValueError, OSError):  # not the main thread, or not supported here
            pass
    timer = QTimer(app)
    timer.timeout.connect(lambda: None)
    timer.start(250)
    return timer


def main(argv: Sequence[str] | None = None) -> int:
    import multiprocessing

    multiprocessing.freeze_support()  # frozen apps: DICOM decoding runs in spawned processes
    argv = list(sys.argv[1:] if argv is None else argv)
    if any(a in SELF_TEST_FLAGS for a in argv):  # the installer's self-test (issue: installers)
        from .selftest import run_self_test

        return run_self_test(argv)
    args = build_parser().parse_args(argv)
    # Linux: say which system packages are missing, or that there is no display, before Qt is
    # imported (a traceback) or started (an abort and a core dump)
    if problem := check_qt_libraries():
        print(problem, file=sys.stderr)
        return XCB_MISSING
    if problem := display_problem():
        print(problem, file=sys.stderr)
        return NO_DISPLAY
    from .core.decoder import shared_decoder, wants_decoder

    if wants_decoder(args.paths):  # a DICOM to open (a double-click): its decoding process starts while Qt loads
        shared_decoder().warm_async()
    from PySide6.QtCore import Qt, QTimer

    from .qtapp import ErrorReporter, make_app

    app = make_app([])
    log_path = setup_logging()
    reporter = ErrorReporter(log_path, parent=app)
    reporter.install()
    quit_on_signals(app)
    import warnings

    warnings.filterwarnings("ignore", category=UserWarning, module="pydicom")
    from .main_window import MainWindow
    from .settings import Settings

    win = MainWindow(Settings(args.settings), model_path=args.model, device=args.device)
    size = args.size or ((1500, 950) if args.screenshot else None)
    if size:
        win.resize(*size)
    if args.screenshot:
        screenshot_when_done(win, args.screenshot, args.cam_class, args.window_preset)
        if args.paths:
            _open_after_model(win, [os.path.abspath(p) for p in args.paths])
        else:
            QTimer.singleShot(1500, lambda: (win.grab().save(args.screenshot), app.quit()))
    elif args.paths:
        QTimer.singleShot(0, lambda: win.open_paths([os.path.abspath(p) for p in args.paths]))
    win.show()
    win.modelChanged.connect(settle_gc, Qt.ConnectionType.SingleShotConnection)
    log.info("RadLens started (log: %s)", log_path)
    return app.exec()


def _open_after_model(win, paths: list[str]) -> None:  # noqa: ANN001
    """Open ``paths`` once the model has loaded (or failed), so the screenshot has results."""
    from PySide6.QtCore import Qt

    if win.model_state.settled:
        win.open_paths(paths)
        return
    win.modelChanged.connect(lambda: win.open_paths(paths), Qt.ConnectionType.SingleShotConnection)

