"""The 3.0.0 card's training-data text: what the third release and source-balanced sampling changed.

``python -m training.export.card_v3 MODEL.onnx`` rewrites ``training_data.summary``, ``split.by`` and the
confounders that 2.x's export wrote and that no longer hold (the TB sources, the sampling), from the
run's own counts; the figures quoted come from the card's measured out-of-source metrics.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from engine.ai.model import Classifier

from .export import write_card


def rewrite(model: Path) -> dict:
    clf = Classifier(model, device="cpu", warmup=False)
    card = json.loads(clf.card.to_json())
    td = card["training_data"]
    counts = td.get("train_counts_by_source", {})
    oos = (card.get("out_of_source_metrics") or {}).get("under_the_decision_rule", {}).get("per_source", {})

    def rate(src: str) -> str:
        return f"{oos[src]['correct_call_rate']:.0%}" if src in oos else "n/a"

    td["summary"] = (f"{sum(counts.values()):,} training images from the third release of ../shared/data/cxr "
                     "(17,039 images): normal (COVID-19 Radiography Database adults, Kermany 2018 pediatric, NIH No "
                     "Finding), COVID-19 (COVID-19 Radiography Database, ieee8023 cohen-covid), pneumonia (Kermany 2018 "
                     "pediatric, NIH Pneumonia), tuberculosis (tb-mixed, TBX11K). Sampling balanced by class and by "
                     "source within each class (alpha 0.5).")
    td.setdefault("split", {})["by"] = ("2.1.0's split for the rows it lists (1.0.0's split, then subject, else group, "
                                        "seed 42); the third release's TBX11K films split 70/15/15 by case, seed 42")
    conf = [c for c in td.get("confounders", []) if not c.startswith(("Tuberculosis comes from a single collection",
                                                                      "Every adult normal in the training pool"))]
    conf[0] = conf[0].replace("Training weighs the classes equally (class-weighted loss); the sources inside a class "
                              "are not rebalanced (source-balanced sampling was measured and not kept).",
                              "Training samples the classes, and the sources inside each class, evenly (alpha 0.5).")
    conf.append("Tuberculosis comes from two collections: tb-mixed and TBX11K (Chinese hospitals, TB-only in the pool). "
                "The TB class may have learned a film-scan look: JSRT normal film scans are called tuberculosis 25% "
                "of the time (2.1.0: 11%). tbx11k-tb (unseen TBX11K patients) is a same-source check, called "
                f"tuberculosis {rate('tbx11k-tb')}.")
    conf.append("Every adult normal in the training pool is an NIH-family image (COVID-19 Radiography Database normals "
                "are RSNA = NIH ChestX-ray14 images, plus NIH No Finding): adult normal films from other hospitals are "
                f"often called COVID-19 or tuberculosis. Out of source, chestxray-com-normal {rate('chestxray-com-normal')} "
                f"called normal, jsrt-nonodule {rate('jsrt-nonodule')} called normal. Site adaptation (radlens-adapt) "
                "refits the head on a site's own films.")
    td["confounders"] = conf
    write_card(model, card)
    return td


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m training.export.card_v3", description=__doc__.splitlines()[0])
    p.add_argument("model")
    a = p.parse_args(argv)
    print(json.dumps(rewrite(Path(a.model)), indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
