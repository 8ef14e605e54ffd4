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

    python bench/bench_batch.py [--files 1000] [--dicom-files 1000] [--reps 3] [--save DIR] [--compare DIR]
    python bench/bench_batch.py --before /tmp/before   # also the CLI of a worktree of an earlier commit
    python bench/bench_batch.py --stages 1000   # the per-image path stage by stage (docs/scale.md)
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
import warnings
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "bench"))

from bench_engine import SHARED, stratified_folder  # noqa: E402

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


def whole_process(folder: Path, report: Path, extra: list[str], code: Path | None = None) -> float:
    """Seconds for ``radlens-batch`` from process start to exit; ``code``: run the CLI of another
    checkout (a worktree of an earlier commit) with this environment, for a before/after in one run."""
    args = [str(folder), "-o", str(report), "--no-progress", *extra]
    if code is None:
        cmd = [str(Path(sys.executable).with_name("radlens-batch")), *args]
    else:
        cmd = [sys.executable, "-c", f"import sys; sys.path.insert(0, {str(code)!r}); "
               "from engine.batch.cli import main; sys.exit(main())", *args]
    # as on a user's machine, Python may cache compiled modules (a sandbox's PYTHONDONTWRITEBYTECODE=1
    # would make every start compile the engine again: 0.04 s)
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    t0 = time.perf_counter()
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
    return time.perf_counter() - t0


def dicom_source(name: str, work: Path) -> Path:
    """A pydicom test file; ``RG1_JLSN.dcm`` (JPEG-LS lossless, 1955x1841, 15-bit), which pydicom's
    bundled data lacks here, is made from ../shared/data/dicom/RG1_J2KI.dcm: the same film re-encoded
    JPEG-LS lossless (pyjpegls)."""
    from pydicom.data import get_testdata_file

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "download failure": no network here
        found = get_testdata_file(name)
    if found:
        return Path(found)
    if name != "RG1_JLSN.dcm":
        raise SystemExit(f"{name} is not in pydicom's test data here")
    import pydicom
    from pydicom.uid import JPEGLSLossless

    ds = pydicom.dcmread(SHARED / "dicom" / "RG1_J2KI.dcm")
    ds.decompress()
    ds.compress(JPEGLSLossless, encoding_plugin="pyjpegls")
    out = work / "RG1_JLSN.dcm"
    ds.save_as(out)
    return out


def dicom_folder(dst: Path, n: int, src: Path) -> Path:
    dst.mkdir(parents=True, exist_ok=True)
    for i in range(n):
        link = dst / f"{i:05d}.dcm"
        if not link.exists():
            link.symlink_to(src)
    return dst


STAGES = ("decode (load_image)", "scope statistics (header, pixels)", "lung field: resize in",
          "lung field: network", "lung field: components, box (out)", "crop + resize to 224",
          "equalisation (8-bit histogram)", "8-bit steps", "normalisation (mean/std, 3 channels)",
          "classifier network", "conclude (checks, scope verdict, decision)", "row + CSV line")


def stages(files: list[Path], batch: int = 16) -> dict[str, float]:
    """Seconds per stage of the per-image path over ``files``, one thread, one onnxruntime thread
    (a core's cost), the engine's own functions called one stage at a time; the networks batched."""
    import csv
    import io

    from engine.ai.lungs import lung_field
    from engine.ai.model import Classifier
    from engine.ai.pipeline import Prepared, conclude, ood_of, view_of
    from engine.ai.preprocess import (
        card_preprocessing,
        lung_crop_box,
        normalize,
        normalize_intensity,
        resize_gray,
        to_8bit_steps,
    )
    from engine.ai.scope import header_and_pixels
    from engine.batch.generator import BatchRow, _Decoded, _row_for
    from engine.batch.report import ModelInfo, _row_values
    from engine.io import load_image

    clf = Classifier(MODEL, device="cpu", threads=1)
    seg = clf.lung_segmenter
    card, pp = clf.card, card_preprocessing(clf.card)
    info = ModelInfo.from_classifier(clf)
    t = dict.fromkeys(STAGES, 0.0)
    out = csv.writer(io.StringIO())

    def timed(name: str, fn, *a):  # noqa: ANN001, ANN002, ANN202
        t0 = time.perf_counter()
        r = fn(*a)
        t[name] += time.perf_counter() - t0
        return r

    for s in range(0, len(files), batch):
        part = files[s:s + batch]
        images = [timed(STAGES[0], load_image, p, 100_000_000, False) for p in part]
        before = [timed(STAGES[1], header_and_pixels, im) for im in images]
        xs = [timed(STAGES[2], seg.preprocess, im.pixels) for im in images]
        probs = timed(STAGES[3], seg.run, np.stack(xs))
        lungs = [timed(STAGES[4], lung_field, probs[i, 0], im.pixels.shape[:2], seg.card.threshold,
                       seg.card.plausibility) for i, im in enumerate(images)]
        preps = []
        for im, lf, sc in zip(images, lungs, before, strict=True):
            t0 = time.perf_counter()
            h, w = im.pixels.shape
            crop = lung_crop_box(lf, (h, w), pp["crop_margin"]) if pp["crop"] == "lungs" else None
            box = crop or (0, 0, h, w)
            img = im.pixels[box[0]:box[0] + box[2], box[1]:box[1] + box[3]]
            g = resize_gray(np.ascontiguousarray(img, np.float32), card.input_size, card.resize)
            t[STAGES[5]] += time.perf_counter() - t0
            g = timed(STAGES[6], normalize_intensity, g, pp["intensity"])
            g = timed(STAGES[7], to_8bit_steps, g)
            x = timed(STAGES[8], normalize, g, card)
            preps.append(Prepared(image=im, x=x, box=box, lungs=lf, scope=sc))
        o = timed(STAGES[9], clf.run, np.stack([p.x for p in preps]))
        for i, (p, prep) in enumerate(zip(part, preps, strict=True)):
            pred = timed(STAGES[10], conclude, prep, clf, o.logits[i], o.probs[i], o.cam[i], ood_of(o, i),
                         view_of(o, i))
            t0 = time.perf_counter()
            m = prep.image.meta
            d = _Decoded(s + i, p, meta_row={"width": m.width, "height": m.height, "modality": m.modality,
                                            "view_position": m.view_position, "format": m.format,
                                            "identifiers": m.identifiers})
            row: BatchRow = _row_for(d, pred, p.parent, len(files), clf.labels, False)
            out.writerow(_row_values(row, info, False, False))
            t[STAGES[11]] += time.perf_counter() - t0
    return t


