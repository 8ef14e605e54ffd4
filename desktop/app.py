"""Entry point: ``radlens`` / ``python -m desktop [--model PATH] [--device D] [FILE|FOLDER ...]``.

Sets up the QApplication, logging to a file in the user's data folder, and an exception
hook that shows a dialog and logs the traceback instead of killing the app.
``--screenshot OUT.png`` renders the window once the given image is analysed, saves it
and exits (works offscreen too: it uses QWidget.grab).
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import threading
import traceback
from collections.abc import Callable, Sequence
from pathlib import Path
from types import TracebackType

from PySide6.QtCore import QCoreApplication, QObject, QStandardPaths, Qt, QTimer, Signal, Slot
from PySide6.QtWidgets import QApplication, QMessageBox

from . import APP_NAME
from .qtapp import make_app

log = logging.getLogger("radlens")
SELF_TEST_FLAGS = ("--self-test", "--startup-time", "--write-expected")
XCB_MISSING = 3  # exit status: the X11 system libraries Qt needs are not installed


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
    from engine.model import DEVICES

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


class ErrorReporter(QObject):
    """Receives uncaught exceptions from any thread; logs them and shows a dialog on the
    GUI thread. ``show`` is replaceable (tests)."""

    reported = Signal(str, str)  # summary, traceback text

    def __init__(self, log_path: Path | None, show: Callable[[str, str], None] | None = None,
                 parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.log_path = log_path
        self.show = show or self._dialog
        self.count = 0
        self._boxes: list[QMessageBox] = []
        self.reported.connect(self._on_reported, Qt.ConnectionType.QueuedConnection)

    def handle(self, etype: type[BaseException], value: BaseException, tb: TracebackType | None) -> None:
        if issubclass(etype, KeyboardInterrupt):
            QCoreApplication.quit()
            return
        text = "".join(traceback.format_exception(etype, value, tb))
        log.error("uncaught exception in thread %s:\n%s", threading.current_thread().name, text)
        self.reported.emit(f"{etype.__name__}: {value}", text)

    def install(self) -> None:
        sys.excepthook = self.handle
        threading.excepthook = lambda a: self.handle(a.exc_type, a.exc_value, a.exc_traceback)  # type: ignore[arg-type]

    @Slot(str, str)
    def _on_reported(self, summary: str, text: str) -> None:
        self.count += 1
        self.show(summary, text)

    def _dialog(self, summary: str, text: str) -> None:
        where = f"\n\nThe details were written to {self.log_path}." if self.log_path else ""
        box = QMessageBox(QMessageBox.Icon.Critical, f"{APP_NAME}: unexpected error",
                          f"Something went wrong: {summary}\n\nRadLens keeps running; if something looks wrong, "
                          f"save your work and restart it. Please report this error.{where}")
        box.setDetailedText(text)
        box.setModal(False)
        self._boxes.append(box)  # no parent: keep it alive until it is closed
        box.finished.connect(lambda _r, b=box: self._boxes.remove(b) if b in self._boxes else None)
        box.show()


def screenshot_when_done(win, out: str, cam_class: str | None, preset: str | None) -> None:  # noqa: ANN001 - MainWindow
    """Save ``win`` to ``out`` once the first image is analysed (or failed), then quit."""
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
    from .core.system_libs import check_xcb

    problem = check_xcb()  # Linux/X11: say which system packages are missing before Qt aborts
    if problem:
        print(problem, file=sys.stderr)
        return XCB_MISSING
    from .core.decoder import shared_decoder, wants_decoder

    if wants_decoder(args.paths):  # a DICOM to open (a double-click): its decoding process starts while Qt loads
        shared_decoder().warm_async()
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
    if win.model_state.settled:
        win.open_paths(paths)
        return
    win.modelChanged.connect(lambda: win.open_paths(paths), Qt.ConnectionType.SingleShotConnection)

