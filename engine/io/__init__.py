"""Files in, images out: reading files safely, listing folders, DICOM decoding and the display
pipeline, and ``load_image`` (a file to a ``LoadedImage``). Imports nothing of ``engine.ai``,
``engine.batch`` or ``engine.results``."""

from .fileio import (
    DEFAULT_MAX_PIXELS,
    MAX_FILE_BYTES,
    PNG_SIGNATURE,
    check_pixels,
    link_target,
    printable,
    read_bytes,
    sniff_format,
)
from .load import load_image

__all__ = [
    "DEFAULT_MAX_PIXELS", "MAX_FILE_BYTES", "PNG_SIGNATURE", "check_pixels", "link_target", "load_image",
    "printable", "read_bytes", "sniff_format",
]
