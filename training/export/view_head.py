"""Scope check 2: a frontal/lateral/other head on the pooled features, inside the classifier's graph.

A lateral chest film is a chest radiograph, so the lung-field and OOD checks miss many of them
(74% flagged by 2.1.0). The classifier's pooled features tell the views apart well: a logistic head
on them (``view`` [N, 3]: P(frontal), P(lateral), P(other body part)) is added to the graph by
surgery, like the OOD score, so it costs one small product per film and every model adapted from
this one keeps it.

Data (never test data, never cxr-extdev for fitting):
- other body parts: the 400 knees of ``ood-dev`` (so a knee is named "not a chest radiograph", not a
  lateral view);
- lateral views: the 25 lateral chest films of ``ood-dev`` (23 patients, grouped here by their
  publication id, a coarser key), each also flipped, rotated by +-10 degrees and cropped to 85%;
- frontal views: training-split films of the model's split (drawn evenly over class and source),
  each also flipped, rotated by +-10 degrees and cropped to 85%, so that edited frontal films stay
  in scope.

Figures: leave-one-group-out over the laterals (a lateral is scored by a head that never saw its
group, augmented copies included); the threshold is 0.5 (the head is class-balanced: "more likely
lateral than frontal"), checked to lie between the VALIDATION split's frontal films with their
flips, rotations and crops (0.999 quantile) and the cross-validated laterals (minimum); the
in-scope cost is measured on the test split and on cxr-extdev.

``python -m training.export.view_head MODEL.onnx [--split-file S.csv]`` adds the output and the card's
``view_check`` in place.
"""

from __future__ import annotations

import argparse
import csv
import json
import random
from dataclasses import replace
from pathlib import Path

import cv2
import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from engine import Classifier, load_image, prepare
from engine.adapt.head import Head, fit_head

from ..data.data import data_root, load_samples, read_split, resolve_data
from ..evaluation.evaluate_ext import EXTDEV, POOL, attach_segmenter, default_split_file
from .export import write_card
from .ood import pooled_tensor

OOD_DEV = "../shared/data/ood-dev"
OUTPUT = "view"
CLASSES = ("frontal", "lateral", "other")
QUANTILE = 0.999
THRESHOLD = 0.5
STRENGTH = 1e-3


def variants(pixels: np.ndarray) -> list[np.ndarray]:
    """The film, flipped, rotated by -10 and +10 degrees, and cropped to its central 85%."""
    h, w = pixels.shape[:2]
    out = [pixels, np.ascontiguousarray(pixels[:, ::-1])]
    for angle in (-10, 10):
        m = cv2.getRotationMatrix2D((w / 2, h / 2), angle, 1.0)
        out.append(cv2.warpAffine(pixels, m, (w, h), borderMode=cv2.BORDER_REPLICATE))
    dy, dx = int(h * 0.075), int(w * 0.075)
    out.append(np.ascontiguousarray(pixels[dy : h - dy, dx : w - dx]))
    return out


def features_of(clf: Classifier, files: list[str], augment: bool) -> tuple[np.ndarray, list[int]]:
    """Pooled features of each file (and its variants when ``augment``), through the engine's path;
    (features [M, D], the file index of each row)."""
    xs, owner = [], []
    for i, f in enumerate(files):
        try:
            im = load_image(f)
        except Exception as e:  # noqa: BLE001
            print(f"  skipped {Path(f).name}: {e}")
            continue
        for px in variants(im.pixels) if augment else [im.pixels]:
            xs.append(prepare(replace(im, pixels=px.astype(np.float32)), clf).x)
            owner.append(i)
    feats = [clf.run(np.stack(xs[k : k + 32]), features=True).features for k in range(0, len(xs), 32)]
    return np.concatenate(feats).astype(np.float64), owner


