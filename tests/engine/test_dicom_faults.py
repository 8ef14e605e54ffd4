"""Damaged DICOM files: truncated files and malformed header values give the engine's
typed errors with a message naming the problem, never a raw Python exception."""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pydicom
import pytest
from pydicom.dataset import Dataset
from pydicom.uid import ImplicitVRLittleEndian

from engine.errors import CorruptImageError, UnsupportedImageError
from engine.io import load_image
from engine.io.dicom import read_dataset


def _cut(src: Path, dst: Path, n: int) -> Path:
    dst.write_bytes(src.read_bytes()[:n])
    return dst


def _pixel_tag_offset(path: Path) -> int:
    """Byte offset of the (7FE0,0010) Pixel Data element (little endian tag bytes)."""
    data = path.read_bytes()
    pos = data.rfind(b"\xe0\x7f\x10\x00")
    assert pos > 0
    return pos


@pytest.mark.parametrize("name", ["RG1_J2KI.dcm", "RG3_JPLL.dcm", "CR-MONO1-10-chest.dcm", "nccid_nih_dx.dcm"])
@pytest.mark.parametrize("fraction", [0.5, 0.9])
def test_cut_inside_pixel_data_is_truncated_not_a_report(tmp_path: Path, dicom_dir: Path, name: str,
                                                         fraction: float) -> None:
    src = dicom_dir / name
    path = _cut(src, tmp_path / name, int(src.stat().st_size * fraction))
    with pytest.raises(CorruptImageError) as info:
        load_image(path)
    msg = str(info.value)
    assert msg.startswith(f"{name}:") and "truncated" in msg and "report" not in msg
    assert "Re-copy" in msg  # what to do next


@pytest.mark.parametrize("name", ["RG1_J2KI.dcm", "nccid_nih_dx.dcm"])
def test_cut_just_before_pixel_data_is_truncated(tmp_path: Path, dicom_dir: Path, name: str) -> None:
    src = dicom_dir / name
    path = _cut(src, tmp_path / name, _pixel_tag_offset(src))
    ds = pydicom.dcmread(path)
    assert "Rows" in ds and "PixelData" not in ds  # a whole header, no pixels
    with pytest.raises(CorruptImageError, match=r"truncated.*\d+x\d+ image"):
        load_image(path)


def test_cut_inside_the_header_of_an_image_is_truncated(tmp_path: Path, dicom_dir: Path) -> None:
    """Cut before Rows/Columns: the file meta still says it is a CR image."""
    src = dicom_dir / "RG1_J2KI.dcm"
    path = _cut(src, tmp_path / "head.dcm", 700)
    ds = pydicom.dcmread(path)
    assert "Rows" not in ds and "PixelData" not in ds
    with pytest.raises(CorruptImageError, match="truncated") as info:
        load_image(path)
    assert "Computed Radiography Image Storage" in str(info.value)


def test_structured_report_is_still_a_report(pydicom_file) -> None:
    with pytest.raises(UnsupportedImageError, match="holds no image .*report"):
        load_image(pydicom_file("test-SR.dcm"))


Edit = Callable[[Dataset], None]


def _bad_copy(src: Path, dst: Path, edit: Edit) -> Path:
    """``src`` saved as Implicit VR Little Endian after ``edit``: a value written with VR LO
    is read back with the dictionary VR (IS, DS, ...), as a damaged file would be."""
    ds, _ = read_dataset(src)
    ds.file_meta.TransferSyntaxUID = ImplicitVRLittleEndian
    edit(ds)
    ds.save_as(dst, enforce_file_format=True)
    return dst


def _raw(keyword: str, value: str | list[str]) -> Edit:
    return lambda ds: ds.add_new(keyword, "LO", value)


def _lut_item(descriptor: list[int] | None, data: list[int] | None) -> Dataset:
    item = Dataset()
    if descriptor is not None:
        item.LUTDescriptor = descriptor
    if data is not None:
        item.add_new("LUTData", "US", data)
    return item


def _seq(keyword: str, *items: Dataset) -> Edit:
    def edit(ds: Dataset) -> None:
        setattr(ds, keyword, list(items))

    return edit


def _both(*edits: Edit) -> Edit:
    def edit(ds: Dataset) -> None:
        for e in edits:
            e(ds)

    return edit


