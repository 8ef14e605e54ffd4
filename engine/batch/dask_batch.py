"""A batch on a Dask cluster: the same per-chunk function (``engine.batch.analyze_files``) on
every worker, the same rows, in the same order, as a local run.

The files are split into tasks of ``chunk`` files (aligned to the listing, so a worker runs the
same model batches as a local run); a sliding window of tasks is in flight. Each worker process
loads the model once (``_worker_classifier``, a per-process cache) and returns its SHA-256 with
every result; a result from another model stops the run (``ModelMismatchError``). Results stream
back with ``distributed.as_completed``; each finished task is journaled (``engine.batch.journal``)
before its rows count, and rows are yielded in listing order. A task lost with a killed worker
is retried by Dask (``distributed.scheduler.allowed-failures``); when Dask gives up on a task
(``KilledWorker``) its files run one per task, and a file that still kills its worker becomes an
error row. Cancel (an Event or callable), ``close()`` or Ctrl+C cancel the futures and close the
client (and a ``local:N`` cluster); the journal keeps what is done for ``resume``.
"""

from __future__ import annotations

import contextlib
import os
import socket
import time
import uuid
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from ..ai.jobs import Cancel, error_text, is_cancelled
from ..ai.model import Classifier
from ..errors import ModelError
from ..io.fileio import DEFAULT_MAX_PIXELS, printable
from ..io.filelist import Source
from ..io.image import Identifiers
from .dask_cluster import LOCAL_PREFIX, ClusterError, connect
from .generator import BatchJob, BatchRow, _rel, analyze_files
from .journal import Journal, listing_sha256


class ModelMismatchError(ClusterError):
    """A worker analysed with a model other than the client's (SHA-256 differs)."""


@dataclass(frozen=True)
class ChunkResult:
    """What a worker returns for one task: the rows and the model that made them."""

    rows: list[BatchRow]
    model_sha256: str
    model_path: str
    worker: str  # host:pid
    provider: str
    seconds: float


_models: dict[tuple[str, int, int, str, int], Classifier] = {}


def _worker_classifier(model_path: str, device: str, threads: int) -> Classifier:
    """The model of this worker process, loaded once (reloaded only if the file changes)."""
    p = Path(model_path)
    try:
        st = p.stat()
    except OSError as e:
        raise ModelError(f"model file not found on worker {socket.gethostname()}: {model_path} "
                         f"({e.strerror or e}).") from None
    key = (str(p), st.st_size, st.st_mtime_ns, device, threads)
    c = _models.get(key)
    if c is None:
        c = _models[key] = Classifier(p, device=device, threads=threads)
    return c


def analyze_chunk(model_path: str, device: str, threads: int, root: str, paths: list[str], indices: list[int],
                  total: int, batch_size: int, max_pixels: int, identifiers: bool = False) -> ChunkResult:
    """One task, on a worker: ``analyze_files`` with this process's model. Patient and study
    identifiers leave the worker only when the report asks for them."""
    t0 = time.perf_counter()
    c = _worker_classifier(model_path, device, threads)
    rows = analyze_files(root, paths, c, indices=indices, total=total, batch_size=batch_size, max_pixels=max_pixels)
    if not identifiers:
        rows = [replace(r, identifiers=Identifiers()) for r in rows]
    return ChunkResult(rows, c.sha256, str(c.path), f"{socket.gethostname()}:{os.getpid()}", c.provider,
                       time.perf_counter() - t0)


@dataclass
class _Task:
    indices: list[int]
    attempt: int = 0
    priority: int = 0
    alone: bool = False  # a file whose worker died: run with nothing else in flight, to tell it from bystanders


