"""``radlens-batch``: analyse a folder of radiographs and write a CSV report.

Exit status (also in ``--help`` and the README):
  0   every file was processed (analysed, or found out of scope); the report is written
  1   the report is written, but some files could not be analysed (their rows say why)
  2   nothing could run: bad arguments, no usable model, a missing, unreadable or empty folder
  3   the report could not be written
  130 interrupted (Ctrl+C); no report is written
"""

from __future__ import annotations

import argparse
import os
import sys
import threading
import time
import warnings
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, TextIO

from ..ai.card import DISCLAIMER
from ..ai.jobs import lane_threads
from ..ai.model import DEVICES, Classifier, default_model_path
from ..errors import ModelError, RadLensError
from ..io.filelist import Source, open_source
from .batch_cli import add_cluster_arguments, check_cluster_args, open_job
from .dask_batch import ClusterError
from .generator import BatchJob, BatchRow, printable
from .report import Tally, sidecar_path, write_report

if TYPE_CHECKING:
    from tqdm import tqdm

EXIT_OK, EXIT_SOME_FAILED, EXIT_NOTHING_RAN, EXIT_REPORT_FAILED, EXIT_INTERRUPTED = 0, 1, 2, 3, 130
EXIT_FAILED = EXIT_REPORT_FAILED  # the name before exit status 1 meant "some files failed"

EXIT_CODES = f"""exit status:
  {EXIT_OK}    every file was processed (analysed, or found out of scope); the report is written
  {EXIT_SOME_FAILED}    the report is written, but some files could not be analysed (see its 'error' column)
  {EXIT_NOTHING_RAN}    nothing could run: bad arguments, no usable model, missing/unreadable/empty folder
  {EXIT_REPORT_FAILED}    the report could not be written
  4    --dicomweb --store-results: the report is written, but results could not all be stored on the PACS
  {EXIT_INTERRUPTED}  interrupted; no report is written
With --dicomweb, 1 also means a study could not be fully retrieved, and 2 that nothing could be retrieved
(server down, timeout, refused credentials, unknown study: the message says which).
"""


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="radlens-batch",
        description=f"Analyse every PNG, JPEG and DICOM file under FOLDER and write a CSV report "
                    f"(header on the first line) with a provenance JSON beside it. {DISCLAIMER}.",
        epilog=EXIT_CODES, formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("folder", metavar="FOLDER", nargs="?", help="folder to analyse (searched recursively), or @LIST: a text file "
                   "with one image path per line")
    p.add_argument("-o", "--output", required=True, metavar="REPORT.csv", help="CSV report to write")
    p.add_argument("--model", metavar="PATH", help=f"RadLens .onnx model (default: {default_model_path()})")
    p.add_argument("--device", choices=DEVICES, default="auto", help="execution device (default: auto = GPU if usable)")
    p.add_argument("--include-identifiers", action="store_true",
                   help="add patient and study identifiers (patient ID, name, study UID, ...) to the report")
    p.add_argument("--analyse-out-of-scope", "--analyze-out-of-scope", action="store_true", dest="analyse_out_of_scope",
                   help="also write the probabilities of images that are out of scope (not frontal chest "
                        "radiographs), marked as not valid; they never get a call")
    p.add_argument("--batch-size", type=int, default=16, metavar="N", help="images per inference batch (default: 16)")
    p.add_argument("--workers", type=int, default=0, metavar="N", help="decoding threads (default: one per core, max 4)")
    p.add_argument("--no-progress", action="store_true", help="do not show the progress bar")
    p.add_argument("--dicom-results", metavar="DIR", help="also write each analysed DICOM image's results as DICOM "
                   "(a Structured Report and a heatmap secondary capture, in the image's study) to DIR")
    add_cluster_arguments(p)
    from ..pacs.cli_source import add_arguments as add_pacs_arguments  # --dicomweb URL --study/--query

    add_pacs_arguments(p)
    return p


def _err(msg: str) -> None:
    print(f"radlens-batch: error: {printable(msg)}", file=sys.stderr)


def progress_bar(job: BatchJob, disable: bool = False, file: TextIO | None = None) -> tqdm:
    """The progress bar of a run. With ``--resume`` it starts at the files the journal already
    holds, so its rate and ETA measure only this run's work (``advance`` skips their rows)."""
    from tqdm import tqdm

    return tqdm(total=job.total, initial=len(job.resumed_indices), unit="img", desc="Analysing", disable=disable,
                dynamic_ncols=True, file=file if file is not None else sys.stderr)


def advance(bar: tqdm, job: BatchJob, row: BatchRow) -> None:
    """Count ``row`` on the bar unless it was read back from the journal (already in ``initial``)."""
    if row.index not in job.resumed_indices:
        bar.update(1)


