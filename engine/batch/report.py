"""CSV reports of a batch, written atomically: a temp file in the same folder, then a
rename, so a crash or a cancel never leaves half a CSV behind.

The CSV's first line is its header, so ``csv.DictReader``, ``pandas.read_csv`` and
spreadsheets read it as it is. Every row carries the research-use notice and the model's
name, version and SHA-256 in columns. A sidecar JSON beside it (``report.json`` for
``report.csv``), written atomically too, holds the run's provenance: software version,
date, model card summary, options and counts."""

from __future__ import annotations

import contextlib
import csv
import json
import os
from collections import Counter
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Protocol

from ..ai.card import DISCLAIMER
from ..ai.prediction import DECISION_RULE
from ..errors import RadLensError
from ..io.fileio import create_temp
from ..io.image import Identifiers
from .generator import BatchRow, printable

BASE_COLUMNS = ("file", "status", "error", "scope", "scope_reason", "call", "flags")
SCORE_COLUMNS = ("ood_score",)
MODEL_COLUMNS = ("model_name", "model_version", "model_sha256")
IMAGE_COLUMNS = ("width", "height", "modality", "view_position")
IDENTIFIER_COLUMNS = tuple(Identifiers.__dataclass_fields__)
NOTICE_COLUMN = "notice"
FLAG_SEPARATOR = ";"


class ReportError(RadLensError):
    """The report could not be written."""


class _HasCard(Protocol):
    card: object
    sha256: str


@dataclass(frozen=True)
class ModelInfo:
    """What a report records about the model."""

    name: str
    version: str
    sha256: str
    labels: tuple[str, ...]
    operating_points: dict[str, float] = field(default_factory=dict)
    decision_rule: str = DECISION_RULE
    intended_use: str = DISCLAIMER
    card_summary: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def from_classifier(cls, classifier: _HasCard) -> ModelInfo:
        card: Any = classifier.card
        summary = {
            "name": card.name, "version": card.version, "labels": list(card.labels),
            "input_size": list(card.input_size), "created": card.created, "architecture": card.architecture,
            "temperature": card.temperature, "test_metrics": _headline(card.test_metrics),
            "out_of_source_metrics": _headline(getattr(card, "out_of_source_metrics", {}) or {}),
            "preprocessing": getattr(card, "preprocessing", None) or {},
            "ood": getattr(card, "ood", None),
        }
        adapted = getattr(card, "site_adaptation", None)
        if adapted:  # an adapted model: the report names its parent and its site
            summary["adapted_from"] = adapted.get("parent")
            summary["site"] = {k: adapted.get("site", {}).get(k) for k in ("name", "date", "counts")}
        seg = getattr(classifier, "lung_segmenter", None)
        if seg is not None:  # the lung model of the per-image job (scope check, and crop when the card asks)
            summary["lung_model"] = seg.describe()
        return cls(name=card.name, version=card.version, sha256=classifier.sha256,
                   labels=tuple(card.labels), operating_points=dict(card.operating_points),
                   decision_rule=getattr(card, "decision_rule", "") or DECISION_RULE,
                   intended_use=card.intended_use or DISCLAIMER, card_summary=summary)


def _headline(metrics: Mapping[str, Any]) -> dict[str, Any]:
    """The scalar figures of a metrics dict (per-class tables and curves left out)."""
    return {k: v for k, v in metrics.items() if isinstance(v, (int, float, str)) and not isinstance(v, bool)}


def report_columns(labels: Sequence[str], include_identifiers: bool = False) -> list[str]:
    cols = [*BASE_COLUMNS, *(f"prob_{lab}" for lab in labels), *SCORE_COLUMNS, *MODEL_COLUMNS, *IMAGE_COLUMNS]
    if include_identifiers:
        cols += IDENTIFIER_COLUMNS
    return [*cols, NOTICE_COLUMN]


def sidecar_path(report: str | os.PathLike[str]) -> Path:
    """Where the provenance JSON of a report goes: ``x.json`` beside ``x.csv``."""
    p = Path(report)
    return p.with_suffix(".json") if p.suffix.lower() == ".csv" else p.with_name(p.name + ".json")


def _row_values(row: BatchRow, model: ModelInfo, include_identifiers: bool, out_of_scope_probs: bool) -> list[str]:
    ok, analysed = row.ok, row.analysed
    reason = row.scope_reason
    with_probs = ok or (row.out_of_scope and out_of_scope_probs)
    if row.out_of_scope and out_of_scope_probs:
        reason += " Probabilities written on request (--analyse-out-of-scope): NOT VALID for this image."
    vals = [printable(row.rel_path), row.status, printable(row.error), row.scope, printable(reason),
            row.label if ok else "", FLAG_SEPARATOR.join(row.flags) if ok else ""]
    # 9 significant digits: a float32 probability reads back bit for bit
    vals += [f"{row.probs[lab]:.9g}" if with_probs and lab in row.probs else "" for lab in model.labels]
    vals += [f"{row.ood_score:.6g}" if analysed and row.ood_score is not None else ""]
    vals += [model.name, model.version, model.sha256]
    vals += [str(row.width) if analysed else "", str(row.height) if analysed else "", row.modality, row.view_position]
    if include_identifiers:
        ids = row.identifiers.as_dict()
        vals += [printable(ids.get(k, "")) for k in IDENTIFIER_COLUMNS]
    return [*vals, DISCLAIMER]


