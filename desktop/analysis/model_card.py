"""The model card dialog: labels and operating points, training data and its known
confounders, test metrics, intended use, and the file's identity (SHA-256, provider)."""

from __future__ import annotations

import html
from typing import Any

from PySide6.QtWidgets import QDialog, QDialogButtonBox, QTextBrowser, QVBoxLayout, QWidget

from engine import DISCLAIMER, ModelCard

from ..core.messages import percent_text

_esc = html.escape


def _value(v: Any) -> str:
    if isinstance(v, float):
        return f"{v:.4g}"
    if isinstance(v, (list, tuple)):
        if all(not isinstance(x, (dict, list)) for x in v):
            return ", ".join(_esc(str(x)) for x in v)
        return "<ul>" + "".join(f"<li>{_value(x)}</li>" for x in v) + "</ul>"
    if isinstance(v, dict):
        return _dict_list(v)
    return _esc(str(v))


def _dict_list(d: dict[str, Any]) -> str:
    return "<ul>" + "".join(f"<li><b>{_esc(str(k).replace('_', ' '))}</b>: {_value(v)}</li>" for k, v in d.items()) + "</ul>"


def _per_class_table(per_class: dict[str, dict[str, Any]]) -> str:
    cols: list[str] = []
    for d in per_class.values():
        for k in d:
            if k not in cols:
                cols.append(k)
    head = "".join(f"<th>{_esc(c)}</th>" for c in cols)
    rows = "".join(
        f"<tr><td>{_esc(lab)}</td>" + "".join(f"<td align='right'>{_value(d.get(c, ''))}</td>" for c in cols) + "</tr>"
        for lab, d in per_class.items()
    )
    return f"<table border='1' cellspacing='0' cellpadding='3'><tr><th>class</th>{head}</tr>{rows}</table>"


def card_html(card: ModelCard, sha256: str = "", path: str = "", provider: str = "", note: str = "") -> str:
    parts = [f"<h2>{_esc(card.name)} {_esc(card.version)}</h2>",
             f"<p style='color:#b00020'><b>{_esc(DISCLAIMER)}.</b></p>",
             f"<h3>Intended use</h3><p>{_esc(card.intended_use)}</p>"]
    if card.site_adaptation:
        parts.append(_site_html(card))
    ops = card.operating_points
    rows = "".join(
        f"<tr><td>{_esc(lab)}</td><td align='right'>{percent_text(ops[lab])}</td></tr>" if lab in ops
        else f"<tr><td>{_esc(lab)}</td><td>-</td></tr>" for lab in card.labels)
    parts.append("<h3>Classes and operating points</h3>"
                 f"<p><b>Decision rule:</b> {_esc(card.decision_rule)}. The orange mark on a class's bar is its "
                 "operating point.</p>"
                 f"<table border='1' cellspacing='0' cellpadding='3'><tr><th>class</th><th>operating point</th></tr>{rows}</table>")
    td = dict(card.training_data)
    parts.append("<h3>Training data</h3>")
    if "summary" in td:
        parts.append(f"<p>{_esc(str(td.pop('summary')))}</p>")
    conf = td.pop("confounders", None)
    if conf:
        items = conf if isinstance(conf, (list, tuple)) else [conf]
        parts.append("<p><b>Known confounders</b> (shortcuts the model may have learned):</p><ul>"
                     + "".join(f"<li>{_esc(str(c))}</li>" for c in items) + "</ul>")
    if td:
        parts.append(_dict_list(td))
    parts.append(_out_of_source_html(card))
    tm = dict(card.test_metrics)
    parts.append("<h3>Test metrics</h3>")
    if not tm:
        parts.append("<p>The card reports no test metrics.</p>")
    else:
        per_class = tm.pop("per_class", None)
        parts.append(_dict_list(tm))
        if isinstance(per_class, dict) and per_class:
            parts.append(_per_class_table(per_class))
    details = {
        "architecture": card.architecture, "input size": f"{card.input_size[0]}×{card.input_size[1]} ({card.resize})",
        "temperature": card.temperature, "created": card.created, "file": path, "SHA-256": sha256,
        "execution provider": provider + (f" ({note})" if note else ""),
    }
    parts.append("<h3>Model file</h3>" + _dict_list({k: v for k, v in details.items() if v not in ("", None)}))
    if card.extra:
        parts.append("<h3>More</h3>" + _dict_list(card.extra))
    return "".join(parts)


