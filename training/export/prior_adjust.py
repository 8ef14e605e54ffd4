"""Logit adjustment to the training split's class prior, inside an exported classifier.

Training weighs the classes equally (class-weighted loss), so the calibrated probabilities
assume four equally likely classes. A film from a clinic is far more often normal than that.
Logit adjustment (Menon et al., ICLR 2021) restores the training split's prior pi:
``p'(c | x) = softmax(z / T + log(K pi_c))``. In the graph it is one change: the classifier's
bias ``b_c += T log(K pi_c)`` (T: the card's temperature), so logits, probabilities, the call
and the flags move together, while Grad-CAM (from the classifier's weights) and the in-graph
out-of-distribution score (from the pooled features) stay byte for byte what they were.

``python -m training.export.prior_adjust MODEL.onnx --version X.Y.Z [--split-file S.csv]``:
pi is counted on the split file's ``train`` rows (never external-dev); the operating points
are refitted (Youden's J) on its ``val`` rows through the engine's per-image path; the
internal test, external-dev and the JSRT normals are evaluated again and the card rewritten
(version, operating points, figures, ``extra.prior_adjustment``). The model is changed in
place; ``resources/golden/expected.json`` must be regenerated afterwards.
"""

from __future__ import annotations

import argparse
import json
from collections import Counter
from pathlib import Path

import numpy as np
import onnx
from onnx import numpy_helper

from engine.ai.model import Classifier, sha256_file

from ..data.data import Sample, data_root, read_split, resolve_data
from ..evaluation.evaluate_ext import POOL, default_split_file, engine_logits, headline, print_report, write_json
from ..evaluation.metrics import evaluate, operating_points, softmax
from .export import write_card
from .export_v2 import add_measured_figures
from .recard import add_other_normals

BIAS = "net.fc.bias"


def train_prior(split_file: Path, labels: list[str]) -> np.ndarray:
    return class_prior(_splits(split_file)["train"], labels)


def class_prior(train: list[Sample], labels: list[str]) -> np.ndarray:
    counts = Counter(s.label for s in train)
    pi = np.array([counts.get(lab, 0) for lab in labels], np.float64)
    if (pi == 0).any():
        raise SystemExit(f"a class has no training rows: {dict(counts)}")
    return pi / pi.sum()


def _splits(split_file: Path) -> dict[str, list[Sample]]:
    return read_split(split_file, data_root(resolve_data(POOL)))


def adjust_bias(model: Path, shift: np.ndarray) -> None:
    m = onnx.load(str(model))
    for init in m.graph.initializer:
        if init.name == BIAS:
            b = numpy_helper.to_array(init).astype(np.float32)
            init.CopyFrom(numpy_helper.from_array((b + shift).astype(np.float32), BIAS))
            break
    else:
        raise SystemExit(f"{model}: no {BIAS} initializer (not a RadLens classifier export)")
    onnx.checker.check_model(m)
    onnx.save(m, str(model))


def prior_adjust(model: Path, version: str, split_file: Path | None = None) -> dict:
    split_file = Path(split_file or default_split_file(model))
    clf = Classifier(model)
    labels, temperature = list(clf.labels), float(clf.card.temperature)
    if (clf.card.extra or {}).get("prior_adjustment"):
        raise SystemExit(f"{model} is already adjusted: {clf.card.extra['prior_adjustment']}")
    splits = _splits(split_file)
    pi = class_prior(splits["train"], labels)
    shift = temperature * np.log(len(labels) * pi)
    val = splits["val"]
    y_val = np.array([labels.index(s.label) for s in val])
    z_val, _ = engine_logits(clf, val, desc="validation")
    before = evaluate(z_val, y_val, labels, temperature)
    after = evaluate(z_val + shift, y_val, labels, temperature)
    ops = operating_points(softmax(z_val + shift, temperature), y_val, labels)
    adjust_bias(model, shift)
    card = json.loads(clf.card.to_json())
    card["version"] = version
    card["operating_points"] = ops
    card.setdefault("extra", {})["prior_adjustment"] = {
        "method": "logit adjustment to the training split's class prior (Menon et al., ICLR 2021): classifier bias "
                  "+= T log(K pi), so calibrated probabilities assume the training split's class frequencies "
                  "instead of equal ones",
        "prior": {lab: round(float(p), 4) for lab, p in zip(labels, pi, strict=True)},
        "bias_shift": {lab: round(float(v), 4) for lab, v in zip(labels, shift, strict=True)},
        "operating_points": "refitted (Youden's J) on the validation split after the adjustment",
        "validation_before": {k: round(float(before[k]), 4) for k in ("accuracy", "macro_auc_ovr", "ece_after_temperature")},
        "validation_after": {k: round(float(after[k]), 4) for k in ("accuracy", "macro_auc_ovr", "ece_after_temperature")},
    }
    write_card(model, card)
    res, full_test = add_measured_figures(card, model, split_file, labels, temperature)
    if "other_normals" in res:
        add_other_normals(card, res["other_normals"])
    write_card(model, card)
    res["model"]["sha256"] = sha256_file(model)
    res["model"]["version"] = version
    return {"version": version, "sha256": res["model"]["sha256"], "prior_adjustment": card["extra"]["prior_adjustment"],
            "operating_points": ops, "test": full_test, "evaluation": res, "headline": headline(res)}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m training.export.prior_adjust", description=__doc__.splitlines()[0])
    p.add_argument("model")
    p.add_argument("--version", required=True)
    p.add_argument("--split-file")
    p.add_argument("-o", "--output", help="evaluation JSON (default MODEL.prior.json)")
    a = p.parse_args(argv)
    model = Path(a.model)
    res = prior_adjust(model, a.version, Path(a.split_file) if a.split_file else None)
    out = Path(a.output) if a.output else model.with_suffix(".prior.json")
    write_json(res, out)
    print_report(res["evaluation"])
    print(json.dumps(res["prior_adjustment"]), f"\nwrote {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
