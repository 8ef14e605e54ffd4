"""Parquet partitions of a batch report (``radlens-batch --parquet DIR``), for runs too large for
one CSV to be handy: ``part-00000.parquet``, ``part-00001.parquet``, ... of ``rows_per_part``
rows each, in report order, with the CSV's columns (the same values: ``engine.batch.report``'s row
rule) typed (probabilities and the OOD score as float64, sizes as int64, empty as null) plus the
row's ``index``. Each part is written atomically (temp file, then rename) as soon as it is full,
so a long run leaves finished parts behind; the research-use notice is in every row and in the
file metadata."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from ..ai.card import DISCLAIMER
from ..errors import RadLensError
from ..io.fileio import create_temp, printable
from .generator import BatchRow
from .report import ModelInfo, _row_values, report_columns

FLOAT_PREFIXES = ("prob_",)
FLOAT_COLUMNS = ("ood_score",)
INT_COLUMNS = ("width", "height")


class ParquetError(RadLensError):
    """A Parquet partition could not be written."""


class ParquetParts:
    """Collects rows and writes a partition every ``rows_per_part`` rows (``close`` writes the rest)."""

    def __init__(self, folder: str | os.PathLike[str], model: ModelInfo, include_identifiers: bool = False,
                 out_of_scope_probs: bool = False, rows_per_part: int = 100_000) -> None:
        try:
            import pyarrow  # noqa: F401 - checked before the run, not at its end
        except ImportError:
            raise ParquetError("--parquet needs pyarrow, which is not installed: pip install 'radlens[dask]' "
                               "(or pyarrow), then run again.") from None
        self.folder = Path(folder)
        try:
            self.folder.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise ParquetError(f"cannot create the Parquet folder {printable(str(self.folder))} "
                               f"({e.strerror or e}). Choose a writable --parquet folder.") from None
        self.model, self.ids, self.oos = model, include_identifiers, out_of_scope_probs
        self.rows_per_part = max(1, rows_per_part)
        self.columns = ["index", *report_columns(model.labels, include_identifiers)]
        self._rows: list[list[str]] = []
        self.parts: list[Path] = []

    def add(self, row: BatchRow) -> None:
        self._rows.append([str(row.index), *_row_values(row, self.model, self.ids, self.oos)])
        if len(self._rows) >= self.rows_per_part:
            self.flush()

    def flush(self) -> None:
        if not self._rows:
            return
        import pyarrow as pa
        import pyarrow.parquet as pq

        cols: dict[str, Any] = {}
        for j, name in enumerate(self.columns):
            values = [r[j] for r in self._rows]
            if name == "index" or name in INT_COLUMNS:
                cols[name] = pa.array([int(v) if v else None for v in values], pa.int64())
            elif name in FLOAT_COLUMNS or name.startswith(FLOAT_PREFIXES):
                cols[name] = pa.array([float(v) if v else None for v in values], pa.float64())
            else:
                cols[name] = pa.array(values, pa.string())
        table = pa.table(cols).replace_schema_metadata({
            "notice": DISCLAIMER, "model_name": self.model.name, "model_version": self.model.version,
            "model_sha256": self.model.sha256})
        target = self.folder / f"part-{len(self.parts):05d}.parquet"
        tmp = ""
        try:
            fd, tmp = create_temp(target)
            with os.fdopen(fd, "wb") as f:
                pq.write_table(table, f)
            os.replace(tmp, target)
        except OSError as e:
            if tmp:
                with contextlib.suppress(OSError):
                    os.unlink(tmp)
            raise ParquetError(f"cannot write {printable(str(target))} ({e.strerror or e}).") from None
        self.parts.append(target)
        self._rows = []

    def tee(self, rows: Iterable[BatchRow]) -> Iterator[BatchRow]:
        """Pass ``rows`` through, writing each to the partitions; the last part when they end."""
        try:
            for row in rows:
                self.add(row)
                yield row
            self.flush()
        finally:
            close = getattr(rows, "close", None)
            if close is not None:
                close()
