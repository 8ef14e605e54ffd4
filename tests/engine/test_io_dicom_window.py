"""The DICOM display pipeline when a file's own window misses its pixel values (issue 21's JPEG 2000
16-bit quirk, in its general form)."""

from __future__ import annotations

from pathlib import Path

import numpy as np


def test_a_window_that_misses_the_pixels_gives_the_full_range_and_a_note(tmp_path: Path, dicom_dir: Path) -> None:
    """Issue 21's J2K quirk in its general form: a film whose values sit far from its own window (here
    stored + 32768, as a JPEG 2000 signedness mismatch gives) is shown at full range with a note, so the
    scope judges the film, not a white page; the header's window stays in the list."""
    import pydicom

    from engine import load_image
    from engine.ai.scope import header_and_pixels

    ds = pydicom.dcmread(dicom_dir / "CR-MONO1-10-chest.dcm", force=True)
    if "TransferSyntaxUID" not in ds.file_meta:
        ds.file_meta.TransferSyntaxUID = pydicom.uid.ImplicitVRLittleEndian
    arr = ds.pixel_array.astype(np.uint32)
    ds.PixelData = (arr - arr.min() + 32768).clip(0, 65535).astype(np.uint16).tobytes()
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 16, 15, 0
    ds.WindowCenter, ds.WindowWidth = 2725, 5310
    for tag in ("RescaleSlope", "RescaleIntercept", "VOILUTSequence", "ModalityLUTSequence"):
        if tag in ds:
            delattr(ds, tag)
    out = tmp_path / "offset.dcm"
    ds.save_as(out, enforce_file_format=True)
    im = load_image(out)
    assert im.meta.voi_source == "full_range"
    assert any("does not fit the pixel values" in n for n in im.meta.notes)
    assert [(w.center, w.width) for w in im.meta.windows] == [(2725.0, 5310.0)]
    assert 0.1 < float(im.pixels.mean()) < 0.9 and float(im.pixels.std()) > 0.05  # a film, not a white page
    assert header_and_pixels(im).kind != "blank"
