"""The README's intro quotes the bundled model's own card (name, version, out-of-source figures)."""

from __future__ import annotations

from engine import Classifier, default_model_path
from training.export.readme_intro import README, intro, render


def test_readme_intro_quotes_the_bundled_card() -> None:
    card = Classifier(default_model_path(), device="cpu", warmup=False).card
    text = README.read_text(encoding="utf-8")
    assert render(text, card) == text, "README intro is stale: run python -m training.export.readme_intro"
    said = intro(card)
    assert f"{card.name} {card.version}" in said
    per = (card.out_of_source_metrics.get("under_the_decision_rule") or card.out_of_source_metrics)["per_source"]
    assert f"{round(100 * per['chestxray-com-normal']['correct_call_rate'])}% of another hospital's normal" in said
