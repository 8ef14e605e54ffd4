"""``radlens-batch --dicomweb URL (--study UID | --query KEY=VALUE ...)``: the PACS side of the CLI.

``engine.batch.cli`` calls three things: ``add_arguments`` (the options), ``check_args`` (a message
for a bad combination) and ``fetch`` (retrieve into the cache; returns a ``DicomwebSource`` that
gives ``engine.batch.analyze_folder`` its folder and files). With ``--store-results`` the source
also turns each analysed DICOM image into an SR and a secondary capture (``engine.results.dicom_results``)
while the batch runs, and ``store_results`` sends them with STOW-RS once the report is written.
Failures raise ``PacsCliError`` with the message and the exit status the CLI returns.
"""

from __future__ import annotations

import argparse
import getpass
import os
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import urlparse

from ..ai.card import DISCLAIMER
from ..io.fileio import printable
from .errors import PacsError
from .servers import AUTH_KINDS, ServerConfig, default_cache_dir
from .summaries import check_uid

if TYPE_CHECKING:  # the network modules load only for --dicomweb, so a folder batch starts as fast as before
    from .dicomweb import PacsClient

SECRET_ENV = "RADLENS_PACS_SECRET"
EXIT_SOME_FAILED, EXIT_NOTHING_RAN, EXIT_STORE_FAILED, EXIT_INTERRUPTED = 1, 2, 4, 130
#: --query keys (case-insensitive) and the ``PacsClient.search_studies`` argument each sets
QUERY_KEYS = {"patientid": "patient_id", "patient_id": "patient_id", "patientname": "patient_name",
              "patient_name": "patient_name", "studydate": "study_date", "date": "study_date",
              "date_from": "date_from", "date_to": "date_to", "modality": "modality",
              "modalitiesinstudy": "modality", "accessionnumber": "accession", "accession": "accession"}


class PacsCliError(Exception):
    """A message for the user and the exit status to return."""

    def __init__(self, message: str, exit_code: int = EXIT_NOTHING_RAN) -> None:
        super().__init__(message)
        self.exit_code = exit_code


