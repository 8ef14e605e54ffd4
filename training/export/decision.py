"""One coherent call (radlens-cxr4 3.0): operating points for a stated specificity, the decision rule,
and the figures every view will show, measured through the engine.

Two coherent rules (a normal call never carries a flag), both implemented in ``engine.ai.prediction``:

- ``coherent`` (``DECISION_RULE_COHERENT``, 3.0.0's): the call is the most probable class; when it is
  a disease, the flags are the diseases at or above their operating points. Operating points
  (``one_vs_rest_points``): each disease at a stated specificity (default 0.95) against the
  VALIDATION films of every other class.
- ``margin`` (``DECISION_RULE_MARGIN``): a disease is flagged at or above its operating point; the
  call is the flagged disease furthest above it (as a fraction of the way to 1), else normal.
  Operating points (``specificity_points``): every disease at the threshold the same share ``s`` of
  the validation normals stay under, ``s`` the smallest for which ``normal_rate`` of them are called
  normal. Measured and not kept for 3.0.0: out of source it called far fewer normals normal
  (docs/model-v3.md).

Nothing is fitted on test or cxr-extdev.

``python -m training.export.decision MODEL.onnx --version X.Y.Z [--split-file S.csv] [--normal-rate 0.9]``
rewrites the card (rule, operating points, ``extra.decision``, the test and out-of-source figures
under the rule, the infection figure) in place; ``--dry-run`` only prints the figures.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from engine.ai.card import DECISION_RULE_COHERENT, DECISION_RULE_MARGIN, NORMAL_LABEL
from engine.ai.model import Classifier, sha256_file
from engine.ai.prediction import decide

from ..data.data import Sample, data_root, load_samples, read_split, resolve_data
from ..evaluation.evaluate_ext import EXTDEV, POOL, default_split_file, engine_logits, other_normals
from ..evaluation.metrics import softmax
from .export import write_card

INFECTION = ("covid", "pneumonia")  # often not told apart on a radiograph: reported together too


def specificity_points(probs: np.ndarray, y: np.ndarray, labels: list[str], normal_rate: float = 0.90
                       ) -> tuple[dict[str, float], float]:
    """(operating points, s): see the module. ``probs``/``y`` are the validation split's."""
    n = labels.index(NORMAL_LABEL)
    normals = probs[y == n]
    diseases = [i for i in range(len(labels)) if i != n]
    best = None
    for s in np.linspace(0.80, 0.9995, 800):
        ops = {labels[i]: float(np.quantile(normals[:, i], s)) for i in diseases}
        flagged = np.zeros(len(normals), bool)
        for i in diseases:
            flagged |= normals[:, i] >= ops[labels[i]]
        if 1.0 - flagged.mean() >= normal_rate:
            best = (ops, float(s))
            break
    if best is None:
        raise SystemExit(f"no specificity reaches {normal_rate} normals called normal on validation")
    ops, s = best
    return {k: round(min(v + 1e-7, 1.0), 6) for k, v in ops.items()}, s


RULES = {"coherent": DECISION_RULE_COHERENT, "margin": DECISION_RULE_MARGIN}


def one_vs_rest_points(probs: np.ndarray, y: np.ndarray, labels: list[str], specificity: float = 0.95) -> dict[str, float]:
    """Each disease's threshold at ``specificity`` against the validation films of every other class."""
    return {lab: round(float(np.quantile(probs[y != i, i], specificity)) + 1e-7, 6)
            for i, lab in enumerate(labels) if lab != NORMAL_LABEL}


def calls(probs: np.ndarray, labels: list[str], ops: dict[str, float], rule: str = DECISION_RULE_MARGIN
          ) -> tuple[np.ndarray, np.ndarray]:
    """(call index per row, number of flags per row) by ``rule`` (engine.ai.prediction.decide)."""
    out, nflags = [], []
    for p in probs:
        call, flags = decide(labels, p, ops, rule)
        out.append(labels.index(call))
        nflags.append(len(flags))
    return np.array(out), np.array(nflags)