def _rate(v: Any) -> str:
    return f"{v:.3f}" if isinstance(v, (int, float)) else "-"


def _out_of_source_html(card: ModelCard) -> str:
    """Per source: how the model called films from collections it never saw, beside the internal test
    split's correct-call rate for each training source (the honest figure comes first)."""
    oos = card.out_of_source_metrics or {}
    rule = (oos.get("under_the_decision_rule") or {}).get("per_source") or {}
    plain = oos.get("per_source") or {}
    sources = list(dict.fromkeys([*rule, *plain]))
    head = "<h3>Out-of-source figures (collections never trained on)</h3>"
    if not sources:
        note = oos.get("note") or "The card reports no out-of-source figures."
        return head + f"<p>{_esc(str(note))}</p>"
    rows = []
    for src in sources:
        d = rule.get(src) or plain.get(src) or {}
        inf = d.get("infection_rate")
        rows.append(f"<tr><td>{_esc(src)}</td><td>{_esc(str(d.get('label', '')))}</td><td align='right'>{d.get('n', '')}"
                    f"</td><td align='right'>{_rate(d.get('correct_call_rate'))}</td>"
                    f"<td align='right'>{_rate(inf) if inf is not None else ''}</td></tr>")
    internal = (card.test_metrics or {}).get("per_source_correct_call_rate") or {}
    irows = "".join(f"<tr><td>{_esc(k)}</td><td align='right'>{_rate(v)}</td></tr>" for k, v in internal.items())
    what = ("under the card's decision rule" if rule else "the call as the card's rule makes it")
    return (head + f"<p>Films of each source called their label, {what}. These are the figures to expect on "
            f"another hospital's films; the internal test figures below are higher. {_esc(str(oos.get('set', '')))}</p>"
            "<table border='1' cellspacing='0' cellpadding='3'><tr><th>source</th><th>label</th><th>films</th>"
            "<th>called correctly</th><th>infection (COVID-19 or pneumonia)</th></tr>" + "".join(rows) + "</table>"
            + (("<p>Internal test split, called correctly per training source (in-source):</p>"
                "<table border='1' cellspacing='0' cellpadding='3'><tr><th>class/source</th><th>called correctly</th>"
                f"</tr>{irows}</table>") if irows else ""))


def _site_html(card: ModelCard) -> str:
    from engine.adapt.summary import summary_rows

    sa = card.site_adaptation or {}
    p, site = sa.get("parent", {}), sa.get("site", {})
    counts = ", ".join(f"{lab} {n}" for lab, n in (site.get("counts") or {}).items() if n)
    rows = "".join(f"<tr><td>{_esc(r.what)}</td><td align='right'>{_esc(r.before)}</td>"
                   f"<td align='right'>{_esc(r.after)}</td><td>{_esc(r.note)}</td></tr>"
                   for r in summary_rows(sa.get("figures", {}), tuple(card.labels)))
    warn = "".join(f"<li>{_esc(w)}</li>" for w in sa.get("warnings", []))
    return (f"<h3>Site adaptation</h3><p>Adapted to the site <b>{_esc(str(site.get('name', '')))}</b> on "
            f"{_esc(str(site.get('date', '')))} from {_esc(counts)} films. Parent model: {_esc(p.get('name', ''))} "
            f"{_esc(p.get('version', ''))} (SHA-256 {_esc(p.get('sha256', ''))}).</p>"
            f"<table border='1' cellspacing='0' cellpadding='3'><tr><th></th><th>before</th><th>after</th><th></th></tr>"
            f"{rows}</table>" + (f"<ul style='color:#b00020'>{warn}</ul>" if warn else "")
            + f"<p>Parameters: {_value(sa.get('parameters', {}))}</p>")


class ModelCardDialog(QDialog):
    def __init__(self, card: ModelCard, sha256: str = "", path: str = "", provider: str = "", note: str = "",
                 parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle(f"Model card: {card.name} {card.version}")
        self.resize(640, 720)
        self.browser = QTextBrowser()
        self.browser.setOpenExternalLinks(False)
        self.browser.setHtml(card_html(card, sha256, path, provider, note))
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Close)
        buttons.rejected.connect(self.reject)
        lay = QVBoxLayout(self)
        lay.addWidget(self.browser)
        lay.addWidget(buttons)

    def text(self) -> str:
        return self.browser.toPlainText()
