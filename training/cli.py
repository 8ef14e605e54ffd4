"""``python -m training {train,evaluate,export}``: the commands that make RadLens models."""

from __future__ import annotations

import argparse
import datetime as _dt
import json
import shutil
import sys
from pathlib import Path

import numpy as np

from engine.ai.card import DISCLAIMER, ModelCard
from engine.ai.model import DEVICES
from engine.errors import ModelError

from .data.data import data_root, describe_split, load_samples, read_split, resolve_data


def build_card(cfg: dict, result: dict, test_metrics: dict | None) -> ModelCard:
    """The model card of a run, built and validated by the engine's ``ModelCard`` (the schema the
    engine reads back); a bad field raises ``ModelError`` naming it."""
    ic = cfg["input"]
    card_cfg = cfg.get("card") or {}
    val = result.get("val") or {}
    training_data = dict(card_cfg.get("training_data") or {})
    counts = result.get("counts") or {}
    if not training_data.get("summary") and counts:
        per_label = {lab: sum(c.get(lab, 0) for c in counts.values()) for lab in result["labels"]}
        training_data["summary"] = (f"{sum(per_label.values())} images from {Path(str(cfg['data'])).name}: "
                                    + ", ".join(f"{lab} {n}" for lab, n in per_label.items()) + ".")
    training_data.setdefault("confounders", ["None documented for this dataset; check how each class was collected "
                                             "(sources, ages, scanners) before trusting the model."])
    training_data["split_counts"] = counts
    if "skipped_unreadable" in result:  # files the engine refused, left out of the run
        training_data["skipped_unreadable"] = int(result["skipped_unreadable"])
    kinds = result.get("split_kinds") or {}
    training_data["split"] = {"by": describe_split(kinds) if kinds else "subject, else near-duplicate group",
                              "images_by_key": kinds, "seed": cfg["split"]["seed"], "fractions": cfg["split"]["fractions"]}
    metrics = {}
    if test_metrics:
        metrics = {
            "split": "held-out test split (never used for training or model selection)",
            "n": test_metrics["n"], "accuracy": round(test_metrics["accuracy"], 4),
            "macro_f1": round(test_metrics["macro_f1"], 4), "macro_auc_ovr": round(test_metrics["macro_auc_ovr"], 4),
            "ece_before_temperature": round(test_metrics["ece_before_temperature"], 4),
            "ece_after_temperature": round(test_metrics["ece_after_temperature"], 4),
            "per_class": {k: {m: round(v, 4) if isinstance(v, float) else v for m, v in d.items()}
                          for k, d in test_metrics["per_class"].items()},
        }
    intended_use = str(card_cfg.get("intended_use") or f"{DISCLAIMER}.").strip()
    if "research use only" not in intended_use.lower():
        intended_use = f"{DISCLAIMER}. {intended_use}"
    return ModelCard.from_dict({
        "name": cfg["name"], "version": str(cfg["version"]), "labels": result["labels"],
        "input_size": [int(v) for v in ic["size"]], "mean": list(ic["mean"]), "std": list(ic["std"]), "resize": ic["resize"],
        # exactly the graph's temperature: evaluation recomputes probabilities from logits with it
        "temperature": float(result["temperature"]), "operating_points": result["operating_points"],
        "training_data": training_data, "test_metrics": metrics,
        "intended_use": intended_use,
        "created": _dt.date.today().isoformat(), "architecture": cfg["model"]["arch"],
        # training resizes only (engine.ai.preprocess.resize_gray): no crop, no intensity step
        "preprocessing": {"crop": "none", "intensity": "none"},
        "decision_rule": card_cfg.get("decision_rule"),  # None: the engine's default rule
        "ood": result.get("ood"),
        "out_of_source_metrics": result.get("out_of_source_metrics") or card_cfg.get("out_of_source_metrics") or {},
        "extra": {"operating_point_rule": "per class, the calibrated-probability threshold maximising Youden's J on validation",
                  "best_epoch": result.get("best_epoch", 0),
                  "validation": {"accuracy": round(val.get("accuracy", float("nan")), 4),
                                 "macro_f1": round(val.get("macro_f1", float("nan")), 4)}},
    })


def check_card_config(cfg: dict) -> None:
    """Fail before training, not after hours of it, when the config makes a card the engine
    would refuse (a bad name, input size, mean/std, resize policy, ...)."""
    build_card(cfg, {"labels": ["class_a", "class_b"], "temperature": 1.0, "operating_points": {}}, None)