def add_arguments(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("PACS (DICOMweb; instead of FOLDER)")
    g.add_argument("--dicomweb", metavar="URL", help="DICOMweb root of a PACS (e.g. http://pacs:8042/dicom-web): "
                   "retrieve the studies chosen by --study or --query into the cache and analyse them")
    g.add_argument("--study", metavar="UID", action="append", default=[], help="Study Instance UID (repeatable)")
    g.add_argument("--query", metavar="KEY=VALUE", action="append", default=[],
                   help="select studies by PatientID, PatientName, StudyDate (YYYYMMDD or YYYYMMDD-YYYYMMDD), "
                        "Modality or AccessionNumber (repeatable; all must match)")
    g.add_argument("--limit", type=int, default=100, metavar="N", help="at most N studies from --query (default 100)")
    g.add_argument("--store-results", action="store_true",
                   help="send an SR and a secondary capture of each analysed DICOM image back (STOW-RS)")
    g.add_argument("--auth", choices=AUTH_KINDS, default="none", help="authentication (default: none)")
    g.add_argument("--user", default="", metavar="NAME", help="user name for --auth basic")
    g.add_argument("--cache", metavar="DIR", help=f"cache for retrieved studies (default: {default_cache_dir()})")
    g.add_argument("--timeout", type=float, default=30.0, metavar="S", help="network timeout in seconds (default 30)")
    g.add_argument("--no-verify-tls", action="store_true", help="do not verify the server's TLS certificate "
                   "(only on a trusted network)")


def check_args(args: argparse.Namespace) -> str | None:
    """What is wrong with the combination of FOLDER and the PACS options, or None."""
    if args.dicomweb is None:
        used = [o for o, v in (("--study", args.study), ("--query", args.query),
                               ("--store-results", args.store_results)) if v]
        if used:
            return f"{', '.join(used)} need(s) --dicomweb URL."
        return None if args.folder else "give a FOLDER to analyse, or --dicomweb URL with --study or --query."
    if args.folder:
        return "give either a FOLDER or --dicomweb URL, not both."
    if bool(args.study) == bool(args.query):
        return "with --dicomweb, give --study UID or --query KEY=VALUE (one of them)."
    if args.auth == "basic" and not args.user:
        return "--auth basic needs --user NAME."
    if args.limit < 1:
        return f"--limit must be at least 1, got {args.limit}."
    return None


def parse_query(items: list[str]) -> dict[str, str]:
    """--query KEY=VALUE items as ``search_studies`` keyword arguments."""
    out: dict[str, str] = {}
    for item in items:
        key, sep, value = item.partition("=")
        name = QUERY_KEYS.get(key.strip().lower())
        if not sep or not value.strip() or name is None:
            raise PacsCliError(f"--query {item!r}: use KEY=VALUE with KEY one of PatientID, PatientName, StudyDate, "
                               "Modality, AccessionNumber (e.g. --query PatientID=12345).")
        if name == "study_date":
            start, _, end = value.strip().partition("-")
            out["date_from"], out["date_to"] = start, (end if _ else start)
        else:
            out[name] = value.strip()
    return out


def _secret(server: ServerConfig) -> str | None:
    if server.auth == "none":
        return None
    from . import credentials

    secret = os.environ.get(SECRET_ENV) or credentials.get_secret(server)
    if secret:
        return secret
    what = "password" if server.auth == "basic" else "access token"
    if not sys.stdin or not sys.stdin.isatty():
        raise PacsCliError(f"{printable(server.url)} needs a {what}: set {SECRET_ENV}, store it in the keyring "
                           "(the RadLens viewer's PACS settings do that), or run in a terminal to be asked.")
    try:
        secret = getpass.getpass(f"{what.capitalize()} for {printable(server.username or server.url)}: ")
    except (EOFError, KeyboardInterrupt):
        raise PacsCliError("no secret entered; nothing was retrieved.", EXIT_INTERRUPTED) from None
    credentials.set_secret(server, secret, persist=False)  # asked once per run
    return secret


@dataclass
class DicomwebSource:
    """Retrieved studies, and what the CLI needs to analyse them and store the results."""

    client: PacsClient
    cache_dir: Path
    studies: list[str]
    files: list[Path] = field(default_factory=list)
    not_images: list[Path] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)
    seconds: float = 0.0
    bytes: int = 0
    list_file: Path | None = None

    def run_info(self) -> dict[str, object]:
        """What the report's sidecar JSON records about the source."""
        return {"dicomweb": printable(self.client.server.url), "studies": self.studies,
                "retrieve_failures": [printable(f) for f in self.failures], "retrieve_seconds": round(self.seconds, 3),
                "retrieve_bytes": self.bytes, "not_images_skipped": len(self.not_images)}

    def write_list(self) -> Path:
        """The retrieved images as a list file (``radlens-batch @LIST``) in the cache root, so
        report paths read ``<StudyInstanceUID>/<SOPInstanceUID>.dcm``."""
        path = self.cache_dir / f"radlens-batch-{time.strftime('%Y%m%d-%H%M%S')}-{os.getpid()}.list"
        lines = [f"# {DISCLAIMER}. Retrieved from {printable(self.client.server.url)}: {' '.join(self.studies)}"]
        lines += [str(p.relative_to(self.cache_dir)) for p in self.files]
        tmp = path.with_name(f".{path.name}.tmp")
        tmp.write_text("\n".join(lines) + "\n", encoding="utf-8")
        os.replace(tmp, path)
        self.list_file = path
        return path

    def finish(self, results: list[Path] | None) -> int:
        """After the report: store ``results`` (the SR and SC files of this run) with STOW-RS
        when asked; print what happened. Returns 0, ``EXIT_SOME_FAILED`` (a study could not be
        fully retrieved) or ``EXIT_STORE_FAILED`` (results were not all stored)."""
        code = EXIT_SOME_FAILED if self.failures else 0
        if self.failures:
            print(f"{len(self.failures)} study(ies) could not be fully retrieved (see above); the report covers what "
                  "arrived.")
        if results is None:
            return code
        if not results:
            print("No DICOM results to store: no DICOM image was analysed.")
            return code
        import pydicom  # here: a folder of PNG and JPEG files never needs it

        stored = failed = 0
        start = time.perf_counter()
        for i in range(0, len(results), 16):
            try:
                res = self.client.store([pydicom.dcmread(p) for p in results[i:i + 16]])
            except PacsError as e:
                print(f"radlens-batch: error: storing results: {e} {stored} were stored before this; the results stay "
                      f"in {printable(str(results[0].parent))}.", file=sys.stderr)
                return EXIT_STORE_FAILED
            except OSError as e:
                print(f"radlens-batch: error: a result file cannot be read again ({e.strerror or e}); {stored} were "
                      "stored before this.", file=sys.stderr)
                return EXIT_STORE_FAILED
            stored, failed = stored + res.stored, failed + res.failed
            if res.failed:
                print(f"radlens-batch: error: {res.message}", file=sys.stderr)
        print(f"Stored {stored} of {len(results)} result instance(s) (SR and secondary capture) on "
              f"{self.client.name} in {time.perf_counter() - start:.1f} s" + (f"; {failed} refused" if failed else "")
              + f". Copies: {printable(str(results[0].parent))}")
        return EXIT_STORE_FAILED if stored < len(results) else code


