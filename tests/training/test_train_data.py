"""Datasets and the split: the real manifest, class merging/subtypes, class folders."""

from __future__ import annotations

import csv
import shutil
from collections import Counter
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")

from training.config import load_config  # noqa: E402
from training.data.data import (  # noqa: E402
    SPLITS,
    data_root,
    load_samples,
    read_split,
    split_samples,
    summarize,
    write_split,
)

CXR = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "cxr"
FRACTIONS = (0.7, 0.15, 0.15)


@pytest.fixture(scope="module")
def manifest_rows() -> dict[str, dict[str, str]]:
    if not (CXR / "manifest.csv").exists():
        pytest.skip(f"shared chest X-ray data not found at {CXR}")
    with open(CXR / "manifest.csv", newline="", encoding="utf-8") as f:
        return {r["file"]: r for r in csv.DictReader(f)}


@pytest.fixture(scope="module")
def all_samples(manifest_rows):  # noqa: ANN001, ANN201
    return load_samples(CXR)


@pytest.fixture(scope="module")
def split42(all_samples):  # noqa: ANN001, ANN201
    return split_samples(all_samples[0], FRACTIONS, seed=42)


def test_manifest_loads_every_row_with_its_label(manifest_rows, all_samples) -> None:
    samples, labels = all_samples
    assert labels == ["covid", "normal", "pneumonia", "tuberculosis"]
    assert len(samples) == len(manifest_rows)
    for s in samples[:: 97]:
        row = manifest_rows[s.file]
        assert s.label == row["label"]
        assert Path(s.path) == CXR / row["file"]
        assert s.key == (f"s:{row['subject']}" if row["subject"] else f"g:{row['group']}")


def test_split_keeps_every_subject_and_group_in_one_split(manifest_rows, all_samples, split42) -> None:
    samples, _ = all_samples
    files = [s.file for split in SPLITS for s in split42[split]]
    assert sorted(files) == sorted(s.file for s in samples)  # a partition: nothing lost, nothing twice
    for column in ("subject", "group"):
        seen: dict[str, str] = {}
        for split in SPLITS:
            for s in split42[split]:
                value = manifest_rows[s.file][column]
                if not value:
                    continue
                assert seen.setdefault(value, split) == split, f"{column} {value} is in {seen[value]} and {split}"
    subjects = {manifest_rows[s.file]["subject"] for s in samples} - {""}
    assert len(subjects) > 1000  # the subject rule is really exercised (Kermany patients)


def test_split_fractions_hold_per_class(all_samples, split42) -> None:
    samples, labels = all_samples
    total = Counter(s.label for s in samples)
    counts = summarize(split42, labels)
    for split, target in zip(SPLITS, FRACTIONS, strict=True):
        for lab in labels:
            assert counts[split][lab] / total[lab] == pytest.approx(target, abs=0.02), (split, lab)


def test_split_is_deterministic_per_seed(all_samples, split42) -> None:
    samples, _ = all_samples
    again = split_samples(list(reversed(samples)), FRACTIONS, seed=42)  # input order does not matter
    other = split_samples(samples, FRACTIONS, seed=43)
    for split in SPLITS:
        assert [s.file for s in again[split]] == [s.file for s in split42[split]]
    assert [s.file for s in other["test"]] != [s.file for s in split42["test"]]


def test_split_csv_round_trips(tmp_path: Path, split42) -> None:
    path = tmp_path / "split.csv"
    write_split(split42, path)
    back = read_split(path, CXR)
    for split in SPLITS:
        assert back[split] == split42[split]
    # a manifest file path also works as the data root
    assert data_root(CXR / "manifest.csv") == CXR
    assert read_split(path, data_root(CXR / "manifest.csv"))["val"] == split42["val"]


