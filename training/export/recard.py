"""Add the second out-of-source normal set to an exported model's card (the graph is untouched).

``python -m training.export.recard MODEL.onnx --version X.Y.Z [-o METRICS.json]`` runs the model
through the engine's per-image path on the JSRT films without a nodule (``evaluate_ext.
other_normals``: only when the model's split file has none of them), adds that source to the
card's ``out_of_source_metrics.per_source`` with its calls, names it in the card's confounders,
sets the version and rewrites the card. The weights, the Grad-CAM and the scope-check output
stay byte for byte what they were; only the file's hash changes (so the golden self-test file
must be regenerated: ``python -m desktop.selftest --write-expected``).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from engine.ai.model import Classifier, sha256_file

from ..data.data import resolve_data
from ..evaluation.evaluate_ext import POOL, default_split_file, evaluate_set, other_normals, write_json
from .export import write_card

NIH_NORMALS = ("Every adult normal in the training pool is an NIH-family image (COVID-19 Radiography Database "
               "normals are RSNA = NIH ChestX-ray14 images, plus NIH No Finding): adult normal films from other "
               "hospitals are often called COVID-19 or tuberculosis. Out of source, {rates}.")


def recard(model: Path, version: str) -> dict:
    clf = Classifier(model)
    pool = resolve_data(POOL)
    films, why = other_normals(pool, default_split_file(model))
    if not films:
        raise SystemExit(f"nothing to add: {why}")
    rep, _ = evaluate_set(clf, films, pool, "JSRT films without a nodule")
    card = json.loads(clf.card.to_json())
    add_other_normals(card, rep)
    card["version"] = version
    write_card(model, card)
    return {"model": str(model), "version": version, "sha256": sha256_file(model), "other_normals": rep, "note": why}


def add_other_normals(card: dict, rep: dict) -> None:
    """Put the JSRT evaluation ``rep`` (``evaluate_set``) into ``card``'s out-of-source figures
    and confounders."""
    src = rep["per_source"]["normal/jsrt-nonodule"]
    oos = card["out_of_source_metrics"]
    oos["per_source"]["jsrt-nonodule"] = {"label": "normal", "n": src["n"], "correct_call_rate": src["correct"],
                                         "calls": src["calls"], "ece": src["ece"], "called_normal": src["called_normal"]}
    if "JSRT" not in oos["set"]:
        oos["set"] += ("; JSRT films without a nodule (../shared/data/lungseg, Japanese film scans; never used to "
                       "train, select or calibrate this classifier): a second out-of-source normal source, in "
                       "per_source only (the per-class and AUC figures are cxr-extdev's)")
    rates = ", ".join(f"{name} {d['called_normal'] * 100:.0f}% called normal" for name, d in oos["per_source"].items()
                      if d.get("label") == "normal" and "called_normal" in d)
    conf = [c for c in card["training_data"].get("confounders", []) if not c.startswith(NIH_NORMALS[:40])]
    card["training_data"]["confounders"] = [*conf, NIH_NORMALS.format(rates=rates)]


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m training.export.recard", description=__doc__.splitlines()[0])
    p.add_argument("model")
    p.add_argument("--version", required=True)
    p.add_argument("-o", "--output", help="write the evaluation JSON here")
    a = p.parse_args(argv)
    res = recard(Path(a.model), a.version)
    if a.output:
        write_json(res, Path(a.output))
    src = res["other_normals"]["per_source"]["normal/jsrt-nonodule"]
    print(f"{res['version']} {res['sha256']}: JSRT films without a nodule called normal {src['called_normal']} "
          f"(n={src['n']}), calls {src['calls']}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
