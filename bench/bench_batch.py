"""Batch throughput (issue 25): ``radlens-batch`` as a whole process vs the bare networks.

Prints, measured in one run and alternated (bare, whole, bare, whole, ...) so that background
load hits both alike; nothing is asserted:

- the bare batched ``session.run`` of the two networks every image's job runs (the classifier and
  the lung model, batch 16, random input, the engine's session options), in images/s;
- ``radlens-batch FOLDER -o REPORT.csv --no-progress`` as a whole process (interpreter start,
  imports, model load, decode, every per-image step, the CSV) on the same number of files;
- their ratio (target: at least 0.9x on 1,000 pool JPEGs);
- the same for N copies of a DICOM file (default ``RG1_JLSN.dcm``, JPEG-LS lossless 1955x1841);
- whether the CSV reports of the runs are byte-identical (apart from nothing: the CSV holds no
  timing), and, with ``--compare REPORT.csv``, whether the report equals a saved one.

    python bench/bench_batch.py [--files 1000] [--dicom-files 1000] [--reps 3] [--save DIR]
"""

from __future__ import annotations

import argparse
import filecmp
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "bench"))

from bench_engine import stratified_folder  # noqa: E402

from engine.ai.jobs import default_lanes, lane_threads  # noqa: E402
from engine.ai.lungs import default_lungseg_path  # noqa: E402
from engine.ai.session import open_session  # noqa: E402

MODEL = REPO / "resources" / "models" / "radlens-cxr4.onnx"


def bare_rate(n: int, batch: int = 16, lanes: int = 1) -> float:
    """Images/s of the two networks alone: the classifier and the lung model, batch ``batch``, random
    input. ``lanes=1``: one thread runs both with onnxruntime's default threads (every core), as the
    engine did before lanes. ``lanes=L``: L threads side by side, each on ``lane_threads(L)``
    onnxruntime threads (what a local batch now does): the best the networks alone reach here."""
    threads = 0 if lanes == 1 else lane_threads(lanes)
    clf, _ = open_session(MODEL, "cpu", threads)
    seg, _ = open_session(default_lungseg_path(), "cpu", threads, spinning=False)
    rng = np.random.default_rng(0)

    def feed(sess):  # noqa: ANN001, ANN202
        i = sess.get_inputs()[0]
        shape = [batch if not isinstance(d, int) else d for d in i.shape]
        return {i.name: rng.standard_normal(shape).astype(np.float32)}

    fc, fs = feed(clf), feed(seg)
    clf.run(None, fc), seg.run(None, fs)  # warm
    per_lane = max(1, n // batch // lanes)

    def work() -> None:
        for _ in range(per_lane):
            seg.run(None, fs)
            clf.run(None, fc)

    threads_ = [threading.Thread(target=work) for _ in range(lanes)]
    t0 = time.perf_counter()
    for t in threads_:
        t.start()
    for t in threads_:
        t.join()
    return per_lane * lanes * batch / (time.perf_counter() - t0)


def whole_process(folder: Path, report: Path, extra: list[str]) -> float:
    """Seconds for ``radlens-batch`` from process start to exit."""
    exe = Path(sys.executable).with_name("radlens-batch")
    cmd = [str(exe), str(folder), "-o", str(report), "--no-progress", *extra]
    t0 = time.perf_counter()
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return time.perf_counter() - t0


def dicom_folder(dst: Path, n: int, name: str) -> Path:
    from pydicom.data import get_testdata_file

    src = Path(get_testdata_file(name))
    dst.mkdir(parents=True, exist_ok=True)
    for i in range(n):
        link = dst / f"{i:05d}.dcm"
        if not link.exists():
            link.symlink_to(src)
    return dst


def compare(label: str, folder: Path, n: int, reps: int, work: Path, save: Path | None, against: Path | None) -> None:
    lanes = default_lanes()
    bare, lane_bare, whole, reports = [], [], [], []
    for r in range(reps):
        bare.append(bare_rate(n))
        lane_bare.append(bare_rate(n, lanes=lanes))
        report = work / f"{label}-{r}.csv"
        whole.append(n / whole_process(folder, report, []))
        reports.append(report)
    b, bl, w = statistics.median(bare), statistics.median(lane_bare), statistics.median(whole)
    same = all(filecmp.cmp(reports[0], p, shallow=False) for p in reports[1:])

    def runs(xs: list[float]) -> str:
        return "(runs: " + ", ".join(f"{x:.1f}" for x in xs) + ")"

    print(f"{label}: {n} files, {reps} alternated runs")
    print(f"  bare session.run, classifier + lung model, batch 16, default threads : {b:7.1f} images/s  {runs(bare)}")
    print(f"  bare, {lanes} lanes side by side of {lane_threads(lanes)} onnxruntime thread(s) each      : "
          f"{bl:7.1f} images/s  {runs(lane_bare)}")
    print(f"  radlens-batch, whole process (start, model load, decode, every step, CSV) : {w:7.1f} images/s  "
          f"{runs(whole)}")
    print(f"  ratio whole / bare (default threads; the issue's measure)            : {w / b:7.2f}x")
    print(f"  ratio whole / bare ({lanes} lanes; the networks' best here)                 : {w / bl:7.2f}x")
    print(f"  reports of the {reps} runs byte-identical: {'yes' if same else 'NO'}")
    if against is not None:
        ref = against / f"{label}.csv"
        if ref.is_file():
            print(f"  report equals {ref}: {'yes' if filecmp.cmp(ref, reports[0], shallow=False) else 'NO'}")
    if save is not None:
        save.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(reports[0], save / f"{label}.csv")


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--files", type=int, default=1000)
    ap.add_argument("--dicom-files", type=int, default=1000, help="0 to skip the DICOM part")
    ap.add_argument("--dicom", default="RG1_JLSN.dcm", help="pydicom test file to copy")
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--save", type=Path, help="keep the reports here (to compare a later run with)")
    ap.add_argument("--compare", type=Path, help="a --save folder of an earlier run")
    args = ap.parse_args(argv)
    print(f"bench_batch: {os.cpu_count()} CPUs, model {MODEL.name}")
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        pool = work / "cxr"
        stratified_folder(pool, args.files)
        compare("cxr-jpeg", pool, args.files, args.reps, work, args.save, args.compare)
        if args.dicom_files:
            folder = dicom_folder(work / "dicom", args.dicom_files, args.dicom)
            compare(f"dicom-{Path(args.dicom).stem}", folder, args.dicom_files, args.reps, work, args.save,
                    args.compare)


if __name__ == "__main__":
    main()
