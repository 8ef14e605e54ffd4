"""CSV reports of a batch, written atomically: a temp file in the same folder, then a
rename, so a crash or a cancel never leaves half a CSV behind."""

from __future__ import annotations

import contextlib
import csv
import errno
import os
import secrets
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from .batch import BatchRow, printable
from .card import DISCLAIMER
from .errors import RadLensError
from .image import Identifiers

BASE_COLUMNS = ("file", "status", "error", "prediction")
MODEL_COLUMNS = ("model_name", "model_version", "model_sha256")
IMAGE_COLUMNS = ("width", "height", "modality", "view_position")
IDENTIFIER_COLUMNS = tuple(Identifiers.__dataclass_fields__)


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

    @classmethod
    def from_classifier(cls, classifier: _HasCard) -> ModelInfo:
        card = classifier.card
        return cls(name=card.name, version=card.version, sha256=classifier.sha256,  # type: ignore[attr-defined]
                   labels=tuple(card.labels))  # type: ignore[attr-defined]


def report_columns(labels: Sequence[str], include_identifiers: bool = False) -> list[str]:
    cols = [*BASE_COLUMNS, *(f"prob_{lab}" for lab in labels), *MODEL_COLUMNS, *IMAGE_COLUMNS]
    if include_identifiers:
        cols += IDENTIFIER_COLUMNS
    return cols


def header_comment(model: ModelInfo) -> str:
    return f"# RadLens report - {DISCLAIMER}. Model {model.name} {model.version} sha256 {model.sha256}"


def _row_values(row: BatchRow, model: ModelInfo, include_identifiers: bool) -> list[str]:
    ok = row.ok
    vals = [printable(row.rel_path), row.status, printable(row.error), row.label if ok else ""]
    vals += [f"{row.probs[lab]:.6f}" if ok and lab in row.probs else "" for lab in model.labels]
    vals += [model.name, model.version, model.sha256]
    vals += [str(row.width) if ok else "", str(row.height) if ok else "", row.modality, row.view_position]
    if include_identifiers:
        ids = row.identifiers.as_dict()
        vals += [printable(ids.get(k, "")) for k in IDENTIFIER_COLUMNS]
    return vals


def _create_temp(target: Path, mode: int) -> tuple[int, str]:
    """A new temp file beside ``target``, created with ``mode`` less the process umask
    (the kernel applies it: no umask read, no race with other threads)."""
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0) | getattr(os, "O_NOFOLLOW", 0)
    for _ in range(100):
        tmp = str(target.parent / f".{target.name}.{secrets.token_hex(4)}.tmp")
        try:
            return os.open(tmp, flags, mode), tmp
        except FileExistsError:
            continue
    raise FileExistsError(errno.EEXIST, "no free temporary file name", str(target.parent))


def write_report(path: str | os.PathLike[str], rows: Iterable[BatchRow], model: ModelInfo | _HasCard,
                 include_identifiers: bool = False) -> int:
    """Write one CSV line per row (``rows`` may be a live batch generator) and return
    the number of rows written. The file appears only when every row is written: on
    any exception (including KeyboardInterrupt) the temp file is removed, an existing
    report at ``path`` is left untouched, and the exception propagates.

    Patient and study identifiers are written only with ``include_identifiers=True``.
    The report's permissions follow the umask (0666 less umask, as any new file); with
    identifiers it is readable by its owner only (0600)."""
    info = model if isinstance(model, ModelInfo) else ModelInfo.from_classifier(model)
    target = Path(path)
    folder = target.parent
    if not folder.is_dir():
        raise ReportError(f"cannot write the report: folder {printable(str(folder))} does not exist. Create it or choose another location.")
    try:
        fd, tmp = _create_temp(target, 0o600 if include_identifiers else 0o666)
    except OSError as e:
        raise ReportError(f"cannot write the report in {printable(str(folder))} ({e.strerror or e}). Choose a writable folder.") from None
    n = 0
    try:
        with os.fdopen(fd, "w", newline="", encoding="utf-8") as f:
            f.write(header_comment(info) + "\n")
            w = csv.writer(f)
            w.writerow(report_columns(info.labels, include_identifiers))
            for row in rows:
                w.writerow(_row_values(row, info, include_identifiers))
                n += 1
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, target)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    return n


def read_report(path: str | os.PathLike[str]) -> tuple[str, list[dict[str, str]]]:
    """(comment line, rows as dicts) of a report written by ``write_report``."""
    with open(path, newline="", encoding="utf-8") as f:
        comment = f.readline().rstrip("\r\n")
        return comment, list(csv.DictReader(f))
