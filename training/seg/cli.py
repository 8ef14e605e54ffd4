"""``python -m training.seg {train,export,evaluate}``: the lung segmentation model.

    python -m training.seg train --out runs/lungseg --install resources/models
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import time
from dataclasses import asdict
from pathlib import Path

import numpy as np

from ..evaluation.evaluate_ext import write_json
from .data import read_cases
from .train import SegConfig, pick

MODEL_FILE = "radlens-lungseg.onnx"


def _set(cfg: SegConfig, pairs: list[str]) -> SegConfig:
    d = asdict(cfg)
    for kv in pairs:
        key, _, value = kv.partition("=")
        if key not in d:
            raise SystemExit(f"unknown setting {key!r}; known: {', '.join(sorted(d))}")
        try:
            d[key] = json.loads(value)  # numbers, true/false, lists
        except json.JSONDecodeError:
            d[key] = value  # plain text (a path, a fold name)
    return SegConfig.from_dict(d)


def finish(net, cfg: SegConfig, summary: dict, out: Path, install: str | None,  # noqa: ANN001 - LungUNet
           per_group: int = 60) -> dict:
    """Export, verify against torch, evaluate the held-out fold through the engine, write the card."""
    from .data import load_arrays
    from .export import build_card, evaluate, export_onnx, verify_export, write_card

    model = out / MODEL_FILE
    export_onnx(net, cfg.size, build_card(cfg.size, {}, summary, tuple(cfg.decoder)), model)
    test_cases = pick(read_cases(Path(cfg.data)), cfg.test_folds, cfg.limit_test)
    imgs, _ = load_arrays(test_cases[:16], cfg.size, None)
    check = verify_export(model, net, imgs[:, None].astype(np.float32) / 255.0)
    print(f"export check vs torch: max abs diff {check['max_abs_diff']:.2e} on {check['n']} held-out images")
    ev = evaluate(model, test_cases)
    metrics = ev["summary"]
    for src, m in metrics["per_source"].items():
        print(f"  {src:9s} n={m['n']:3d} Dice mean {m['dice_mean']:.4f} median {m['dice_median']:.4f} "
              f"min {m['dice_min']:.4f} plausible {m['plausible_rate']:.2%}")
    if per_group:
        from .scope import plausibility_rates

        rates = plausibility_rates(model, per_group)  # the exported file's card is all the lung model needs
        metrics["plausibility"] = {"what": f"share of LungField.plausible on up to {per_group} random images per source "
                                           "(frontal chests of ../shared/data/cxr, cxr-extdev) and on all ood-dev knees",
                                   "rates": {g: {"n": r["n"], "plausible_rate": r["plausible_rate"]} for g, r in rates.items()}}
        for g, r in rates.items():
            print(f"  plausible {g:36s} {r['plausible_rate']:6.1%} of {r['n']}")
    card = build_card(cfg.size, metrics, summary, tuple(cfg.decoder))
    write_card(model, card)
    report = {"config": asdict(cfg), "train": summary, "export_check": check, "test": metrics,
              "size_bytes": model.stat().st_size, "per_case": ev["rows"]}
    write_json(report, out / "metrics.json")
    print(f"{model} ({model.stat().st_size / 1e6:.2f} MB)")
    if install:
        dest = Path(install)
        dest.mkdir(parents=True, exist_ok=True)
        shutil.copy2(model, dest / MODEL_FILE)
        slim = {k: v for k, v in report.items() if k != "per_case"}
        write_json(slim, dest / "radlens-lungseg.metrics.json")
        write_json(card, dest / "radlens-lungseg.card.json")
        print(f"installed in {dest}")
    return report


def cmd_train(args: argparse.Namespace) -> int:
    from .train import train

    cfg = _set(SegConfig(), args.set)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    write_json(asdict(cfg), out / "config.json")
    t0 = time.perf_counter()
    net, summary = train(cfg, out)
    finish(net, cfg, summary, out, args.install, args.plausibility_per_group)
    print(f"done in {time.perf_counter() - t0:.0f} s")
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    from .train import load_checkpoint

    net, cfg, summary = load_checkpoint(Path(args.checkpoint))
    finish(net, cfg, summary, Path(args.checkpoint).parent, args.install, args.plausibility_per_group)
    return 0


def cmd_evaluate(args: argparse.Namespace) -> int:
    from .export import evaluate

    cases = pick(read_cases(Path(args.data) if args.data else Path(SegConfig().data)), args.folds, 0)
    ev = evaluate(Path(args.model), cases)
    print(json.dumps(ev["summary"], indent=1))
    if args.output:
        write_json(ev, Path(args.output))
    return 0


def cmd_plausibility(args: argparse.Namespace) -> int:
    from .scope import plausibility_rates

    rates = plausibility_rates(Path(args.model), args.per_group)
    for group, r in rates.items():
        print(f"{group:40s} n={r['n']:3d} plausible {r['plausible_rate']:6.1%}  area {r['median_area']:.2f} "
              f"conf {r['median_confidence']:.2f}  {r['reasons']}")
    if args.output:
        write_json(rates, Path(args.output))
    return 0


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m training.seg", description="Train, export and evaluate the lung model.")
    sub = p.add_subparsers(dest="cmd", required=True)
    t = sub.add_parser("train", help="train on fold1, export + verify the ONNX, evaluate fold2, write the card")
    t.add_argument("--out", default="runs/lungseg", help="run folder")
    t.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="e.g. epochs=2, size=192, limit=8")
    t.add_argument("--install", help="copy the model, metrics and card here (e.g. resources/models)")
    t.add_argument("--plausibility-per-group", type=int, default=60, help="images per source for the card's "
                   "plausibility rates (0 = skip)")
    t.set_defaults(func=cmd_train)
    x = sub.add_parser("export", help="export a checkpoint.pt again (verify, evaluate, card)")
    x.add_argument("checkpoint")
    x.add_argument("--install")
    x.add_argument("--plausibility-per-group", type=int, default=60)
    x.set_defaults(func=cmd_export)
    e = sub.add_parser("evaluate", help="Dice of an .onnx lung model on folds of the lung-mask set")
    e.add_argument("model")
    e.add_argument("--data")
    e.add_argument("--folds", nargs="+", default=["fold2"])
    e.add_argument("-o", "--output")
    e.set_defaults(func=cmd_evaluate)
    s = sub.add_parser("plausibility", help="how often LungField.plausible holds on chests (pool, extdev) and knees")
    s.add_argument("model")
    s.add_argument("--per-group", type=int, default=60, help="images per source/kind")
    s.add_argument("-o", "--output")
    s.set_defaults(func=cmd_plausibility)
    args = p.parse_args(argv)
    return int(args.func(args))


if __name__ == "__main__":
    sys.exit(main())
