"""How the scope check's thresholds were chosen, and what they cost: run the product's
per-image path (``engine.analyze``) over in-scope and out-of-scope sets and print, per set,
the fraction flagged out of scope and by which rule, and the spread of each image statistic.

Thresholds are chosen on: the validation split of ../shared/data/cxr, the ood-dev knees and
the generated cases. The test split and cxr-extdev are only reported (never tuned on).

    python bench/scope_thresholds.py [--model M.onnx] [--n-val 600] [--json out.json]
"""

from __future__ import annotations

import argparse
import csv
import json
import sys
import tempfile
import time
import warnings
from collections import Counter
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO), str(REPO / "tests")]
DATA = REPO.parent / "shared" / "data"

from engine import Classifier, analyze, default_model_path  # noqa: E402
from engine.ai.scope import image_statistics  # noqa: E402
from engine.errors import RadLensError  # noqa: E402


def split_rows(split_file: Path, split: str, n: int, seed: int = 0) -> list[Path]:
    with open(split_file, newline="", encoding="utf-8") as f:
        rows = [r for r in csv.DictReader(f) if r["split"] == split]
    rng = np.random.default_rng(seed)
    idx = sorted(rng.permutation(len(rows))[:n]) if n < len(rows) else range(len(rows))
    return [DATA / "cxr" / rows[i]["file"] for i in idx]


def manifest_files(folder: Path) -> list[Path]:
    with open(folder / "manifest.csv", newline="", encoding="utf-8") as f:
        return [folder / r["file"] for r in csv.DictReader(f)]


def dicom_files() -> dict[str, Path]:
    from pydicom.data import get_testdata_file

    names = ["CT_small.dcm", "MR_small.dcm", "JPEG2000.dcm", "examples_palette.dcm", "examples_rgb_color.dcm",
             "examples_ybr_color.dcm", "693_J2KI.dcm", "MR_small_RLE.dcm", "rtdose.dcm", "liver_1frame.dcm"]
    out = {n: Path(p) for n in names if (p := get_testdata_file(n, download=False))}
    for p in sorted((DATA / "dicom").glob("*.dcm")):
        out[p.name] = p
    return out


def run_set(name: str, files: list[Path] | dict[str, Path], clf: Classifier) -> dict:
    items = files.items() if isinstance(files, dict) else ((p.name, p) for p in files)
    kinds: Counter[str] = Counter()
    stats: list[dict[str, float]] = []
    out_names: list[str] = []
    in_names: list[str] = []
    ood: list[float] = []
    errors = 0
    t0 = time.perf_counter()
    for label, path in items:
        try:
            pred = analyze(path, clf)
        except RadLensError:
            errors += 1
            continue
        sc = pred.scope
        kinds[sc.kind or "in"] += 1
        (in_names if sc.in_scope else out_names).append(label)
        if sc.ood_score is not None:
            ood.append(sc.ood_score)
        st = image_statistics(pred.image.pixels)
        st["colour"] = pred.image.meta.colourfulness
        la = getattr(pred.lungs, "area_fraction", None)
        if la is not None:
            st["lung_area"] = float(la)
        stats.append(st)
    n = sum(kinds.values())
    res = {"set": name, "n": n, "errors": errors, "out_of_scope": (n - kinds["in"]) / max(n, 1),
           "by_rule": dict(kinds), "seconds": round(time.perf_counter() - t0, 1)}
    if stats:
        keys = sorted({k for s in stats for k in s})
        res["stats"] = {k: {q: round(float(np.percentile([s[k] for s in stats if k in s], q)), 4)
                            for q in (0, 1, 50, 99, 100)} for k in keys}
    if ood:
        res["ood"] = {q: round(float(np.percentile(ood, q)), 3) for q in (1, 50, 99)}
    res["in_scope_examples"] = in_names[:10]
    if len(out_names) < 20:
        res["out_examples"] = out_names
    return res


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default=str(default_model_path()))
    ap.add_argument("--split-file", default=str(REPO / "resources" / "models" / "radlens-cxr4.split.csv"))
    ap.add_argument("--n-val", type=int, default=600)
    ap.add_argument("--n-test", type=int, default=600)
    ap.add_argument("--sets", default="val,ood-dev,generated,dicom,test,extdev")
    ap.add_argument("--json", default="")
    args = ap.parse_args()
    warnings.filterwarnings("ignore")
    clf = Classifier(args.model, device="cpu")
    print(f"model {clf.card.name} {clf.card.version}; ood output: {clf.has_ood}; "
          f"segmenter: {getattr(clf, 'segmenter', None) is not None}")
    wanted = args.sets.split(",")
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        import cv2
        import scopecases

        xr = cv2.imread(str(split_rows(Path(args.split_file), "val", 1)[0]), cv2.IMREAD_GRAYSCALE)
        sets: dict[str, list[Path] | dict[str, Path]] = {}
        if "val" in wanted:
            sets["val (in scope; tuned on)"] = split_rows(Path(args.split_file), "val", args.n_val)
        if "ood-dev" in wanted:
            sets["ood-dev knees (out; tuned on)"] = manifest_files(DATA / "ood-dev")
        if "generated" in wanted:
            sets["generated (out; tuned on)"] = scopecases.write_cases(Path(tmp) / "gen", scopecases.cases(xr))
            sets["grey photos (out; reported)"] = scopecases.write_cases(Path(tmp) / "grey",
                                                                          scopecases.grey_photo_cases())
        if "dicom" in wanted:
            sets["DICOM fixtures (mixed)"] = dicom_files()
        if "test" in wanted:
            sets["test split (in scope; reported)"] = split_rows(Path(args.split_file), "test", args.n_test)
        if "extdev" in wanted:
            sets["cxr-extdev (in scope; reported)"] = manifest_files(DATA / "cxr-extdev")
        for name, files in sets.items():
            r = run_set(name, files, clf)
            results.append(r)
            print(f"\n== {name}: n={r['n']} errors={r['errors']} flagged out of scope {100 * r['out_of_scope']:.1f}% "
                  f"by rule {r['by_rule']} ({r['seconds']} s)")
            for k, v in r.get("stats", {}).items():
                print(f"   {k:<10} " + "  ".join(f"p{q}={x}" for q, x in v.items()))
            if "ood" in r:
                print(f"   ood        {r['ood']}")
            if "out_examples" in r:
                print(f"   out: {r['out_examples']}")
            if r["out_of_scope"] < 1 and "out" in name.split("(")[1]:
                print(f"   IN SCOPE (missed): {r['in_scope_examples']}")
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