def main(argv: Sequence[str] | None = None) -> int:
    """``radlens-batch``. Ctrl+C at any moment (loading the model, starting a Dask cluster,
    retrieving from a PACS, analysing) exits 130 with one line, never a traceback."""
    try:
        return _main(argv)
    except KeyboardInterrupt:
        print("\nInterrupted before the analysis started: nothing ran and no report was written.", file=sys.stderr)
        return EXIT_INTERRUPTED


def _main(argv: Sequence[str] | None) -> int:
    args = build_parser().parse_args(argv)
    from ..pacs import cli_source as pacs_cli

    if (problem := pacs_cli.check_args(args)) is not None:
        _err(problem)
        return EXIT_NOTHING_RAN
    warnings.filterwarnings("ignore", category=UserWarning, module="pydicom")  # odd tags are not our user's problem
    # Every argument is checked before the model loads (seconds) and the analysis runs (hours):
    # a typo is reported at once, never after the work is done.
    out = Path(args.output)
    if (problem := check_args(args, out)) is not None:
        _err(problem)
        return EXIT_NOTHING_RAN
    source: Source | None = None
    if not args.dicomweb:  # with --dicomweb the files are known once retrieved
        try:
            source = open_source(args.folder, exclude=(out,))
        except RadLensError as e:
            _err(str(e))
            return EXIT_NOTHING_RAN
    model_path = Path(args.model) if args.model else default_model_path()
    if not model_path.is_file():
        _err(f"no model found at {printable(str(model_path))}; pass --model PATH to a RadLens .onnx model.")
        return EXIT_NOTHING_RAN
    try:
        # a local batch runs chunks side by side, each on its share of the cores (engine.ai.jobs.lane_threads)
        classifier = Classifier(model_path, device=args.device, threads=0 if args.dask else lane_threads())
    except ModelError as e:
        _err(f"{e} Pass --model PATH to a RadLens .onnx model.")
        return EXIT_NOTHING_RAN
    pacs = None
    if args.dicomweb:  # retrieve into the cache; args.folder becomes an @LIST of the retrieved images
        try:
            pacs = pacs_cli.fetch(args)
        except pacs_cli.PacsCliError as e:
            _err(str(e))
            return e.exit_code
    dicom_results = _dicom_results(args.dicom_results, classifier)
    if dicom_results is False:
        return EXIT_NOTHING_RAN
    card = classifier.card
    print(f"RadLens batch - {DISCLAIMER}.")
    print(printable(f"Model: {card.name} {card.version} ({model_path.name}, sha256 {classifier.sha256[:12]}...)"))
    if card.parent:
        print(printable(f"Adapted from: {card.parent['name']} {card.parent['version']} (sha256 "
                        f"{card.parent['sha256'][:12]}...), site '{(card.site_adaptation or {}).get('site', {}).get('name', '')}'"))
    print(f"Device: {classifier.device_label} [{classifier.provider}]")
    if classifier.provider_note:
        print(f"  {classifier.provider_note}")
    cancel = threading.Event()
    try:
        rows: BatchJob = open_job(args, classifier, cancel, out, source)  # a folder or @LIST; local or --dask
    except RadLensError as e:
        _err(str(e))
        return EXIT_NOTHING_RAN


    tally = Tally()  # the report's own counts: each row is counted once, as it is written
    total = rows.total
    start = time.perf_counter()

    def tracked(it: Iterator[BatchRow]) -> Iterator[BatchRow]:
        with progress_bar(rows, disable=args.no_progress) as bar:
            for row in it:
                advance(bar, rows, row)
                yield row

    run = {"folder": printable(str(Path(args.folder).resolve())), "device": args.device,
           "provider": classifier.provider, "provider_note": classifier.provider_note,
           "batch_size": args.batch_size, "model_file": printable(str(model_path)),
           "skipped_non_image_names": len(rows.skipped)}
    run.update(rows.run_options)
    if pacs is not None:
        run.update(pacs.run_info())
    try:
        # tallied after the SR/SC are written, when the rows no longer hold their predictions' pixels
        report_rows = tracked(dicom_results.rows(rows, run)) if dicom_results else tracked(rows)
        written = write_report(out, report_rows, classifier, include_identifiers=args.include_identifiers, run=run,
                               out_of_scope_probs=args.analyse_out_of_scope, tally=tally)
    except KeyboardInterrupt:
        cancel.set()
        rows.close()
        print("\nInterrupted: no report was written.", file=sys.stderr)
        if rows.interrupted_note:
            print(rows.interrupted_note, file=sys.stderr)
        return EXIT_INTERRUPTED
    except ClusterError as e:  # a distributed run stopped: no scheduler, a worker without the model, two models
        _err(str(e))
        if rows.interrupted_note:
            print(rows.interrupted_note, file=sys.stderr)
        return EXIT_NOTHING_RAN
    except RadLensError as e:
        _err(str(e))
        return EXIT_REPORT_FAILED
    except OSError as e:
        _err(f"the report could not be written to {printable(str(out))} ({e.strerror or e}). Choose a writable location.")
        return EXIT_REPORT_FAILED
    rows.report_written()
    elapsed = time.perf_counter() - start

    ok = tally.ok
    resumed = len(rows.resumed_indices)  # --resume: read back from the journal, not analysed in this run
    rate = f"{(written - resumed) / max(elapsed, 1e-9):.1f} images/s" + (f", {resumed} from the journal" if resumed else "")
    # "analysed" means what the report's JSON counts as analysed: a file that got a call
    print(f"\nProcessed {written} of {total} file(s) in {elapsed:.1f} s ({rate}): "
          f"{ok} analysed, {tally.out_of_scope} out of scope, {tally.errors} error(s).")
    if rows.skipped:
        print(f"{len(rows.skipped)} file(s) skipped: their names are not image names (e.g. "
              f"{printable(rows.skipped[0].name)}).")
    if ok:
        print("Calls per class (the top class), and flags (at or above the class's operating point):")
        width = max(len(lab) for lab in card.labels)
        for lab in card.labels:
            op = card.operating_points.get(lab)
            flag = f"   flagged {tally.flags[lab]:>6}" + (f" (operating point {op:.3f})" if op is not None else "")
            print(printable(f"  {lab:<{width}}  {tally.calls[lab]:>6}  ({100.0 * tally.calls[lab] / ok:5.1f}%){flag}"))
    if tally.out_of_scope:
        print(f"{tally.out_of_scope} file(s) out of scope: not frontal chest radiographs, so no call was made "
              "(see the 'scope_reason' column):")
        for row in tally.out_of_scope_examples:
            print(printable(f"  {row.rel_path}: {row.scope_reason}"))
        if tally.out_of_scope > len(tally.out_of_scope_examples):
            print(f"  ... and {tally.out_of_scope - len(tally.out_of_scope_examples)} more.")
    if tally.errors:
        print(f"{tally.errors} file(s) could not be analysed (see the 'error' column of the report):")
        for row in tally.error_examples:
            name = row.rel_path.rsplit("/", 1)[-1]
            message = row.error[len(name) + 2:] if row.error.startswith(f"{name}: ") else row.error
            print(f"  {row.rel_path}: {message}")
        if tally.errors > len(tally.error_examples):
            print(f"  ... and {tally.errors - len(tally.error_examples)} more.")
    print(f"Report: {printable(str(out))}" + (" (with patient/study identifiers)" if args.include_identifiers else ""))
    print(f"Provenance: {printable(str(sidecar_path(out)))}")
    if dicom_results:
        print(dicom_results.describe())
    if pacs is not None and (pacs_code := pacs.finish(dicom_results.written if args.store_results and dicom_results
                                                      else None)):
        print(f"{DISCLAIMER}.")
        return pacs_code
    print(f"{DISCLAIMER}.")
    return EXIT_SOME_FAILED if tally.errors or (dicom_results and dicom_results.failed) else EXIT_OK


