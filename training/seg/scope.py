"""How often ``LungField.plausible`` holds: on frontal chests from every source of the pool and
of cxr-extdev (in scope) and on the ood-dev knees (out of scope). The figures behind the
ranges in ``engine.ai.lungs.PLAUSIBLE``; the later scope check starts from them."""

from __future__ import annotations

import csv
from collections import Counter, defaultdict
from pathlib import Path

import numpy as np

from engine.ai.lungs import LungSegmenter
from engine.io import load_image

from .data import REPO_ROOT

SHARED = REPO_ROOT.parent / "shared" / "data"


def _rows(manifest: Path, key: str, per_group: int, seed: int) -> dict[str, list[Path]]:
    with open(manifest, newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    groups: dict[str, list[Path]] = defaultdict(list)
    for r in rows:
        groups[r[key]].append(manifest.parent / r["file"])
    rng = np.random.default_rng(seed)
    return {g: [paths[i] for i in sorted(rng.permutation(len(paths))[:per_group])] for g, paths in sorted(groups.items())}


def plausibility_rates(model: Path, per_group: int = 60, seed: int = 0) -> dict:
    """{set/group: {n, plausible_rate, reasons}} for a sample of each in-scope group, all of ood-dev."""
    seg = LungSegmenter(model, device="cpu")
    sets = {
        "cxr": ("source", SHARED / "cxr" / "manifest.csv"),
        "cxr-extdev": ("source", SHARED / "cxr-extdev" / "manifest.csv"),
        "ood-dev": ("kind", SHARED / "ood-dev" / "manifest.csv"),
    }
    out = {}
    for name, (key, manifest) in sets.items():
        if not manifest.exists():
            continue
        n = per_group if name != "ood-dev" else 10**9  # every out-of-scope image: the rare passes matter
        for group, paths in _rows(manifest, key, n, seed).items():
            fields = [seg.segment(load_image(p).pixels) for p in paths]
            reasons = Counter(f.reason.split(" (")[0] for f in fields if not f.plausible)
            out[f"{name}/{group}"] = {"n": len(fields), "plausible_rate": round(float(np.mean([f.plausible for f in fields])), 4),
                                      "median_area": round(float(np.median([f.area_fraction for f in fields])), 3),
                                      "median_confidence": round(float(np.median([f.confidence for f in fields])), 3),
                                      "reasons": dict(reasons.most_common())}
    return out
