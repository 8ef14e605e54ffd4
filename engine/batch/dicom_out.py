"""``radlens-batch --dicom-results DIR``: the SR and secondary capture of each analysed DICOM row,
written as the rows go by (``engine.results`` makes and writes them; this module only walks the
batch's rows).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import replace
from pathlib import Path

from ..ai.model import Classifier
from ..ai.pipeline import classify
from ..ai.prediction import Prediction
from ..errors import RadLensError
from ..io.fileio import printable
from ..io.load import load_image
from ..results.dicom_results import DicomResultsError, _name, results_for, write_results
from .generator import BatchRow

__all__ = ["BatchResults"]


class BatchResults:
    """``radlens-batch --dicom-results DIR``: writes the SR and SC of each analysed DICOM row as
    the rows go by (``rows`` wraps the batch; rows need their ``prediction``). Rows from other
    formats are skipped and counted, never an error; a DICOM row whose results cannot be made
    (header lacking, disk) is counted with its message and the batch goes on. ``summary()`` is
    what the report's provenance JSON records."""

    def __init__(self, out_dir: Path, classifier: Classifier) -> None:
        self.out_dir = Path(out_dir)
        self.classifier = classifier
        self.written: list[Path] = []
        self.images = 0  # DICOM images whose results were written
        self.skipped_not_dicom = 0
        self.not_analysed = 0  # error rows: nothing to report
        self.failed: list[str] = []  # "rel_path: message"
        self.reanalysed = 0  # rows without a kept prediction, analysed again for their results

    def prepare(self) -> None:
        """Create the folder up front, so a bad path fails before the batch runs (``check_folder``
        says, before anything runs, whether it can be)."""
        try:
            self.out_dir.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise DicomResultsError(f"cannot create the folder for DICOM results {printable(str(self.out_dir))} "
                                    f"({e.strerror or e}). Choose a writable --dicom-results folder.") from None

    def rows(self, rows: Iterable[BatchRow], record: dict[str, object] | None = None) -> Iterator[BatchRow]:
        """The rows, each after its results are written; at the end ``record["dicom_results"]``
        (the run options the report's JSON holds) gets ``summary()``."""
        for row in rows:
            self.add(row)
            # the prediction holds the image's pixels: drop it once its results are written
            yield replace(row, prediction=None) if row.prediction is not None else row
        if record is not None:
            record["dicom_results"] = self.summary()

    def add(self, row: BatchRow) -> None:
        if not row.analysed:
            self.not_analysed += 1
            return
        if row.format != "dicom":
            self.skipped_not_dicom += 1
            return
        try:
            pred = row.prediction or self._same_as_row(row, self._analyse_again(row.path))
            self.written += write_results(results_for(pred.image, pred, self.classifier), self.out_dir)
            self.images += 1
        except RadLensError as e:
            self.failed.append(printable(f"{row.rel_path}: {e}"))

    def _analyse_again(self, path: str) -> Prediction:
        """The row's prediction when the batch kept none (a Dask run, a resumed journal): the
        per-image job run once more on the file (at batch size 1)."""
        self.reanalysed += 1
        return classify(load_image(path), self.classifier)

    def _same_as_row(self, row: BatchRow, pred: Prediction) -> Prediction:
        """The prediction analysed again, checked to be the row's image (size, SOP instance,
        probabilities): a file replaced since its row was made gets no results that contradict it."""
        m = pred.image.meta
        uid = row.identifiers.sop_instance_uid
        probs = dict(zip(self.classifier.labels, (float(p) for p in pred.probs), strict=True))
        if ((m.width, m.height) != (row.width, row.height) or (uid and m.identifiers.sop_instance_uid != uid)
                or any(abs(probs.get(k, -1.0) - v) > 1e-3 for k, v in row.probs.items())):
            raise DicomResultsError(f"{_name(row.path)} changed since it was analysed (it now holds another "
                                    "image than its report row), so no DICOM results were written for it. "
                                    "Analyse it again.")
        return pred

    def summary(self) -> dict[str, object]:
        return {"folder": printable(str(self.out_dir.resolve())), "images": self.images, "files": len(self.written),
                "skipped_not_dicom": self.skipped_not_dicom, "analysed_again": self.reanalysed,
                "failed": len(self.failed),
                "failures": self.failed[:50]}

    def describe(self) -> str:
        """The CLI's closing lines about the DICOM results."""
        lines = [f"DICOM results: {len(self.written)} file(s) (SR + secondary capture) for {self.images} DICOM "
                 f"image(s) in {printable(str(self.out_dir))}"
                 + (f"; {self.skipped_not_dicom} non-DICOM image(s) skipped" if self.skipped_not_dicom else "") + "."]
        if self.failed:
            lines.append(f"{len(self.failed)} DICOM image(s) got no DICOM results:")
            lines += [f"  {f}" for f in self.failed[:5]]
            if len(self.failed) > 5:
                lines.append(f"  ... and {len(self.failed) - 5} more (see the report's JSON).")
        return "\n".join(lines)
