"""Datasets: a manifest CSV or plain class folders; class selection/merging; grouped split.

Images are read with ``engine.io.load_image`` and resized with ``engine.ai.preprocess`` so
training and serving share one pipeline; which files count as images is the engine's rule
(``engine.io.fileio.looks_like_image``), and a file the engine refuses is skipped and counted
(``decode_samples``), never the end of a training run.
"""

from __future__ import annotations

import csv
import json
import logging
import random
from collections import Counter, defaultdict
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from engine.ai.preprocess import resize_gray, to_u8
from engine.errors import RadLensError
from engine.io import load_image
from engine.io.fileio import looks_like_image

log = logging.getLogger(__name__)
SPLITS = ("train", "val", "test")


@dataclass(frozen=True)
class Sample:
    path: str  # absolute
    file: str  # relative to the data root, as in the manifest
    label: str  # label after selection/merging
    key: str  # split key: subject, else group, else the file itself
    source: str = ""


REPO_ROOT = Path(__file__).resolve().parents[2]


def resolve_data(data: str | Path) -> Path:
    """A data path as given if it exists (relative to the working directory), else relative
    to the repository root (configs say ``../shared/data/cxr``), else unchanged."""
    path = Path(data)
    if not path.exists() and not path.is_absolute() and (REPO_ROOT / path).exists():
        return (REPO_ROOT / path).resolve()
    return path


def data_root(data: str | Path) -> Path:
    """The folder that manifest/split ``file`` paths are relative to (a manifest's folder)."""
    path = Path(data)
    return path.parent if path.is_file() else path


def read_manifest(manifest: Path) -> list[dict[str, str]]:
    with open(manifest, newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f))


def scan_class_folders(root: Path) -> list[dict[str, str]]:
    """One sub-folder per class (the common layout); every file below it that may be an image
    (the engine's rule, hidden files and folders left out) is a sample."""
    rows = []
    for cls_dir in sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith(".")):
        for f in sorted(cls_dir.rglob("*")):
            hidden = any(part.startswith(".") for part in f.relative_to(cls_dir).parts)
            if not hidden and f.is_file() and looks_like_image(f):
                rows.append({"file": str(f.relative_to(root)), "label": cls_dir.name, "subject": "", "group": "", "source": root.name})
    return rows


def load_samples(data: str | Path, classes: dict[str, list[str]] | list[str] | None = None,
                 manifest: str | None = None) -> tuple[list[Sample], list[str]]:
    """Read samples from ``data`` (a folder with manifest.csv, a manifest path, or class folders).

    ``classes`` selects and merges: a list keeps those labels; a mapping
    {new_label: [source labels]} merges; a source label "label/subtype" selects a subtype
    (e.g. "pneumonia/virus"). Returns the samples and the ordered label list.
    """
    data = Path(data)
    if data.is_file():
        root, rows = data.parent, read_manifest(data)
    elif manifest or (data / "manifest.csv").exists():
        mpath = data / (manifest or "manifest.csv")
        root, rows = data, read_manifest(mpath)
    elif data.is_dir():
        root, rows = data, scan_class_folders(data)
    else:
        raise FileNotFoundError(f"data path not found: {data}")
    if classes is None:
        labels = sorted({r["label"] for r in rows})
        mapping = {lab: [lab] for lab in labels}
    elif isinstance(classes, dict):
        mapping = {str(k): [str(x) for x in v] for k, v in classes.items()}
    else:
        mapping = {str(c): [str(c)] for c in classes}
    inverse: dict[str, str] = {}
    for new, olds in mapping.items():
        for old in olds:
            if old in inverse:
                raise ValueError(f"source label {old!r} is mapped to two classes")
            inverse[old] = new
    samples = []
    for r in rows:
        # a source label may name a subtype: "pneumonia/virus"
        new = inverse.get(f"{r['label']}/{r.get('subtype', '')}") or inverse.get(r["label"])
        if new is None:
            continue
        if r.get("subject"):
            key = "s:" + r["subject"]
        elif r.get("group"):
            key = "g:" + r["group"]
        else:  # class folders and manifests without subject/group: each file on its own
            key = "f:" + r["file"]
        samples.append(Sample(path=str(root / r["file"]), file=r["file"], label=new, key=key, source=r.get("source", "")))
    labels = list(mapping)
    missing = [lab for lab in labels if not any(s.label == lab for s in samples)]
    if missing:
        raise ValueError(f"no samples for class(es) {missing} in {data}")
    return samples, labels