def check_args(args: argparse.Namespace, out: Path) -> str | None:
    """What is wrong with the arguments, or None; only checks that need no model and start nothing
    (the input folder or @LIST is opened next, also before the model loads)."""
    if args.batch_size < 1:
        return f"--batch-size must be at least 1, got {args.batch_size}."
    if args.workers < 0:
        return f"--workers must be 0 (one per core) or more, got {args.workers}."
    if (problem := check_cluster_args(args)) is not None:
        return problem
    if out.is_dir():
        return (f"-o names a folder: {printable(str(out))}. Give the report's file name, e.g. "
                f"{printable(str(out / 'report.csv'))}.")
    if not out.parent.is_dir():
        return (f"the folder for the report does not exist: {printable(str(out.parent))}. Create it or choose "
                "another -o path.")
    if not os.access(out.parent, os.W_OK | os.X_OK) or (out.exists() and not os.access(out, os.W_OK)):
        return f"the report cannot be written to {printable(str(out))} (permission denied). Choose a writable -o path."
    if args.dicom_results:
        from ..results.dicom_results import check_folder

        return check_folder(Path(args.dicom_results))
    return None


def _dicom_results(folder: str | None, classifier: Classifier):  # noqa: ANN202 - BatchResults | None | False
    """``--dicom-results DIR``: the writer (its folder created), None without the option, False
    (after the message) when the folder cannot be created."""
    if not folder:
        return None
    from .dicom_out import BatchResults

    writer = BatchResults(Path(folder), classifier)
    try:
        writer.prepare()
    except RadLensError as e:
        _err(str(e))
        return False
    return writer


if __name__ == "__main__":
    raise SystemExit(main())
