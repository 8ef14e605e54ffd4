"""Issue 24, items 16 and 20: one percentage rule for every screen and report. The PDF's
``report_text.pct`` and the screen's ``messages.percent_text`` used to disagree between 0.999
and 0.9995 (and between 0.0005 and 0.001); both now write what ``percent_text`` writes:
">99.9%" from 0.9995 up, "<0.1%" under 0.0005, never "100.0%" or "0.0%"."""

from __future__ import annotations

import math

import pytest

from desktop.core.messages import call_text, percent_text
from desktop.core.report_text import ClassRow, pct, row_text

EDGES = [
    (1.0, ">99.9%"),
    (0.99996, ">99.9%"),
    (0.99950000001, ">99.9%"),
    (0.9995, ">99.9%"),
    (0.9994999999999999, "99.9%"),
    (0.99949, "99.9%"),
    (0.9993, "99.9%"),  # the old PDF rule (> 0.999) wrote ">99.9%" here, the screen "99.9%"
    (0.99901, "99.9%"),
    (0.999, "99.9%"),
    (0.5, "50.0%"),
    (0.0015, "0.1%"),
    (0.0007, "0.1%"),  # the old PDF rule (< 0.001) wrote "<0.1%" here, the screen "0.1%"
    (0.0005, "0.1%"),
    (0.00049999, "<0.1%"),
    (0.0004999999999999999, "<0.1%"),
    (0.00001, "<0.1%"),
    (0.0, "<0.1%"),
]


@pytest.mark.parametrize(("p", "text"), EDGES)
def test_percent_text_at_the_band_edges(p: float, text: str) -> None:
    assert percent_text(p) == text
    assert percent_text(p, sign=False) == text.rstrip("%")


@pytest.mark.parametrize(("p", "text"), EDGES)
def test_the_report_and_the_screen_write_the_same(p: float, text: str) -> None:
    assert pct(p) == percent_text(p) == text
    # the two old call sites, as sentences: the PDF's class row and the screen's call line
    row = row_text(ClassRow("Pneumonia", p, 0.5, True, p >= 0.5))
    assert row.startswith(f"Pneumonia (call): {text};")
    assert call_text("Pneumonia", p, ()).startswith(f"call Pneumonia {text};")


def test_never_a_certain_percentage_on_a_fine_grid() -> None:
    """No probability, however close to 0 or 1, is written as 100.0% or 0.0%, and the report's
    rule is the screen's at every point of the old disagreement bands."""
    grid = [i / 1_000_000 for i in range(0, 2001)] + [1 - i / 1_000_000 for i in range(0, 2001)]
    for p in grid:
        text = percent_text(p)
        assert text not in ("100.0%", "0.0%", "-0.0%"), p
        assert pct(p) == text, p


def test_not_a_number() -> None:
    assert percent_text(math.nan) == pct(math.nan) == "n/a"
    assert percent_text(math.inf) == "n/a"