def split_samples(samples: list[Sample], fractions: tuple[float, float, float] = (0.7, 0.15, 0.15),
                  seed: int = 0) -> dict[str, list[Sample]]:
    """Split by key (subject, else group) so no key straddles splits; stratified by label."""
    by_key: dict[str, list[Sample]] = defaultdict(list)
    for s in samples:
        by_key[s.key].append(s)
    by_label: dict[str, list[str]] = defaultdict(list)
    for key, members in by_key.items():
        counts = Counter(m.label for m in members)
        majority = min(counts, key=lambda lab: (-counts[lab], lab))  # a tie goes by name, not input order
        by_label[majority].append(key)
    rng = random.Random(seed)
    out: dict[str, list[Sample]] = {s: [] for s in SPLITS}
    for label in sorted(by_label):
        keys = sorted(by_label[label])
        rng.shuffle(keys)
        total = sum(len(by_key[k]) for k in keys)
        bounds = (fractions[0] * total, (fractions[0] + fractions[1]) * total)
        count = 0
        for k in keys:
            split = "train" if count < bounds[0] else ("val" if count < bounds[1] else "test")
            out[split].extend(by_key[k])
            count += len(by_key[k])
    for split in out:
        out[split].sort(key=lambda s: s.file)
    return out


def write_split(splits: dict[str, list[Sample]], path: Path) -> None:
    with open(path, "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(["split", "file", "label", "key", "source"])
        for split in SPLITS:
            for s in splits[split]:
                w.writerow([split, s.file, s.label, s.key, s.source])


def read_split(path: Path, root: Path) -> dict[str, list[Sample]]:
    out: dict[str, list[Sample]] = {s: [] for s in SPLITS}
    with open(path, newline="", encoding="utf-8") as f:
        for r in csv.DictReader(f):
            out[r["split"]].append(Sample(str(root / r["file"]), r["file"], r["label"], r["key"], r["source"]))
    return out


def summarize(splits: dict[str, list[Sample]], labels: list[str]) -> dict:
    return {split: {lab: sum(1 for s in items if s.label == lab) for lab in labels} for split, items in splits.items()}


def load_gray(path: str, size: tuple[int, int], policy: str = "stretch") -> np.ndarray:
    """Engine loading + engine resize -> [0, 1] float32 HxW at model input size."""
    return resize_gray(load_image(path).pixels, size, policy)


def load_all(samples: list[Sample], size: tuple[int, int], policy: str = "stretch", workers: int = 4) -> np.ndarray:
    """Decode every sample to uint8 [N, H, W] (model input size) with a thread pool; a file
    the engine refuses raises its ``RadLensError`` (see ``decode_samples`` to skip instead)."""
    from .pool_format import is_extra, pool_format

    def one(s: Sample) -> np.ndarray:
        u8 = to_u8(load_gray(s.path, size, policy))
        return pool_format(u8) if is_extra(s) else u8  # an extra source in the pool's own format

    with ThreadPoolExecutor(workers) as ex:
        return np.stack(list(ex.map(one, samples)))


@dataclass(frozen=True)
class Skipped:
    file: str
    reason: str


def decode_samples(samples: list[Sample], size: tuple[int, int], policy: str = "stretch",
                   workers: int = 4) -> tuple[np.ndarray, list[Sample], list[Skipped]]:
    """Like ``load_all``, but a file the engine refuses (any ``RadLensError`` from
    ``load_image``: broken, truncated, not an image) is left out and reported.

    Returns uint8 [N, H, W] of the readable samples, those samples (same order) and the skipped ones."""
    def one(s: Sample) -> np.ndarray | Skipped:
        try:
            image = load_image(s.path)
        except RadLensError as e:
            return Skipped(s.file, str(e))
        return to_u8(resize_gray(image.pixels, size, policy))

    with ThreadPoolExecutor(workers) as ex:
        results = list(ex.map(one, samples))
    kept = [s for s, r in zip(samples, results, strict=True) if not isinstance(r, Skipped)]
    skipped = [r for r in results if isinstance(r, Skipped)]
    arrays = [r for r in results if not isinstance(r, Skipped)]
    imgs = np.stack(arrays) if arrays else np.empty((0, *size), np.uint8)
    for sk in skipped:
        log.warning("skipped unreadable file %s: %s", sk.file, sk.reason)
    return imgs, kept, skipped


def sample_dicts(samples: list[Sample]) -> str:
    return json.dumps([asdict(s) for s in samples])


SPLIT_KEY_KINDS = {"s": "subject", "g": "group", "f": "file"}


def split_key_kinds(splits: dict[str, list[Sample]]) -> dict[str, int]:
    """How many images were split by subject, by near-duplicate group, and file by file."""
    kinds = Counter(SPLIT_KEY_KINDS.get(s.key.split(":", 1)[0], "file") for items in splits.values() for s in items)
    return {kind: kinds.get(kind, 0) for kind in SPLIT_KEY_KINDS.values()}


def describe_split(kinds: dict[str, int]) -> str:
    """One line for the model card: what the split key really was."""
    used = [f"{kind} ({n} images)" for kind, n in kinds.items() if n]
    text = "split by " + ", else ".join(used) if used else "split"
    if kinds.get("file"):
        text += ("; images without a subject or group were split file by file, so near-duplicates or several "
                 "images of one patient may straddle train and test")
    return text

