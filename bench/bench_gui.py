"""GUI benchmarks for the RadLens viewer (printed, never asserted).

1. Event-loop stalls, idle and during a 500-image batch from ../shared/data/cxr: a QTimer
   probe fires every 5 ms on the GUI thread; a stall is how much later than due a tick
   comes. Target: longest stall <= 16 ms (one frame at 60 Hz) in every run. Each stall
   is printed with the GUI thread's own CPU time in it: the rest is waiting for a core
   (other processes on the machine). The batch runs in its own process
   (desktop.batch.batch_process). Also measured: opening the largest shared DICOM (decode and
   analysis run in workers; the GUI thread only converts to QImage).
2. Cold start: a fresh process to a shown main window with the model loaded.
   Target <= 2.5 s.
3. Launch with a file (a double-click): a fresh process given a JPEG 2000 chest DICOM,
   to its probabilities on screen.

    python bench/bench_gui.py [--model PATH] [--images 500] [--runs 3] [--starts 3] [--parts stalls,start,launch]

Runs offscreen unless DISPLAY is set (QT_QPA_PLATFORM wins if given). Without a model
file (resources/models/radlens-cxr4.onnx), uses the tiny test CNN and says so.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
SHARED = REPO.parent / "shared" / "data"
sys.path.insert(0, str(REPO))
if not os.environ.get("DISPLAY"):
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

READY = "RADLENS-READY"
PROBE_MS = 5

CHILD = r"""
import sys, time
t0 = float(sys.argv[1])
from PySide6.QtCore import QTimer
from PySide6.QtWidgets import QApplication
from desktop.qtapp import make_app
app = make_app([])
from desktop.main_window import MainWindow
from desktop.settings import Settings
win = MainWindow(Settings(sys.argv[3]), model_path=sys.argv[2], device="auto")
win.show()
def done():
    print(f"{READY} {time.time() - t0:.3f} {win.classifier is not None} {time.time()}", flush=True)
    win.close()
    app.quit()
if win.model_state.settled:
    QTimer.singleShot(0, done)
else:
    win.modelChanged.connect(done)
app.exec()
""".replace("READY", repr(READY))

# ``radlens FILE`` (a double-click) through ``desktop.app.main`` itself: the time from the
# process start to the file's probabilities on screen.
LAUNCH_CHILD = r"""
import os, sys, time
t0 = float(sys.argv[1])

def run():
    from PySide6.QtWidgets import QApplication
    import desktop.app
    import desktop.main_window as mw
    path = os.path.abspath(sys.argv[4])
    show = mw.MainWindow.show

    def done(win, p):
        if win.prediction is None or os.path.abspath(p) != path:
            return
        print(f"{READY} {time.time() - t0:.3f} True {time.time()}", flush=True)
        win.close()
        QApplication.quit()

    def shown(win):
        win.analysisFinished.connect(lambda p: done(win, p))
        show(win)

    mw.MainWindow.show = shown
    desktop.app.main(["--model", sys.argv[2], "--settings", sys.argv[3], path])

if __name__ == "__main__":
    run()
