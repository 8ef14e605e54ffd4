"""What a batch analyses: a folder (listed by the engine's one rule) or a list file, one path per
line, for archives that are not one folder (``radlens-batch @LIST``)."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from .fileio import printable
from .listing import FolderError, list_folder

LIST_PREFIX = "@"


@dataclass(frozen=True)
class Source:
    """The files of a run, in report order, and the folder their report paths are relative to."""

    root: Path
    files: list[Path]
    skipped: list[Path] = field(default_factory=list)  # folder files whose names are not image names
    list_file: Path | None = None
    duplicates: int = 0  # lines of a list file naming a file already listed (analysed once)

    def describe(self) -> dict[str, object]:
        """What the report's sidecar records about the input."""
        if self.list_file is None:
            return {"folder": printable(str(self.root.resolve()))}
        return {"folder": printable(str(self.root.resolve())), "list_file": printable(str(self.list_file.resolve())),
                "list_duplicates_dropped": self.duplicates}


def is_list(source: str) -> bool:
    """``@LIST`` names a list file, unless a folder of that very name exists."""
    return source.startswith(LIST_PREFIX) and not Path(source).is_dir()


def read_list(list_file: str | os.PathLike[str]) -> Source:
    """The files a list file names: one path per line (UTF-8), relative ones relative to the list's
    folder; blank lines and lines starting with '#' are ignored; a file named twice is analysed once
    (the first time). Paths that do not exist are kept: their rows say so."""
    path = Path(list_file)
    try:
        text = path.read_bytes().decode("utf-8", errors="surrogateescape")
    except FileNotFoundError:
        raise FolderError(f"list file not found: {printable(str(path))}. Pass @LIST with a text file of paths, "
                          "one per line.") from None
    except IsADirectoryError:
        raise FolderError(f"{printable(str(path))} is a folder; pass it without '@' to analyse the folder.") from None
    except OSError as e:
        raise FolderError(f"the list file {printable(str(path))} cannot be read ({e.strerror or e}).") from None
    root = path.parent
    files: list[Path] = []
    seen: set[str] = set()
    duplicates = 0
    for line in text.splitlines():
        name = line.strip()
        if not name or name.startswith("#"):
            continue
        p = Path(name)
        p = p if p.is_absolute() else root / p
        key = os.path.normpath(os.path.abspath(p))
        if key in seen:
            duplicates += 1
            continue
        seen.add(key)
        files.append(p)
    if not files:
        raise FolderError(f"the list file {printable(str(path))} names no files. Put one image path per line.")
    return Source(root=root, files=files, list_file=path, duplicates=duplicates)


def open_source(source: str, exclude: tuple[Path, ...] = ()) -> Source:
    """A folder (recursive, the engine's listing) or ``@LIST`` (a list file)."""
    if is_list(source):
        return read_list(source[len(LIST_PREFIX):])
    root = Path(source)
    files, skipped = list_folder(root, exclude)
    return Source(root=root, files=files, skipped=skipped)
