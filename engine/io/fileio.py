"""Reading files safely, and the rule for which files are images. Shared by the loaders
(``engine.io``, ``engine.io.dicom``), the batch listing and training; imports nothing else of
the engine but its errors, so no module needs a private name of another."""

from __future__ import annotations

import errno
import os
import secrets
import stat
import struct
from pathlib import Path

from ..errors import CorruptImageError, ImageLoadError, ImageTooLargeError

DEFAULT_MAX_PIXELS = 100_000_000  # 100 MP: ten times a large chest radiograph
MAX_FILE_BYTES = 2 * 2**30  # 2 GiB: far above any single radiograph, below exhausting memory

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"

# Which files are worth listing from a folder: image extensions, no extension, or a UID-style
# numeric one (DICOM files are often named by their UID). The content decides in the end
# (``sniff_format``): a listed file that is not an image becomes an error row, never a crash.
IMAGE_SUFFIXES = frozenset({".png", ".jpg", ".jpeg", ".jpe", ".dcm", ".dicom", ".dic", ".ima", ""})


def looks_like_image(path: str | os.PathLike[str]) -> bool:
    """True for a file name an image may have (the engine's one rule; content is sniffed later)."""
    suffix = Path(path).suffix.lower()
    return suffix in IMAGE_SUFFIXES or suffix[1:].isdigit()


def sniff_format(head: bytes) -> str | None:
    """Return "png", "jpeg", "dicom" or "dicom-raw" (no preamble) from the first bytes."""
    if head.startswith(PNG_SIGNATURE):
        return "png"
    if head.startswith(b"\xff\xd8\xff"):
        return "jpeg"
    if len(head) >= 132 and head[128:132] == b"DICM":
        return "dicom"
    if len(head) >= 8:
        group, element = struct.unpack("<HH", head[:4])
        # A dataset written without preamble starts with a low group (0002, 0008, ...)
        # and its first element number; both little- and big-endian groups seen.
        if group in (0x0002, 0x0008, 0x0800) and element < 0x0100:
            return "dicom-raw"
    return None


def _kind_of(mode: int) -> str:
    if stat.S_ISFIFO(mode):
        return "a named pipe (FIFO)"
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return "a device"
    if stat.S_ISSOCK(mode):
        return "a socket"
    return "not a regular file"


def _open_nonblocking(file: str, flags: int) -> int:
    # O_NONBLOCK: opening a FIFO with no writer returns at once instead of waiting forever;
    # it changes nothing for a regular file.
    return os.open(file, flags | getattr(os, "O_NONBLOCK", 0))


def read_bytes(path: Path, max_bytes: int | None = None) -> bytes:
    """The whole file, which must be a regular file of at most ``max_bytes`` bytes
    (default ``MAX_FILE_BYTES``). The size is checked on the open file, before reading."""
    limit = MAX_FILE_BYTES if max_bytes is None else max_bytes
    try:
        with open(path, "rb", opener=_open_nonblocking) as f:
            st = os.fstat(f.fileno())
            if stat.S_ISDIR(st.st_mode):
                raise IsADirectoryError(path)
            if not stat.S_ISREG(st.st_mode):
                raise ImageLoadError(
                    f"{path.name}: not a regular file ({_kind_of(st.st_mode)}), so it cannot hold an image. "
                    "Open an image file instead."
                )
            if st.st_size > limit:
                raise ImageTooLargeError(
                    f"{path.name}: the file is {st.st_size / 2**30:.1f} GiB, over the limit of "
                    f"{limit / 2**30:.1f} GiB for one image. Check that it is a single radiograph; "
                    "downsample or split it first."
                )
            data = f.read(limit + 1)
    except FileNotFoundError:
        if os.path.islink(path):
            raise ImageLoadError(
                f"{path.name}: is a link to a file that does not exist ({link_target(path)}). "
                "Fix or remove the link."
            ) from None
        raise ImageLoadError(f"{path.name}: file not found. Check the path and try again.") from None
    except IsADirectoryError:
        raise ImageLoadError(f"{path.name}: is a folder, not an image. Open it as a folder instead.") from None
    except PermissionError:
        raise ImageLoadError(
            f"{path.name}: permission denied. Ask for read access to the file or copy it somewhere readable."
        ) from None
    except OSError as e:
        raise ImageLoadError(f"{path.name}: cannot be read ({e.strerror or e}).") from None
    if len(data) > limit:  # the file grew while it was read
        raise ImageTooLargeError(
            f"{path.name}: the file is over the limit of {limit / 2**30:.1f} GiB for one image. "
            "Check that it is a single radiograph; downsample or split it first."
        )
    return data


def printable(text: str) -> str:
    """Make a file name from the file system safe to print and to write as UTF-8.

    Names that are not valid UTF-8 arrive as lone surrogates (``os.fsdecode``); they
    are shown as ``\\xNN`` escapes instead of crashing a print or a CSV write."""
    try:
        text.encode("utf-8")
        return text
    except UnicodeEncodeError:
        return text.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")


def link_target(path: Path) -> str:
    """Where a symbolic link points, printable."""
    try:
        return printable(os.readlink(path))
    except OSError:
        return "unknown target"


def check_pixels(name: str, width: int, height: int, frames: int, max_pixels: int) -> None:
    if width <= 0 or height <= 0:
        raise CorruptImageError(f"{name}: the header gives an empty image ({width}x{height}).")
    if width * height * max(frames, 1) > max_pixels:
        raise ImageTooLargeError(
            f"{name}: {width}x{height}{f'x{frames} frames' if frames > 1 else ''} pixels exceeds the "
            f"limit of {max_pixels:,} pixels (possible decompression bomb). Downsample the image first."
        )


def create_temp(target: Path, mode: int = 0o666) -> tuple[int, str]:
    """(fd, name) of a new temp file beside ``target`` (``.NAME.XXXXXXXX.tmp``), for writing it
    atomically (write, fsync, ``os.replace``). Created exclusively, never through a link, with
    ``mode`` less the process umask (the kernel applies it: no umask read, no race with other threads)."""
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0) | getattr(os, "O_NOFOLLOW", 0)
    for _ in range(100):
        tmp = str(target.parent / f".{target.name}.{secrets.token_hex(4)}.tmp")
        try:
            return os.open(tmp, flags, mode), tmp
        except FileExistsError:
            continue
    raise FileExistsError(errno.EEXIST, "no free temporary file name", str(target.parent))
