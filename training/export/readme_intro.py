"""The README's opening paragraph about the bundled model, written from the model's own card.

``python -m training.export.readme_intro [--check]`` rewrites the text between the README's
``<!-- card-intro -->`` markers from ``resources/models/radlens-cxr4.onnx``'s card (name, version,
the out-of-source correct-call rates per source); ``--check`` exits 1 when the README disagrees.
tests/test_readme_intro.py runs the check, so the intro cannot quote another model again.
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

START, END = "<!-- card-intro -->", "<!-- /card-intro -->"
README = Path(__file__).resolve().parents[2] / "README.md"

# (source, what its rate means) in the order the sentence names them
PHRASES = (
    ("chestxray-com-normal", "of another hospital's normal films (chestx-ray.com) normal"),
    ("jsrt-nonodule", "of Japanese normal film scans (JSRT) normal"),
    ("hannover-mhh", "of a German hospital's COVID-19 films COVID-19"),
    ("tbx11k-tb", "of Chinese hospitals' tuberculosis films (TBX11K, unseen patients) tuberculosis"),
    ("cohen-pneumonia", "of published-figure pneumonias pneumonia"),
)


def _pct(v: float) -> str:
    return f"{round(100 * v)}%"


def intro(card) -> str:  # noqa: ANN001 - engine.ModelCard
    oos = card.out_of_source_metrics or {}
    per = (oos.get("under_the_decision_rule") or {}).get("per_source") or oos.get("per_source") or {}
    said = [f"{_pct(per[s]['correct_call_rate'])} {what}" for s, what in PHRASES if s in per]
    figures = ("; ".join(said[:-1]) + f"; and {said[-1]}") if len(said) > 1 else (said[0] if said else "")
    text = (f"The bundled default model (`resources/models/radlens-cxr4.onnx`, {card.name} {card.version}) sorts frontal "
            "chest radiographs into normal / COVID-19 / pneumonia / tuberculosis, and a scope check refuses to give a "
            "verdict on anything else (other modalities, other body parts, lateral views, photographs, screenshots, "
            "blank images). ")
    if figures:
        text += (f"Measured on collections it never saw, its card says it calls {figures} (figures below). ")
    text += ("It is a research tool, its confounders are stated in its model card, and it must not be used for "
             "diagnosis. Site adaptation (`radlens-adapt`) refits it on your own confirmed films.")
    return text


def render(readme: str, card) -> str:  # noqa: ANN001
    block = f"{START}\n{intro(card)}\n{END}"
    if START in readme:
        return re.sub(re.escape(START) + r".*?" + re.escape(END), lambda _m: block, readme, count=1, flags=re.S)
    raise SystemExit(f"{README} has no {START} ... {END} markers")


def main(argv: list[str] | None = None) -> int:
    from engine import Classifier, default_model_path

    p = argparse.ArgumentParser(prog="python -m training.export.readme_intro", description=__doc__.splitlines()[0])
    p.add_argument("--check", action="store_true")
    a = p.parse_args(argv)
    card = Classifier(default_model_path(), device="cpu", warmup=False).card
    text = README.read_text(encoding="utf-8")
    new = render(text, card)
    if a.check:
        if new != text:
            print("README's intro disagrees with the bundled model's card; run python -m training.export.readme_intro",
                  file=sys.stderr)
            return 1
        return 0
    README.write_text(new, encoding="utf-8")
    print(intro(card))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