def test_cxr3_selects_viral_pneumonia_subtype_only(manifest_rows) -> None:
    cfg = load_config("cxr3")
    samples, labels = load_samples(CXR, cfg["classes"])
    assert labels == ["covid", "normal", "viral_pneumonia"]
    expected = Counter()
    for r in manifest_rows.values():
        if r["label"] in ("covid", "normal"):
            expected[r["label"]] += 1
        elif r["label"] == "pneumonia" and r["subtype"] == "virus":
            expected["viral_pneumonia"] += 1
    assert Counter(s.label for s in samples) == expected
    assert expected["viral_pneumonia"] > 1000
    for s in samples:
        row = manifest_rows[s.file]
        assert row["subtype"] != "bacteria"
        assert row["label"] != "tuberculosis"
        if s.label == "viral_pneumonia":
            assert (row["label"], row["subtype"]) == ("pneumonia", "virus")
        else:
            assert row["label"] == s.label


def test_class_merging_and_selection(manifest_rows) -> None:
    merged, labels = load_samples(CXR, {"abnormal": ["covid", "pneumonia", "tuberculosis"], "normal": ["normal"]})
    assert labels == ["abnormal", "normal"]
    raw = Counter(r["label"] for r in manifest_rows.values())
    assert Counter(s.label for s in merged) == {"abnormal": raw["covid"] + raw["pneumonia"] + raw["tuberculosis"],
                                                "normal": raw["normal"]}
    for s in merged:
        assert (s.label == "normal") == (manifest_rows[s.file]["label"] == "normal")
    kept, labels = load_samples(CXR / "manifest.csv", ["tuberculosis", "normal"])  # a manifest path, a list
    assert labels == ["tuberculosis", "normal"]
    assert Counter(s.label for s in kept) == {"tuberculosis": raw["tuberculosis"], "normal": raw["normal"]}


def test_bad_class_selections_are_errors(manifest_rows) -> None:
    with pytest.raises(ValueError, match="mapped to two classes"):
        load_samples(CXR, {"a": ["covid"], "b": ["covid"]})
    with pytest.raises(ValueError, match="no samples for class"):
        load_samples(CXR, ["normal", "fracture"])
    with pytest.raises(FileNotFoundError, match="not found"):
        load_samples(CXR / "no-such-folder")


def _class_folders(root: Path, manifest_rows: dict[str, dict[str, str]], per_class: int) -> dict[str, str]:
    """Copy a few real images into root/<class>/ (one nested), plus files that are not images."""
    truth: dict[str, str] = {}
    taken: Counter = Counter()
    for file, row in manifest_rows.items():
        lab = row["label"]
        if lab == "pneumonia" or taken[lab] >= per_class:
            continue
        sub = Path(lab) / ("nested" if taken[lab] == 0 else "")
        dest = root / sub / Path(file).name
        dest.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(CXR / file, dest)
        truth[str(dest.relative_to(root))] = lab
        taken[lab] += 1
    (root / "normal" / "notes.txt").write_text("not an image")
    (root / ".cache").mkdir()
    shutil.copy2(CXR / next(iter(manifest_rows)), root / ".cache" / "hidden.jpg")
    return truth


def test_class_folders_load_with_folder_labels(tmp_path: Path, manifest_rows) -> None:
    truth = _class_folders(tmp_path, manifest_rows, per_class=4)
    samples, labels = load_samples(tmp_path)
    assert labels == ["covid", "normal", "tuberculosis"]
    assert {s.file: s.label for s in samples} == truth
    assert all(Path(s.path).is_file() for s in samples)
    assert len({s.key for s in samples}) == len(samples)  # no subject/group: every image is its own key
    splits = split_samples(samples, (0.5, 0.25, 0.25), seed=0)
    assert sum(len(v) for v in splits.values()) == len(samples)
    merged, labels = load_samples(tmp_path, {"abnormal": ["covid", "tuberculosis"], "normal": ["normal"]})
    assert labels == ["abnormal", "normal"]
    assert Counter(s.label for s in merged) == {"abnormal": 8, "normal": 4}