@dataclass
class Tally:
    """The counts of a report (its JSON's ``counts``), kept as its rows are written; the CLI's summary
    reads the same object, so a row is counted once. ``examples`` keeps the first few out-of-scope
    and error rows for the CLI to name."""

    total: int = 0
    ok: int = 0
    out_of_scope: int = 0
    errors: int = 0
    calls: Counter[str] = field(default_factory=Counter)
    flags: Counter[str] = field(default_factory=Counter)
    out_of_scope_examples: list[BatchRow] = field(default_factory=list)
    error_examples: list[BatchRow] = field(default_factory=list)
    keep_examples: int = 5

    def rows(self, rows: Iterable[BatchRow]) -> Iterator[BatchRow]:
        for row in rows:
            self.total += 1
            if row.ok:
                self.ok += 1
                self.calls[row.label] += 1
                self.flags.update(row.flags)
            elif row.out_of_scope:
                self.out_of_scope += 1
                if len(self.out_of_scope_examples) < self.keep_examples:
                    self.out_of_scope_examples.append(row)
            else:
                self.errors += 1
                if len(self.error_examples) < self.keep_examples:
                    self.error_examples.append(row)
            yield row


def sidecar(info: ModelInfo, tally: Tally, run: Mapping[str, Any] | None, include_identifiers: bool,
            csv_name: str, out_of_scope_probs: bool = False) -> dict[str, Any]:
    """The provenance JSON of a report."""
    from .. import __version__

    return {
        "notice": DISCLAIMER,
        "report": csv_name,
        "software": {"name": "RadLens", "version": __version__},
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "model": {"name": info.name, "version": info.version, "sha256": info.sha256, "labels": list(info.labels),
                  "operating_points": info.operating_points, "decision_rule": info.decision_rule,
                  "intended_use": info.intended_use, "card": info.card_summary},
        "options": {**dict(run or {}), "include_identifiers": include_identifiers,
                    "analyse_out_of_scope": out_of_scope_probs},
        "counts": {"files": tally.total, "analysed": tally.ok, "out_of_scope": tally.out_of_scope, "errors": tally.errors,
                   "calls": {lab: tally.calls[lab] for lab in info.labels},
                   "flags": {lab: tally.flags[lab] for lab in info.labels}},
        "columns": report_columns(info.labels, include_identifiers),
    }


def write_report(path: str | os.PathLike[str], rows: Iterable[BatchRow], model: ModelInfo | _HasCard,
                 include_identifiers: bool = False, run: Mapping[str, Any] | None = None,
                 out_of_scope_probs: bool = False, tally: Tally | None = None) -> int:
    """Write one CSV line per row (``rows`` may be a live batch generator) and its sidecar
    JSON (``sidecar_path``), and return the number of rows written. Both files appear only
    when every row is written: on any exception (including KeyboardInterrupt) the temp
    files are removed, existing files at those paths are left untouched, and the exception
    propagates. ``run`` (the run's options: folder, device, provider, ...) goes into the JSON.
    An out-of-scope row carries no call; its probabilities are written only with
    ``out_of_scope_probs=True``, and its ``scope_reason`` then says they are not valid.
    ``tally``: where to keep the counts (a caller's, to print them; a new one by default).

    Patient and study identifiers are written only with ``include_identifiers=True``.
    The report's permissions follow the umask (0666 less umask, as any new file); with
    identifiers it is readable by its owner only (0600)."""
    info = model if isinstance(model, ModelInfo) else ModelInfo.from_classifier(model)
    target = Path(path)
    folder = target.parent
    if not folder.is_dir():
        raise ReportError(f"cannot write the report: folder {printable(str(folder))} does not exist. Create it or choose another location.")
    try:
        fd, tmp = create_temp(target, 0o600 if include_identifiers else 0o666)
    except OSError as e:
        raise ReportError(f"cannot write the report in {printable(str(folder))} ({e.strerror or e}). Choose a writable folder.") from None
    n = 0
    tally = Tally() if tally is None else tally
    json_tmp = ""
    try:
        with os.fdopen(fd, "w", newline="", encoding="utf-8") as f:
            w = csv.writer(f)
            w.writerow(report_columns(info.labels, include_identifiers))
            for row in tally.rows(rows):
                w.writerow(_row_values(row, info, include_identifiers, out_of_scope_probs))
                n += 1
            f.flush()
            os.fsync(f.fileno())
        meta = sidecar(info, tally, run, include_identifiers, target.name, out_of_scope_probs)
        json_target = sidecar_path(target)
        jfd, json_tmp = create_temp(json_target, 0o666)
        with os.fdopen(jfd, "w", encoding="utf-8") as f:
            json.dump(meta, f, indent=1, ensure_ascii=False, default=str)
            f.write("\n")
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, target)
        os.replace(json_tmp, json_target)
    except BaseException:
        for t in (tmp, json_tmp):
            if t:
                with contextlib.suppress(OSError):
                    os.unlink(t)
        raise
    return n


def read_report(path: str | os.PathLike[str]) -> tuple[dict[str, Any], list[dict[str, str]]]:
    """(sidecar JSON, rows as dicts) of a report written by ``write_report``; the JSON is
    {} when it is missing."""
    meta: dict[str, Any] = {}
    with contextlib.suppress(OSError, ValueError):
        meta = json.loads(sidecar_path(path).read_text(encoding="utf-8"))
    with open(path, newline="", encoding="utf-8") as f:
        return meta, list(csv.DictReader(f))
