"""``radlens-batch``'s input and run options beyond one folder on one machine: a list file
(``@LIST``), a Dask cluster (``--dask``, ``--chunk``, ``--resume``, ``--worker-model``,
``--retries``) and Parquet partitions (``--parquet``). ``engine.batch.cli`` calls ``open_job`` in
place of ``analyze_folder``; the job it returns is driven exactly like a local one."""

from __future__ import annotations

import argparse
from pathlib import Path

from ..ai.model import Classifier
from ..io.fileio import printable
from ..io.filelist import Source, open_source
from .dask_batch import LOCAL_PREFIX, ClusterError, DaskJob, analyze_on_dask
from .generator import BatchJob, Cancel, analyze_folder
from .journal import journal_path
from .parquet_out import ParquetParts
from .report import ModelInfo

DEFAULT_CHUNK = 32


def add_cluster_arguments(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("distributed batch on Dask (docs/scale.md)")
    g.add_argument("--dask", metavar="ADDRESS", help="run on a Dask cluster: a scheduler address (tcp://host:8786) "
                   "whose workers see the files and the model, or local:N for N worker processes on this machine")
    g.add_argument("--chunk", type=int, default=DEFAULT_CHUNK, metavar="K",
                   help=f"files per Dask task (default: {DEFAULT_CHUNK}; a multiple of --batch-size gives rows "
                        "bit-identical to a local run)")
    g.add_argument("--resume", action="store_true",
                   help="finish an interrupted --dask run from its journal (REPORT.csv.journal): only the files it "
                        "has not analysed run")
    g.add_argument("--worker-model", metavar="PATH",
                   help="the model file as the workers see it (default: the --model path); its SHA-256 must match")
    g.add_argument("--retries", type=int, metavar="N",
                   help="with --dask local:N: worker deaths a task survives before its files run one by one and a "
                        "file that still kills its worker becomes an error row (default: Dask's, 3)")
    g.add_argument("--parquet", metavar="DIR", help="also write the report as Parquet partitions in DIR")


def check_cluster_args(args: argparse.Namespace) -> str | None:
    """What is wrong with the distributed-run options, or None. Needs no model and starts nothing:
    ``radlens-batch`` calls it before the model loads."""
    if args.chunk < 1:
        return f"--chunk must be at least 1, got {args.chunk}."
    if args.retries is not None and args.retries < 0:
        return f"--retries must be 0 or more, got {args.retries}."
    if (args.resume or args.worker_model or args.retries is not None) and not args.dask:
        return "--resume, --worker-model and --retries belong to a distributed run; add --dask ADDRESS or --dask local:N."
    if args.dask and args.dask.startswith(LOCAL_PREFIX):
        try:
            n = int(args.dask[len(LOCAL_PREFIX):])
        except ValueError:
            n = 0
        if n < 1:  # as engine.batch.dask_batch.connect says, before any cluster starts
            return f"--dask {printable(args.dask)}: use local:N with N >= 1 worker processes, e.g. local:4."
    return None


def open_job(args: argparse.Namespace, classifier: Classifier, cancel: Cancel, out: Path,
             source: Source | None = None) -> BatchJob:
    """The job ``radlens-batch`` drives: a local batch, or a distributed one with ``--dask``.
    ``source``: the input already opened (``open_source``), else FOLDER or @LIST is opened here.
    Raises a ``RadLensError`` (nothing ran) for a bad source, option, journal or cluster."""
    if (problem := check_cluster_args(args)) is not None:
        raise ClusterError(problem)
    if source is None:
        source = open_source(args.folder, exclude=(out,))
    job: BatchJob
    if args.dask:
        job = analyze_on_dask(source, classifier, args.dask, chunk=args.chunk, batch_size=args.batch_size,
                              journal=journal_path(out), resume=args.resume, worker_model=args.worker_model,
                              device=args.device, allowed_failures=args.retries, cancel=cancel,
                              identifiers=args.include_identifiers)
        st = job.run_options["dask"]
        print(printable(f"Dask: {st['scheduler']}, {st['workers_at_start']} worker(s); tasks of {args.chunk} files; "
                        f"a task survives {st['allowed_failures']} worker death(s); journal {st['journal']}"))
        if isinstance(job, DaskJob) and job.resumed:
            print(f"Resuming: {job.resumed} of {job.total} file(s) already analysed; {job.total - job.resumed} to go.")
    else:
        job = analyze_folder(source.root, classifier, batch_size=args.batch_size, workers=args.workers or None,
                             cancel=cancel, files=source.files,
                             keep_predictions=bool(getattr(args, "dicom_results", None)))  # SR/SC need them
        job.skipped = source.skipped
    job.run_options.update(source.describe())
    if args.parquet:
        try:
            parts = ParquetParts(args.parquet, ModelInfo.from_classifier(classifier), args.include_identifiers,
                                 args.analyse_out_of_scope)
        except BaseException:  # nothing ran: stop the cluster, drop the journal made for this run
            job.abandon() if isinstance(job, DaskJob) else job.close()
            raise
        job._rows = parts.tee(job._rows)
        job.run_options["parquet"] = printable(str(Path(args.parquet).resolve()))
    return job
