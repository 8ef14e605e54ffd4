"""The words of an exported view and of the one-page PDF report, Qt-free (so they are tested
without a display): the call and every class's probability against its operating point,
the scope verdict, the model's identity and a short model card summary, the file and date,
the measurements and the notice. ``desktop.export.export`` only lays these out on a page."""

from __future__ import annotations

import math
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from engine import DISCLAIMER, ModelCard, Prediction
from engine.ai.prediction import DECISION_RULE

from .messages import percent_text

SUMMARY_CHARS = 330  # the training-data summary is cut at a sentence or word before this


def pct(p: float) -> str:
    """A probability as the views show it: ``messages.percent_text``, the one rule of every
    screen and report (">99.9%", "<0.1%" at the ends, "n/a" when not a number)."""
    return percent_text(p)


@dataclass(frozen=True)
class ClassRow:
    label: str
    prob: float
    op: float | None  # the class's operating point (None: the card gives none)
    call: bool  # this class is the call
    flagged: bool  # flagged by the card's decision rule (a normal call carries no flag)
    above: bool | None = None  # at or above its operating point (None: as ``flagged``)

    def verdict(self) -> str:
        if self.op is None:
            return "no operating point"
        above = self.flagged if self.above is None else self.above
        if above and not self.flagged:
            return "at or above (not flagged: see the decision rule)"
        return "at or above" if above else "below"


@dataclass(frozen=True)
class ReportText:
    title: str
    disclaimer: str
    file_name: str
    file_path: str
    exported: str  # date and time of the export
    image_line: str  # format, size, modality, view, study date
    scope: str  # the scope verdict, a sentence
    in_scope: bool
    call: str  # the decision as a sentence ("" with no analysis)
    rows: tuple[ClassRow, ...]  # every class in the card's order
    rows_valid: bool  # False: out-of-scope probabilities shown on request (not valid)
    model: str  # "name version"
    sha256: str
    card_lines: tuple[tuple[str, str], ...]  # (heading, text): intended use, training data, metrics
    measurements: tuple[str, ...]
    decision_rule: str = DECISION_RULE

    def lines(self) -> list[str]:
        """The whole report as plain text lines, in page order."""
        out = [self.title, f"{self.disclaimer}.", f"File: {self.file_name}", f"Exported: {self.exported}",
               self.image_line, f"Scope: {self.scope}", self.call]
        if self.rows:
            out.append("Class, probability, operating point:" + ("" if self.rows_valid else " (NOT VALID)"))
            out += [row_text(r) for r in self.rows]
        if self.measurements:
            out.append("Measurements:")
            out += [f"  {m}" for m in self.measurements]
        out += [f"Model: {self.model}", f"SHA-256: {self.sha256}"]
        out += [f"{h}: {t}" for h, t in self.card_lines]
        out.append(f"{self.disclaimer}.")
        return [line for line in out if line]


def row_text(r: ClassRow) -> str:
    op = f"operating point {pct(r.op)}" if r.op is not None else "no operating point"
    mark = " (call)" if r.call else ""
    return f"{r.label}{mark}: {pct(r.prob)}; {op}, {r.verdict()}"


def class_rows(pred: Prediction) -> tuple[ClassRow, ...]:
    ops = pred.operating_points
    return tuple(ClassRow(lab, float(pred.probs[i]), ops.get(lab), lab == pred.call and pred.in_scope,
                          lab in pred.flags, lab in ops and float(pred.probs[i]) >= ops[lab])
                 for i, lab in enumerate(pred.labels))


def call_sentence(pred: Prediction | None, reason: str = "") -> str:
    """The decision as one sentence (the same words as the analysis dock)."""
    if pred is None:
        return f"No analysis: {reason}" if reason else "No analysis."
    if not pred.in_scope:
        return f"No call: not analysed, {pred.scope.reason or 'out of scope'}"
    flags = ", ".join(pred.flags) if pred.flags else "none"
    return f"Call: {pred.call} ({pct(pred.top_prob)}). At or above the operating point: {flags}."


def probs_summary(pred: Prediction | None) -> str:
    """Every class's probability in the card's order, on one line."""
    if pred is None:
        return ""
    return " · ".join(f"{lab} {pct(float(p))}" for lab, p in zip(pred.labels, pred.probs, strict=True))


def scope_sentence(pred: Prediction | None) -> str:
    if pred is None:
        return "not judged (no analysis)"
    if pred.in_scope:
        return "in scope (a frontal chest radiograph)"
    return f"OUT OF SCOPE: {pred.scope.reason or 'not a frontal chest radiograph'}"


def _first_sentences(text: str, limit: int = SUMMARY_CHARS) -> str:
    text = " ".join(text.split())
    if len(text) <= limit:
        return text
    cut = text.rfind(". ", 0, limit)
    if cut < limit // 3:
        cut = text.rfind(" ", 0, limit - 1)
        return text[:cut].rstrip(",;:") + "…"
    return text[: cut + 1]


def _num(d: Mapping[str, Any], key: str) -> float | None:
    v = d.get(key)
    return float(v) if isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) else None


