"""Markdown rows for docs/model-v2-ablation.md from recipe runs (result.json) and engine
evaluations (evaluate_ext JSON): ``python -m training.evaluation.ablation_table LABEL=PATH ...``."""

from __future__ import annotations

import json
import sys
from pathlib import Path

HEAD = ("| recipe | val acc | val ECE | val group score | val NIH pneu / NIH normal | ext normal called normal | "
        "ext COVID recall | ext pneumonia recall | ext macro AUC | ext ECE | test acc | test ECE | wall time |")
RULE = "|" + "---|" * 13


def _f(v: object) -> str:
    return "" if v is None else (f"{v:.3f}" if isinstance(v, float) else str(v))


def row(label: str, path: Path) -> str:
    d = json.loads(path.read_text())
    if "evaluation" in d:  # an exported run (training.export.export_v2): validation from its run, the rest via the engine
        res = json.loads((path.parent / "result.json").read_text())
        val, ext, test = res["val"], d["evaluation"]["extdev"], d["evaluation"]["internal"]
        wall = f"{res['timing']['total_s'] / 60:.0f} min"
    elif "recipe" in d and "extdev" in d and "val" in d:  # a recipe run
        val, ext = d["val"], d["extdev"]
        test = d.get("test") or {}
        wall = f"{d['timing']['total_s'] / 60:.0f} min"
    else:  # an engine evaluation of an exported model (internal = test split)
        val, ext, test = {}, d["extdev"], d.get("internal") or {}
        wall = d.get("wall", "")
    vps, eps = val.get("per_source", {}), ext["per_source"]
    cells = [label, _f(val.get("accuracy")), _f(val.get("ece")), _f(val.get("group_score")),
             f"{_f(vps.get('pneumonia/nih-pneumonia', {}).get('correct'))} / {_f(vps.get('normal/nih-nofinding', {}).get('correct'))}"
             if vps else "",
             _f(eps.get("normal/chestxray-com-normal", {}).get("correct")), _f(eps.get("covid/hannover-mhh", {}).get("correct")),
             _f(eps.get("pneumonia/cohen-pneumonia", {}).get("correct")), _f(ext.get("macro_auc_ovr")), _f(ext.get("ece")),
             _f(test.get("accuracy")), _f(test.get("ece")), wall]
    return "| " + " | ".join(cells) + " |"


def main() -> None:
    print(HEAD)
    print(RULE)
    for arg in sys.argv[1:]:
        label, path = arg.rsplit("=", 1)
        print(row(label, Path(path)))


if __name__ == "__main__":
    main()