def print_stages(label: str, files: list[Path]) -> None:
    t = stages(files)
    total = sum(t.values())
    n = len(files)
    print(f"{label}: per-image path, stage by stage, one core ({n} files, networks at batch 16), ms per image")
    for name, sec in t.items():
        print(f"  {name:<44} {1000 * sec / n:8.3f} ms  {100 * sec / total:5.1f}%")
    net = t["lung field: network"] + t["classifier network"]
    print(f"  {'total':<44} {1000 * total / n:8.3f} ms  (networks {100 * net / total:.1f}%, "
          f"CPU steps around them {1000 * (total - net) / n:.2f} ms)")


def compare(label: str, folder: Path, n: int, reps: int, work: Path, save: Path | None, against: Path | None,
            before: Path | None = None) -> None:
    lanes = default_lanes()
    bare, lane_bare, whole, old, reports = [], [], [], [], []
    for r in range(reps):
        bare.append(bare_rate(n))
        lane_bare.append(bare_rate(n, lanes=lanes))
        report = work / f"{label}-{r}.csv"
        whole.append(n / whole_process(folder, report, []))
        reports.append(report)
        if before is not None:
            old.append(n / whole_process(folder, work / f"{label}-before-{r}.csv", [], before))
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
    if before is not None:
        o = statistics.median(old)
        print(f"  radlens-batch of {before} (before)          : {o:7.1f} images/s  {runs(old)}  "
              f"ratio {o / b:.2f}x; report equal to this one's: "
              f"{'yes' if filecmp.cmp(reports[0], work / f'{label}-before-0.csv', shallow=False) else 'NO'}")
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
    ap.add_argument("--dicom", default="RG1_JLSN.dcm", help="pydicom test file to copy (RG1_JLSN.dcm: made "
                    "from RG1_J2KI.dcm when pydicom lacks it)")
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--save", type=Path, help="keep the reports here (to compare a later run with)")
    ap.add_argument("--compare", type=Path, help="a --save folder of an earlier run")
    ap.add_argument("--before", type=Path, metavar="CHECKOUT",
                    help="also time radlens-batch of another checkout (git worktree add /tmp/before COMMIT)")
    ap.add_argument("--stages", type=int, default=0, metavar="N",
                    help="instead: time each stage of the per-image path on N files of each kind (one core)")
    args = ap.parse_args(argv)
    print(f"bench_batch: {os.cpu_count()} CPUs, model {MODEL.name}")
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        pool = work / "cxr"
        files = stratified_folder(pool, args.stages or args.files)
        if args.stages:
            print_stages("cxr-jpeg", files)
            if args.dicom_files:
                folder = dicom_folder(work / "dicom", args.stages, dicom_source(args.dicom, work))
                print_stages(f"dicom-{Path(args.dicom).stem}", sorted(folder.iterdir()))
            return
        compare("cxr-jpeg", pool, args.files, args.reps, work, args.save, args.compare, args.before)
        if args.dicom_files:
            folder = dicom_folder(work / "dicom", args.dicom_files, dicom_source(args.dicom, work))
            compare(f"dicom-{Path(args.dicom).stem}", folder, args.dicom_files, args.reps, work, args.save,
                    args.compare, args.before)


if __name__ == "__main__":
    main()
