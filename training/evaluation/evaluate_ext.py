"""Out-of-source evaluation: a model through the engine's per-image path, per source and class.

``python -m training evaluate MODEL.onnx`` (no ``--data``) runs the model on the internal
test split and on ``../shared/data/cxr-extdev`` and writes one JSON with, for each set:
per class recall, specificity, one-vs-rest AUC and ECE; per source the calls (what fraction
of the source's images got each class as the call), the rate of correct calls, and for
each normal source the fraction called normal. Each image runs ``engine.load_image`` ->
``engine.ai.pipeline.prepare`` (lung field when the card crops, the card's preprocessing) ->
``Classifier.run``, so the figures are what ``radlens-batch`` gives. The call is the top
class (the card's decision rule).
"""

from __future__ import annotations

import json
import os
from collections import defaultdict
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
from tqdm import tqdm

from engine.ai.model import Classifier, sha256_file
from engine.ai.preprocess import card_preprocessing
from engine.io import load_image

from ..data.data import Sample, data_root, load_samples, read_split, resolve_data
from .metrics import evaluate, expected_calibration_error, roc_auc, softmax

EXTDEV = "../shared/data/cxr-extdev"
POOL = "../shared/data/cxr"


def attach_segmenter(clf: Classifier) -> None:
    """Give ``clf`` the lung segmenter its card names when the engine has not already done so."""
    pp = card_preprocessing(clf.card)
    if pp["crop"] != "lungs" or getattr(clf, "segmenter", None) is not None:
        return
    from engine.ai.lungs import LungSegmenter

    spec = pp.get("lung_model") or {}
    here = Path(clf.path).parent
    repo_models = Path(__file__).resolve().parents[1] / "resources" / "models"
    for folder in (here, repo_models):
        for cand in sorted(folder.glob("*.onnx")):
            if spec.get("sha256") and sha256_file(cand) == spec["sha256"]:
                clf.segmenter = LungSegmenter(cand)
                return
    raise FileNotFoundError(f"lung model {spec} named by {clf.path.name} not found beside it or in {repo_models}")


def engine_logits(clf: Classifier, samples: list[Sample], batch: int = 32, workers: int = 2,
                  desc: str = "evaluate") -> tuple[np.ndarray, list[tuple[str, ...]]]:
    """Logits for every sample through the engine's per-image path; notes per image."""
    from engine.ai.pipeline import prepare

    attach_segmenter(clf)

    def prep(s: Sample):  # noqa: ANN202
        return prepare(load_image(s.path), clf)

    outs, notes = [], []
    with ThreadPoolExecutor(workers) as ex, tqdm(total=len(samples), desc=desc, unit="img", mininterval=10) as bar:
        for i in range(0, len(samples), batch):
            preps = list(ex.map(prep, samples[i : i + batch]))
            outs.append(clf.run(np.stack([p.x for p in preps])).logits)
            notes += [tuple(p.notes) for p in preps]
            bar.update(len(preps))
    return np.concatenate(outs), notes


def engine_features(clf: Classifier, samples: list[Sample], batch: int = 32, workers: int = 2) -> tuple[np.ndarray, list[int]]:
    """Features of each sample through the engine's per-image path; (features, indices kept)."""
    from engine import load_image, prepare

    attach_segmenter(clf)

    def prep(s: Sample):  # noqa: ANN202
        try:
            return prepare(load_image(s.path), clf)
        except Exception as e:  # noqa: BLE001 - a file the engine refuses gives no features
            print(f"  skipped {Path(s.path).name}: {e}")
            return None

    feats, kept = [], []
    with ThreadPoolExecutor(workers) as ex:
        for i in range(0, len(samples), batch):
            preps = list(ex.map(prep, samples[i : i + batch]))
            idx = [i + j for j, p in enumerate(preps) if p is not None]
            if idx:
                out = clf.run(np.stack([preps[j - i].x for j in idx]), features=True)
                feats.append(out.features)
                kept += idx
    return (np.concatenate(feats) if feats else np.zeros((0, 0), np.float32)), kept


def _r(v: float) -> float | None:
    return None if v is None or not np.isfinite(v) else round(float(v), 4)