# case -> (edit, the element the message must name). A LUT item with an empty or missing
# LUTDescriptor or LUTData is not refused but ignored: test_loader_robustness.py.
BAD_HEADERS: dict[str, tuple[Edit, str]] = {
    "frames_text": (_raw("NumberOfFrames", "abc"), "NumberOfFrames"),
    "frames_fraction": (_raw("NumberOfFrames", "1.5"), "NumberOfFrames"),
    "slope_text": (_both(_raw("RescaleSlope", "x"), _raw("RescaleIntercept", "0")), "RescaleSlope"),
    "intercept_text": (_both(_raw("RescaleSlope", "1"), _raw("RescaleIntercept", "x")), "RescaleIntercept"),
    "voi_descriptor_two_values": (_seq("VOILUTSequence", _lut_item([3, 0], [1, 2, 3])), "LUTDescriptor"),
    "voi_data_shorter_than_descriptor": (_seq("VOILUTSequence", _lut_item([256, 0, 8], [1, 2, 3])), "LUTData"),
    "voi_bits_out_of_range": (_seq("VOILUTSequence", _lut_item([3, 0, 40], [1, 2, 3])), "LUTDescriptor"),
}


@pytest.mark.parametrize("case", sorted(BAD_HEADERS))
def test_bad_header_value_is_a_typed_error_naming_it(tmp_path: Path, dicom_dir: Path, case: str) -> None:
    edit, element = BAD_HEADERS[case]
    path = _bad_copy(dicom_dir / "nccid_nih_dx.dcm", tmp_path / f"{case}.dcm", edit)
    with pytest.raises(CorruptImageError) as info:
        load_image(path)
    msg = str(info.value)
    assert msg.startswith(f"{case}.dcm:") and element in msg, msg
    assert msg.rstrip().endswith(".")


def test_empty_voi_lut_sequence_falls_back_to_the_window(tmp_path: Path, dicom_dir: Path) -> None:
    path = _bad_copy(dicom_dir / "CR-MONO1-10-chest.dcm", tmp_path / "empty_voi.dcm", _seq("VOILUTSequence"))
    im = load_image(path)
    assert im.meta.voi_source == "window"


@pytest.mark.parametrize("keyword, value", [("PixelSpacing", ["a", "b"]), ("PixelSpacing", "0.2"),
                                            ("ImagerPixelSpacing", "x")])
def test_bad_pixel_spacing_is_dropped_with_a_note(tmp_path: Path, dicom_dir: Path, keyword: str,
                                                  value: str | list[str]) -> None:
    """Spacing is metadata, not part of the display: an unreadable value does not stop the
    image from opening; it is left out and the notes say why."""
    good = load_image(dicom_dir / "nccid_nih_dx.dcm")
    path = _bad_copy(dicom_dir / "nccid_nih_dx.dcm", tmp_path / "spacing.dcm", _raw(keyword, value))
    im = load_image(path)
    assert im.meta.pixel_spacing is None
    assert any(keyword in n and "ignored" in n for n in im.meta.notes)
    np.testing.assert_array_equal(im.pixels, good.pixels)


def test_good_pixel_spacing_is_read(tmp_path: Path, dicom_dir: Path) -> None:
    path = _bad_copy(dicom_dir / "nccid_nih_dx.dcm", tmp_path / "spacing.dcm",
                     lambda ds: setattr(ds, "PixelSpacing", [0.139, 0.143]))
    assert load_image(path).meta.pixel_spacing == pytest.approx((0.139, 0.143))


def test_truncated_copy_in_a_batch_is_an_error_row(tmp_path: Path, dicom_dir: Path, classifier) -> None:
    from engine.batch import analyze_folder

    src = dicom_dir / "RG1_J2KI.dcm"
    _cut(src, tmp_path / "cut.dcm", src.stat().st_size // 2)
    shutil.copy(dicom_dir / "nccid_nih_dx.dcm", tmp_path / "good.dcm")
    rows = {Path(r.path).name: r for r in analyze_folder(tmp_path, classifier)}
    assert rows["good.dcm"].ok
    assert rows["cut.dcm"].status == "error" and "truncated" in rows["cut.dcm"].error
