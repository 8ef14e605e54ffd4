"""DICOM decoding in a child process (the pylibjpeg decoders hold the GIL)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from desktop.core.decoder import Decoder, shared_decoder
from engine import UnsupportedImageError, load_image


def test_child_process_decode_matches_engine(dicom_dir: Path) -> None:
    dec = shared_decoder()
    path = str(dicom_dir / "RG1_J2KI.dcm")
    a, b = dec.load(path), load_image(path)
    assert dec._pool is not None and dec._worked  # it really went through the process pool
    assert np.array_equal(a.pixels, b.pixels) and np.array_equal(a.values, b.values)
    assert a.meta == b.meta


def test_engine_errors_cross_the_process_boundary(undecodable_dicom: Path, tmp_path: Path) -> None:
    dec = shared_decoder()
    with pytest.raises(UnsupportedImageError, match="unsupported compression"):
        dec.load(str(undecodable_dicom))
    with pytest.raises(Exception, match="empty"):
        empty = tmp_path / "empty.dcm"
        empty.write_bytes(b"")
        dec.load(str(empty))


def test_png_stays_in_thread(png_path: Path) -> None:
    dec = Decoder()
    img = dec.load(str(png_path))
    assert dec._pool is None and img.meta.format == "png"
