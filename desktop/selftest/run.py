"""``RadLens --self-test``: prove an installed (frozen) RadLens works, without a display.

Loads the bundled model, analyses the golden radiograph shipped in ``resources/golden/``
and compares the probabilities and the Grad-CAM heatmap with ``expected.json`` beside it,
decodes small compressed DICOM files (JPEG 2000, JPEG-LS, RLE: proves the pylibjpeg
plugins and their entry points are in the bundle), builds a QApplication offscreen and
shows a widget, prints the execution provider (and why it fell back to the CPU), one
PASS/FAIL line per check, and returns 0 (all passed) or 1. The checks themselves are in
``desktop.selftest.checks``; this module runs them, reports, and holds the command line.

``python -m desktop.selftest --write-expected`` regenerates ``expected.json`` from the
current bundled model (run it whenever resources/models/ changes).

``RadLens --startup-time`` opens the real main window offscreen, waits until it is shown
with the model loaded, prints the time since the process started, and exits.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from collections.abc import Callable
from datetime import date
from pathlib import Path

from .checks import (
    DICOM_FILES,
    DICOM_MEAN_ATOL,
    GOLDEN_IMAGE,
    HEAT_CENTROID_ATOL,
    HEAT_MEAN_ATOL,
    HEAT_PEAK_MIN,
    PROB_ATOL,
    GoldenChecks,
    decoder_process_check,
    dicom_stats,
    golden_dir,
    heatmap_stats,
    main_window_import,
    qt_check,
    qt_plugins,
    site_adaptation_check,
)

_T_IMPORT = time.time()


def _parse(argv: list[str]) -> argparse.Namespace:
    from engine.ai.model import DEVICES

    p = argparse.ArgumentParser(prog="RadLens --self-test", description="RadLens installation self-test.")
    p.add_argument("--self-test", action="store_true", help="run the self-test (default action)")
    p.add_argument("--write-expected", action="store_true", help="(re)generate expected.json from the model")
    p.add_argument("--startup-time", action="store_true", help="time the start to a shown main window, then exit")
    p.add_argument("--model", help="model .onnx (default: the bundled model)")
    p.add_argument("--expected", help="expected.json (default: resources/golden/expected.json)")
    p.add_argument("--device", default="auto", choices=DEVICES)
    p.add_argument("--report", help="also write the report to this text file (windowed apps have no console)")
    args, _unknown = p.parse_known_args(argv)
    return args


def _ensure_headless() -> None:
    """Self-tests never need a screen: use Qt's offscreen platform unless told otherwise."""
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")


# ---------------------------------------------------------------------------------------
# --write-expected


def write_expected(model: str | None = None, out: str | Path | None = None, device: str = "cpu") -> Path:
    """Analyse the golden files with the model and store the results as expected.json."""
    from engine import __version__ as engine_version
    from engine.ai.analyze import analyze
    from engine.ai.model import Classifier, default_model_path

    gdir = golden_dir()
    clf = Classifier(model or default_model_path(), device=device)
    pred = analyze(gdir / GOLDEN_IMAGE, clf)
    data = {
        "comment": "Expected self-test results. Regenerate with: python -m desktop.selftest --write-expected",
        "generated": date.today().isoformat(), "engine_version": engine_version,
        "provider": clf.provider,
        "model": {"file": Path(clf.path).name, **clf.describe()},
        "golden": {
            "file": GOLDEN_IMAGE,
            "source": "Kermany et al. 2018 (CC BY 4.0), test split of the RadLens cxr4 model: "
                      "kermany-2018-train_person1035_bacteria_2969.jpg, decoded losslessly to PNG",
            "label": pred.top_label, "class_index": pred.top_index,
            "probs": {lab: float(p) for lab, p in zip(pred.labels, pred.probs, strict=True)},
            "prob_atol": PROB_ATOL,
            "heatmap": {**heatmap_stats(pred.heatmap()), "mean_atol": HEAT_MEAN_ATOL,
                        "centroid_atol": HEAT_CENTROID_ATOL, "peak_min_value": HEAT_PEAK_MIN},
        },
        "dicom": [dict(dicom_stats(gdir / name), mean_atol=DICOM_MEAN_ATOL) for name in DICOM_FILES
                  if (gdir / name).exists()],
    }
    out = Path(out) if out else gdir / "expected.json"
    tmp = out.with_suffix(".tmp")
    tmp.write_text(json.dumps(data, indent=1) + "\n", encoding="utf-8")
    os.replace(tmp, out)
    return out


# ---------------------------------------------------------------------------------------
# The self-test


class _Report:
    def __init__(self, path: str | None) -> None:
        self.lines: list[str] = []
        self.failed = 0
        self.passed = 0
        self.path = path

    def say(self, line: str) -> None:
        self.lines.append(line)
        print(line, flush=True)

    def check(self, name: str, fn: Callable[[], str]) -> object:
        try:
            detail = fn()
        except Exception as e:  # noqa: BLE001 - a self-test reports every failure as a line
            self.failed += 1
            self.say(f"FAIL {name}: {type(e).__name__}: {e}")
            return False
        self.passed += 1
        self.say(f"PASS {name}: {detail}")
        return True

    def save(self) -> None:
        if self.path:
            Path(self.path).write_text("\n".join(self.lines) + "\n", encoding="utf-8")