def _images_for_check(split_samples: list, cfg: dict, n: int = 32) -> np.ndarray:
    from .data.data import load_all
    from .recipes.train import normalize_batch

    step = max(1, len(split_samples) // n)
    picked = split_samples[::step][:n]
    return normalize_batch(load_all(picked, tuple(cfg["input"]["size"]), cfg["input"]["resize"]), cfg["input"]["mean"], cfg["input"]["std"])


def cmd_train(args: argparse.Namespace) -> int:
    import torch

    from .config import load_config
    from .evaluation.evaluate import evaluate_onnx
    from .evaluation.plots import confusion_png, curves_png
    from .export.export import export_onnx, verify_export, write_card
    from .recipes.models import build_model
    from .recipes.train import train

    cfg = load_config(args.config, args.set)
    if args.data:
        if resolve_data(args.data).resolve() != resolve_data(cfg["data"]).resolve() and (cfg.get("card") or {}).get("training_data"):
            # the config's description of its own dataset says nothing true about another one
            cfg["card"] = {**cfg["card"], "training_data": {}}
            print("note: --data replaces the config's dataset; its data summary and confounders are left out of "
                  "the card (describe the new data in a config's card.training_data)", flush=True)
        cfg["data"] = args.data
    cfg["data"] = str(resolve_data(cfg["data"]))
    check_card_config(cfg)
    out = Path(args.out or f"runs/{cfg['name']}")
    out.mkdir(parents=True, exist_ok=True)
    (out / "config.json").write_text(json.dumps(cfg, indent=1))
    result = train(cfg, out)

    ck = torch.load(out / "checkpoint.pt", map_location="cpu", weights_only=False)
    net = build_model(cfg["model"]["arch"], len(result["labels"]), pretrained=False)
    net.load_state_dict(ck["state_dict"])
    splits = read_split(out / "split.csv", data_root(cfg["data"]))
    onnx_path = out / f"{cfg['name']}.onnx"
    size = tuple(cfg["input"]["size"])
    export_onnx(net, result["temperature"], build_card(cfg, result, None), onnx_path, size)
    check_imgs = _images_for_check(splits["test"] or splits["val"], cfg)
    verification = verify_export(onnx_path, net, result["temperature"], check_imgs, result["labels"])
    print("export verified:", json.dumps(verification), flush=True)

    test = evaluate_onnx(onnx_path, splits["test"])  # the shipped graph, through the engine
    card = build_card(cfg, result, test)
    write_card(onnx_path, card)  # same graph, final card; verified again as shipped
    verification = verify_export(onnx_path, net, result["temperature"], check_imgs, result["labels"])
    # The test ran on the same graph and weights before the final card (which holds the test metrics) was
    # written into metadata_props; record both hashes so the shipped file's hash is the one quoted.
    test["model"]["sha256_evaluated_before_final_card"] = test["model"].pop("sha256")
    test["model"]["sha256"] = verification["sha256"]
    metrics = {"model": card.name, "version": card.version, "sha256": verification["sha256"],
               "test": test, "validation": result["val"], "temperature": result["temperature"],
               "operating_points": result["operating_points"], "best_epoch": result["best_epoch"],
               "history": result["history"], "timing": result["timing"], "export_verification": verification,
               "split_counts": result["counts"], "skipped_unreadable": result.get("skipped_unreadable", 0),
               "config": cfg}
    (out / "metrics.json").write_text(json.dumps(metrics, indent=1))
    confusion_png(test["confusion_matrix"], result["labels"], out / "confusion.png",
                  f"{card.name} test split (n={test['n']}): acc {test['accuracy']:.3f}, macro-F1 {test['macro_f1']:.3f}")
    curves_png(result["history"], out / "loss.png", out / "accuracy.png")
    _print_summary(test, result)
    if args.install:
        install(out, cfg["name"], Path(args.install))
    return 0


def install(run_dir: Path, name: str, dest: Path) -> None:
    """Copy the model and its evidence into e.g. resources/models/."""
    dest.mkdir(parents=True, exist_ok=True)
    shutil.copy2(run_dir / f"{name}.onnx", dest / f"{name}.onnx")
    for src, dst in (("metrics.json", "metrics.json"), ("confusion.png", "confusion.png"), ("loss.png", "loss.png"),
                     ("accuracy.png", "accuracy.png"), ("split.csv", "split.csv")):
        shutil.copy2(run_dir / src, dest / f"{name}.{dst}")
    print(f"installed {name} into {dest}")


def _print_summary(test: dict, result: dict) -> None:
    print(f"\nTEST (n={test['n']}): accuracy {test['accuracy']:.4f}  macro-F1 {test['macro_f1']:.4f}  "
          f"ECE {test['ece_before_temperature']:.4f} -> {test['ece_after_temperature']:.4f} (T={result['temperature']:.3f})")
    for lab, d in test["per_class"].items():
        print(f"  {lab:14s} P {d['precision']:.3f}  R {d['recall']:.3f}  F1 {d['f1']:.3f}  AUC {d['auc_ovr']:.4f}  n={d['support']}")
    t = result["timing"]
    print(f"timing: decode {t['decode_s']:.0f}s, feature cache {t['cache_s']:.0f}s, train {t['train_s']:.0f}s, "
          f"total {t['total_s']:.0f}s, {t['train_images_per_s']:.0f} img/s")


def cmd_evaluate(args: argparse.Namespace) -> int:
    from .evaluation.evaluate import evaluate_onnx

    if not args.data:  # internal test split + external-dev set, per source, through the engine
        from .evaluation.evaluate_ext import cmd_evaluate_ext

        return cmd_evaluate_ext(args)
    data = resolve_data(args.data)
    if args.split_file:
        samples = read_split(Path(args.split_file), data_root(data))[args.split]
    else:
        classes = None
        if args.config:
            from .config import load_config

            classes = load_config(args.config).get("classes")
        samples, _ = load_samples(data, classes)
    model = Path(args.model)
    if model.suffix == ".onnx":
        m = evaluate_onnx(model, samples, device=args.device)
    else:
        from .recipes.train import evaluate_checkpoint

        m = evaluate_checkpoint(model, samples)
    text = json.dumps(m, indent=1)
    if args.output:
        Path(args.output).write_text(text)
    print(f"n={m['n']} accuracy {m['accuracy']:.4f} macro-F1 {m['macro_f1']:.4f} ECE {m['ece_after_temperature']:.4f}")
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    import torch

    from .export.export import export_onnx, verify_export
    from .recipes.models import build_model

    ck = torch.load(args.checkpoint, map_location="cpu", weights_only=False)
    cfg, labels = ck["config"], ck["labels"]
    run_dir = Path(args.checkpoint).parent
    result_path = run_dir / "train_result.json"
    result = json.loads(result_path.read_text()) if result_path.exists() else {
        "labels": labels, "temperature": ck["temperature"], "operating_points": ck["operating_points"],
        "counts": {}, "best_epoch": 0, "val": {"accuracy": float("nan"), "macro_f1": float("nan")}}
    metrics_path = run_dir / "metrics.json"
    test = json.loads(metrics_path.read_text()).get("test") if metrics_path.exists() else None
    net = build_model(cfg["model"]["arch"], len(labels), pretrained=False)
    net.load_state_dict(ck["state_dict"])
    out = Path(args.output)
    export_onnx(net, ck["temperature"], build_card(cfg, result, test), out, tuple(cfg["input"]["size"]))
    splits = read_split(run_dir / "split.csv", data_root(resolve_data(cfg["data"])))
    report = verify_export(out, net, ck["temperature"], _images_for_check(splits["test"] or splits["val"], cfg), labels)
    print(json.dumps(report, indent=1))
    return 0


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="radlens-train", description="Train, evaluate and export RadLens models.")
    sub = p.add_subparsers(dest="cmd", required=True)
    t = sub.add_parser("train", help="train from a YAML config, export and verify the ONNX, write metrics")
    t.add_argument("config", help="config name (cxr4, cxr3, pneumonia, covid) or YAML path")
    t.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="override, e.g. train.epochs=2")
    t.add_argument("--data", help="dataset folder (manifest.csv or class folders); overrides the config")
    t.add_argument("--out", help="run folder (default runs/NAME)")
    t.add_argument("--install", help="copy the model, metrics and plots here (e.g. resources/models)")
    t.set_defaults(func=cmd_train)
    e = sub.add_parser("evaluate", help="evaluate an .onnx or a checkpoint on a dataset")
    e.add_argument("model")
    e.add_argument("--data", help="dataset folder or manifest CSV; without it: the internal --split of --split-file "
                   "(default: MODEL.split.csv) and ../shared/data/cxr-extdev, per source and class")
    e.add_argument("--extdev", default="../shared/data/cxr-extdev", help="external-dev set (without --data)")
    e.add_argument("--split-file", help="a split.csv; evaluate only --split of it")
    e.add_argument("--split", default="test", choices=["train", "val", "test"])
    e.add_argument("--config", help="select and merge the data's classes as this config does (e.g. cxr3)")
    e.add_argument("--device", default="cpu", choices=DEVICES)
    e.add_argument("-o", "--output", help="write the metrics JSON here")
    e.set_defaults(func=cmd_evaluate)
    x = sub.add_parser("export", help="export a checkpoint to ONNX and verify it")
    x.add_argument("checkpoint")
    x.add_argument("-o", "--output", required=True)
    x.set_defaults(func=cmd_export)
    from .export.features import add_parser as add_features_parser

    add_features_parser(sub)
    args = p.parse_args(argv)
    try:
        return int(args.func(args))
    except ModelError as e:  # e.g. a model card the engine would refuse: say which field, no traceback
        print(f"radlens-train {args.cmd}: {e}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