def group_report(logits: np.ndarray, y: np.ndarray, labels: list[str], temperature: float) -> dict:
    """Per class recall, specificity, AUC (one vs rest), ECE, and the calls, for one set."""
    m = evaluate(logits, y, labels, temperature)
    probs = softmax(logits, temperature)
    pred = probs.argmax(1)
    per_class = {}
    for i, lab in enumerate(labels):
        pos, neg = y == i, y != i
        per_class[lab] = {"n": int(pos.sum()), "recall": _r(float((pred[pos] == i).mean())) if pos.any() else None,
                          "specificity": _r(float((pred[neg] != i).mean())) if neg.any() else None,
                          "precision": _r(m["per_class"][lab]["precision"]) if (pred == i).any() else None,
                          "auc_ovr": _r(roc_auc(pos, probs[:, i]))}
    return {"n": int(len(y)), "accuracy": _r(m["accuracy"]), "macro_f1": _r(m["macro_f1"]),
            "macro_auc_ovr": _r(m["macro_auc_ovr"]), "ece": _r(m["ece_after_temperature"]),
            "ece_before_temperature": _r(m["ece_before_temperature"]), "nll": _r(m["nll_after_temperature"]),
            "per_class": per_class, "confusion_matrix": m["confusion_matrix"]}


def source_report(logits: np.ndarray, y: np.ndarray, samples: list[Sample], labels: list[str],
                  temperature: float, subtypes: dict[str, str] | None = None) -> dict:
    """Per source (and per source/subtype where given): n, calls, correct-call rate, ECE,
    and for normal sources ``called_normal``."""
    probs = softmax(logits, temperature)
    pred = probs.argmax(1)
    groups: dict[str, list[int]] = defaultdict(list)
    for j, s in enumerate(samples):
        groups[f"{s.label}/{s.source}"].append(j)
        sub = (subtypes or {}).get(s.file, "")
        if sub in ("adult", "pediatric"):
            groups[f"{s.label}/{s.source}/{sub}"].append(j)
    out = {}
    for name, idx in sorted(groups.items()):
        idx_a = np.array(idx)
        lab = name.split("/")[0]
        calls = {labels[c]: _r(float((pred[idx_a] == c).mean())) for c in range(len(labels))}
        rec = {"label": lab, "n": len(idx), "correct": _r(float((pred[idx_a] == y[idx_a]).mean())), "calls": calls,
               "ece": _r(expected_calibration_error(probs[idx_a], y[idx_a])),
               "mean_prob_true": _r(float(probs[idx_a, y[idx_a]].mean()))}
        if lab == "normal":
            rec["called_normal"] = calls.get("normal")
        out[name] = rec
    return out


def subtypes_of(data: Path) -> dict[str, str]:
    import csv

    subs = {}
    with open(Path(data) / "manifest.csv", newline="", encoding="utf-8") as f:
        for r in csv.DictReader(f):
            sub = r.get("subtype", "")
            if r["source"] == "kermany-2018-train":
                sub = "pediatric"
            subs[r.get("file") or r.get("image", "")] = sub
    return subs


def evaluate_set(clf: Classifier, samples: list[Sample], data: Path, desc: str) -> tuple[dict, np.ndarray]:
    labels = list(clf.labels)
    known = [s for s in samples if s.label in labels]
    logits, notes = engine_logits(clf, known, desc=desc)
    y = np.array([labels.index(s.label) for s in known])
    rep = group_report(logits, y, labels, clf.card.temperature)
    rep["per_source"] = source_report(logits, y, known, labels, clf.card.temperature, subtypes_of(data))
    rep["whole_image_fallbacks"] = int(sum(1 for n in notes if n))
    rep["skipped_unknown_label"] = len(samples) - len(known)
    return rep, logits


def default_split_file(model: Path) -> Path | None:
    for cand in (model.with_suffix(".split.csv"), model.parent / "split.csv"):
        if cand.is_file():
            return cand
    return None


