"""``RadLens --self-test``: prove an installed (frozen) RadLens works, without a display.

Loads the bundled model, analyses the golden radiograph shipped in ``resources/golden/``
and compares the probabilities and the Grad-CAM heatmap with ``expected.json`` beside it,
decodes small compressed DICOM files (JPEG 2000, JPEG-LS, RLE: proves the pylibjpeg
plugins and their entry points are in the bundle), builds a QApplication offscreen and
shows a widget, prints the execution provider (and why it fell back to the CPU), one
PASS/FAIL line per check, and returns 0 (all passed) or 1.

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

import numpy as np

PROB_ATOL = 1e-3  # CPU and GPU numerics differ slightly
HEAT_MEAN_ATOL = 0.02
HEAT_CENTROID_ATOL = 0.03  # fraction of the image size
HEAT_PEAK_MIN = 0.9  # heatmap value at the stored peak location
DICOM_MEAN_ATOL = 1e-3
DICOM_FILES = ("JPEG2000.dcm", "MR_small_jpeg_ls_lossless.dcm", "MR_small_RLE.dcm")
GOLDEN_IMAGE = "golden.png"
_T_IMPORT = time.time()


def golden_dir() -> Path:
    from engine.resources import resource_dir

    return resource_dir() / "golden"


def _parse(argv: list[str]) -> argparse.Namespace:
    from engine.model import DEVICES

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
# Measurements shared by --write-expected and the checks


def heatmap_stats(heat: np.ndarray) -> dict:
    h, w = heat.shape
    total = float(heat.sum())
    ys, xs = np.mgrid[0:h, 0:w]
    cy = float((heat * ys).sum() / total / h) if total > 0 else 0.5
    cx = float((heat * xs).sum() / total / w) if total > 0 else 0.5
    py, px = np.unravel_index(int(np.argmax(heat)), heat.shape)
    return {"shape": [h, w], "mean": float(heat.mean()), "centroid": [cy, cx],
            "peak": [float(py) / h, float(px) / w], "max": float(heat.max()), "min": float(heat.min())}


def dicom_stats(path: Path) -> dict:
    from pydicom.pixels import get_decoder

    from engine.io import load_image

    img = load_image(path)
    decoder = get_decoder(img.meta.transfer_syntax)
    return {"file": path.name, "transfer_syntax": img.meta.transfer_syntax,
            "transfer_syntax_name": img.meta.transfer_syntax_name, "shape": list(img.shape),
            "mean": float(img.pixels.mean()), "plugins": list(decoder.available_plugins)}


def write_expected(model: str | None = None, out: str | Path | None = None, device: str = "cpu") -> Path:
    """Analyse the golden files with the model and store the results as expected.json."""
    from engine import __version__ as engine_version
    from engine.analyze import analyze
    from engine.model import Classifier, default_model_path

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


class _Failure(AssertionError):
    pass


def _require(cond: bool, msg: str) -> None:
    if not cond:
        raise _Failure(msg)


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
    state: dict = {}
    gdir = golden_dir()
    exp_path = Path(args.expected) if args.expected else gdir / "expected.json"

    def load_expected() -> str:
        state["exp"] = json.loads(exp_path.read_text(encoding="utf-8"))
        return str(exp_path)

    def load_model() -> str:
        from engine.model import Classifier, default_model_path

        path = Path(args.model) if args.model else default_model_path()
        clf = Classifier(path, device=args.device)
        state["clf"] = clf
        card = clf.card
        exp = state.get("exp")
        if exp:
            want = exp["model"]["model_sha256"]
            _require(clf.sha256 == want, f"{path.name} has SHA-256 {clf.sha256[:16]}..., expected.json was made for "
                     f"{want[:16]}... ({exp['model']['model_name']} {exp['model']['model_version']}). "
                     "Regenerate it with: python -m desktop.selftest --write-expected")
        return f"{card.name} {card.version} ({len(card.labels)} classes) sha256 {clf.sha256[:16]}... from {path}"

    def provider() -> str:
        clf = state["clf"]
        import onnxruntime as ort

        note = f"; fallback: {clf.provider_note}" if clf.provider_note else ""
        return (f"{clf.provider} = {clf.device_label} (onnxruntime {ort.__version__}, "
                f"available {ort.get_available_providers()}){note}")

    def golden_probs() -> str:
        from engine.analyze import analyze

        exp = state["exp"]["golden"]
        pred = analyze(gdir / exp["file"], state["clf"])
        state["pred"] = pred
        want = np.array([exp["probs"][lab] for lab in pred.labels], np.float64)
        diff = float(np.abs(pred.probs.astype(np.float64) - want).max())
        tol = float(exp.get("prob_atol", PROB_ATOL))
        got = ", ".join(f"{lab} {p:.4f}" for lab, p in pred.ranked())
        _require(diff <= tol, f"max |p - expected| = {diff:.2e} > {tol:g} (got {got})")
        _require(pred.top_label == exp["label"], f"top label {pred.top_label!r}, expected {exp['label']!r}")
        return f"{got}; max |diff| {diff:.1e} <= {tol:g}; label {pred.top_label}"

    def golden_heatmap() -> str:
        pred, exp = state["pred"], state["exp"]["golden"]["heatmap"]
        heat = pred.heatmap()
        _require(heat.shape == pred.image.shape, f"heatmap {heat.shape} != image {pred.image.shape}")
        _require(heat.dtype == np.float32 and bool(np.isfinite(heat).all()), "heatmap is not finite float32")
        _require(float(heat.min()) >= 0.0 and float(heat.max()) <= 1.0, f"heatmap outside [0, 1]: "
                 f"[{heat.min():.3f}, {heat.max():.3f}]")
        st = heatmap_stats(heat)
        dmean = abs(st["mean"] - exp["mean"])
        _require(dmean <= exp.get("mean_atol", HEAT_MEAN_ATOL), f"mean {st['mean']:.4f} vs {exp['mean']:.4f}")
        dcen = max(abs(a - b) for a, b in zip(st["centroid"], exp["centroid"], strict=True))
        _require(dcen <= exp.get("centroid_atol", HEAT_CENTROID_ATOL),
                 f"centroid {st['centroid']} vs {exp['centroid']} (fraction of image)")
        h, w = heat.shape
        py = min(h - 1, int(round(exp["peak"][0] * h)))
        px = min(w - 1, int(round(exp["peak"][1] * w)))
        at_peak = float(heat[py, px])
        _require(at_peak >= exp.get("peak_min_value", HEAT_PEAK_MIN),
                 f"heatmap is {at_peak:.3f} at the expected peak ({py}, {px})")
        for c in range(len(pred.labels)):  # every class gives a valid map
            m = pred.heatmap(c)
            _require(m.shape == heat.shape and float(m.min()) >= 0 and float(m.max()) <= 1, f"class {c} heatmap invalid")
        return (f"{h}x{w} in [0, 1], mean {st['mean']:.3f} (|d| {dmean:.1e}), centroid |d| {dcen:.1e}, "
                f"{at_peak:.2f} at the expected peak")

    rep.check("expected results", load_expected)
    if rep.check("model", load_model):
        rep.check("execution provider", provider)
        if "exp" in state and rep.check("golden probabilities", golden_probs):
            rep.check("golden heatmap", golden_heatmap)

    for item in state.get("exp", {}).get("dicom", []):
        def dicom_check(item: dict = item) -> str:
            st = dicom_stats(gdir / item["file"])
            _require(st["shape"] == item["shape"], f"shape {st['shape']} != {item['shape']}")
            _require(abs(st["mean"] - item["mean"]) <= item.get("mean_atol", DICOM_MEAN_ATOL),
                     f"mean {st['mean']:.5f} != {item['mean']:.5f}")
            _require("pylibjpeg" in st["plugins"], f"the pylibjpeg decoder plugin for {st['transfer_syntax_name']} "
                     f"is missing (available: {st['plugins']})")
            return f"{st['transfer_syntax_name']}, {st['shape'][1]}x{st['shape'][0]}, decoders {st['plugins']}"

        rep.check(f"DICOM {item['file']}", dicom_check)

    rep.check("DICOM decoding in a child process", _decoder_process_check)
    rep.check("Qt", lambda: _qt_check(state.get("pred")))
    rep.check("Qt platform plugins", _qt_plugins)
    rep.check("main window module", _main_window_import)

    total = rep.passed + rep.failed
    verdict = "PASSED" if rep.failed == 0 else "FAILED"
    rep.say(f"SELF-TEST {verdict}: {rep.passed}/{total} checks passed in {time.perf_counter() - t0:.1f} s")
    rep.save()
    return 0 if rep.failed == 0 else 1


def _decoder_process_check() -> str:
    """The viewer decodes DICOM in spawned processes (desktop.core.decoder): in a frozen app that
    only works when the executable handles multiprocessing's child start-up."""
    import importlib

    try:
        decoder_mod = importlib.import_module("desktop.core.decoder")
    except ModuleNotFoundError as e:
        if e.name in ("desktop.core", "desktop.core.decoder"):
            return "desktop.core.decoder not present (skipped)"
        raise
    from engine.io import load_image

    path = golden_dir() / DICOM_FILES[0]
    dec = decoder_mod.Decoder(workers=1)
    try:
        t0 = time.perf_counter()
        img = dec.load(str(path))
        dt = time.perf_counter() - t0
        _require(dec.use_processes and getattr(dec, "_worked", True),
                 "the decoding process pool could not start; the viewer falls back to decoding in threads")
    finally:
        dec.shutdown()
    ref = load_image(path)
    _require(img.shape == ref.shape and bool(np.array_equal(img.pixels, ref.pixels)),
             "the child process decoded different pixels")
    return f"{path.name} decoded in a spawned process ({dt:.2f} s including the process start), same pixels"


