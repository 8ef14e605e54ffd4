"""Batch analysis of a folder: one ``BatchRow`` per file, in file order.

Each file goes through the engine's one per-image job (``engine.ai.pipeline``), in its order:
the decode threads run ``load_image`` while the lane threads run the rest a chunk of
``batch_size`` files at a time (``_finish_chunk``): the lung model batched (``lung_fields``),
``prepare`` per file, ``classifier.run`` batched and ``conclude`` per row. Several chunks are in
flight at once (``lanes``, ``engine.ai.jobs.lanes_for``): while one lane's network runs, another
lane's Python steps run and the decoders fill the next chunk, so no core idles. The calling thread
only hands out chunks and yields their rows in file order. The chunks are the same whatever the
number of lanes, so the rows are too. ``analyze_files`` is the same per-chunk path for a given list
of files (a Dask worker's task). The long job is a plain
generator: the caller drives it, shows progress from the rows (or a callback) and
cancels with a ``threading.Event`` or any callable returning True. A bad file never
stops the batch, whatever its decoder raises (a Rust panic from a pylibjpeg plugin is a
BaseException): it becomes an error row.
"""

from __future__ import annotations

import os
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..ai.jobs import Cancel, default_workers, error_text, is_cancelled, is_fatal, lanes_for
from ..ai.model import Classifier
from ..ai.pipeline import COMPUTE, Prepared, conclude, lung_fields, ood_of, prepare, view_of
from ..ai.prediction import Prediction
from ..io.fileio import DEFAULT_MAX_PIXELS, link_target, printable
from ..io.image import Identifiers, LoadedImage
from ..io.listing import SKIPPED_NAMES, FolderError, _check_folder, list_folder, list_images  # noqa: F401 - re-exported
from ..io.load import load_image

Progress = Callable[[int, int], None] | None


OUT_OF_SCOPE = "out_of_scope"


@dataclass(frozen=True)
class BatchRow:
    """The result for one file. ``prediction`` is kept only with ``keep_predictions``."""

    index: int  # 0-based position in the folder listing
    total: int  # number of files in the batch
    path: str  # full path, usable to open the file again
    rel_path: str  # path relative to the folder, POSIX separators, printable
    status: str  # "ok" (a verdict), "out_of_scope" (analysed, no verdict) or "error"
    error: str = ""
    label: str = ""  # the call (the top class, by the card's decision rule); "" out of scope
    flags: tuple[str, ...] = ()  # classes at or above their operating points
    probs: dict[str, float] = field(default_factory=dict)  # kept out of scope too (not valid there)
    scope: str = ""  # "in" or "out" ("" for an error row)
    scope_reason: str = ""
    ood_score: float | None = None
    width: int = 0
    height: int = 0
    modality: str = ""
    view_position: str = ""
    format: str = ""
    identifiers: Identifiers = field(default_factory=Identifiers)
    prediction: Prediction | None = None

    @property
    def ok(self) -> bool:
        """A verdict was given (in scope, analysed)."""
        return self.status == "ok"

    @property
    def out_of_scope(self) -> bool:
        return self.status == OUT_OF_SCOPE

    @property
    def analysed(self) -> bool:
        """The model ran (in or out of scope): image columns and probabilities exist."""
        return self.status in ("ok", OUT_OF_SCOPE)

    @property
    def done(self) -> int:
        """How many rows are finished once this one is (for progress bars)."""
        return self.index + 1

    @property
    def call(self) -> str:
        return self.label

    @property
    def top_prob(self) -> float:
        return self.probs.get(self.label, 0.0) if self.label else 0.0


@dataclass
class _Decoded:
    """What a worker hands to the inference thread for one file."""

    index: int
    path: Path
    image: LoadedImage | None = None  # decoded, waiting for the batched lung-field step
    prep: Prepared | None = None  # the image ready for the model (engine.ai.pipeline.prepare)
    meta_row: dict | None = None
    error: str = ""


