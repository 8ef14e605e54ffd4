"""The v2 split: the 1.0.0 split kept for the rows it has, new rows split by subject/group.

The pool's second release added sources (``nih-pneumonia``, ``nih-nofinding``,
``cohen-covid``). Rows that the 1.0.0 split file lists keep their split, so old test images
stay unseen by both models; the new rows are split by subject (else group) with a fixed
seed, stratified by label, and the merged split is written to disk with the model.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path

from .data import SPLITS, Sample, data_root, load_samples, read_split, resolve_data, split_samples, write_split

V1_SPLIT = Path(__file__).resolve().parents[2] / "resources" / "models" / "radlens-cxr4.split.csv"


def v2_split(data: str | Path, classes: list[str] | dict | None, old_split: Path, seed: int = 42,
             fractions: tuple[float, float, float] = (0.7, 0.15, 0.15)) -> dict[str, list[Sample]]:
    """Old rows as ``old_split`` says; rows it lacks split by key with ``seed``. A key (subject or
    group) present in the old split pulls its new rows into the same split, so no key straddles."""
    data = resolve_data(data)
    samples, _ = load_samples(data, classes)
    old = read_split(Path(old_split), data_root(data))
    where = {s.file: split for split in SPLITS for s in old[split]}
    key_split = {s.key: split for split in SPLITS for s in old[split]}
    out: dict[str, list[Sample]] = {s: [] for s in SPLITS}
    new = []
    for s in samples:
        if s.file in where:
            out[where[s.file]].append(s)
        elif s.key in key_split:
            out[key_split[s.key]].append(s)
        else:
            new.append(s)
    for split, items in split_samples(new, fractions, seed).items():
        out[split].extend(items)
    for split in out:
        out[split].sort(key=lambda s: s.file)
    return out


def source_counts(splits: dict[str, list[Sample]]) -> dict[str, dict[str, int]]:
    return {split: dict(sorted(Counter(f"{s.label}/{s.source}" for s in items).items())) for split, items in splits.items()}


def main() -> None:  # python -m training.data.split_v2 OUT.csv
    import json
    import sys

    out = Path(sys.argv[1])
    splits = v2_split("../shared/data/cxr", ["normal", "covid", "pneumonia", "tuberculosis"], V1_SPLIT)
    out.parent.mkdir(parents=True, exist_ok=True)
    write_split(splits, out)
    print(json.dumps(source_counts(splits), indent=1))


if __name__ == "__main__":
    main()
