"""Mutation fuzzer for ``engine.load_image``: long seeded runs that save every failure.

Each case is a mutated copy of a real PNG / JPEG / DICOM seed (tests/fuzzcases.py has the
seeds, the mutations and the oracle), loaded in a pool of persistent child processes with
a timeout. A case passes when the loader returns finite float32 2-D pixels in [0, 1] with
finite values, or raises a ``RadLensError``. Failures, by category: ``exception`` (another
exception type), ``crash`` (the child died), ``hang`` (timeout), ``bad_output``.

    python bench/fuzz_loader.py --cases 20000 --seed 1 --workers 2 --out /tmp/fuzz
    python bench/fuzz_loader.py --replay 17 301 --seed 1 --out /tmp/fuzz   # remake cases
    python bench/fuzz_loader.py --check /tmp/fuzz/cases/*                   # re-judge saved files
    python bench/fuzz_loader.py --cases 2000 --engine-root /tmp/old         # another engine/ copy
    python bench/fuzz_loader.py --cases 2000 --out /tmp/fuzz --save-typed 'inconsistent|has no len'

``--out DIR`` gets ``cases/`` (every failing file, named category-case-seed), one JSON line
per failure in ``failures.jsonl`` (case, seed file, mutations, exception / signal, frames,
traceback or faulthandler log), ``summary.json`` and the workers' logs. A case is remade
exactly from (``--seed``, case number): ``make_case(load_seeds(), seed, case)``.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "tests"))

import fuzzcases  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--cases", type=int, default=2000, help="number of cases (default 2000)")
    ap.add_argument("--start", type=int, default=0, help="first case number (default 0)")
    ap.add_argument("--seed", type=int, default=1, help="run seed (default 1)")
    ap.add_argument("--workers", type=int, default=2, help="child processes (default 2)")
    ap.add_argument("--timeout", type=float, default=10.0, help="seconds per case before it counts as a hang")
    ap.add_argument("--mem-mb", type=int, default=6144, help="address-space limit per child in MiB (0: none)")
    ap.add_argument("--out", type=Path, default=None, help="folder for failing files and failures.jsonl")
    ap.add_argument("--data", type=Path, default=fuzzcases.DATA, help="shared data folder (seeds)")
    ap.add_argument("--no-heavy", action="store_true",
                    help="leave out valid images near the 100 MP limit (seconds and GiB per case)")
    ap.add_argument("--replay", type=int, nargs="+", metavar="CASE", help="run only these case numbers")
    ap.add_argument("--check", type=Path, nargs="+", metavar="FILE", help="judge these files instead of generated cases")
    ap.add_argument("--engine-root", type=Path, default=None,
                    help="folder holding the engine/ package to test (default: this checkout)")
    ap.add_argument("--save-typed", metavar="REGEX", default=None,
                    help="also keep files of typed errors whose message matches REGEX (3 per kind) in OUT/typed")
    ap.add_argument("--typed", type=int, default=30, help="kinds of typed error message to list (0: none)")
    ap.add_argument("--quiet", action="store_true", help="no progress line")
    args = ap.parse_args(argv)

    seeds = [] if args.check else fuzzcases.load_seeds(args.data)
    if not args.check:
        kinds = {k: sum(1 for s in seeds if s.kind == k) for k in ("dicom", "png", "jpeg")}
        print(f"{len(seeds)} seeds ({', '.join(f'{v} {k}' for k, v in kinds.items())}); run seed {args.seed}")
    if args.out is not None:
        args.out.mkdir(parents=True, exist_ok=True)
        (args.out / "failures.jsonl").write_text("", encoding="utf-8")  # this run's failures only

    last = [0.0]

    def progress(res: fuzzcases.FuzzResult) -> None:
        now = time.monotonic()
        if args.quiet or now - last[0] < 5:
            return
        last[0] = now
        fails = sum(res.counts.get(f"fail:{c}", 0) for c in fuzzcases.FAIL_CATEGORIES)
        print(f"  {res.cases} cases, {res.counts.get('ok', 0)} ok, {fails} failures, {res.elapsed:.0f} s", flush=True)

    cases = args.replay if args.replay else range(args.start, args.start + args.cases)
    res = fuzzcases.run_fuzz(
        seeds, cases, args.seed, workers=args.workers, timeout=args.timeout, out_dir=args.out,
        mem_mb=args.mem_mb, progress=progress, files=args.check, heavy=not args.no_heavy,
        engine_root=args.engine_root, save_typed=args.save_typed,
    )
    print(res.summary())
    if args.typed:
        print(res.typed_summary(args.typed))
    if args.out is not None:
        summary = {
            "run_seed": args.seed, "cases": res.cases, "elapsed_s": round(res.elapsed, 1),
            "counts": dict(sorted(res.counts.items())), "worker_restarts": res.restarts,
            "generator_fallbacks": res.generator_fallbacks,
            "signatures": _signatures(res), "typed_messages": {t: {"count": n, "first_case": res.typed_examples[t]}
                               for t, n in res.typed_templates.most_common()},
        }
        (args.out / "summary.json").write_text(json.dumps(summary, indent=1), encoding="utf-8")
        print(f"failures: {args.out / 'failures.jsonl'}; files: {args.out / 'cases'}")
    return 1 if res.failures else 0


def _signatures(res: fuzzcases.FuzzResult) -> dict[str, dict[str, object]]:
    out: dict[str, dict[str, object]] = {}
    for rec in res.failures:
        entry = out.setdefault(rec["signature"], {"count": 0, "cases": [], "files": []})
        entry["count"] = int(entry["count"]) + 1  # type: ignore[call-overload]
        if len(entry["cases"]) < 10:  # type: ignore[arg-type]
            entry["cases"].append(rec["case"])  # type: ignore[attr-defined]
            if rec.get("file"):
                entry["files"].append(rec["file"])  # type: ignore[attr-defined]
    return out


if __name__ == "__main__":
    sys.exit(main())
