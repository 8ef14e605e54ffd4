"""Sources outside the classifier pool that may join its training split (recipe key ``extra``).

``jsrt-nonodule``: the 93 JSRT films without a nodule (``JPCNN*``) of ``../shared/data/lungseg``,
labelled normal. They are adult PA film scans from Japanese hospitals: the only adult normals
available here that are neither NIH-family (the pool's adult normals all are) nor external-dev.
The 154 nodule films (``JPCLN*``) are left out: a film with a lung nodule is not a normal film.
Licence: JSRT is for research and education; a model trained on it is for internal research
until that is cleared (the card says so).

Each extra image is brought to the pool's format before training (224x224 stretched, 8-bit
JPEG quality 88, as the pool's README describes its own preparation), so the file format cannot
tell the source. The split file names them relative to the pool folder (``../lungseg/...``), so
a split stays reproducible on any machine with the shared data beside the project.
"""

from __future__ import annotations

import csv
from pathlib import Path

from .data import Sample, split_samples
from .pool_format import EXTRA, POOL_FORMAT_QUALITY, is_extra, pool_format  # noqa: F401 - re-exported


def extra_samples(name: str, pool_root: Path) -> list[Sample]:
    spec = EXTRA[name]
    root = (pool_root / spec["data"]).resolve()
    out = []
    with open(root / "manifest.csv", newline="", encoding="utf-8") as f:
        for r in csv.DictReader(f):
            if r["source"] == spec["source"] and r["case"].startswith(spec["case_prefix"]):
                rel = f"{spec['data']}/{r['image']}"
                out.append(Sample(str(pool_root / rel), rel, spec["label"], f"s:{name}-{r['case']}", name))
    if not out:
        raise FileNotFoundError(f"no {name} images under {root}")
    return sorted(out, key=lambda s: s.file)


def add_extra(splits: dict[str, list[Sample]], names: list[str], pool_root: Path, seed: int) -> dict[str, list[Sample]]:
    """``splits`` plus each extra source split 70/15/15 by its own subject key with ``seed``."""
    out = {k: list(v) for k, v in splits.items()}
    have = {s.file for v in splits.values() for s in v}
    for name in names:
        new = [s for s in extra_samples(name, pool_root) if s.file not in have]
        for split, items in split_samples(new, (0.7, 0.15, 0.15), seed).items():
            out[split].extend(items)
    for split in out:
        out[split].sort(key=lambda s: s.file)
    return out