class BatchJob(Iterator[BatchRow]):
    """The rows of a batch, lazily: iterate to run it. ``files`` and ``total`` are known
    before the first row; ``close()`` stops the work (so does a set ``cancel``)."""

    def __init__(self, files: list[Path], rows: Iterator[BatchRow], skipped: list[Path] | None = None) -> None:
        self.files = files
        self.total = len(files)
        self.skipped = list(skipped or [])  # files whose names are not image names (not analysed)
        self.resumed_indices: frozenset[int] = frozenset()  # rows read back from a journal, not run now
        self._rows = rows
        self.run_options: dict[str, object] = {}  # what the report's sidecar records beyond the CLI's options
        self.interrupted_note = ""  # what a Ctrl+C keeps (a distributed run's journal), for the CLI to print

    def __iter__(self) -> BatchJob:
        return self

    def __next__(self) -> BatchRow:
        return next(self._rows)

    def close(self) -> None:
        close = getattr(self._rows, "close", None)
        if close is not None:
            close()

    def report_written(self) -> None:
        """Called once the report is on disk (a distributed job then drops its journal)."""


def analyze_folder(
    folder: str | os.PathLike[str],
    classifier: Classifier,
    *,
    batch_size: int = 16,
    workers: int | None = None,
    cancel: Cancel = None,
    progress: Progress = None,
    keep_predictions: bool = False,
    max_pixels: int = DEFAULT_MAX_PIXELS,
    files: list[Path] | None = None,
    exclude: tuple[Path, ...] = (),
    lanes: int | None = None,
) -> BatchJob:
    """Analyse every file under ``folder``; yields one ``BatchRow`` per file, in order.

    The folder is checked at once (``FolderError`` if missing, unreadable or empty); the
    returned ``BatchJob`` iterator does the work. ``cancel`` (an Event or a callable) is checked
    between rows and while waiting for decoders: once it is set no further row comes
    out. ``progress(done, total)`` is called before each row is yielded. With
    ``keep_predictions=False`` (the default) rows carry no ``Prediction`` and no pixel
    data is kept, so memory stays flat over large folders. ``files`` overrides the
    folder listing (paths under ``folder``); ``exclude`` drops paths from the listing
    (the CLI's own report, when it is written inside the folder). Files whose names are
    not image names are not analysed; the job lists them in ``skipped``. ``lanes``: chunks
    analysed at once (default ``lanes_for(classifier)``: one per core its onnxruntime threads
    leave free)."""
    if batch_size < 1:
        raise ValueError(f"batch_size must be at least 1, got {batch_size}")
    if lanes is not None and lanes < 1:
        raise ValueError(f"lanes must be at least 1, got {lanes}")
    root = _check_folder(folder)
    skipped: list[Path] = []
    if files is None:
        files, skipped = list_folder(root, exclude)
    elif not files:
        raise FolderError(f"no files to analyse in {printable(str(root))}.")
    files = list(files)
    return BatchJob(files, _run(root, files, classifier, batch_size, workers or default_workers(),
                                lanes or lanes_for(classifier), cancel, progress, keep_predictions, max_pixels), skipped)


def _decode(index: int, path: Path, max_pixels: int) -> _Decoded:
    """Load one file (in a decode thread). The steps before the model run on the inference
    thread, a chunk at a time (``_prepare_chunk``), so the lung model runs batched."""
    try:
        if path.is_symlink() and path.is_dir():  # listed by _scan, never followed
            return _Decoded(index, path, error=printable(
                f"{path.name}: is a link to a folder ({link_target(path)}); links to folders are not followed, "
                "so its files were not analysed. Analyse the linked folder itself."))
        if path.is_dir() and _readable_dir(path):  # a list file naming a folder
            return _Decoded(index, path, error=printable(
                f"{path.name}: is a folder, not an image file, so it was not analysed. A list file names image "
                "files, one per line; to analyse a folder, pass it without '@'."))
        if path.is_dir():  # a sub-folder that could not be listed
            return _Decoded(index, path, error=printable(
                f"{path.name}: this sub-folder cannot be read (permission denied); its files were not analysed. "
                "Ask for read access to it."))
        image = load_image(path, max_pixels=max_pixels, tags=False)  # tag rows are for the viewer only
        m = image.meta
        meta_row = {"width": m.width, "height": m.height, "modality": m.modality, "view_position": m.view_position,
                    "format": m.format, "identifiers": m.identifiers}
        return _Decoded(index, path, image=image, meta_row=meta_row)
    except BaseException as e:  # noqa: BLE001 - every failure of one file becomes its error row
        if is_fatal(e):
            raise
        return _Decoded(index, path, error=error_text(e, path))


