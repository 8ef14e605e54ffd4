"""The loader's part of "the engine owns the per-image job": tag rows travel with the
image, the display pipeline is one function per stage, and no file (a decoder panic, a
NaN window, an overflowing rescale, NaN float pixels, an empty LUT, an unknown transfer
syntax) gives a NaN image or an untyped exception. Real files (the shared fixtures and
pydicom's test files), mutated here."""

from __future__ import annotations

import pickle
import struct
from pathlib import Path

import cv2
import numpy as np
import pydicom
import pytest
from pydicom.dataset import Dataset
from pydicom.encaps import encapsulate, generate_frames
from pydicom.pixels import apply_color_lut
from pydicom.uid import ImplicitVRLittleEndian

import engine.io.dicom
import engine.io.load
from engine.errors import CorruptImageError, UnsupportedImageError
from engine.io import load_image
from engine.io.dicom import dicom_tags, read_dataset
from engine.io.display import apply_window
from engine.io.image import ImageMeta, LoadedImage, TagRow, Window


def _save(ds: Dataset, path: Path) -> Path:
    ds.save_as(path, enforce_file_format=True)
    return path


def _edited(src: Path, dst: Path, edit) -> Path:  # noqa: ANN001 - edit(ds) changes the dataset in place
    """``src`` as the engine reads it, edited, saved as Implicit VR Little Endian."""
    ds, _ = read_dataset(src)
    ds.file_meta.TransferSyntaxUID = ImplicitVRLittleEndian
    edit(ds)
    return _save(ds, dst)


def _finite_image(im: LoadedImage) -> None:
    assert im.pixels.dtype == np.float32 and np.isfinite(im.pixels).all()
    assert 0.0 <= float(im.pixels.min()) and float(im.pixels.max()) <= 1.0
    assert np.isfinite(im.values).all()


# 1. tag rows travel with the image ---------------------------------------------------


def test_loaded_dicom_carries_its_tag_rows(dicom_dir: Path) -> None:
    path = dicom_dir / "RG1_J2KI.dcm"
    im = load_image(path)
    assert im.tags and all(isinstance(r, TagRow) for r in im.tags)
    assert im.tags == tuple(dicom_tags(path))  # the thin function gives the same rows
    by_kw = {r.keyword: r for r in im.tags}
    assert by_kw["PatientName"].identifying and by_kw["PixelData"].value.endswith("bytes of pixel data>")
    again = pickle.loads(pickle.dumps(im))  # crosses a process pool
    assert again.tags == im.tags


def test_tag_row_keeps_its_old_home_and_rasters_have_none(cxr_samples: dict[str, list[Path]]) -> None:
    assert engine.io.dicom.TagRow is TagRow
    assert load_image(cxr_samples["normal"][0]).tags == ()


