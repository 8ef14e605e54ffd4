"""The ``features`` output and the site-adaptation reference set (DESIGN.md: model contract, site adaptation).

``add_features_output``: graph surgery on an exported classifier. One ``Identity`` node exposes the
pooled tensor that feeds the linear head as the output ``features`` [N, D]; nothing else in the
graph changes, so ``logits``, ``probs``, ``cam`` and ``ood`` stay bit-identical (tested).

``build_reference``: the base model's own training features, with labels and sources, for
``engine.adapt`` to refit the head on together with a site's films. ``fit`` rows come from the
model's ``train`` split (the head is refitted on them), ``calib`` rows from its ``val`` split (films the
backbone never trained on: the temperature and operating points are refitted on them with the site's
out-of-fold logits) and ``holdout`` rows from its ``test`` split (never fitted on: they give the
"reference before/after" figures). Rows are drawn evenly over the sources within each class
(seeded), run through the engine's per-image path, and stored as float16 in
``MODEL.reference.npz`` beside the model. The card names the file and its SHA-256; the file holds
a probe (features of two fixed inputs) so the engine can check it belongs to this backbone.

``python -m training features MODEL.onnx [--split-file S.csv] [--fit-per-class 600] [--holdout-per-class 250]``
"""

from __future__ import annotations

import argparse
import json
import random
import time
from collections import defaultdict
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper

from engine.adapt.reference import FEATURES_OUTPUT, REFERENCE_SUFFIX, probe_inputs
from engine.ai.model import Classifier, sha256_file

from ..data.data import Sample, data_root, read_split, resolve_data
from ..evaluation.evaluate_ext import POOL, default_split_file, engine_features
from .export import write_card
from .ood import pooled_tensor


def add_features_output(model: onnx.ModelProto) -> bool:
    """Expose the pooled features as output ``features`` [N, D]; False when already there."""
    g = model.graph
    if any(o.name == FEATURES_OUTPUT for o in g.output):
        return False
    pooled = pooled_tensor(model)
    dim = None
    for init in g.initializer:  # D from the head's weight [C, D] (Gemm transB=1) or [D, C]
        if init.name in [n.input[1] for n in g.node if "logits" in n.output]:
            dim = int(init.dims[1]) if len(init.dims) == 2 else None
    g.node.append(helper.make_node("Identity", [pooled], [FEATURES_OUTPUT], name="radlens_features"))
    g.output.append(helper.make_tensor_value_info(FEATURES_OUTPUT, TensorProto.FLOAT, ["N", dim or "D"]))
    onnx.checker.check_model(model)
    return True


def _even_draw(samples: list[Sample], per_class: int, seed: int) -> list[Sample]:
    """Up to ``per_class`` rows per label, spread as evenly as the sources allow (seeded)."""
    rng = random.Random(seed)
    by = defaultdict(lambda: defaultdict(list))
    for s in samples:
        by[s.label][s.source].append(s)
    out: list[Sample] = []
    for label in sorted(by):
        pools = {src: rng.sample(v, len(v)) for src, v in sorted(by[label].items())}
        quota, taken = per_class, {src: 0 for src in pools}
        while quota > 0:
            open_ = [s for s in pools if taken[s] < len(pools[s])]
            if not open_:
                break
            share = max(1, quota // len(open_))
            for src in open_:
                n = min(share, len(pools[src]) - taken[src], quota)
                taken[src] += n
                quota -= n
                if quota == 0:
                    break
        for src in pools:
            out += pools[src][: taken[src]]
    return out


def build_reference(model: Path, split_file: Path, fit_per_class: int = 600, holdout_per_class: int = 250,
                    seed: int = 42, calib_per_class: int = 200) -> Path:
    """Write ``MODEL.reference.npz`` (float16 features, labels, sources, part) and name it in the card."""
    clf = Classifier(model, device="cpu")
    if not clf.has_features:
        raise SystemExit(f"{model} has no 'features' output; run add_features_output first")
    labels = list(clf.labels)
    splits = read_split(split_file, data_root(resolve_data(POOL)))
    rows = [("fit", s) for s in _even_draw(splits["train"], fit_per_class, seed)]
    rows += [("calib", s) for s in _even_draw(splits["val"], calib_per_class, seed)]
    rows += [("holdout", s) for s in _even_draw(splits["test"], holdout_per_class, seed)]
    t0 = time.time()
    feats, kept = engine_features(clf, [s for _, s in rows])
    rows = [rows[i] for i in kept]
    probe = clf.run(probe_inputs(clf.card.input_size), features=True).features
    out = model.with_name(model.stem + REFERENCE_SUFFIX)
    tmp = out.with_suffix(".tmp.npz")
    np.savez_compressed(
        tmp, features=feats.astype(np.float16), label=np.array([labels.index(s.label) for _, s in rows], np.int8),
        source=np.array([s.source for _, s in rows]), part=np.array([p for p, _ in rows]),
        labels=np.array(labels), probe=probe.astype(np.float32),
        meta=np.array(json.dumps({"model": clf.card.name, "version": clf.card.version, "seed": seed,
                                  "split_file": split_file.name, "fit_per_class": fit_per_class,
                                  "holdout_per_class": holdout_per_class, "calib_per_class": calib_per_class,
                                  "made": time.strftime("%Y-%m-%d")})))
    tmp.replace(out)
    card = json.loads(clf.card.to_json())
    counts = {part: {lab: int(sum(1 for p, s in rows if p == part and s.label == lab)) for lab in labels}
              for part in ("fit", "calib", "holdout")}
    card["reference_set"] = {"file": out.name, "sha256": sha256_file(out), "rows": len(rows), "dim": int(feats.shape[1]),
                             "counts": counts, "seed": seed,
                             "what": "the model's own features of training-split films (fit), validation-split films "
                                     "(calib: temperature and operating points) and test-split films (holdout: "
                                     "figures), drawn evenly over the sources within each class, float16"}
    write_card(model, card)
    print(f"wrote {out} ({out.stat().st_size / 1e6:.1f} MB, {len(rows)} rows, {time.time() - t0:.0f} s); counts {counts}")
    return out


def cmd_features(args: argparse.Namespace) -> int:
    model = Path(args.model)
    m = onnx.load(str(model))
    if add_features_output(m):
        onnx.save(m, str(model))
        print(f"{model}: added output 'features' [N, D]")
    split = Path(args.split_file) if args.split_file else default_split_file(model)
    if split is None:
        raise SystemExit("no split file beside the model; pass --split-file")
    build_reference(model, Path(split), args.fit_per_class, args.holdout_per_class, args.seed, args.calib_per_class)
    return 0


def add_parser(sub) -> None:  # noqa: ANN001 - argparse subparsers
    f = sub.add_parser("features", help="add the 'features' output to an exported classifier and (re)build its "
                                        "site-adaptation reference set")
    f.add_argument("model")
    f.add_argument("--split-file")
    f.add_argument("--fit-per-class", type=int, default=600)
    f.add_argument("--holdout-per-class", type=int, default=250)
    f.add_argument("--calib-per-class", type=int, default=200)
    f.add_argument("--seed", type=int, default=42)
    f.set_defaults(func=cmd_features)
