"""How window centre and width are written everywhere (spin boxes, status bar, corner text):
one rule, so the same window never reads 127.500 in one place and 127.5 in another."""

from __future__ import annotations


def wl_decimals(span: float) -> int:
    """Decimals worth showing for an image whose values span ``span`` units."""
    return 1 if span >= 50 else 3 if span >= 1 else 5


def format_wl(value: float, decimals: int) -> str:
    """``value`` rounded to ``decimals``, trailing zeros dropped: 127.5, 40, -600, 0.125."""
    text = f"{value:.{decimals}f}"
    if "." in text:
        text = text.rstrip("0").rstrip(".")
    return "0" if text in ("-0", "", "-") else text


def window_text(name: str, center: float, width: float, span: float, inverted: bool = False) -> str:
    """The status bar's description of a window: "Lung: C -600 W 1500 inverted"."""
    d = wl_decimals(span)
    return f"{name}: C {format_wl(center, d)} W {format_wl(width, d)}" + (" inverted" if inverted else "")