def _readable_dir(path: Path) -> bool:
    try:
        os.scandir(path).close()
    except OSError:
        return False
    return True


def _prepare_chunk(chunk: list[_Decoded], classifier: Classifier) -> None:
    """The per-image steps before the model for a chunk of decoded files: the lung field in
    one batched run, then ``engine.ai.pipeline.prepare`` for each. A failure is that file's error
    (the batched lung run falls back to one run per file, so only the bad file errs)."""
    todo = [d for d in chunk if d.image is not None]
    if not todo:
        return
    try:
        fields = lung_fields([d.image for d in todo], classifier)  # type: ignore[misc]
    except BaseException as e:  # noqa: BLE001
        if is_fatal(e):
            raise
        fields = [COMPUTE] * len(todo)  # each file runs its own lung-field step
    for d, lungs in zip(todo, fields, strict=True):
        try:
            d.prep = prepare(d.image, classifier, lungs)  # type: ignore[arg-type]
        except BaseException as e:  # noqa: BLE001 - every failure of one file becomes its error row
            if is_fatal(e):
                raise
            d.error = error_text(e, d.path)
        d.image = None


def _rel(root: Path, path: Path) -> str:
    try:
        return printable(path.relative_to(root).as_posix())
    except ValueError:
        return printable(str(path))


def _row_for(d: _Decoded, out: Prediction | str, root: Path, total: int, labels: tuple[str, ...],
             keep: bool) -> BatchRow:
    base = {"index": d.index, "total": total, "path": str(d.path), "rel_path": _rel(root, d.path)}
    if isinstance(out, str):
        return BatchRow(**base, status="error", error=out)
    mr = d.meta_row or {}
    sc = out.scope
    return BatchRow(
        **base, status="ok" if sc.in_scope else OUT_OF_SCOPE, label=out.call, flags=out.flags,
        probs={lab: float(p) for lab, p in zip(labels, out.probs, strict=True)},
        scope=sc.label, scope_reason=sc.reason, ood_score=sc.ood_score,
        prediction=out if keep else None, **mr,
    )


def _conclude_one(d: _Decoded, o: object, i: int, classifier: Classifier) -> Prediction | str:
    try:
        return conclude(d.prep, classifier, o.logits[i], o.probs[i], o.cam[i], ood_of(o, i),  # type: ignore[arg-type, attr-defined]
                        view_of(o, i))
    except BaseException as e:  # noqa: BLE001
        if is_fatal(e):
            raise
        return error_text(e, d.path)


def _infer(items: list[_Decoded], classifier: Classifier) -> list[Prediction | str]:
    """Batched inference, then each row concluded; if a batch fails, retry one by one so
    only the bad file errs."""
    if len(items) > 1:
        try:
            o = classifier.run(np.stack([d.prep.x for d in items]))  # type: ignore[union-attr]
        except Exception:  # noqa: BLE001, S110 - isolate the failing image below
            pass
        else:
            return [_conclude_one(d, o, i, classifier) for i, d in enumerate(items)]
    results: list[Prediction | str] = []
    for d in items:
        try:
            o = classifier.run(d.prep.x[None])  # type: ignore[union-attr]
        except Exception as e:  # noqa: BLE001
            results.append(printable(f"{d.path.name}: the model failed on this image ({type(e).__name__}: {e})."))
        else:
            results.append(_conclude_one(d, o, 0, classifier))
    return results


def _finish_chunk(chunk: list[_Decoded], root: Path, total: int, classifier: Classifier, keep: bool) -> list[BatchRow]:
    """The rows of one chunk of decoded files: lung fields batched, ``prepare`` per file, the model
    batched, ``conclude`` per row. The one per-chunk step of every driver (``_run``, ``analyze_files``)."""
    _prepare_chunk(chunk, classifier)
    good = [d for d in chunk if d.prep is not None]
    results: dict[int, Prediction | str] = {}
    if good:
        outs = _infer(good, classifier)
        results = {d.index: o for d, o in zip(good, outs, strict=True)}
    rows = []
    for d in chunk:
        rows.append(_row_for(d, results.get(d.index, d.error), root, total, classifier.labels, keep))
        d.prep = None
    return rows