def run_self_test(argv: list[str] | None = None) -> int:
    """Run every check, print PASS/FAIL lines, return 0 when all pass, else 1."""
    args = _parse(list(sys.argv[1:] if argv is None else argv))
    if args.startup_time:
        return startup_time(args)
    _ensure_headless()
    if args.write_expected:
        out = write_expected(args.model, args.expected, device="cpu" if args.device == "auto" else args.device)
        print(f"wrote {out}")
        return 0
    t0 = time.perf_counter()
    rep = _Report(args.report)
    frozen = bool(getattr(sys, "frozen", False))
    from engine import __version__ as engine_version

    rep.say(f"RadLens self-test: engine {engine_version}, {'frozen app' if frozen else 'source checkout'}, "
            f"Python {platform.python_version()}, {platform.system()} {platform.machine()}")
    gdir = golden_dir()
    exp_path = Path(args.expected) if args.expected else gdir / "expected.json"
    golden = GoldenChecks(args.model, args.device, exp_path, gdir)
    rep.check("expected results", golden.load_expected)
    if rep.check("model", golden.load_model):
        rep.check("execution provider", golden.provider)
        if golden.exp is not None and rep.check("golden probabilities", golden.golden_probs):
            rep.check("golden heatmap", golden.golden_heatmap)
    for item in golden.dicom_items():
        rep.check(f"DICOM {item['file']}", lambda item=item: golden.dicom(item))
    rep.check("DICOM 12-bit JPEG (imagecodecs)", golden.dicom_jpeg12)
    if golden.clf is not None:
        rep.check("DICOM results (SR, SC) and PACS modules", golden.dicom_results)
        rep.check("site adaptation (onnx, head, reference set)", lambda: site_adaptation_check(golden.clf))
    rep.check("DICOM decoding in a child process", decoder_process_check)
    rep.check("Qt", lambda: qt_check(golden.pred))
    rep.check("Qt platform plugins", qt_plugins)
    rep.check("main window module", main_window_import)

    total = rep.passed + rep.failed
    verdict = "PASSED" if rep.failed == 0 else "FAILED"
    rep.say(f"SELF-TEST {verdict}: {rep.passed}/{total} checks passed in {time.perf_counter() - t0:.1f} s")
    rep.save()
    return 0 if rep.failed == 0 else 1


# ---------------------------------------------------------------------------------------
# --startup-time


def process_start_time() -> float:
    """Wall-clock time (time.time()) the process started, as exactly as the OS tells.

    Linux: /proc/self/stat starttime; else RADLENS_T0 (set by a launcher), else this
    module's import time (an underestimate)."""
    try:
        fields = Path("/proc/self/stat").read_text().rsplit(")", 1)[1].split()
        start_ticks = int(fields[19])  # field 22 of stat(5); fields[0] is field 3
        hz = os.sysconf("SC_CLK_TCK")
        uptime = float(Path("/proc/uptime").read_text().split()[0])
        return time.time() - (uptime - start_ticks / hz)
    except (OSError, ValueError, IndexError):
        pass
    env = os.environ.get("RADLENS_T0")
    return float(env) if env else _T_IMPORT


def startup_time(args: argparse.Namespace, timeout_s: float = 60.0) -> int:
    """Start the real main window (offscreen unless QT_QPA_PLATFORM says otherwise), wait
    until it is shown with the model loaded, print the time since the process started, exit.

    Uses a temporary settings file so the user's settings are neither read nor changed."""
    import tempfile

    _ensure_headless()
    t_proc = process_start_time()
    from PySide6.QtCore import QTimer

    from ..main_window import MainWindow
    from ..qtapp import make_app
    from ..settings import Settings

    app = make_app([])
    marks: dict[str, float] = {"python": _T_IMPORT - t_proc}
    with tempfile.TemporaryDirectory(prefix="radlens-startup-") as tmp:
        win = MainWindow(Settings(str(Path(tmp) / "settings.ini")), model_path=args.model, device=args.device)
        win.show()

        def poll() -> None:
            now = time.time() - t_proc
            if "shown" not in marks and win.isVisible() and win.windowHandle() is not None \
                    and win.windowHandle().isExposed():
                marks["shown"] = now
            if "model" not in marks and win.model_state.settled:
                marks["model"] = now
            if ("shown" in marks and "model" in marks) or now > timeout_s:
                timer.stop()
                app.quit()

        timer = QTimer()
        timer.setInterval(5)
        timer.timeout.connect(poll)
        timer.start()
        app.exec()
        ok = win.classifier is not None and "shown" in marks
        provider = f"{win.classifier.device_label}" if win.classifier is not None else f"no model ({win.model_reason})"
        total = max(marks.get("shown", float("nan")), marks.get("model", float("nan")))
        print(f"startup-time: {total:.2f} s from process start to a shown main window with the model loaded "
              f"(interpreter and Qt imports until the self-test module loaded {marks['python']:.2f} s, window shown "
              f"{marks.get('shown', float('nan')):.2f} s, model loaded {marks.get('model', float('nan')):.2f} s; "
              f"model on {provider}; platform {app.platformName()})", flush=True)
        win.close()
        win.deleteLater()
        app.processEvents()
    return 0 if ok else 1


def main() -> int:
    return run_self_test(sys.argv[1:])


if __name__ == "__main__":
    sys.exit(main())
