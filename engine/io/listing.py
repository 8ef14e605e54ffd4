"""Listing a study folder: which files a batch analyses (the engine's one image-name rule),
which it skips, and the sub-folders it could not read. Nothing here opens an image."""

from __future__ import annotations

import os
import stat
from collections.abc import Callable
from pathlib import Path

from ..errors import RadLensError
from .fileio import looks_like_image, printable

SKIPPED_NAMES = frozenset({"DICOMDIR", "Thumbs.db", "desktop.ini"})


class FolderError(RadLensError):
    """The folder to analyse is missing, unreadable or holds no files."""


def _scan(folder: Path, skipped: list[Path] | None = None) -> tuple[list[Path], list[Path]]:
    """Files under ``folder`` (recursive) and the entries that stand for folders whose
    files are not analysed: sub-folders that could not be listed, and links to folders
    (never followed: no loops, no file counted twice, nothing outside the folder).

    Only names the engine's one rule accepts (``fileio.looks_like_image``: image or DICOM
    extensions, none, or a numeric UID-style one) are listed; the others (reports, notes,
    this program's own CSV and JSON) go to ``skipped``.

    Only regular files (or links to them) are listed: a FIFO, socket or device is never
    an image and reading one could block or never end. A broken link is listed so that
    its row says it is broken."""
    files: list[Path] = []
    unreadable: list[Path] = []

    def walk(d: Path, top: bool) -> None:
        try:
            with os.scandir(d) as it:
                entries = list(it)
        except PermissionError:
            if top:
                raise FolderError(
                    f"{printable(str(d))}: permission denied. Ask for read access to the folder or copy it somewhere readable."
                ) from None
            unreadable.append(d)
            return
        except OSError as e:
            if top:
                raise FolderError(f"{printable(str(d))}: the folder cannot be read ({e.strerror or e}).") from None
            unreadable.append(d)
            return
        for entry in entries:
            if entry.name.startswith(".") or entry.name in SKIPPED_NAMES:
                continue
            path = Path(entry.path)
            try:
                if entry.is_dir(follow_symlinks=False):
                    walk(path, False)
                    continue
                if not looks_like_image(path):
                    if skipped is not None and (entry.is_file() or entry.is_symlink()):
                        skipped.append(path)
                    continue
                if entry.is_file(follow_symlinks=False):
                    files.append(path)
                    continue
                if not entry.is_symlink():
                    continue  # FIFO, socket, device
                mode = os.stat(path).st_mode  # where the link points
            except FileNotFoundError:  # a broken link (or a file removed while listing)
                if os.path.islink(path):
                    files.append(path)
                continue
            except OSError:
                files.append(path)  # reading it gives the reason in its row
                continue
            if stat.S_ISDIR(mode):
                unreadable.append(path)
            elif stat.S_ISREG(mode):
                files.append(path)

    walk(folder, True)
    return files, unreadable


def _sort_key(root: Path) -> Callable[[Path], tuple[str, ...]]:
    return lambda p: p.relative_to(root).parts


def _check_folder(folder: str | os.PathLike[str]) -> Path:
    root = Path(folder)
    if not root.exists():
        raise FolderError(f"folder not found: {printable(str(root))}. Check the path and try again.")
    if not root.is_dir():
        raise FolderError(f"{printable(str(root))} is a file, not a folder. Pass the folder that holds the images.")
    return root


def list_images(folder: str | os.PathLike[str]) -> list[Path]:
    """Every regular file under ``folder`` (recursive), sorted by relative path; hidden
    files, hidden folders, DICOMDIR index files, FIFOs, sockets, devices and links to
    folders are skipped. Non-image files and broken links are listed (a batch reports
    them as error rows). Raises ``FolderError`` for a missing, unreadable or empty folder."""
    root = _check_folder(folder)
    files, _ = _scan(root)
    if not files:
        raise FolderError(
            f"no image files in {printable(str(root))}. Choose a folder that holds PNG, JPEG or DICOM images."
        )
    return sorted(files, key=_sort_key(root))


def list_folder(folder: str | os.PathLike[str], exclude: tuple[Path, ...] = ()) -> tuple[list[Path], list[Path]]:
    """(files a batch of ``folder`` analyses, in its order; files skipped for their names).
    ``FolderError`` for a missing, unreadable or empty folder."""
    root = _check_folder(folder)
    skipped: list[Path] = []
    found, unreadable = _scan(root, skipped)
    if exclude:
        skip = {os.path.abspath(p) for p in exclude}
        found = [p for p in found if os.path.abspath(p) not in skip]
    if not found and not unreadable:
        raise FolderError(
            f"no image files in {printable(str(root))}"
            + (f" ({len(skipped)} other file(s) skipped)" if skipped else "")
            + ". Choose a folder that holds PNG, JPEG or DICOM images."
        )
    return sorted(found + unreadable, key=_sort_key(root)), skipped
