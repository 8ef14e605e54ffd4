"""Site adaptation benchmark: prints timings and ratios measured in one run; nothing is asserted.

(a) ``adapt_site`` on a 100-film site (50 ``chestxray-com-normal`` normals + 50 ``tbx11k-tb`` films from
    ../shared/data/cxr-extdev, seed 20261206) plus the bundled reference set, the whole call: reading the
    films through the per-image path, 5-fold cross-validation, the final fit and writing the model
    (target <= 60 s on the 2-core CPU); and the fitting alone.
(b) ``analyze()`` with the adapted model vs its parent on the same films (target: unchanged, ratio ~1.0).

    python bench/bench_adapt.py [--repeats 3]
"""

from __future__ import annotations

import argparse
import csv
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
EXTDEV = REPO.parent / "shared" / "data" / "cxr-extdev"
sys.path.insert(0, str(REPO))

from engine import Classifier, analyze, default_model_path  # noqa: E402
from engine.adapt import adapt_site  # noqa: E402
from engine.adapt.export import base_head  # noqa: E402
from engine.adapt.fit import AdaptOptions, adapt_features, prior_of  # noqa: E402
from engine.adapt.reference import load_reference  # noqa: E402

SEED = 20261206


def make_site(root: Path) -> tuple[Path, list[Path]]:
    rows = list(csv.DictReader(open(EXTDEV / "manifest.csv", encoding="utf-8")))
    rng = np.random.default_rng(SEED)
    rest: list[Path] = []
    for label, source in (("normal", "chestxray-com-normal"), ("tuberculosis", "tbx11k-tb")):
        films = [EXTDEV / r["file"] for r in rows if r["source"] == source]
        pick = set(rng.choice(len(films), 50, replace=False).tolist())
        (root / label).mkdir(parents=True)
        for i, f in enumerate(films):
            if i in pick:
                os.symlink(f, root / label / f.name)
            else:
                rest.append(f)
    return root, rest


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--repeats", type=int, default=3)
    a = p.parse_args()
    parent = Classifier(default_model_path(), device="cpu")
    with tempfile.TemporaryDirectory() as tmp:
        site, rest = make_site(Path(tmp) / "site")
        whole, fit_only = [], []
        for i in range(a.repeats):
            out = Path(tmp) / f"adapted{i}.onnx"
            t0 = time.perf_counter()
            res = adapt_site(site, parent, out, "bench site")
            whole.append(time.perf_counter() - t0)
            ref, base = load_reference(parent), base_head(parent.path)
            t0 = time.perf_counter()
            adapt_features(ref, base, parent.card.temperature, prior_of(parent.card.extra, parent.labels),
                           res.site.features, res.site.label, res.site.base_logits, AdaptOptions())
            fit_only.append(time.perf_counter() - t0)
        print(f"(a) adapt_site, 100 films + {len(ref.label)} reference rows: median {statistics.median(whole):.1f} s "
              f"(min {min(whole):.1f}, max {max(whole):.1f}; target <= 60 s); fitting alone (6 fits, temperature, "
              f"operating points): median {statistics.median(fit_only):.2f} s")
        adapted = Classifier(out, device="cpu")
        films = rest[:60]
        for clf in (parent, adapted):  # warm both
            analyze(films[0], clf)
        times = {"parent": [], "adapted": []}
        for _ in range(a.repeats):
            for name, clf in (("parent", parent), ("adapted", adapted)):
                t0 = time.perf_counter()
                for f in films:
                    analyze(f, clf)
                times[name].append((time.perf_counter() - t0) / len(films) * 1000)
        mp, ma = statistics.median(times["parent"]), statistics.median(times["adapted"])
        print(f"(b) analyze() per film on {len(films)} films: parent {mp:.1f} ms, adapted {ma:.1f} ms: "
              f"ratio {ma / mp:.3f} (target: unchanged)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
