"""Write a file atomically through a writer that takes a path (Qt's QImage.save and
QPdfWriter write by file name): a temporary file beside the target, then a rename, so a
failed or interrupted export never leaves a half-written file under the user's name."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable
from pathlib import Path

from engine.io.fileio import create_temp


class ExportError(Exception):
    """An export could not be written; the message says why and what to do."""


def atomic_write(path: str, write: Callable[[str], object], what: str = "file") -> None:
    """Call ``write(tmp)`` and rename ``tmp`` to ``path``. ``write`` returning False, or
    raising OSError, is an ExportError; the temporary file is removed on any failure."""
    target = os.path.abspath(path)
    folder = os.path.dirname(target)
    if os.path.isdir(target):
        raise ExportError(f"Cannot write the {what}: {target} is a folder. Choose a file name.")
    if not os.path.isdir(folder):
        raise ExportError(f"Cannot write the {what}: the folder {folder} does not exist. Choose another location.")
    try:
        fd, tmp = create_temp(Path(target))  # 0o666 less the umask: the writer keeps the mode
        os.close(fd)
    except OSError as e:
        raise ExportError(f"Cannot write the {what} in {folder} ({e.strerror or e}). Choose a writable folder.") from None
    try:
        ok = write(tmp)
        if ok is False or not os.path.getsize(tmp):
            raise ExportError(f"Cannot write the {what} to {target}: the file could not be written (disk full or "
                              "not writable?). Choose another location.")
        os.replace(tmp, target)
    except OSError as e:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise ExportError(f"Cannot write the {what} to {target} ({e.strerror or e}). Choose another location.") from None
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
