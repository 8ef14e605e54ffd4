"""The before/after table of an adaptation, as rows the CLI prints and the GUI shows."""

from __future__ import annotations

from dataclasses import dataclass

from ..ai.card import DISCLAIMER


@dataclass(frozen=True)
class Row:
    what: str
    before: str
    after: str
    note: str = ""


def _rate(d: dict | None) -> str:
    if not d:
        return "-"
    return f"{d['rate']:.3f} ({d['correct']}/{d['n']})"


def summary_rows(figures: dict, labels: tuple[str, ...]) -> list[Row]:
    """Site films called correctly per class (before: the parent's calls; after: k-fold
    cross-validated), then the reference hold-out (training sources' test films) before and after."""
    rows = []
    site_b = figures["site_before"]["per_class"]
    site_a = figures["site_cross_validated"]["per_class"]
    k = figures["site_cross_validated"]["folds"]
    for lab in labels:
        if lab in site_a:
            rows.append(Row(f"site {lab} films called {lab}", _rate(site_b.get(lab)), _rate(site_a[lab]),
                            f"after: {k}-fold cross-validated"))
    rb, ra = figures["reference_before"], figures["reference_after"]
    rows.append(Row("reference hold-out accuracy", f"{rb['accuracy']:.3f}", f"{ra['accuracy']:.3f}", f"{ra['n']} films"))
    for lab in labels:
        if lab in rb["per_class"]:
            rows.append(Row(f"reference {lab} recall", _rate(rb["per_class"][lab]), _rate(ra["per_class"].get(lab))))
    rows.append(Row("reference hold-out ECE", f"{rb['ece']:.3f}", f"{ra['ece']:.3f}"))
    return rows


def format_summary(card: object, warnings: list[str], seconds: float | None = None) -> str:
    """The text ``radlens-adapt`` prints: the new model, its parent, the site, the table, the warnings."""
    sa = card.site_adaptation  # type: ignore[attr-defined]
    parent, site = sa["parent"], sa["site"]
    counts = ", ".join(f"{lab} {n}" for lab, n in site["counts"].items() if n)
    left = ", ".join(f"{n} {why}" for why, n in site["left_out"].items())
    lines = [f"Adapted model: {card.name} {card.version}",  # type: ignore[attr-defined]
             f"Parent: {parent['name']} {parent['version']} (sha256 {parent['sha256'][:12]}...)",
             f"Site: {site['name']} ({counts} films used" + (f"; left out: {left}" if left else "") + ")",
             f"Parameters: {', '.join(f'{k}={v}' for k, v in sa['parameters'].items())}", ""]
    rows = summary_rows(sa["figures"], tuple(card.labels))  # type: ignore[attr-defined]
    w = max(len(r.what) for r in rows)
    lines.append(f"{'':{w}}  {'before':>16}  {'after':>16}")
    lines += [f"{r.what:{w}}  {r.before:>16}  {r.after:>16}  {r.note}".rstrip() for r in rows]
    if warnings:
        lines += ["", *[f"Warning: {x}" for x in warnings]]
    if seconds is not None:
        lines += ["", f"Took {seconds:.1f} s."]
    lines.append(f"{DISCLAIMER}.")
    return "\n".join(lines)
