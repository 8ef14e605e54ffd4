"""Seeded mutation fuzzing of ``load_image``: every damaged PNG / JPEG / DICOM must give a
finite float32 image in [0, 1] or a ``RadLensError``, never another exception, a crash, a
hang or a bad image. The mutations, seeds and oracle live in tests/fuzzcases.py; long runs
with every failing file saved: bench/fuzz_loader.py.

RADLENS_FUZZ_CASES / RADLENS_FUZZ_SEED change the size and seed of the loader run."""

from __future__ import annotations

import os
from pathlib import Path

import fuzzcases
import pytest

CASES = int(os.environ.get("RADLENS_FUZZ_CASES", "800"))
SEED = int(os.environ.get("RADLENS_FUZZ_SEED", "20261129"))


@pytest.fixture(scope="module")
def seeds() -> list[fuzzcases.Seed]:
    found = fuzzcases.load_seeds()
    if not any(s.kind == "dicom" for s in found):
        pytest.skip("no DICOM seed found (pydicom test files or ../shared/data/dicom)")
    return found


def test_cases_are_remade_exactly_from_seed_and_number(seeds: list[fuzzcases.Seed]) -> None:
    a = [fuzzcases.make_case(seeds, 7, i) for i in (0, 5, 123)]
    b = [fuzzcases.make_case(seeds, 7, i) for i in (123, 5, 0)][::-1]
    assert [(c.seed, c.ops, c.data) for c in a] == [(c.seed, c.ops, c.data) for c in b]
    assert len({c.data for c in a}) == 3
    kind = {s.name: s.kind for s in seeds}
    assert {kind[fuzzcases.make_case(seeds, 7, i).seed] for i in range(40)} == {"dicom", "png", "jpeg"}


def test_harness_sorts_every_outcome(tmp_path: Path) -> None:
    """A stand-in loader that hangs, crashes, exits, raises and returns bad images: each
    lands in its category and the pool survives (workers restarted)."""
    names = ["OK", "HANG", "SEGV", "EXIT", "RAISE", "TYPED", "NAN", "WIDE", "OK2"]
    files = []
    for n in names:
        (tmp_path / n).write_bytes(n.encode())
        files.append(tmp_path / n)
    res = fuzzcases.run_fuzz([], 0, 0, workers=2, timeout=3, files=files, target="fuzzcases:_selftest_target",
                             out_dir=tmp_path / "out")
    got = {Path(f["file"]).name: f for f in res.failures}
    assert res.counts["ok"] == 2 and res.counts["typed:CorruptImageError"] == 1
    assert got["HANG"]["category"] == "hang" and any("_selftest_target" in f for f in got["HANG"]["frames"])
    assert got["SEGV"]["category"] == "crash" and got["SEGV"]["signal"] == "SIGSEGV"
    assert got["EXIT"]["category"] == "crash" and got["EXIT"]["signal"] == "exit status 3"
    assert got["RAISE"]["category"] == "exception" and got["RAISE"]["error"] == "builtins.KeyError"
    assert got["NAN"]["category"] == "bad_output" and "NaN" in " ".join(got["NAN"]["problems"])
    assert got["WIDE"]["category"] == "bad_output" and "outside [0, 1]" in " ".join(got["WIDE"]["problems"])
    assert res.restarts == 3
    assert len((tmp_path / "out" / "failures.jsonl").read_text().splitlines()) == 6


def test_loader_survives_mutated_files(seeds: list[fuzzcases.Seed], tmp_path: Path) -> None:
    out = tmp_path / "fuzz"
    res = fuzzcases.run_fuzz(seeds, CASES, SEED, workers=2, timeout=10, out_dir=out, heavy=False)
    assert res.cases == CASES
    assert res.counts["ok"] > CASES // 10  # the mutations are not all fatal: the decode paths are reached
    assert not res.failures, (
        f"{len(res.failures)} of {CASES} mutated files broke the loader (seed {SEED}); files and "
        f"{out / 'failures.jsonl'} kept. Remake one: python bench/fuzz_loader.py --seed {SEED} "
        f"--replay CASE --out DIR\n{res.summary()}"
    )
