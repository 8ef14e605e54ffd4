"""Lung segmentation latency: print ms/image and ratios measured in one run; nothing asserted.

For images of three sizes (a 224-px pool JPEG, a 512-px lung-set PNG, the 1955x1841 JPEG 2000
DICOM RG1_J2KI.dcm) at batch 1 after warm-up: ``LungSegmenter.segment`` (resize in, ONNX,
components, resize out to image size), its bare ``session.run`` on a prepared input, and the
ratio of ``segment`` to the default classifier's bare ``session.run`` (what a lung crop adds
to one prediction). Target: segment <= 15 ms per image on a 2-core CPU. Run with one
onnxruntime thread and with all cores: on a busy shared CPU one thread is the faster.

    python bench/bench_lungs.py [--reps N] [--threads N ...]
"""

from __future__ import annotations

import argparse
import csv
import os
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared" / "data"
sys.path.insert(0, str(REPO))

from engine.ai.lungs import LungSegmenter, default_lungseg_path  # noqa: E402
from engine.ai.model import Classifier, default_model_path  # noqa: E402
from engine.ai.preprocess import preprocess  # noqa: E402
from engine.io import load_image  # noqa: E402


def median_ms(fn: Callable[[], object], reps: int) -> float:
    for _ in range(3):
        fn()
    times = []
    for _ in range(reps):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return 1000.0 * statistics.median(times)


def images() -> list[tuple[str, np.ndarray]]:
    out = []
    with open(SHARED / "cxr" / "manifest.csv", newline="", encoding="utf-8") as f:
        row = next(r for r in csv.DictReader(f) if r["label"] == "normal")
    out.append(("cxr pool JPEG", load_image(SHARED / "cxr" / row["file"]).pixels))
    out.append(("lungseg PNG", load_image(SHARED / "lungseg" / "images" / "jsrt-scr_JPCLN002.png").pixels))
    out.append(("RG1_J2KI.dcm", load_image(SHARED / "dicom" / "RG1_J2KI.dcm").pixels))
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--reps", type=int, default=50)
    p.add_argument("--threads", type=int, nargs="+", default=[1, 0], help="onnxruntime intra-op threads (0 = all cores)")
    args = p.parse_args(argv)
    print(f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")
    pictures = images()
    for threads in args.threads:
        bench(pictures, threads, args.reps)
    return 0


def bench(pictures: list[tuple[str, np.ndarray]], threads: int, reps: int) -> None:
    seg = LungSegmenter(default_lungseg_path(), device="cpu", threads=threads)
    size = seg.card.input_size
    print(f"lung model {seg.path.name} {seg.path.stat().st_size / 1e6:.2f} MB, input {size[0]}x{size[1]}, "
          f"{seg.provider}, threads {threads or 'all'}, reps {reps}")
    x = seg.preprocess(np.zeros((512, 512), np.float32))[None]
    bare = median_ms(lambda: seg.session.run(["mask"], {"image": x}), reps)
    print(f"  bare session.run (batch 1)              {bare:6.2f} ms")
    cls_ms = None
    if default_model_path().exists():
        clf = Classifier(default_model_path(), device="cpu", threads=threads)
        cx = preprocess(np.zeros((512, 512), np.float32), clf.card)[None]
        cls_ms = median_ms(lambda: clf.session.run(["logits", "probs", "cam"], {"image": cx}), reps)
        print(f"  classifier {clf.path.name} session.run   {cls_ms:6.2f} ms")
    for name, px in pictures:
        ms = median_ms(lambda px=px: seg.segment(px), reps)
        field = seg.segment(px)
        ratio = f", {ms / cls_ms:.2f}x classifier session.run" if cls_ms else ""
        print(f"  segment {name:14s} {px.shape[1]:4d}x{px.shape[0]:<4d} {ms:6.2f} ms/image "
              f"({ms / bare:.2f}x bare{ratio}); plausible={field.plausible} area={field.area_fraction:.2f}")


if __name__ == "__main__":
    sys.exit(main())