def analyze_files(
    root: str | os.PathLike[str],
    paths: Sequence[str | os.PathLike[str]],
    classifier: Classifier,
    *,
    indices: Sequence[int] | None = None,
    total: int | None = None,
    batch_size: int = 16,
    max_pixels: int = DEFAULT_MAX_PIXELS,
    keep_predictions: bool = False,
) -> list[BatchRow]:
    """The per-chunk function: the rows of ``paths``, in their order, by the same steps as
    ``analyze_folder`` (decode, lung fields batched, ``prepare``, the model batched by
    ``batch_size``, ``conclude``). ``indices`` are the files' positions in the whole listing
    (default 0..n-1) and ``total`` its length, so rows computed anywhere (a Dask worker, a
    resumed run) slot into one report. A chunk that starts at a multiple of ``batch_size`` of
    the listing gives rows bit-identical to ``analyze_folder``'s (same model batches). It runs
    in the calling thread (a Dask worker process has one). A bad file becomes its error row."""
    if batch_size < 1:
        raise ValueError(f"batch_size must be at least 1, got {batch_size}")
    base = Path(root)
    files = [Path(p) for p in paths]
    where = list(range(len(files))) if indices is None else [int(i) for i in indices]
    if len(where) != len(files):
        raise ValueError(f"{len(where)} indices for {len(files)} paths")
    n = len(files) if total is None else total
    rows: list[BatchRow] = []
    for s in range(0, len(files), batch_size):
        part = zip(where[s:s + batch_size], files[s:s + batch_size], strict=True)
        rows += _finish_chunk([_decode(i, p, max_pixels) for i, p in part], base, n, classifier, keep_predictions)
    return rows


def _run(root: Path, files: list[Path], classifier: Classifier, batch_size: int, workers: int, lanes: int,
         cancel: Cancel, progress: Progress, keep: bool, max_pixels: int) -> Iterator[BatchRow]:
    """Hands chunks of ``batch_size`` files to ``lanes`` lane threads, ``lanes + 1`` chunks in flight
    (their files' decodes submitted with them, so the decoders run a chunk ahead), and yields each
    chunk's rows in file order. Decoded images held at most: ``(lanes + 1) x batch_size``."""
    total = len(files)
    decoders = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="radlens-decode")
    lane_pool = ThreadPoolExecutor(max_workers=lanes, thread_name_prefix="radlens-lane")
    chunks: deque[tuple[list[Future[_Decoded]], Future[list[BatchRow]]]] = deque()
    next_start = 0

    def lane(decodes: list[Future[_Decoded]]) -> list[BatchRow]:
        return _finish_chunk([f.result() for f in decodes], root, total, classifier, keep)

    def fill() -> None:
        nonlocal next_start
        while next_start < total and len(chunks) <= lanes:
            stop = min(total, next_start + batch_size)
            decodes = [decoders.submit(_decode, i, files[i], max_pixels) for i in range(next_start, stop)]
            chunks.append((decodes, lane_pool.submit(lane, decodes)))
            next_start = stop

    def wait(fut: Future[list[BatchRow]]) -> list[BatchRow] | None:
        while True:
            if is_cancelled(cancel):
                return None
            try:
                return fut.result(timeout=0.05)
            except FutureTimeout:
                continue

    try:
        fill()
        while chunks:
            rows = wait(chunks[0][1])
            if rows is None:
                return
            chunks.popleft()
            fill()  # the next chunk starts before this one's rows are handed out
            for row in rows:
                if is_cancelled(cancel):
                    return
                if progress is not None:
                    progress(row.index + 1, total)
                yield row
    finally:
        for decodes, fut in chunks:
            fut.cancel()
            for d in decodes:
                d.cancel()
        lane_pool.shutdown(wait=False, cancel_futures=True)
        decoders.shutdown(wait=False, cancel_futures=True)
