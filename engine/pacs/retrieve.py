"""WADO-RS retrieval into the cache: instances stream in one at a time, each is checked (a
valid SOP Instance UID, the study asked for, whole pixel data) and written atomically; progress
is reported after each and cancellation checked between them. A failure or cancel part-way keeps
what was written, lists it, and leaves no partial file."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from pydicom.dataset import Dataset

from ..io.fileio import printable
from .cache import write_instance
from .errors import PacsError

Progress = Callable[[int, "int | None"], None] | None


@dataclass(frozen=True)
class RetrieveResult:
    """What a retrieve put in the cache. ``complete`` is False when fewer instances arrived than
    the server's search listed (or, on ``PacsError.result``, when it stopped part-way)."""

    folder: Path
    paths: tuple[Path, ...]
    complete: bool
    message: str
    expected: int | None = None
    bytes: int = 0
    seconds: float = 0.0

    @property
    def fetched(self) -> int:
        return len(self.paths)


def pixel_data_problem(ds: Dataset) -> str | None:
    """Why ``ds``'s pixel data is incomplete (a truncated transfer), or None."""
    if "PixelData" not in ds:
        return None
    try:
        data = ds.PixelData
    except Exception as e:  # noqa: BLE001 - pydicom could not even read the element
        return f"its pixel data cannot be read ({e})"
    meta = getattr(ds, "file_meta", None)
    ts = meta.get("TransferSyntaxUID") if meta is not None else None
    if ts is not None and ts.is_compressed:
        from pydicom.encaps import generate_fragments

        try:
            frags = list(generate_fragments(data))
        except Exception as e:  # noqa: BLE001 - broken encapsulation is a truncated or corrupt transfer
            return f"its compressed pixel data is cut short ({e})"
        return None if frags else "its compressed pixel data holds no fragment"
    try:
        rows, cols = int(ds.Rows), int(ds.Columns)
        spp, bits = int(ds.get("SamplesPerPixel", 1)), int(ds.BitsAllocated)
        frames = int(ds.get("NumberOfFrames", 1) or 1)
    except (AttributeError, TypeError, ValueError):
        return None  # the loader will say what is missing; the transfer itself was whole
    expected = (rows * cols * spp * frames * bits + 7) // 8
    return f"its pixel data is cut short ({len(data)} of {expected} bytes)" if len(data) < expected else None


def stream_to_cache(
    instances: Iterator[Dataset],
    folder: Path,
    study_uid: str,
    *,
    what: str,
    source: str,
    expected: int | None,
    progress: Progress,
    cancel: threading.Event | None,
    translate: Callable[[BaseException], PacsError],
) -> RetrieveResult:
    """Drain ``instances`` into ``folder``. ``translate`` turns a transport failure into a
    ``PacsError``; raised after the first instance it becomes a ``partial`` one carrying the
    ``RetrieveResult`` of what was written."""
    paths: list[Path] = []
    size = 0
    start = time.perf_counter()

    def result(complete: bool, message: str) -> RetrieveResult:
        return RetrieveResult(folder, tuple(paths), complete, message, expected, size,
                              time.perf_counter() - start)

    def so_far() -> str:
        of = f" of {expected}" if expected is not None else ""
        where = f" into {printable(str(folder))}" if paths else ""
        return f"{len(paths)}{of} instance(s) of {what} were fetched{where} and kept"

    if progress:
        progress(0, expected)
    try:
        for ds in instances:
            problem = pixel_data_problem(ds)
            uid = str(ds.get("StudyInstanceUID", "")).strip()
            if problem is None and uid and uid != study_uid:
                problem = f"it belongs to another study ({printable(uid)})"
            if problem is not None:
                sop = printable(str(ds.get("SOPInstanceUID", "?")))
                raise PacsError("partial" if "cut short" in problem else "malformed",
                                f"{source} sent instance {sop} of {what}, but {problem}.")
            try:
                path = write_instance(ds, folder, getattr(ds, "radlens_raw_part", None))
            except OSError as e:
                raise PacsError("invalid", f"Cannot write to the cache folder {printable(str(folder))} "
                                           f"({e.strerror or e}). Free disk space or choose another cache "
                                           "folder.") from None
            paths.append(path)
            size += path.stat().st_size
            if progress:
                progress(len(paths), expected)
            if cancel is not None and cancel.is_set():
                close = getattr(instances, "close", None)
                if close:
                    close()
                raise PacsError("cancelled", "Retrieve cancelled.")
    except PacsError as e:
        if e.kind in ("cancelled", "partial") or paths:
            kind = e.kind if e.kind in ("cancelled", "partial") else "partial"
            text = (f"Retrieve cancelled: {so_far()}. Retrieve again to fetch the rest." if e.kind == "cancelled"
                    else f"{e} {so_far()}; retrieve again for the rest.")
            raise PacsError(kind, text, status=e.status, result=result(False, text)) from None
        raise
    except Exception as e:  # noqa: BLE001 - transport and parse failures become PacsErrors
        err = translate(e)
        if not paths and err.kind != "partial":
            raise err from None
        text = f"{err} {so_far()}; retrieve again for the rest."
        raise PacsError("partial", text, status=err.status, result=result(False, text)) from None
    if not paths:
        raise PacsError("not_found", f"{source} sent no instance of {what}. Check the UID, or that the series "
                                     "holds images.")
    elapsed = time.perf_counter() - start
    mb = size / 1e6
    speed = f", {mb / max(elapsed, 1e-9):.1f} MB/s" if elapsed > 0 else ""
    if expected is not None and len(paths) < expected:
        text = (f"Only {len(paths)} of the {expected} instance(s) the search lists for {what} arrived "
                f"({mb:.1f} MB); they are in {printable(str(folder))}. Retrieve again, or ask the PACS "
                "administrator why the rest is missing.")
        return result(False, text)
    text = (f"Fetched {len(paths)} instance(s) of {what} from {source} into {printable(str(folder))} "
            f"({mb:.1f} MB in {elapsed:.1f} s{speed}).")
    return result(True, text)