def _app():
    from PySide6.QtWidgets import QApplication

    return QApplication.instance() or QApplication([sys.argv[0] if sys.argv else "RadLens"])


def _qt_check(pred) -> str:  # noqa: ANN001 - a Prediction or None
    from PySide6.QtWidgets import QLabel

    from engine.cam import overlay

    from .convert import gray_qimage, rgb_qimage

    app = _app()
    if pred is not None:
        gray = np.clip(pred.image.pixels * 255.0 + 0.5, 0, 255).astype(np.uint8)
        rgb = overlay(pred.image.pixels, pred.heatmap(), 0.5)
    else:  # model failed: still prove Qt works
        gray = (np.arange(64 * 48) % 256).astype(np.uint8).reshape(48, 64)
        rgb = np.repeat(gray[:, :, None], 3, axis=2)
    h, w = gray.shape
    qi = gray_qimage(gray)
    _require(qi.width() == w and qi.height() == h, f"QImage {qi.width()}x{qi.height()} != {w}x{h}")
    for y, x in ((0, 0), (h // 2, w // 3), (h - 1, w - 1)):
        _require(qi.pixelColor(x, y).red() == int(gray[y, x]), f"gray QImage pixel ({y}, {x}) differs")
    qo = rgb_qimage(rgb)
    c = qo.pixelColor(w // 2, h // 2)
    _require((c.red(), c.green(), c.blue()) == tuple(int(v) for v in rgb[h // 2, w // 2]), "overlay QImage differs")
    from PySide6.QtGui import QPixmap

    label = QLabel()
    label.setPixmap(QPixmap.fromImage(qo))
    label.resize(w, h)
    label.show()
    app.processEvents()
    _require(label.isVisible(), "widget did not become visible")
    grabbed = label.grab().toImage()
    _require(grabbed.width() == w, f"grabbed widget is {grabbed.width()} px wide, expected {w}")
    label.close()
    return f"QApplication on platform '{app.platformName()}', {w}x{h} QImage round trip, widget shown and grabbed"


def _qt_plugins() -> str:
    from PySide6.QtCore import QLibraryInfo

    pdir = Path(QLibraryInfo.path(QLibraryInfo.LibraryPath.PluginsPath)) / "platforms"
    names = sorted(p.name for p in pdir.glob("*") if p.is_file())
    want = {"linux": ("offscreen", "xcb"), "win32": ("offscreen", "windows"), "darwin": ("offscreen", "cocoa")}
    need = want.get(sys.platform, ("offscreen",))
    missing = [n for n in need if not any(n in f for f in names)]
    _require(not missing, f"platform plugin(s) {missing} missing from {pdir} (found {names})")
    return f"{', '.join(names)} in {pdir}"


def _main_window_import() -> str:
    import importlib

    try:
        importlib.import_module("desktop.main_window")
    except ModuleNotFoundError as e:
        if e.name == "desktop.main_window":
            return "desktop.main_window not present (skipped)"
        raise
    return "desktop.main_window imports"


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

    from .main_window import MainWindow
    from .qtapp import make_app
    from .settings import Settings

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