def internal_headline(metrics: Mapping[str, Any]) -> str:
    if not metrics:
        return "the card reports no test metrics"
    parts = [f"n = {int(metrics['n']):,}"] if _num(metrics, "n") is not None else []
    for key, name, as_pct in (("accuracy", "accuracy", True), ("macro_auc_ovr", "macro AUC", False),
                              ("macro_f1", "macro F1", False)):
        v = _num(metrics, key)
        if v is not None:
            parts.append(f"{name} {v * 100:.1f}%" if as_pct else f"{name} {v:.3f}")
    where = str(metrics.get("split", "held-out test split"))
    return f"{where}: {', '.join(parts)}" if parts else where


def external_headline(metrics: Mapping[str, Any]) -> str:
    if not metrics:
        return "none reported: performance on other hospitals' images is unknown"
    parts = [f"n = {int(metrics['n']):,}"] if _num(metrics, "n") is not None else []
    auc = _num(metrics, "macro_auc_ovr")
    if auc is not None:
        parts.append(f"macro AUC {auc:.3f}")
    per_source = metrics.get("per_source")
    if isinstance(per_source, dict):
        rates = [f"{src} ({d.get('label', '?')}) {float(d['correct_call_rate']) * 100:.0f}%"
                 for src, d in per_source.items() if isinstance(d, dict) and _num(d, "correct_call_rate") is not None]
        if rates:
            parts.append("correct calls " + ", ".join(rates))
    where = str(metrics.get("set", "out-of-source set")).split(";")[0]
    return f"{where}: {', '.join(parts)}"


def card_summary(card: ModelCard) -> tuple[tuple[str, str], ...]:
    """(heading, text) pairs: intended use, training data, internal and out-of-source metrics."""
    summary = card.training_data.get("summary", "") if isinstance(card.training_data, dict) else ""
    return (("Intended use", _first_sentences(card.intended_use, 400)),
            ("Training data", _first_sentences(str(summary)) or "not described in the card"),
            ("Internal test", internal_headline(card.test_metrics)),
            ("Out of source", external_headline(card.out_of_source_metrics)))


def image_line(meta: object | None, shape: tuple[int, int] | None = None) -> str:
    """Format, size, modality, view and study date of the image (what is known)."""
    if meta is None:
        return ""
    parts = [str(getattr(meta, "format", "")).upper()]
    w, h = getattr(meta, "width", 0), getattr(meta, "height", 0)
    if w and h:
        parts.append(f"{w} × {h} px")
    for attr, name in (("modality", "modality"), ("view_position", "view")):
        v = getattr(meta, attr, "")
        if v:
            parts.append(f"{name} {v}")
    ids = getattr(meta, "identifiers", None)
    date = getattr(ids, "study_date", "") if ids is not None else ""
    if date:
        parts.append(f"study date {date[:4]}-{date[4:6]}-{date[6:8]}" if len(date) == 8 and date.isdigit()
                     else f"study date {date}")
    return "Image: " + ", ".join(p for p in parts if p)


def build_report(path: str, pred: Prediction | None, card: ModelCard | None, sha256: str, when: datetime,
                 meta: object | None = None, measurements: Sequence[str] = (), shown_anyway: bool = False,
                 no_analysis_reason: str = "") -> ReportText:
    """Everything the report says about one image. ``shown_anyway``: the user asked to see an
    out-of-scope image's probabilities (they are listed and marked NOT VALID); otherwise an
    out-of-scope image lists none."""
    meta = meta if meta is not None else (pred.image.meta if pred is not None else None)
    rows = class_rows(pred) if pred is not None and (pred.in_scope or shown_anyway) else ()
    name = pred.model_name if pred is not None else (card.name if card else "")
    version = pred.model_version if pred is not None else (card.version if card else "")
    return ReportText(
        title="RadLens image report",
        disclaimer=DISCLAIMER,
        file_name=os.path.basename(path) or path,
        file_path=path,
        exported=when.strftime("%Y-%m-%d %H:%M"),
        image_line=image_line(meta),
        scope=scope_sentence(pred),
        in_scope=pred is not None and pred.in_scope,
        call=call_sentence(pred, no_analysis_reason),
        rows=rows,
        rows_valid=pred is not None and pred.in_scope,
        model=f"{name} {version}".strip() or "no model",
        sha256=(pred.model_sha256 if pred is not None else sha256) or "unknown",
        card_lines=card_summary(card) if card is not None else (),
        measurements=tuple(measurements),
        decision_rule=(pred.decision_rule if pred is not None else card.decision_rule if card is not None
                       else DECISION_RULE),
    )


def view_caption(pred: Prediction | None, path: str, reason: str = "") -> str:
    """The line burnt into an exported PNG beside the notice: file, model and the call."""
    name = os.path.basename(path)
    if pred is None:
        return f"{name} · {call_sentence(None, reason)}" if name else call_sentence(None, reason)
    return f"{name} · {pred.model_name} {pred.model_version} · {call_sentence(pred)}"