def evaluate_model(model: Path, split_file: Path | None = None, pool: str | Path = POOL, extdev: str | Path = EXTDEV,
                   split: str = "test", device: str = "cpu", save_logits: Path | None = None,
                   logits_out: dict | None = None) -> dict:
    """The internal ``split`` of ``split_file`` and the whole external-dev set, per source and class."""
    clf = Classifier(model, device=device)
    pool, extdev = resolve_data(pool), resolve_data(extdev)
    split_file = split_file or default_split_file(Path(model))
    result = {"model": {"name": clf.card.name, "version": clf.card.version, "sha256": clf.sha256, "path": str(model),
                        "preprocessing": card_preprocessing(clf.card), "temperature": clf.card.temperature},
              "decision": "call = top class (argmax of calibrated probabilities)"}
    logits = {}
    if split_file:
        internal = read_split(Path(split_file), data_root(pool))[split]
        result["internal"], logits["internal"] = evaluate_set(clf, internal, pool, f"internal {split}")
        result["internal"]["split_file"] = str(split_file)
        result["internal"]["split"] = split

    ext_samples, _ = load_samples(extdev)
    result["extdev"], logits["extdev"] = evaluate_set(clf, ext_samples, extdev, "extdev")
    others, why = other_normals(pool, split_file)
    if others:
        result["other_normals"], logits["other_normals"] = evaluate_set(clf, others, pool, "other normals")
    result["other_normals_note"] = why
    if save_logits:
        np.savez(save_logits, **logits)
    if logits_out is not None:
        logits_out.update(logits)
    return result


def other_normals(pool: Path, split_file: Path | None) -> tuple[list[Sample], str]:
    """A second out-of-source normal set beside external-dev: the JSRT films without a nodule
    (``../shared/data/lungseg``), when the model's split has none of them (else they are in its
    training pool and say nothing about other hospitals)."""
    from ..data.extra_sources import extra_samples

    try:
        films = extra_samples("jsrt-nonodule", data_root(pool))
    except (FileNotFoundError, OSError) as e:
        return [], f"JSRT films not evaluated: {e}"
    if split_file and any(s.source == "jsrt-nonodule" for v in read_split(Path(split_file), data_root(pool)).values() for s in v):
        return [], "JSRT films not evaluated: the model's split has them (in-source for this model)"
    return films, ("JSRT films without a nodule (Japanese film scans, never in this model's training, validation or "
                   "calibration): a second out-of-source normal source")


def headline(res: dict) -> dict:
    """The target figures in one flat dict (for the ablation table and the card)."""
    ext = res["extdev"]
    ps = ext["per_source"]
    out = {"ext_normal_called_normal": ps.get("normal/chestxray-com-normal", {}).get("called_normal"),
           "ext_covid_recall": ext["per_class"].get("covid", {}).get("recall"),
           "ext_pneumonia_recall": ext["per_class"].get("pneumonia", {}).get("recall"),
           "ext_macro_auc": ext["macro_auc_ovr"], "ext_ece": ext["ece"]}
    if "internal" in res:
        out.update({"int_accuracy": res["internal"]["accuracy"], "int_ece": res["internal"]["ece"],
                    "int_macro_auc": res["internal"]["macro_auc_ovr"]})
    if "other_normals" in res:
        out["jsrt_normal_called_normal"] = res["other_normals"]["per_source"]["normal/jsrt-nonodule"]["called_normal"]
    return out


def write_json(obj: dict, path: Path) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(json.dumps(obj, indent=1))
    os.replace(tmp, path)


def print_report(res: dict) -> None:
    for name in ("internal", "extdev", "other_normals"):
        if name not in res:
            continue
        r = res[name]
        print(f"\n{name.upper()} n={r['n']} acc {r['accuracy']} macro-AUC {r['macro_auc_ovr']} ECE {r['ece']}")
        for lab, d in r["per_class"].items():
            print(f"  {lab:13s} n={d['n']:5d} recall {d['recall']} spec {d['specificity']} AUC {d['auc_ovr']}")
        for src, d in r["per_source"].items():
            calls = " ".join(f"{k}={v}" for k, v in d["calls"].items())
            print(f"  {src:42s} n={d['n']:5d} correct {d['correct']}  calls: {calls}")
    print("\nheadline:", json.dumps(headline(res)))


def cmd_evaluate_ext(args) -> int:  # noqa: ANN001 - argparse namespace from training.cli
    """``python -m training evaluate MODEL.onnx [--split-file F] [-o OUT.json]``."""
    model = Path(args.model)
    split_file = Path(args.split_file) if args.split_file else default_split_file(model)
    if split_file is None:
        print(f"note: no split file beside {model} (MODEL.split.csv); only the external-dev set is evaluated. "
              "Give --split-file to evaluate the internal split too.")
    res = evaluate_model(model, split_file, POOL, getattr(args, "extdev", EXTDEV), split=args.split, device=args.device)
    out = Path(args.output) if args.output else model.with_suffix(".eval.json")
    write_json(res, out)
    print_report(res)
    print(f"wrote {out}")
    return 0