def _draw(samples: list, n: int, seed: int) -> list:
    rng = random.Random(seed)
    groups: dict[str, list] = {}
    for s in samples:
        groups.setdefault(f"{s.label}/{s.source}", []).append(s)
    per = max(1, n // len(groups))
    out = []
    for g in sorted(groups):
        items = list(groups[g])
        rng.shuffle(items)
        out += items[:per]
    return out


def laterals(ood_dev: Path, kind: str = "lateral-chest") -> tuple[list[str], list[str]]:
    """Files of one ood-dev kind and a group key each (laterals: the publication id; knees: the file)."""
    files, groups = [], []
    with open(ood_dev / "manifest.csv", newline="", encoding="utf-8") as f:
        for r in csv.DictReader(f):
            if r["kind"] == kind:
                files.append(str(ood_dev / r["file"]))
                stem = Path(r["file"]).stem
                groups.append(stem.split("_", 1)[1].split("-")[0] if kind == "lateral-chest" else stem)
    return files, groups


def fit(x_front: np.ndarray, x_lat: np.ndarray, x_other: np.ndarray) -> Head:
    """Class-balanced multinomial logistic regression (frontal, lateral, other) on standardised
    features, folded back into raw-feature weights."""
    mu, sd = x_front.mean(0), x_front.std(0) + 1e-3
    parts = (x_front, x_lat, x_other)
    x = (np.concatenate(parts) - mu) / sd
    y = np.concatenate([np.full(len(p), i, int) for i, p in enumerate(parts)])
    w = np.concatenate([np.full(len(p), 1.0 / 3 / len(p)) for p in parts])
    base = Head(np.zeros((3, x.shape[1])), np.zeros(3))
    h = fit_head(x, y, w, base, STRENGTH, max_iter=500)
    weight = h.weight / sd
    return Head(weight, h.bias - weight @ mu)


def probs(head: Head, x: np.ndarray) -> np.ndarray:
    z = head.logits(x)
    z = z - z.max(1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(1, keepdims=True)


def score(head: Head, x: np.ndarray) -> np.ndarray:
    """P(not frontal): the film is out of scope above the threshold."""
    return 1.0 - probs(head, x)[:, 0]


def build(model: Path, split_file: Path, n_front: int = 600, seed: int = 42) -> dict:
    clf = Classifier(model, device="cpu")
    attach_segmenter(clf)
    pool = resolve_data(POOL)
    splits = read_split(split_file, data_root(pool))
    lat_files, lat_groups = laterals(resolve_data(OOD_DEV))
    xl, owner_l = features_of(clf, lat_files, augment=True)
    knee_files, _ = laterals(resolve_data(OOD_DEV), "knee")
    xk, owner_k = features_of(clf, knee_files, augment=False)
    front = _draw(splits["train"], n_front, seed)
    xf, _ = features_of(clf, [s.path for s in front], augment=True)
    val = _draw(splits["val"], 400, seed)
    xv, _ = features_of(clf, [s.path for s in val], augment=True)
    xv_plain, _ = features_of(clf, [s.path for s in val], augment=False)
    # leave-one-group-out over the laterals: originals scored by a head that never saw their group
    g_of_row = np.array([lat_groups[i] for i in owner_l])
    first = np.r_[True, np.diff(owner_l) != 0]  # the original film of each lateral (first variant)
    cv_scores = np.zeros(len(owner_l))
    cv_kind = np.zeros(len(owner_l), int)
    for g in sorted(set(lat_groups)):
        held = g_of_row == g
        head = fit(xf, xl[~held], xk)
        cv_scores[held] = score(head, xl[held])
        cv_kind[held] = probs(head, xl[held])[:, 1:].argmax(1) + 1
    knee_fold = np.arange(len(xk)) % 5
    knee_cv, knee_kind = np.zeros(len(xk)), np.zeros(len(xk), int)
    for k in range(5):
        head = fit(xf, xl, xk[knee_fold != k])
        knee_cv[knee_fold == k] = score(head, xk[knee_fold == k])
        knee_kind[knee_fold == k] = probs(head, xk[knee_fold == k])[:, 1:].argmax(1) + 1
    head = fit(xf, xl, xk)
    # the head is class-balanced, so 0.5 is "more likely a lateral than a frontal film"; on the development
    # data it sits between the validation frontals (and their variants; 0.999 quantile reported) and the
    # cross-validated laterals (minimum reported), with a margin on both sides
    threshold = THRESHOLD
    res = {"laterals": len(lat_files), "lateral_groups": len(set(lat_groups)), "frontal_train_films": len(front),
           "threshold": threshold,
           "cv_lateral_flagged": round(float((cv_scores[first] > threshold).mean()), 4),
           "cv_lateral_variants_flagged": round(float((cv_scores > threshold).mean()), 4),
           "cv_lateral_named_lateral": round(float(((cv_scores > threshold) & (cv_kind == 1))[first].mean()), 4),
           "knees": len(knee_files),
           "cv_knees_flagged": round(float((knee_cv > threshold).mean()), 4),
           "cv_knees_named_other": round(float(((knee_cv > threshold) & (knee_kind == 2)).mean()), 4),
           "validation_frontals_flagged": round(float((score(head, xv_plain) > threshold).mean()), 4),
           "validation_variants_flagged": round(float((score(head, xv) > threshold).mean()), 4)}
    test = _draw(splits["test"], 800, seed + 1)
    xt, _ = features_of(clf, [s.path for s in test], augment=False)
    ext, _ = load_samples(resolve_data(EXTDEV))
    xe, _ = features_of(clf, [s.path for s in ext], augment=False)
    res["test_frontals_flagged"] = round(float((score(head, xt) > threshold).mean()), 4)
    st = score(head, xt)
    res["test_flagged_by_source"] = {src: round(float((st[[i for i, s in enumerate(test) if f"{s.label}/{s.source}" == src]]
                                                        > threshold).mean()), 4)
                                     for src in sorted({f"{s.label}/{s.source}" for s in test})}
    res["cv_lateral_score_min"] = round(float(cv_scores[first].min()), 4)
    res["cv_lateral_score_q10"] = round(float(np.quantile(cv_scores[first], 0.1)), 4)
    res["validation_variant_score_q999"] = round(float(np.quantile(score(head, xv), QUANTILE)), 4)
    res["extdev_frontals_flagged"] = {src: round(float((score(head, xe[[i for i, s in enumerate(ext) if s.source == src]])
                                                        > threshold).mean()), 4) for src in sorted({s.source for s in ext})}
    return {"head": head, "figures": res}


def add_view_output(model_path: Path, head: Head, threshold: float, figures: dict) -> None:
    m = onnx.load(str(model_path))
    g = m.graph
    for out in list(g.output):
        if out.name == OUTPUT:
            g.output.remove(out)
    for node in list(g.node):
        if node.name.startswith("view_"):
            g.node.remove(node)
    for init in list(g.initializer):
        if init.name.startswith("view_"):
            g.initializer.remove(init)
    pooled = pooled_tensor(m)
    for out in list(g.output):
        if out.name == "lateral":  # the two-class head of an earlier build
            g.output.remove(out)
    w = head.weight.T.astype(np.float32).copy()  # [D, 3]
    b = head.bias.astype(np.float32)
    g.initializer.extend([numpy_helper.from_array(w, "view_w"), numpy_helper.from_array(b, "view_b")])
    g.node.extend([
        helper.make_node("MatMul", [pooled, "view_w"], ["view_z"], name="view_matmul"),
        helper.make_node("Add", ["view_z", "view_b"], ["view_zb"], name="view_add"),
        helper.make_node("Softmax", ["view_zb"], [OUTPUT], name="view_softmax", axis=1),
    ])
    g.output.append(helper.make_tensor_value_info(OUTPUT, TensorProto.FLOAT, ["N", 3]))
    onnx.checker.check_model(m)
    onnx.save(m, str(model_path))
    clf = Classifier(model_path, device="cpu", warmup=False)
    card = json.loads(clf.card.to_json())
    card.pop("view_check", None)
    card.get("extra", {}).pop("view_check", None)
    card["view_check"] = {"output": OUTPUT, "classes": list(CLASSES), "threshold": threshold,
                          "method": "multinomial logistic head (frontal, lateral, other) on the pooled features "
                                    "(class-balanced, standardised, L2 1e-3), in the graph; laterals: ood-dev's 25 "
                                    "lateral films with flips, +-10 degree rotations and 85% crops; other: ood-dev's "
                                    "400 knees; frontals: 600 training-split films with the same variants as the "
                                    "laterals; out of scope when P(not frontal) > 0.5", "figures": figures}
    write_card(model_path, card)


TRUST_FRONTAL = 0.99  # above it the view head is sure the film is a frontal chest: the lung-field rule does not decide
OOD_QUANTILE = 0.998


def retune_scope(model_path: Path, split_file: Path) -> dict:
    """With the view head catching other views and body parts, the two older rules move so that they stop
    refusing diseased frontal films (consolidation hides a lung field; an AP COVID-19 film is unusual):
    the lung-field rule decides only when P(frontal) < TRUST_FRONTAL, and the OOD threshold moves from
    the 0.995 to the OOD_QUANTILE quantile of the validation split's scores. Both from validation only."""
    from engine.ai.pipeline import ood_of

    clf = Classifier(model_path, device="cpu")
    attach_segmenter(clf)
    val = read_split(split_file, data_root(resolve_data(POOL)))["val"]
    scores = []
    for k in range(0, len(val), 32):
        xs = [prepare(load_image(s.path), clf).x for s in val[k : k + 32]]
        out = clf.run(np.stack(xs))
        scores += [ood_of(out, i) for i in range(len(xs))]
    threshold = float(np.quantile(scores, OOD_QUANTILE))
    card = json.loads(clf.card.to_json())
    old = card["ood"]["threshold"]
    card["ood"] = {**card["ood"], "threshold": threshold,
                   "threshold_rule": f"quantile {OOD_QUANTILE} of the validation split's scores (n = {len(scores)}); "
                                     f"was {old:.4f} (quantile 0.995) before the view head"}
    card["view_check"]["trust_frontal"] = TRUST_FRONTAL
    card["view_check"]["lung_rule"] = (f"the lung-field rule decides only when P(frontal) < {TRUST_FRONTAL}: a frontal "
                                       "film whose disease hides a lung field stays in scope")
    write_card(model_path, card)
    return {"ood_threshold": threshold, "previous": old, "validation_n": len(scores)}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m training.export.view_head", description=__doc__.splitlines()[0])
    p.add_argument("model")
    p.add_argument("--split-file")
    p.add_argument("--dry-run", action="store_true")
    p.add_argument("--scope-rules-only", action="store_true", help="only move the OOD threshold and gate the lung rule")
    a = p.parse_args(argv)
    model = Path(a.model)
    split = Path(a.split_file) if a.split_file else default_split_file(model)
    if a.scope_rules_only:
        print(retune_scope(model, split))
        return 0
    out = build(model, split)
    print(json.dumps(out["figures"], indent=1))
    if not a.dry_run:
        add_view_output(model, out["head"], out["figures"]["threshold"], out["figures"])
        print(f"added '{OUTPUT}' and the card's view_check to {model}")
        print(retune_scope(model, split))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