def test_dicom_tags_reads_the_header_without_decoding(dicom_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def no_decode(*args, **kwargs):  # noqa: ANN002, ANN003, ANN202
        raise AssertionError("dicom_tags decoded the pixel data")

    monkeypatch.setattr(pydicom.pixels, "pixel_array", no_decode)
    rows = dicom_tags(dicom_dir / "RG1_J2KI.dcm")
    assert any(r.keyword == "Modality" and r.value == "CR" for r in rows)


def test_an_unreadable_element_is_a_row_not_a_failure(tmp_path: Path, dicom_dir: Path) -> None:
    """pydicom cannot settle the VR of LUTData when the LUTDescriptor is empty (it indexes
    the descriptor): that element becomes an 'unreadable' row; the image still loads."""
    item = Dataset()
    item.LUTDescriptor = []
    item.add_new("LUTData", "US", [1, 2, 3])
    path = _edited(dicom_dir / "CR-MONO1-10-chest.dcm", tmp_path / "odd.dcm",
                   lambda ds: setattr(ds, "VOILUTSequence", [item]))
    rows = {r.keyword: r for r in load_image(path).tags if r.depth == 1}
    assert rows["LUTData"].value.startswith("<unreadable")
    assert dicom_tags(path) == load_image(path).tags


# 2. the pipeline stages, one function each -------------------------------------------


def test_stages_compose_to_the_loaded_image(dicom_dir: Path) -> None:
    from engine.io.dicom_pipeline import apply_modality, apply_presentation_inversion, apply_voi

    path = dicom_dir / "CR-MONO1-10-chest.dcm"  # window, MONOCHROME1
    ds, _ = read_dataset(path)
    notes: list[str] = []
    values = apply_modality(ds.pixel_array, ds, path, notes)
    pixels, window, source = apply_voi(values, ds, path, notes)
    shown, inverted = apply_presentation_inversion(pixels, ds)
    im = load_image(path)
    assert source == "window" and window == im.meta.default_window and inverted
    np.testing.assert_array_equal(values, im.values)
    np.testing.assert_array_equal(shown, im.pixels)


def test_each_stage_is_a_no_op_without_its_module(dicom_dir: Path) -> None:
    from engine.io.dicom_pipeline import apply_modality, apply_palette_color, apply_presentation_inversion, apply_voi

    path = dicom_dir / "nccid_nih_dx.dcm"  # MONOCHROME2, no rescale, no VOI, no palette
    ds, _ = read_dataset(path)
    arr, notes = ds.pixel_array, []
    assert apply_palette_color(arr, ds, path, notes) is arr
    values = apply_modality(arr, ds, path, notes)
    np.testing.assert_array_equal(values, arr.astype(np.float32))
    pixels, window, source = apply_voi(values, ds, path, notes)
    assert source == "full_range" and window.function == "LINEAR_EXACT"
    assert apply_presentation_inversion(pixels, ds) == (pixels, False)
    assert notes == []


# 3. a decoder panic is an error, not an escape ----------------------------------------


def _panicking_rle(dst: Path) -> Path:
    """pydicom's MR_small_RLE.dcm with its segments' bytes replaced by runs that overrun
    the frame: pylibjpeg-rle panics (index out of bounds) instead of raising."""
    src = pydicom.data.get_testdata_file("MR_small_RLE.dcm")
    ds = pydicom.dcmread(src)
    frame = bytearray(next(generate_frames(ds.PixelData, number_of_frames=1)))
    assert struct.unpack("<L", frame[:4])[0] == 2  # two segments (16-bit samples)
    frame[64:] = b"\x81" * (len(frame) - 64)  # "repeat the next byte 128 times", over and over
    ds.PixelData = encapsulate([bytes(frame)])
    return _save(ds, dst)


def test_rle_decoder_panic_is_a_typed_error(tmp_path: Path) -> None:
    pytest.importorskip("rle", reason="pylibjpeg-rle is not installed")
    path = _panicking_rle(tmp_path / "panic_rle.dcm")
    with pytest.raises(BaseException) as raw:  # noqa: PT011 - the point: not an Exception
        pydicom.pixels.pixel_array(pydicom.dcmread(path))
    assert not isinstance(raw.value, Exception), raw.value  # pyo3_runtime.PanicException
    with pytest.raises(CorruptImageError) as info:
        load_image(path)
    msg = str(info.value)
    assert msg.startswith("panic_rle.dcm:") and "RLE Lossless decoder failed" in msg and "damaged" in msg


class _NativePanic(BaseException):
    """What a native extension's panic looks like to Python: not an Exception."""


def test_raster_decoder_panic_is_a_typed_error(cxr_samples: dict[str, list[Path]],
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    def panic(*args, **kwargs):  # noqa: ANN002, ANN003, ANN202
        raise _NativePanic("decoder state corrupted")

    monkeypatch.setattr(engine.io.load.cv2, "imdecode", panic)
    with pytest.raises(CorruptImageError, match="decoder failed .*_NativePanic: decoder state corrupted"):
        load_image(cxr_samples["normal"][0])


def test_interrupts_still_interrupt(cxr_samples: dict[str, list[Path]], monkeypatch: pytest.MonkeyPatch) -> None:
    def interrupt(*args, **kwargs):  # noqa: ANN002, ANN003, ANN202
        raise KeyboardInterrupt

    monkeypatch.setattr(engine.io.load.cv2, "imdecode", interrupt)
    with pytest.raises(KeyboardInterrupt):
        load_image(cxr_samples["normal"][0])


# 4. never NaN -------------------------------------------------------------------------


@pytest.mark.parametrize("center, width", [("nan", "400"), ("40", "inf"), ("-inf", "400"), ("1e308", "1e308"),
                                           ("40", "0"), ("40", "-10")])
def test_unusable_window_is_ignored_with_a_note(tmp_path: Path, pydicom_file, center: str, width: str) -> None:
    ds = pydicom.dcmread(pydicom_file("CT_small.dcm"))
    ds.WindowCenter, ds.WindowWidth = center, width
    im = load_image(_save(ds, tmp_path / "w.dcm"))
    _finite_image(im)
    assert im.meta.voi_source == "full_range" and im.meta.windows == ()
    assert any("Window Center/Width" in n and "ignored" in n for n in im.meta.notes), im.meta.notes
    assert float(im.pixels.std()) > 0.05


def test_next_usable_window_is_shown(tmp_path: Path, pydicom_file) -> None:
    ds = pydicom.dcmread(pydicom_file("CT_small.dcm"))
    ds.WindowCenter, ds.WindowWidth = ["nan", "40"], ["400", "400"]
    im = load_image(_save(ds, tmp_path / "w2.dcm"))
    _finite_image(im)
    assert im.meta.voi_source == "window" and (im.meta.default_window.center, im.meta.default_window.width) == (40, 400)


@pytest.mark.parametrize("slope, intercept, element", [("0", "1e308", "RescaleIntercept"),
                                                       ("1e308", "0", "RescaleSlope"),
                                                       ("1e38", "0", "RescaleSlope")])
def test_overflowing_rescale_is_refused_naming_it(tmp_path: Path, pydicom_file, slope: str, intercept: str,
                                                  element: str) -> None:
    ds = pydicom.dcmread(pydicom_file("CT_small.dcm"))
    ds.RescaleSlope, ds.RescaleIntercept = slope, intercept
    with pytest.raises(CorruptImageError) as info:
        load_image(_save(ds, tmp_path / "r.dcm"))
    msg = str(info.value)
    assert msg.startswith("r.dcm: invalid ") and element in msg and "float32 range" in msg


def _float_pixels(src: Path, dst: Path, edit) -> Path:  # noqa: ANN001 - edit(array) changes it in place
    """``src``'s pixels as FloatPixelData (32-bit IEEE floats), after ``edit``."""
    ds = pydicom.dcmread(src)
    arr = pydicom.pixels.apply_modality_lut(ds.pixel_array, ds).astype(np.float32)
    edit(arr)
    del ds.PixelData
    for kw in ("PixelRepresentation", "BitsStored", "HighBit", "RescaleSlope", "RescaleIntercept"):
        if kw in ds:
            del ds[kw]
    ds.BitsAllocated = 32
    ds.FloatPixelData = arr.tobytes()
    return _save(ds, dst)


def test_non_finite_float_pixels_are_mapped_with_a_note(tmp_path: Path, pydicom_file) -> None:
    def spoil(a: np.ndarray) -> None:
        a[0, :10], a[1, :5], a[2, :3] = np.nan, np.inf, -np.inf

    path = _float_pixels(pydicom_file("CT_small.dcm"), tmp_path / "f.dcm", spoil)
    raw = pydicom.dcmread(path).pixel_array
    assert np.isnan(raw).sum() == 10  # pydicom gives the NaN as stored
    im = load_image(path)
    _finite_image(im)
    finite = raw[np.isfinite(raw)]
    assert (im.values[0, :10] == finite.min()).all() and (im.values[2, :3] == finite.min()).all()
    assert (im.values[1, :5] == finite.max()).all()
    np.testing.assert_array_equal(im.values[3:], raw[3:])
    assert any("18 pixel(s)" in n and "NaN or infinite" in n for n in im.meta.notes)
    assert im.meta.voi_source == "full_range" and float(im.pixels.std()) > 0.05


def test_float_pixels_without_a_finite_value_are_refused(tmp_path: Path, pydicom_file) -> None:
    path = _float_pixels(pydicom_file("CT_small.dcm"), tmp_path / "nan.dcm", lambda a: a.fill(np.nan))
    with pytest.raises(CorruptImageError, match="nan.dcm: the float pixel data holds no finite value"):
        load_image(path)


def test_final_guard_refuses_a_non_finite_image(dicom_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Whatever a loader returns, load_image never hands out NaN."""
    def nan_loader(path: Path, *args, **kwargs) -> LoadedImage:  # noqa: ANN002, ANN003
        pixels = np.full((4, 4), np.nan, np.float32)
        return LoadedImage(pixels, pixels.copy(), ImageMeta(path=str(path), format="dicom", width=4, height=4))

    monkeypatch.setattr(engine.io.dicom, "load_dicom", nan_loader)
    with pytest.raises(CorruptImageError, match="nccid_nih_dx.dcm: .*not finite"):
        load_image(dicom_dir / "nccid_nih_dx.dcm")


# 5. PALETTE COLOR ------------------------------------------------------------------------


def test_palette_color_is_applied_then_grey(pydicom_file) -> None:
    path = pydicom_file("examples_palette.dcm")
    ds = pydicom.dcmread(path)
    assert ds.PhotometricInterpretation == "PALETTE COLOR"
    rgb = apply_color_lut(ds.pixel_array, ds)
    expected = cv2.cvtColor(rgb.astype(np.float32), cv2.COLOR_RGB2GRAY)
    im = load_image(path)
    _finite_image(im)
    np.testing.assert_allclose(im.values, expected, rtol=0, atol=1e-3)
    assert any("PALETTE COLOR" in n for n in im.meta.notes) and any("grayscale" in n for n in im.meta.notes)
    assert not np.array_equal(im.values, ds.pixel_array.astype(np.float32))  # not the palette indices


# 6. a LINEAR window narrower than 1 ---------------------------------------------------------


def test_narrow_linear_window_is_not_a_threshold(tmp_path: Path, dicom_dir: Path) -> None:
    """An RT-image-like file: rescale to values of 0..0.215, window 0.108/0.215 (LINEAR).
    Raising the width to 1 made it a threshold: a solid image."""
    src = dicom_dir / "CR-MONO1-10-chest.dcm"
    raw = read_dataset(src)[0].pixel_array
    slope = 0.215 / float(raw.max())

    def edit(ds: Dataset) -> None:
        ds.RescaleSlope, ds.RescaleIntercept = f"{slope:.6g}", "0"
        ds.WindowCenter, ds.WindowWidth = "0.108", "0.215"

    im = load_image(_edited(src, tmp_path / "rt.dcm", edit))
    _finite_image(im)
    w = im.meta.default_window
    assert im.meta.voi_source == "window" and w.function == "LINEAR_EXACT" and (w.center, w.width) == (0.108, 0.215)
    assert any("LINEAR width below 1" in n for n in im.meta.notes)
    expected = 1.0 - np.clip((im.values.astype(np.float64) - (0.108 - 0.215 / 2)) / 0.215, 0, 1)  # MONOCHROME1
    np.testing.assert_allclose(im.pixels, expected, atol=1e-5)
    assert float(im.pixels.std()) > 0.1


def test_apply_window_linear_under_1_is_exact() -> None:
    x = np.linspace(0.0, 0.2, 11, dtype=np.float32)
    out = apply_window(x, Window(0.1, 0.2, "LINEAR"))
    np.testing.assert_allclose(out, np.linspace(0, 1, 11), atol=1e-6)
    np.testing.assert_array_equal(apply_window(x, Window(0.1, 1.0, "LINEAR")), (x >= -0.4).astype(np.float32))


# 7. an unknown transfer syntax --------------------------------------------------------------


@pytest.mark.parametrize("uid", ["1.2.840.10008.1.2.8.1", "1.2.826.0.1.3680043.8.498.1"])
def test_unknown_transfer_syntax_is_named(tmp_path: Path, dicom_dir: Path, uid: str) -> None:
    from pydicom.filebase import DicomBytesIO
    from pydicom.filewriter import write_dataset, write_file_meta_info

    ds = pydicom.dcmread(dicom_dir / "nccid_nih_dx.dcm")
    # Written by hand: the data set stays Explicit VR Little Endian, native pixels, whatever pydicom's
    # UID registry says of the syntax (pynetdicom, once imported, registers 1.2.840.10008.1.2.8.1 as
    # "Deflated Image Frame Compression", and save_as then demands encapsulated pixel data).
    body = DicomBytesIO()
    body.is_little_endian, body.is_implicit_VR = True, False
    write_dataset(body, ds)
    head = DicomBytesIO()
    head.write(b"\0" * 128 + b"DICM")
    meta = pydicom.dataset.FileMetaDataset(ds.file_meta)
    meta.TransferSyntaxUID = uid
    write_file_meta_info(head, meta)
    path = tmp_path / "ts.dcm"
    path.write_bytes(head.getvalue() + body.getvalue())
    with pytest.raises(UnsupportedImageError) as info:
        load_image(path)
    msg = str(info.value)
    # unknown to pydicom: "unsupported transfer syntax UID (unknown)"; registered (by pynetdicom): its name
    assert (f"ts.dcm: unsupported transfer syntax {uid} (unknown)" in msg
            or ("ts.dcm: unsupported compression: " in msg and f"({uid}) could not be decoded" in msg))
    assert "damaged" not in msg and "inconsistent" not in msg


# 8. an empty LUT is skipped, not a refusal -------------------------------------------------


def _lut_item(descriptor: list[int] | None, data: list[int] | bytes | None) -> Dataset:
    item = Dataset()
    if descriptor is not None:
        item.LUTDescriptor = descriptor
    if isinstance(data, bytes):
        item.add_new("LUTData", "OW", data)
    elif data is not None:
        item.add_new("LUTData", "US", data)
    return item


EMPTY_LUTS = {
    "no_data": _lut_item([256, 0, 8], None),
    "empty_data": _lut_item([256, 0, 8], []),
    "empty_bytes": _lut_item([256, 0, 16], b""),
    "no_descriptor": _lut_item(None, [1, 2, 3]),
    "empty_descriptor": _lut_item([], [1, 2, 3]),
}


@pytest.mark.parametrize("case", sorted(EMPTY_LUTS))
def test_empty_voi_lut_falls_back_to_the_window(tmp_path: Path, dicom_dir: Path, case: str) -> None:
    src = dicom_dir / "CR-MONO1-10-chest.dcm"
    good = load_image(src)
    im = load_image(_edited(src, tmp_path / "voi.dcm", lambda ds: setattr(ds, "VOILUTSequence", [EMPTY_LUTS[case]])))
    assert im.meta.voi_source == "window"
    assert any("VOILUTSequence" in n and "LUT ignored" in n for n in im.meta.notes), im.meta.notes
    np.testing.assert_array_equal(im.pixels, good.pixels)


@pytest.mark.parametrize("case", sorted(EMPTY_LUTS))
def test_empty_modality_lut_falls_back_to_the_rescale(tmp_path: Path, pydicom_file, case: str) -> None:
    src = pydicom_file("CT_small.dcm")  # Rescale Slope 1, Intercept -1024
    good = load_image(src)
    path = _edited(src, tmp_path / "mod.dcm", lambda ds: setattr(ds, "ModalityLUTSequence", [EMPTY_LUTS[case]]))
    im = load_image(path)
    assert any("ModalityLUTSequence" in n and "LUT ignored" in n for n in im.meta.notes), im.meta.notes
    np.testing.assert_array_equal(im.values, good.values)
    np.testing.assert_array_equal(im.pixels, good.pixels)


def test_malformed_lut_is_still_refused(tmp_path: Path, dicom_dir: Path) -> None:
    """Only an empty LUT is skipped: one whose data contradict its descriptor is damage."""
    item = _lut_item([256, 0, 8], [1, 2, 3])
    path = _edited(dicom_dir / "nccid_nih_dx.dcm", tmp_path / "short.dcm", lambda ds: setattr(ds, "VOILUTSequence", [item]))
    with pytest.raises(CorruptImageError, match="LUTData"):
        load_image(path)


# 9. each decoder's message stays apart --------------------------------------------------------


def test_decoder_messages_are_separated(undecodable_dicom: Path) -> None:
    path = undecodable_dicom  # no decoder reads it: pydicom tries each of its plugins
    try:
        _ = pydicom.dcmread(path).pixel_array
    except Exception as e:  # noqa: BLE001 - what pydicom says, one line per plugin
        lines = [line.strip() for line in str(e).splitlines()[1:] if line.strip()]
    else:
        pytest.skip(f"this pydicom decodes {path.name}")
    if len(lines) < 2:
        pytest.skip("only one decoder plugin tried")
    with pytest.raises(UnsupportedImageError) as info:
        load_image(path)
    assert "; ".join(lines[:3]) in str(info.value)  # e.g. "...operating modes; pillow: Pillow does not..."


def test_jp2_box_of_length_zero_is_refused_not_a_hang(tmp_path: Path) -> None:
    """pydicom's JP2 box walk loops forever on a box of length 0 (found by bench/fuzz_loader.py,
    2 of 20,000 cases): the loader walks the boxes first and refuses the file. Run in a child
    process with a timeout, so a regression fails instead of hanging the suite."""
    import subprocess
    import sys

    import pydicom
    from pydicom.data import get_testdata_file

    src = get_testdata_file("GDCMJ2K_TextGBR.dcm", download=False)
    if src is None:
        pytest.skip("GDCMJ2K_TextGBR.dcm is not bundled with this pydicom")
    ds = pydicom.dcmread(src)
    data = bytearray(ds.PixelData)
    sig = data.find(b"\x00\x00\x00\x0c\x6a\x50\x20\x20")
    assert sig >= 0, "the seed has a JP2 header"
    data[sig + 12 : sig + 16] = b"\x00\x00\x00\x00"  # the first box after the signature: length 0
    ds.PixelData = bytes(data)
    bad = tmp_path / "jp2-box0.dcm"
    ds.save_as(bad)
    code = ("import sys\nfrom engine import load_image\nfrom engine.errors import CorruptImageError\n"
            f"try:\n    load_image({str(bad)!r})\nexcept CorruptImageError as e:\n    print(e)\n    sys.exit(0)\nsys.exit(3)\n")
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60,
                         cwd=Path(__file__).resolve().parents[2])
    assert run.returncode == 0 and "JP2 box of length 0" in run.stdout, run.stderr[-500:]