def rule_report(logits: np.ndarray, samples: list[Sample], labels: list[str], temperature: float,
                ops: dict[str, float], rule: str = DECISION_RULE_MARGIN) -> dict:
    """Per source: n, share of each call, correct-call rate; the infection rate for covid/pneumonia
    sources; normal calls carrying a flag (always 0 by construction: checked)."""
    probs = softmax(logits, temperature)
    c, nflags = calls(probs, labels, ops, rule)
    y = np.array([labels.index(s.label) for s in samples])
    out: dict = {}
    shared = {src for src in {s.source for s in samples} if len({s.label for s in samples if s.source == src}) > 1}
    for src in sorted({(s.label, s.source) for s in samples}):
        m = np.array([(s.label, s.source) == src for s in samples])
        rec = {"label": src[0], "n": int(m.sum()), "correct_call_rate": round(float((c[m] == y[m]).mean()), 4),
               "calls": {lab: round(float((c[m] == i).mean()), 4) for i, lab in enumerate(labels)}}
        if src[0] in INFECTION:
            inf = [labels.index(x) for x in INFECTION if x in labels]
            rec["infection_rate"] = round(float(np.isin(c[m], inf).mean()), 4)
        out[f"{src[0]}/{src[1]}" if src[1] in shared else src[1]] = rec
    normal = labels.index(NORMAL_LABEL)
    incoherent = int(((c == normal) & (nflags > 0)).sum())
    assert incoherent == 0, "a normal call carried a flag"
    return {"n": len(samples), "accuracy": round(float((c == y).mean()), 4), "per_source": out,
            "normal_calls_with_a_flag": incoherent}


def evaluate_rule(model: Path, split_file: Path, normal_rate: float, rule: str = "coherent",
                  specificity: float = 0.95) -> dict:
    clf = Classifier(model, device="cpu")
    labels, t = list(clf.labels), float(clf.card.temperature)
    pool = resolve_data(POOL)
    splits = read_split(split_file, data_root(pool))
    ext, _ = load_samples(resolve_data(EXTDEV))
    others, _ = other_normals(pool, split_file)
    sets = {"validation": splits["val"], "test": splits["test"], "extdev": ext + others}
    z = {k: engine_logits(clf, v, desc=k)[0] for k, v in sets.items()}
    yv = np.array([labels.index(s.label) for s in sets["validation"]])
    pv = softmax(z["validation"], t)
    if rule == "margin":
        ops, s = specificity_points(pv, yv, labels, normal_rate)
        how = (f"each disease at the threshold {s:.4f} of the validation normals stay under, the smallest share for "
               f"which {normal_rate:.2f} of them get no flag (are called normal)")
    else:
        ops = one_vs_rest_points(pv, yv, labels, specificity)
        how = f"each disease at specificity {specificity:.2f} against the validation films of every other class"
    res = {"rule": RULES[rule], "operating_points": ops, "operating_points_rule": how}
    for k, v in sets.items():
        res[k] = rule_report(z[k], v, labels, t, ops, RULES[rule])
    return res


def apply(model: Path, version: str, res: dict) -> None:
    clf = Classifier(model, device="cpu")
    card = json.loads(clf.card.to_json())
    card["version"] = version
    card["decision_rule"] = res["rule"]
    card["operating_points"] = res["operating_points"]
    card.setdefault("extra", {})["decision"] = {
        "rule": res["rule"], "operating_points": res["operating_points_rule"],
        "validation": res["validation"], "test": res["test"],
    }
    oos = card.setdefault("out_of_source_metrics", {})
    oos["under_the_decision_rule"] = {
        "set": "cxr-extdev and the JSRT normal films (never trained on, nothing fitted on them)",
        "per_source": res["extdev"]["per_source"],
        "infection_note": "COVID-19 and other viral pneumonias often cannot be told apart on a radiograph: "
                          "infection_rate counts a COVID-19 or a pneumonia call as right for either",
    }
    write_card(model, card)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m training.export.decision", description=__doc__.splitlines()[0])
    p.add_argument("model")
    p.add_argument("--version")
    p.add_argument("--split-file")
    p.add_argument("--rule", choices=sorted(RULES), default="coherent")
    p.add_argument("--specificity", type=float, default=0.95, help="coherent rule: per-disease specificity on validation")
    p.add_argument("--normal-rate", type=float, default=0.90, help="margin rule: validation normals called normal")
    p.add_argument("--dry-run", action="store_true")
    p.add_argument("-o", "--output")
    a = p.parse_args(argv)
    model = Path(a.model)
    split = Path(a.split_file) if a.split_file else default_split_file(model)
    res = evaluate_rule(model, split, a.normal_rate, a.rule, a.specificity)
    for k in ("validation", "test", "extdev"):
        print(k, "accuracy", res[k]["accuracy"])
        for src, r in res[k]["per_source"].items():
            extra = f" infection {r['infection_rate']:.3f}" if "infection_rate" in r else ""
            print(f"   {src:28s} {r['label']:12s} n={r['n']:5d} correct {r['correct_call_rate']:.3f}{extra}")
    print("operating points", res["operating_points"], "-", res["operating_points_rule"])
    if a.output:
        Path(a.output).write_text(json.dumps(res, indent=1))
    if not a.dry_run:
        if not a.version:
            raise SystemExit("--version is required unless --dry-run")
        apply(model, a.version, res)
        print(f"rewrote the card of {model} (sha256 {sha256_file(model)[:12]}...)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
