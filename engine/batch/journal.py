"""The journal of a distributed batch: the finished rows, appended as each task completes, so
a run stopped by Ctrl+C, a crash or a lost client resumes (``--resume``) with only the rest.

``REPORT.csv.journal`` beside the report, JSON lines: the first line is a header naming the run
(model SHA-256, a hash of the file listing, the batch size), then one line per finished task
with its full rows. Each line is written with one ``write``, flushed and fsync'd before the
rows are counted as done; a line cut short by a crash is dropped on resume (its files run
again). The journal is readable by its owner only and is removed once the report is written."""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
from collections.abc import Iterable, Sequence
from dataclasses import fields
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from ..errors import RadLensError
from ..io.fileio import create_temp, printable
from ..io.image import Identifiers
from .generator import BatchRow

VERSION = 1
_ROW_FIELDS = tuple(f.name for f in fields(BatchRow) if f.name != "prediction")


class JournalError(RadLensError):
    """A journal cannot be used: it belongs to another run, or cannot be read or written."""


def journal_path(report: str | os.PathLike[str]) -> Path:
    """``REPORT.csv.journal`` beside ``REPORT.csv``."""
    p = Path(report)
    return p.with_name(p.name + ".journal")


def listing_sha256(paths: Sequence[str | os.PathLike[str]]) -> str:
    """A fingerprint of the file listing (order included): a journal only resumes the same listing."""
    h = hashlib.sha256()
    for p in paths:
        h.update(os.fsencode(str(p)))
        h.update(b"\0")
    return h.hexdigest()


def row_to_dict(row: BatchRow) -> dict[str, Any]:
    d = {k: getattr(row, k) for k in _ROW_FIELDS}
    d["flags"] = list(row.flags)
    d["identifiers"] = row.identifiers.as_dict()
    return d


def row_from_dict(d: dict[str, Any]) -> BatchRow:
    kw = {k: d[k] for k in _ROW_FIELDS if k in d}
    kw["flags"] = tuple(d.get("flags", ()))
    kw["identifiers"] = Identifiers(**d.get("identifiers", {}))
    kw["probs"] = {k: float(v) for k, v in d.get("probs", {}).items()}  # JSON floats read back bit for bit
    return BatchRow(**kw)


class Journal:
    """Append-only record of the rows finished so far. ``open`` starts or resumes one."""

    def __init__(self, path: Path, header: dict[str, Any], done: dict[int, BatchRow], f: Any) -> None:
        self.path = path
        self.header = header
        self.done = done  # rows already finished when the journal was opened (resume)
        self._f = f

    @classmethod
    def open(cls, path: str | os.PathLike[str], header: dict[str, Any], resume: bool) -> Journal:
        """A new journal (refused when one exists and ``resume`` is False: its work would be lost),
        or the existing one when ``resume`` (checked against ``header``: same model, same listing)."""
        path = Path(path)
        head = {"radlens_journal": VERSION, **header}
        if path.exists() and not resume:
            raise JournalError(
                f"a journal of an unfinished run exists at {printable(str(path))}. Pass --resume to finish that run "
                "(only the files it has not analysed run), or delete the journal to start over.")
        done: dict[int, BatchRow] = {}
        if resume and path.exists():
            done, good_bytes = _read(path, head)
            try:
                f = open(path, "r+b")  # noqa: SIM115 - kept open for appends until close()
                f.truncate(good_bytes)  # a line cut short by a crash is dropped: its files run again
                f.seek(good_bytes)
            except OSError as e:
                raise JournalError(f"the journal {printable(str(path))} cannot be written ({e.strerror or e}).") from None
            return cls(path, head, done, f)
        head["created"] = datetime.now(timezone.utc).isoformat(timespec="seconds")
        tmp = ""
        try:  # owner-only: file paths and results (and identifiers, when the report has them)
            fd, tmp = create_temp(path, 0o600)
            with os.fdopen(fd, "wb") as f:
                f.write(_line(head))
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, path)
            f = open(path, "ab")  # noqa: SIM115
        except OSError as e:
            if tmp:
                with contextlib.suppress(OSError):
                    os.unlink(tmp)
            raise JournalError(f"the journal {printable(str(path))} cannot be written ({e.strerror or e}); "
                               "choose a writable folder for the report.") from None
        return cls(path, head, done, f)

    def append(self, rows: Iterable[BatchRow]) -> None:
        """Record finished rows durably (one line, flushed and fsync'd)."""
        self._f.write(_line({"rows": [row_to_dict(r) for r in rows]}))
        self._f.flush()
        os.fsync(self._f.fileno())

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self._f.close()

    def remove(self) -> None:
        self.close()
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.path)


def _line(obj: dict[str, Any]) -> bytes:
    return (json.dumps(obj, ensure_ascii=True, allow_nan=False, separators=(",", ":")) + "\n").encode("ascii")


def _read(path: Path, head: dict[str, Any]) -> tuple[dict[int, BatchRow], int]:
    """The rows of a journal and the length of its intact part, after checking its header."""
    try:
        data = path.read_bytes()
    except OSError as e:
        raise JournalError(f"the journal {printable(str(path))} cannot be read ({e.strerror or e}).") from None
    lines = data.split(b"\n")
    try:
        found = json.loads(lines[0])
    except ValueError:
        raise JournalError(f"{printable(str(path))} is not a RadLens journal (bad first line). Delete it to start "
                           "over.") from None
    for key, what in (("radlens_journal", "journal version"), ("model_sha256", "model"),
                      ("listing_sha256", "list of files"), ("files", "number of files"), ("batch_size", "batch size"),
                      ("identifiers", "choice of identifiers")):
        if key in head and found.get(key) != head[key]:
            raise JournalError(
                f"the journal {printable(str(path))} belongs to another run: its {what} differs "
                f"({str(found.get(key))[:16]} there, {str(head[key])[:16]} now). Resume with the same model, "
                "input and options, or delete the journal to start over.")
    done: dict[int, BatchRow] = {}
    good = len(lines[0]) + 1
    for raw in lines[1:-1]:  # the part after the last newline is a line cut short: dropped
        try:
            rows = [row_from_dict(d) for d in json.loads(raw)["rows"]]
        except (ValueError, KeyError, TypeError):
            break  # cut short by a crash: this line and anything after it run again
        done.update((r.index, r) for r in rows)
        good += len(raw) + 1
    return done, good