""".replace("READY", repr(READY))


def pick_model(arg: str | None) -> tuple[str, str]:
    from engine import default_model_path

    if arg:
        return arg, "given"
    p = default_model_path()
    if p.is_file():
        return str(p), "bundled default"
    sys.path.insert(0, str(REPO / "tests"))
    from tinymodel import build_tiny_model

    tiny = Path(tempfile.mkdtemp()) / "tiny.onnx"
    build_tiny_model(tiny)
    return str(tiny), "TINY TEST CNN (the default model is not in resources/models yet)"


def cold_start(model: str, runs: int, child: str = CHILD, extra: tuple[str, ...] = ()) -> list[float]:
    times = []
    with tempfile.TemporaryDirectory() as d:
        for _ in range(runs):
            t0 = time.time()
            out = subprocess.run([sys.executable, "-c", child, str(t0), model, os.path.join(d, "s.ini"), *extra],
                                 cwd=REPO, capture_output=True, text=True, timeout=120)
            line = next((x for x in out.stdout.splitlines() if x.startswith(READY)), None)
            if line is None:
                print("  cold start failed:", out.stderr[-2000:])
                continue
            _, secs, loaded, _ = line.split()
            times.append(float(secs))
            if loaded != "True":
                print("  warning: the model did not load in the child process")
    return times


class StallProbe:
    """Records how late each tick of a fast timer on the GUI thread comes."""

    def __init__(self) -> None:
        from PySide6.QtCore import Qt, QTimer

        self.timer = QTimer()
        self.timer.setTimerType(Qt.TimerType.PreciseTimer)
        self.timer.setInterval(PROBE_MS)
        self.timer.timeout.connect(self._tick)
        self.stalls: list[float] = []
        self.busy: list[float] = []  # the GUI thread's CPU time between the same two ticks
        self.queued: list[float] = []  # its time runnable but waiting for a core (Linux schedstat)
        self._last = 0.0
        self._cpu = 0.0
        self._wait = 0.0
        self._schedstat = f"/proc/self/task/{threading.get_native_id()}/schedstat"

    def start(self) -> None:
        self.stalls = []
        self.busy = []
        self.queued = []
        self._last = self._t0 = time.perf_counter()
        self._cpu = time.thread_time()
        self._wait = self._queue_ms()
        self.timer.start()

    def stop(self) -> None:
        self.timer.stop()

    def _tick(self) -> None:
        now = time.perf_counter()
        stall = max(0.0, (now - self._last) * 1000.0 - PROBE_MS)
        cpu = time.thread_time()
        self.stalls.append(stall)
        self.busy.append((cpu - self._cpu) * 1000.0)
        self._cpu = cpu
        wait = self._queue_ms()
        self.queued.append(wait - self._wait)
        self._wait = wait
        if stall > 20 and os.environ.get("RADLENS_BENCH_DEBUG"):
            print(f"    stall {stall:.1f} ms ending at +{now - self._t0:.3f} s")
        self._last = now

    def _queue_ms(self) -> float:
        try:
            with open(self._schedstat, encoding="ascii") as f:
                return int(f.read().split()[1]) / 1e6
        except (OSError, ValueError, IndexError):  # not Linux: not measured
            return 0.0

    def longest(self) -> float:
        return max(self.stalls, default=0.0)

    def summary(self) -> str:
        s = sorted(self.stalls) or [0.0]
        p99 = s[min(len(s) - 1, int(0.99 * len(s)))]
        worst = max(range(len(self.stalls)), key=self.stalls.__getitem__) if self.stalls else -1
        busy = (f" (GUI thread busy {self.busy[worst]:.1f} ms, waiting for a core {self.queued[worst]:.1f} ms)"
                if worst >= 0 else "")
        return (f"longest {s[-1]:.1f} ms{busy}, p99 {p99:.1f} ms, median {statistics.median(s):.2f} ms "
                f"over {len(s)} ticks")


def make_folder(n: int) -> Path:
    """n radiographs from ../shared/data/cxr (symlinks), every class represented."""
    import csv

    rows = list(csv.DictReader(open(SHARED / "cxr" / "manifest.csv", newline="", encoding="utf-8")))
    by_label: dict[str, list[str]] = {}
    for r in rows:
        by_label.setdefault(r["label"], []).append(r["file"])
    picked: list[str] = []
    i = 0
    while len(picked) < n:
        for files in by_label.values():
            if i < len(files) and len(picked) < n:
                picked.append(files[i])
        i += 1
    folder = Path(tempfile.mkdtemp(prefix="radlens-bench-"))
    for k, f in enumerate(picked):
        (folder / f"{k:04d}_{Path(f).name}").symlink_to(SHARED / "cxr" / f)
    return folder


def make_dicom_folder(n: int) -> Path:
    """n DICOM files (symlinks to ../shared/data/dicom, JPEG 2000 and JPEG-LS among them): their
    decoders hold the GIL for the whole decode (about 150 ms for a 2k x 2k JPEG 2000)."""
    files = sorted((SHARED / "dicom").glob("*.dcm"))
    folder = Path(tempfile.mkdtemp(prefix="radlens-bench-dicom-"))
    for k in range(n):
        f = files[k % len(files)]
        (folder / f"{k:04d}_{f.name}").symlink_to(f)
    return folder


def in_process(model: str, n_images: int, runs: int = 1, n_dicom: int = 60) -> None:
    from PySide6.QtCore import QEventLoop, QTimer

    from desktop.app import settle_gc
    from desktop.main_window import MainWindow
    from desktop.qtapp import make_app
    from desktop.settings import Settings

    app = make_app([])
    settings_dir = tempfile.mkdtemp()
    win = MainWindow(Settings(os.path.join(settings_dir, "s.ini")), model_path=model, device="auto")
    win.resize(1500, 950)
    win.show()

    def wait(signal, timeout_s: float) -> None:  # noqa: ANN001
        loop = QEventLoop()
        signal.connect(loop.quit)
        QTimer.singleShot(int(timeout_s * 1000), loop.quit)
        loop.exec()

    if win.classifier is None:
        wait(win.modelChanged, 60)
    if win.classifier is None:
        print("  no model could be loaded:", win.model_reason)
        return
    settle_gc()  # as desktop.app.main does once the model is loaded
    loop = QEventLoop()
    QTimer.singleShot(300, loop.quit)  # start-up's last repaint (the model's name in the dock) is not idle time
    loop.exec()
    c = win.classifier
    print(f"  model: {c.card.name} {c.card.version}, input {c.card.input_size}, on {c.device_label} [{c.provider}]"
          + (f" ({c.provider_note})" if c.provider_note else ""))
    probe = StallProbe()

    def idle() -> float:
        probe.start()
        loop = QEventLoop()
        QTimer.singleShot(1000, loop.quit)
        loop.exec()
        probe.stop()
        print(f"  idle window, 1 s:                 {probe.summary()}")
        return probe.longest()

    worst = {"idle": idle(), "batch": 0.0}
    big = SHARED / "dicom" / "RG1_J2KI.dcm"
    probe.start()
    t0 = time.perf_counter()
    win.open_paths([str(big)])
    wait(win.analysisFinished, 60)
    dt = time.perf_counter() - t0
    probe.stop()
    print(f"  open + analyse RG1_J2KI.dcm ({dt:.2f} s): {probe.summary()}")

    folder = make_folder(n_images)
    batches = [(f"run {run}", folder) for run in range(1, runs + 1)]
    if n_dicom:
        batches.append(("DICOM", make_dicom_folder(n_dicom)))
    for run, (name, folder) in enumerate(batches, start=1):
        if run > 1:
            worst["idle"] = max(worst["idle"], idle())
        dlg = win.batch_dialog(str(folder), start=False)
        loop = QEventLoop()
        QTimer.singleShot(300, loop.quit)  # the dialog is shown and painted before the batch starts
        loop.exec()
        probe.start()
        t0 = time.perf_counter()
        dlg.start()
        wait(dlg.finished_batch, 600)
        dt = time.perf_counter() - t0
        probe.stop()
        end = dlg.end
        print(f"  {name}: batch of {end.done}/{end.total} images in {dt:.1f} s ({end.done / dt:.1f} images/s, "
              f"starting its process included), {sum(not r.ok for r in dlg.model.rows())} errors")
        print(f"  GUI stalls during the batch:      {probe.summary()}")
        key = "dicom" if name == "DICOM" else "batch"
        worst[key] = max(worst.get(key, 0.0), probe.longest())
        dlg.close_confirmed = True  # the bench keeps no results: close without asking
        dlg.close()
        app.processEvents()
    dicom = f", DICOM batch {worst['dicom']:.1f} ms" if "dicom" in worst else ""
    print(f"  worst over {runs} run(s): idle {worst['idle']:.1f} ms, batch {worst['batch']:.1f} ms{dicom} "
          f"(target: <= 16 ms in every run); load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")
    win.close()
    app.processEvents()


def _gc_debug() -> None:
    import gc
    import threading

    starts: dict[int, float] = {}

    def cb(phase: str, info: dict) -> None:
        if phase == "start":
            starts[threading.get_ident()] = time.perf_counter()
        else:
            dt = (time.perf_counter() - starts.pop(threading.get_ident(), time.perf_counter())) * 1000
            if dt > 5:
                print(f"    gc gen{info['generation']} {dt:.1f} ms in {threading.current_thread().name}")

    gc.callbacks.append(cb)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", help="model .onnx (default: the bundled model, else the tiny test CNN)")
    ap.add_argument("--images", type=int, default=500)
    ap.add_argument("--starts", type=int, default=3, help="cold starts to time")
    ap.add_argument("--runs", type=int, default=3, help="idle + batch measurements in the same window")
    ap.add_argument("--dicom", type=int, default=60, help="files in the DICOM batch (0: none)")
    ap.add_argument("--parts", default="stalls,start,launch",
                    help="comma-separated: stalls (event loop), start (cold start), launch (launch with a DICOM)")
    args = ap.parse_args()
    parts = set(args.parts.split(","))
    model, kind = pick_model(args.model)
    if os.environ.get("RADLENS_BENCH_DEBUG"):
        _gc_debug()
    print(f"RadLens GUI benchmark: {os.cpu_count()} CPU cores, Qt platform "
          f"{os.environ.get('QT_QPA_PLATFORM') or 'default (DISPLAY=' + os.environ.get('DISPLAY', '') + ')'}")
    print(f"Model: {model} ({kind})")
    if "stalls" in parts:
        print("Event-loop responsiveness (5 ms QTimer probe on the GUI thread):")
        in_process(model, args.images, args.runs, args.dicom)
    if "start" in parts:
        _print_start(model, args.starts)
    if "launch" in parts:
        _print_launch(model, args.starts)
    return 0


def _print_start(model: str, runs: int) -> None:
    print(f"Cold start to a shown window with the model loaded ({runs} runs, fresh processes):")
    times = cold_start(model, runs)
    if times:
        print(f"  {', '.join(f'{t:.2f}' for t in times)} s; median {statistics.median(times):.2f} s "
              "(target <= 2.5 s)")


def _print_launch(model: str, runs: int) -> None:
    dcm = SHARED / "dicom" / "RG1_J2KI.dcm"
    print(f"Launch with a JPEG 2000 DICOM ({dcm.name}) to its probabilities on screen ({runs} runs):")
    times = cold_start(model, runs, LAUNCH_CHILD, (str(dcm),))
    if times:
        print(f"  {', '.join(f'{t:.2f}' for t in times)} s; median {statistics.median(times):.2f} s")


if __name__ == "__main__":
    sys.exit(main())