class DaskJob(BatchJob):
    """The rows of a distributed batch, lazily, in listing order (iterate to run it)."""

    def __init__(self, source: Source, classifier: Classifier, *, scheduler: str, chunk: int, batch_size: int,
                 journal: str | os.PathLike[str] | None, resume: bool, worker_model: str | None, device: str,
                 threads: int, max_pixels: int, allowed_failures: int | None, cancel: Cancel,
                 identifiers: bool = False, max_ahead: int = 100_000) -> None:
        if chunk < 1:
            raise ValueError(f"chunk must be at least 1, got {chunk}")
        self.source, self.classifier = source, classifier
        self.chunk, self.batch_size = chunk, max(1, min(batch_size, chunk))
        self.worker_model = str(Path(worker_model or classifier.path).absolute())
        self.device, self.threads, self.max_pixels, self.cancel = device, threads, max_pixels, cancel
        self.identifiers = identifiers
        self.max_ahead, self._next_out = max(1, max_ahead), 0
        files = list(source.files)
        header = {"model_sha256": classifier.sha256, "listing_sha256": listing_sha256(files), "files": len(files),
                  "batch_size": self.batch_size, "identifiers": identifiers}
        fresh = journal is not None and not (resume and Path(journal).exists())
        self.journal = Journal.open(journal, header, resume) if journal is not None else None
        done = dict(self.journal.done) if self.journal is not None else {}
        self.resumed = len(done)
        self._fresh = fresh
        try:
            self.client, self.cluster = connect(scheduler, allowed_failures)
        except BaseException:
            if self.journal is not None:  # nothing ran: a journal made just now would only block the next run
                self.journal.remove() if fresh else self.journal.close()
            raise
        super().__init__(files, self._drive(done), source.skipped)
        self.resumed_indices = frozenset(done)
        info = self.client.scheduler_info()
        self.stats: dict[str, Any] = {
            "scheduler": scheduler if scheduler.startswith(LOCAL_PREFIX) else printable(scheduler),
            "workers_at_start": len(info.get("workers", {})), "chunk": chunk, "worker_batch_size": self.batch_size,
            "model_threads": threads, "worker_model": printable(self.worker_model),
            "allowed_failures": self._allowed_failures(),
            "journal": printable(str(self.journal.path)) if self.journal is not None else "",
            "resumed_files": self.resumed, "analysed_here": 0, "split_tasks": 0, "files_that_killed_workers": 0,
            "worker_processes": 0, "providers": [],
        }
        self.run_options["dask"] = self.stats
        self.processed = 0  # files analysed in this session (not read back from the journal)
        self._running: dict[Any, _Task] = {}
        self._quarantine: deque[_Task] = deque()
        self._deaths: dict[int, int] = {}  # file index -> attempts that ended with its worker dead
        self._workers: set[str] = set()
        self._closed = False
        self._window_size, self._window_at = 4, -1e9
        self._set_note()

    def _allowed_failures(self) -> int | None:
        """Worker deaths a task survives on this scheduler (Dask's allowed-failures)."""
        try:
            return int(self.client.run_on_scheduler(lambda dask_scheduler: dask_scheduler.allowed_failures))
        except Exception:  # noqa: BLE001 - only recorded in the sidecar
            return None

    def _set_note(self) -> None:
        if self.journal is not None:
            n = self.resumed + self.processed
            self.interrupted_note = (f"The journal {printable(str(self.journal.path))} keeps the {n} file(s) finished "
                                     "so far: run the same command with --resume to analyse only the rest.")

    def _chunks(self, todo: list[int]) -> Iterator[_Task]:
        """Tasks of up to ``chunk`` files, aligned to the listing (index // chunk)."""
        group: list[int] = []
        for i in todo:
            if group and (i // self.chunk != group[0] // self.chunk):
                yield _Task(group)
                group = []
            group.append(i)
        if group:
            yield _Task(group)

    def _window(self) -> int:
        """Tasks in flight: two per worker thread, plus two (the count refreshed every 5 s: workers come and go)."""
        now = time.monotonic()
        if now - self._window_at > 5:
            threads = sum(self.client.nthreads().values()) or 1
            self._window_size, self._window_at = 2 * threads + 2, now
        return self._window_size

    def _submit(self, task: _Task, ac: Any) -> None:
        idx = task.indices
        self._seq += 1  # a key is never reused: a released key submitted again could come back cancelled
        key = f"radlens-{self._run_id}-{self._seq}-{idx[0]}-{len(idx)}"
        # absolute paths: a worker's working folder is not the client's (another machine, another cwd)
        fut = self.client.submit(analyze_chunk, self.worker_model, self.device, self.threads,
                                 str(self.source.root.absolute()), [str(self.files[i].absolute()) for i in idx],
                                 idx, self.total, self.batch_size,
                                 self.max_pixels, self.identifiers, key=key, pure=False, priority=task.priority)
        self._running[fut] = task
        ac.add(fut)

    def _error_row(self, i: int, message: str) -> BatchRow:
        p = self.files[i]
        return BatchRow(index=i, total=self.total, path=str(p), rel_path=_rel(self.source.root, p), status="error",
                        error=printable(message))

    def _collect(self, fut: Any, task: _Task, todo: deque[_Task]) -> list[BatchRow]:
        """The rows of a finished future, or [] when its files were queued again."""
        from distributed import KilledWorker

        if fut.status == "finished":
            res: ChunkResult = fut.result()
            if res.model_sha256 != self.classifier.sha256:
                raise ModelMismatchError(
                    f"worker {res.worker} analysed with the model {printable(res.model_path)} (SHA-256 "
                    f"{res.model_sha256[:12]}...), but this run's model is {printable(str(self.classifier.path))} "
                    f"(SHA-256 {self.classifier.sha256[:12]}...). The run was stopped so that one report never "
                    "mixes model versions. Put the same model file on every worker (or pass --worker-model with "
                    "its path on the workers) and run again with --resume.")
            self._workers.add(res.worker)
            self.stats["worker_processes"] = len(self._workers)
            if res.provider not in self.stats["providers"]:
                self.stats["providers"].append(res.provider)
            return res.rows
        exc = fut.exception() if fut.status == "error" else None
        if isinstance(exc, ModelError):
            raise ClusterError(f"a worker could not load the model: {exc} Every worker must see the model file; "
                               "pass --worker-model PATH with its path on the workers.")
        if fut.status not in ("error", "finished") and task.attempt < 3:  # lost with its worker, or cancelled: again
            todo.appendleft(_Task(task.indices, task.attempt + 1, task.priority, task.alone))
            return []
        if isinstance(exc, KilledWorker):
            for i in task.indices:
                self._deaths[i] = self._deaths.get(i, 0) + exc.allowed_failures + 1
        if len(task.indices) > 1:  # Dask gave up on the task: its files one per task, first in line
            self.stats["split_tasks"] += 1
            for i in reversed(task.indices):
                todo.appendleft(_Task([i], 0, 10))
            return []
        i = task.indices[0]
        if isinstance(exc, KilledWorker) and not task.alone:  # it may have been queued beside the culprit
            self._quarantine.append(_Task([i], 0, 10, alone=True))
            return []
        if isinstance(exc, KilledWorker):
            self.stats["files_that_killed_workers"] += 1
            attempts = self._deaths[i]
            return [self._error_row(i, f"{self.files[i].name}: the worker process died while analysing this file "
                                       f"({attempts} attempts), so it was not analysed. The file may crash its "
                                       "decoder; check it on its own.")]
        if exc is None:
            exc = RuntimeError(f"the cluster lost this file's result {task.attempt + 1} times ({fut.status})")
        return [self._error_row(i, error_text(exc, self.files[i]))]

    def _refill(self, todo: deque[Any], ac: Any) -> None:
        """Keep a window of tasks in flight; a quarantined file runs alone once the others drained."""
        if self._quarantine or any(t.alone for t in self._running.values()):
            if not self._running and self._quarantine:
                self._submit(self._quarantine.popleft(), ac)
            return
        window = self._window()
        ahead = max(self.max_ahead, window * self.chunk)  # never fewer tasks in flight than the window
        while todo and len(self._running) < window:
            if self._running and todo[0].indices[0] >= self._next_out + ahead:
                break  # rows leave in listing order: files far ahead of the first unfinished one would wait in memory
            self._submit(todo.popleft(), ac)

    def _drive(self, done: dict[int, BatchRow]) -> Iterator[BatchRow]:
        from distributed import as_completed

        self._run_id, self._seq = uuid.uuid4().hex[:8], 0
        buffer = dict(done)
        todo: deque[_Task] = deque(self._chunks([i for i in range(self.total) if i not in done]))
        ac = as_completed()
        next_out = 0
        try:
            self._refill(todo, ac)
            while next_out < self.total:
                while next_out in buffer:
                    if is_cancelled(self.cancel):
                        return
                    yield buffer.pop(next_out)
                    next_out += 1
                if next_out >= self.total:
                    break
                self._next_out = next_out
                self._refill(todo, ac)
                if not self._running:  # never: every file is done, queued or in flight
                    raise RuntimeError(f"distributed batch: no task in flight for file {next_out}")
                while not ac.has_ready():
                    if is_cancelled(self.cancel):
                        return
                    time.sleep(0.02)
                for fut in ac.next_batch(block=False):
                    task = self._running.pop(fut)
                    rows = self._collect(fut, task, todo)
                    fut.release()
                    if rows:
                        if self.journal is not None:
                            self.journal.append(rows)
                        self.processed += len(rows)
                        self.stats["analysed_here"] = self.processed
                        self._set_note()
                        buffer.update((r.index, r) for r in rows)
                self._refill(todo, ac)
        finally:
            self._shutdown()

    def _shutdown(self) -> None:
        if self._closed:
            return
        self._closed = True
        with contextlib.suppress(Exception):
            if self._running:
                self.client.cancel(list(self._running), force=True)
        self._running.clear()
        if self.journal is not None:
            self.journal.close()
        with contextlib.suppress(Exception):
            self.client.close()
        if self.cluster is not None:
            with contextlib.suppress(Exception):
                self.cluster.close()

    def close(self) -> None:
        super().close()
        self._shutdown()

    def report_written(self) -> None:
        if self.journal is not None:
            self.journal.remove()

    def abandon(self) -> None:
        """Stop a job refused before it ran (the cluster closed); a journal made for it is removed,
        so it does not block the next run (a resumed journal is kept)."""
        self.close()
        if self.journal is not None and self._fresh and self.processed == 0:
            self.journal.remove()


def analyze_on_dask(source: Source, classifier: Classifier, scheduler: str, *, chunk: int = 32,
                    batch_size: int = 16, journal: str | os.PathLike[str] | None = None, resume: bool = False,
                    worker_model: str | os.PathLike[str] | None = None, device: str = "auto", threads: int = 1,
                    max_pixels: int = DEFAULT_MAX_PIXELS, allowed_failures: int | None = None,
                    cancel: Cancel = None, identifiers: bool = False, max_ahead: int = 100_000) -> DaskJob:
    """A distributed batch over ``source`` (``engine.io.filelist``) on ``scheduler`` (an address, or
    ``local:N``). The journal is opened (``JournalError``) and the cluster reached (``ClusterError``)
    at once; iterate the job to run it. ``worker_model`` is the model's path as the workers see it
    (default: the client's); its SHA-256 must match ``classifier.sha256``. ``threads``: onnxruntime
    threads per worker process. ``allowed_failures`` sets Dask's retry budget for a ``local:N``
    cluster (a remote scheduler keeps its own configuration). Rows carry patient and study
    identifiers (and the journal keeps them) only with ``identifiers=True``. Rows leave in listing
    order, so finished rows wait on the client behind a slow file: at most ``max_ahead`` files (or a
    window of tasks, if more) past the first unfinished one are submitted (about 470 bytes a row:
    100,000 rows, some 50 MB)."""
    return DaskJob(source, classifier, scheduler=scheduler, chunk=chunk, batch_size=batch_size, journal=journal,
                   resume=resume, worker_model=None if worker_model is None else str(worker_model), device=device,
                   threads=threads, max_pixels=max_pixels, allowed_failures=allowed_failures, cancel=cancel,
                   identifiers=identifiers, max_ahead=max_ahead)