def _is_analysable(path: Path) -> bool:
    """An image RadLens analyses: has pixel data, and is not one of RadLens's own results."""
    try:
        import pydicom  # here: a folder of PNG and JPEG files never needs it (0.2 s at every start)

        ds = pydicom.dcmread(path, force=True, defer_size=4096)  # large values (the pixels) are not read
    except Exception:  # noqa: BLE001 - let the batch report an unreadable file as an error row
        return True
    return "PixelData" in ds and str(ds.get("Manufacturer", "")) != "RadLens" and ds.get("Modality") != "SR"


def fetch(args: argparse.Namespace) -> DicomwebSource:
    """Retrieve what --study/--query select into the cache (progress on stderr), then point the
    batch at the retrieved images: ``args.folder`` becomes an ``@LIST`` of them, and with
    --store-results and no --dicom-results, ``args.dicom_results`` a folder in the cache. Raises
    ``PacsCliError`` when nothing could be retrieved; a study that fails while others arrive is
    reported and listed in ``failures`` (``finish`` then returns 1)."""
    url = args.dicomweb.strip()
    if "@" in urlparse(url).netloc:  # the URL would be echoed in messages and the report: never a password
        raise PacsCliError("--dicomweb: the URL holds a user name or password (before '@'); remove it and use "
                           f"--auth basic --user NAME, with the password in {SECRET_ENV} or typed when asked.")
    server = ServerConfig(name=urlparse(url).hostname or url, url=url, auth=args.auth, username=args.user,
                          verify_tls=not args.no_verify_tls, timeout_s=args.timeout)
    problem = server.problem()
    if problem:
        raise PacsCliError(f"--dicomweb: {problem}")
    if args.no_verify_tls and url.lower().startswith("https"):
        print(f"radlens-batch: warning: the TLS certificate of {printable(url)} is not verified (--no-verify-tls).",
              file=sys.stderr)
    cache = Path(args.cache).expanduser() if args.cache else default_cache_dir()
    from .dicomweb import PacsClient

    try:
        client = PacsClient(server, _secret(server))
        if args.study:
            studies = [check_uid(u, "--study") for u in args.study]
        else:
            found = client.search_studies(**parse_query(args.query), limit=args.limit)
            if not found:
                raise PacsCliError(f"no study on {printable(url)} matches {' '.join(args.query)}. Widen the query.")
            studies = [s.study_uid for s in found]
            print(f"{len(found)} study(ies) match {' '.join(args.query)}" +
                  (f" (the first {args.limit}; raise --limit for more)" if len(found) >= args.limit else ""))
    except PacsError as e:
        raise PacsCliError(str(e)) from None
    source = DicomwebSource(client, cache, studies)
    from tqdm import tqdm

    cancel = threading.Event()
    start = time.perf_counter()
    for uid in studies:
        with tqdm(total=None, unit="inst", desc=f"Retrieving {uid[-24:]}", disable=args.no_progress,
                  file=sys.stderr, dynamic_ncols=True) as bar:
            def progress(done: int, total: int | None, bar: tqdm = bar) -> None:
                bar.total = total
                bar.n = done
                bar.refresh()
            try:
                result = client.retrieve(uid, cache, progress=progress, cancel=cancel)
            except KeyboardInterrupt:
                raise PacsCliError("Interrupted: nothing was analysed; files already retrieved stay in the cache.",
                                   EXIT_INTERRUPTED) from None
            except PacsError as e:
                source.failures.append(f"{uid}: {e}")
                print(f"radlens-batch: error: {printable(str(e))}", file=sys.stderr)
                result = e.result
                if result is None:
                    continue
            else:
                if not result.complete:
                    source.failures.append(f"{uid}: {result.message}")
                    print(f"radlens-batch: warning: {printable(result.message)}", file=sys.stderr)
        source.bytes += result.bytes
        for path in result.paths:
            (source.files if _is_analysable(path) else source.not_images).append(path)
    source.seconds = time.perf_counter() - start
    if not source.files:
        why = "every retrieve failed" if len(source.failures) == len(studies) else "none of it is an image to analyse"
        raise PacsCliError(f"nothing to analyse from {printable(url)}: {why}.")
    source.files.sort()
    mb = source.bytes / 1e6
    print(f"Retrieved {len(source.files) + len(source.not_images)} instance(s) of {len(studies)} study(ies) "
          f"({mb:.1f} MB in {source.seconds:.1f} s, {mb / max(source.seconds, 1e-9):.1f} MB/s) into "
          f"{printable(str(cache))}" + (f"; {len(source.not_images)} are not images or are RadLens results "
                                        "(not analysed)" if source.not_images else "") + ".")
    try:
        args.folder = f"@{source.write_list()}"
    except OSError as e:
        raise PacsCliError(f"cannot write to the cache {printable(str(cache))} ({e.strerror or e}).") from None
    if args.store_results and not getattr(args, "dicom_results", None):
        args.dicom_results = str(cache / "radlens-results" / time.strftime("%Y%m%d-%H%M%S"))
    return source
