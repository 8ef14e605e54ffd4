"""DICOM display pipeline against pydicom's own functions, on the shared fixtures
(../shared/data/dicom, described in ../shared/data/cxr/README.md) and pydicom's files."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pydicom
import pytest
from pydicom.dataset import Dataset
from pydicom.errors import InvalidDicomError
from pydicom.pixels import apply_modality_lut, apply_voi_lut
from pydicom.uid import JPEG2000, ExplicitVRLittleEndian, ImplicitVRLittleEndian, JPEGExtended12Bit, JPEGLosslessSV1

from engine.io import load_image
from engine.io.dicom import dicom_tags

# What ../shared/data/cxr/README.md says about each fixture: (rows, cols) where given.
EXPECTED = {
    "RG1_J2KI.dcm": dict(modality="CR", photometric="MONOCHROME1", shape=(1955, 1841), bits=15, ts=JPEG2000,
                         window=(15000.0, 30000.0), view="PA"),
    "CR-MONO1-10-chest.dcm": dict(modality="CR", photometric="MONOCHROME1", shape=(440, 440), bits=10,
                                  ts=ImplicitVRLittleEndian, view="PA"),
    "nccid_nih_dx.dcm": dict(modality="DX", photometric="MONOCHROME2", shape=(1024, 1024), bits=8),
    "RG3_JPLL.dcm": dict(modality="CR", photometric="MONOCHROME1", bits=10, ts=JPEGLosslessSV1),
    "CR-ModalitySequenceLUT.dcm": dict(modality="CR", ts=JPEGLosslessSV1),
}
# pydicom's plugins refuse it; the second JPEG decoder (imagecodecs) opens it (issue 23)
SECOND_DECODER = {"RG2_JPLY.dcm": JPEGExtended12Bit}
LOADABLE = sorted(EXPECTED)


def _read(path: Path) -> Dataset:
    """pydicom's reading of the file, forcing only when strict reading refuses it."""
    try:
        return pydicom.dcmread(path)
    except InvalidDicomError:
        ds = pydicom.dcmread(path, force=True)
        ds.file_meta = pydicom.dataset.FileMetaDataset()
        ds.file_meta.TransferSyntaxUID = ImplicitVRLittleEndian
        return ds


def _pydicom_display(ds: Dataset) -> tuple[np.ndarray, np.ndarray]:
    """(modality values, VOI output normalised to [0, 1]) computed with pydicom alone."""
    arr = ds.pixel_array
    values = np.asarray(apply_modality_lut(arr, ds), dtype=np.float64)
    if "WindowCenter" in ds or "VOILUTSequence" in ds:
        voi = np.asarray(apply_voi_lut(values if "VOILUTSequence" not in ds else np.rint(values).astype(np.int64), ds,
                                       index=0), dtype=np.float64)
        if "VOILUTSequence" in ds:
            lo, hi = 0.0, float(2 ** int(ds.VOILUTSequence[0].LUTDescriptor[2]) - 1)
        else:  # pydicom's windowing maps into the stored range: probe its two ends
            probe = np.asarray(apply_voi_lut(np.array([-1e12, 1e12]), ds, index=0), dtype=np.float64)
            lo, hi = float(probe[0]), float(probe[1])
        norm = (voi - lo) / (hi - lo)
    else:  # no VOI in the file: full range of the modality values
        norm = (values - values.min()) / (values.max() - values.min())
    return values, norm


def test_fixture_folder_is_what_the_readme_lists(dicom_dir: Path) -> None:
    assert {p.name for p in dicom_dir.iterdir()} == set(EXPECTED) | set(SECOND_DECODER)


@pytest.mark.parametrize("name", LOADABLE)
def test_fixture_metadata_as_readme_says(dicom_dir: Path, name: str) -> None:
    im = load_image(dicom_dir / name)
    exp = EXPECTED[name]
    m = im.meta
    assert m.format == "dicom"
    assert m.modality == exp["modality"]
    if "photometric" in exp:
        assert m.photometric == exp["photometric"]
        assert m.inverted == (exp["photometric"] == "MONOCHROME1")
    if "shape" in exp:
        assert im.shape == exp["shape"] and (m.height, m.width) == exp["shape"]
    if "bits" in exp:
        assert m.bits_stored == exp["bits"]
    if "ts" in exp:
        assert m.transfer_syntax == exp["ts"] and m.transfer_syntax_name == exp["ts"].name
    if "window" in exp:
        assert (m.default_window.center, m.default_window.width) == exp["window"]
        assert m.voi_source == "window"
    if "view" in exp:
        assert m.view_position == exp["view"]
    assert im.pixels.dtype == np.float32 and im.pixels.shape == im.values.shape
    assert 0.0 <= float(im.pixels.min()) and float(im.pixels.max()) <= 1.0
    assert float(im.pixels.std()) > 0.05  # a real image, not a flat field


def test_nccid_is_uncompressed(dicom_dir: Path) -> None:
    m = load_image(dicom_dir / "nccid_nih_dx.dcm").meta
    assert m.transfer_syntax in (ImplicitVRLittleEndian, ExplicitVRLittleEndian)
    assert m.voi_source == "full_range" and not m.inverted


@pytest.mark.parametrize("name", LOADABLE)
def test_values_match_pydicom_modality_lut(dicom_dir: Path, name: str) -> None:
    path = dicom_dir / name
    im = load_image(path)
    values, _ = _pydicom_display(_read(path))
    np.testing.assert_allclose(im.values, values, rtol=0, atol=1e-3)
    assert im.value_range == (float(values.min()), float(values.max()))


@pytest.mark.parametrize("name", LOADABLE)
def test_display_matches_pydicom_voi(dicom_dir: Path, name: str) -> None:
    path = dicom_dir / name
    im = load_image(path)
    ds = _read(path)
    _, norm = _pydicom_display(ds)
    expected = 1.0 - norm if ds.PhotometricInterpretation == "MONOCHROME1" else norm
    np.testing.assert_allclose(im.pixels, expected, rtol=0, atol=1e-4)


def test_modality_lut_sequence_is_applied(dicom_dir: Path) -> None:
    path = dicom_dir / "CR-ModalitySequenceLUT.dcm"
    ds = pydicom.dcmread(path)
    assert "ModalityLUTSequence" in ds
    raw = ds.pixel_array
    im = load_image(path)
    lut = np.frombuffer(ds.ModalityLUTSequence[0].LUTData, "<u2") if isinstance(
        ds.ModalityLUTSequence[0].LUTData, bytes) else np.asarray(ds.ModalityLUTSequence[0].LUTData)
    first = int(ds.ModalityLUTSequence[0].LUTDescriptor[1])
    np.testing.assert_array_equal(im.values, lut[np.clip(raw.astype(np.int64) - first, 0, len(lut) - 1)])
    assert not np.array_equal(im.values, raw.astype(np.float32))  # the LUT is not the identity


def _region(p: np.ndarray, y0: float, y1: float, x0: float, x1: float) -> float:
    h, w = p.shape
    return float(p[int(y0 * h) : int(y1 * h), int(x0 * w) : int(x1 * w)].mean())


@pytest.mark.parametrize("name", ["RG1_J2KI.dcm", "CR-MONO1-10-chest.dcm", "nccid_nih_dx.dcm"])
def test_chest_lungs_are_dark(dicom_dir: Path, name: str) -> None:
    p = load_image(dicom_dir / name).pixels
    left, right = _region(p, 0.3, 0.6, 0.2, 0.38), _region(p, 0.3, 0.6, 0.62, 0.8)
    mediastinum = _region(p, 0.3, 0.6, 0.46, 0.54)
    assert left < mediastinum - 0.15 and right < mediastinum - 0.15, (left, right, mediastinum)


@pytest.mark.parametrize("name", ["RG1_J2KI.dcm", "CR-MONO1-10-chest.dcm", "RG3_JPLL.dcm"])
def test_monochrome1_is_inverted_against_stored_values(dicom_dir: Path, name: str) -> None:
    path = dicom_dir / name
    im = load_image(path)
    raw = _read(path).pixel_array.astype(np.float64)
    assert im.meta.photometric == "MONOCHROME1" and im.meta.inverted
    r = np.corrcoef(raw[::4, ::4].ravel(), im.pixels[::4, ::4].ravel())[0, 1]
    assert r < -0.8  # MONOCHROME1: the highest stored values display darkest


def test_monochrome2_keeps_stored_polarity(dicom_dir: Path) -> None:
    path = dicom_dir / "nccid_nih_dx.dcm"
    im = load_image(path)
    raw = pydicom.dcmread(path).pixel_array.astype(np.float64)
    assert np.corrcoef(raw.ravel(), im.pixels.ravel())[0, 1] > 0.99


def test_no_meta_file_loads_through_force_fallback(dicom_dir: Path) -> None:
    path = dicom_dir / "CR-MONO1-10-chest.dcm"
    with pytest.raises(InvalidDicomError):
        pydicom.dcmread(path)  # strict reading refuses it
    im = load_image(path)
    assert any("read with force" in n for n in im.meta.notes)
    assert any("transfer syntax inferred" in n for n in im.meta.notes)
    assert im.meta.transfer_syntax == ImplicitVRLittleEndian


def test_strict_files_are_not_forced(dicom_dir: Path) -> None:
    im = load_image(dicom_dir / "nccid_nih_dx.dcm")
    assert not any("force" in n for n in im.meta.notes)


def test_jpeg_extended_12bit_opens_through_the_second_decoder(dicom_dir: Path) -> None:
    """RG2_JPLY: 12-bit JPEG Extended whose scan header pylibjpeg-libjpeg rejects. imagecodecs
    decodes it and the same display pipeline follows (its window 511/1024, MONOCHROME2).
    tests/engine/test_dicom_corpus.py compares it with DCMTK's decode."""
    import imagecodecs
    from pydicom.encaps import get_frame

    path = dicom_dir / "RG2_JPLY.dcm"
    ds = pydicom.dcmread(path)
    with pytest.raises(Exception):  # noqa: B017 - pydicom's plugins still refuse it
        _ = ds.pixel_array
    im = load_image(path)
    m = im.meta
    assert (m.modality, m.photometric, m.bits_stored, im.shape) == ("CR", "MONOCHROME2", 10, (2140, 1760))
    assert m.transfer_syntax == JPEGExtended12Bit and m.transfer_syntax_name == JPEGExtended12Bit.name
    assert any("imagecodecs" in n and "12-bit" in n for n in m.notes), m.notes
    stored = imagecodecs.jpeg8_decode(get_frame(ds.PixelData, 0, number_of_frames=1))
    np.testing.assert_array_equal(im.values, stored.astype(np.float32))  # no rescale in the file
    assert (m.default_window.center, m.default_window.width) == (511.0, 1024.0) and m.voi_source == "window"
    expected = np.clip((stored.astype(np.float64) - (511 - 0.5)) / (1024 - 1) + 0.5, 0.0, 1.0)  # LINEAR, PS3.3 C.11.2.1.2
    np.testing.assert_allclose(im.pixels, expected, atol=1e-4)
    assert not m.inverted and float(im.pixels.std()) > 0.05


@pytest.mark.parametrize("name", ["CR-MONO1-10-chest.dcm", "nccid_nih_dx.dcm", "RG3_JPLL.dcm"])
def test_dicom_without_extension(tmp_path: Path, dicom_dir: Path, name: str) -> None:
    dst = tmp_path / "1.2.826.0.1.3680043.8.498.12345"  # named by UID, no extension
    shutil.copyfile(dicom_dir / name, dst)
    a, b = load_image(dst), load_image(dicom_dir / name)
    assert a.meta.format == "dicom"
    np.testing.assert_array_equal(a.pixels, b.pixels)


def test_identifiers_are_kept_apart(dicom_dir: Path) -> None:
    path = dicom_dir / "RG1_J2KI.dcm"
    ds = pydicom.dcmread(path, stop_before_pixels=True)
    ids = load_image(path).meta.identifiers
    assert ids.patient_id == str(ds.get("PatientID", ""))
    assert ids.study_instance_uid == str(ds.StudyInstanceUID) and ids.study_instance_uid
    assert ids.sop_instance_uid == str(ds.SOPInstanceUID)
    assert set(ids.as_dict()) >= {"patient_id", "patient_name", "study_instance_uid", "accession_number", "study_date"}


def test_multiframe_uses_first_frame(pydicom_file) -> None:
    path = pydicom_file("rtdose.dcm")
    ds = pydicom.dcmread(path)
    im = load_image(path)
    assert im.meta.frames == int(ds.NumberOfFrames) > 1 and im.meta.frame_used == 0
    assert any("showing frame 1" in n for n in im.meta.notes)
    np.testing.assert_allclose(im.values, apply_modality_lut(ds.pixel_array[0], ds), atol=1e-3)


def test_pydicom_ct_rescale(pydicom_file) -> None:
    path = pydicom_file("CT_small.dcm")
    ds = pydicom.dcmread(path)
    im = load_image(path)
    values, norm = _pydicom_display(ds)
    np.testing.assert_allclose(im.values, values, atol=1e-3)
    np.testing.assert_allclose(im.pixels, norm, atol=1e-4)
    assert im.meta.voi_source == ("window" if "WindowCenter" in ds else "full_range")


def _with_voi_lut(src: Path, dst: Path, as_bytes: bool, function: str | None = None) -> Path:
    """A real file plus a VOI LUT Sequence (gamma curve over the stored range)."""
    ds = pydicom.dcmread(src)
    n = 2 ** int(ds.BitsStored)
    lut = np.round(4095 * (np.arange(n) / (n - 1)) ** 0.5).astype(np.uint16)
    item = Dataset()
    item.LUTDescriptor = [n if n < 65536 else 0, 0, 12]
    if as_bytes:
        item.add_new("LUTData", "OW", lut.astype("<u2").tobytes())
    else:
        item.add_new("LUTData", "US", lut.tolist())
    ds.VOILUTSequence = [item]
    if function:
        ds.VOILUTFunction = function
    ds.save_as(dst, enforce_file_format=True)
    return dst


@pytest.mark.parametrize("as_bytes", [False, True])
def test_voi_lut_sequence_against_pydicom(tmp_path: Path, dicom_dir: Path, as_bytes: bool) -> None:
    path = _with_voi_lut(dicom_dir / "nccid_nih_dx.dcm", tmp_path / "voi.dcm", as_bytes)
    im = load_image(path)
    assert im.meta.voi_source == "voi_lut"
    _, norm = _pydicom_display(pydicom.dcmread(path))
    np.testing.assert_allclose(im.pixels, norm, atol=1e-5)


def test_voi_lut_applies_after_modality_lut_sequence(tmp_path: Path, dicom_dir: Path) -> None:
    path = _with_voi_lut(dicom_dir / "CR-ModalitySequenceLUT.dcm", tmp_path / "mod_voi.dcm", as_bytes=False)
    ds = pydicom.dcmread(path)
    im = load_image(path)
    _, norm = _pydicom_display(ds)
    np.testing.assert_allclose(im.pixels, 1.0 - norm, atol=1e-5)  # MONOCHROME1


@pytest.mark.parametrize("function", ["SIGMOID", "LINEAR_EXACT"])
def test_voi_lut_function_against_pydicom(tmp_path: Path, dicom_dir: Path, function: str) -> None:
    ds = pydicom.dcmread(dicom_dir / "nccid_nih_dx.dcm")
    ds.WindowCenter, ds.WindowWidth, ds.VOILUTFunction = 120, 160, function
    path = tmp_path / f"{function}.dcm"
    ds.save_as(path, enforce_file_format=True)
    im = load_image(path)
    assert im.meta.default_window.function == function
    with np.errstate(over="ignore"):  # pydicom's sigmoid overflows exp() far from the center (to exactly 0)
        _, norm = _pydicom_display(pydicom.dcmread(path))
    np.testing.assert_allclose(im.pixels, norm, atol=1e-4)


def test_dicom_tags_mark_identifying_elements(dicom_dir: Path) -> None:
    rows = dicom_tags(dicom_dir / "RG1_J2KI.dcm")
    by_kw = {r.keyword: r for r in rows}
    assert by_kw["PatientName"].identifying and by_kw["PatientName"].tag == "(0010,0010)"
    assert not by_kw["Modality"].identifying and by_kw["Modality"].value == "CR"
    assert by_kw["PixelData"].value.endswith("bytes of pixel data>")
    assert by_kw["TransferSyntaxUID"].value == str(JPEG2000)


def _implicit_copy(src: Path, dst: Path, edit) -> Path:  # noqa: ANN001 - edit(ds) changes the dataset in place
    """``src`` (read as the engine reads it) edited, then saved as Implicit VR Little Endian."""
    from engine.io.dicom import read_dataset

    ds, _ = read_dataset(src)
    ds.file_meta.TransferSyntaxUID = ImplicitVRLittleEndian
    edit(ds)
    ds.save_as(dst, enforce_file_format=True)
    return dst


@pytest.mark.parametrize("n, first, as_bytes", [(1024, 0, False), (4096, 0, True), (1024, 100, False)])
def test_8bit_voi_lut_longer_than_256_entries(tmp_path: Path, dicom_dir: Path, n: int, first: int,
                                              as_bytes: bool) -> None:
    """An 8-bit VOI LUT with more entries than 256 on a 10-bit CR: every index reaches
    its own entry (pydicom's apply_voi builds uint8 indices, which wrap: max error 0.87)."""
    lut = np.round(255 * (np.arange(n) / (n - 1)) ** 0.5).astype(np.uint16)

    def add_lut(ds: Dataset) -> None:
        item = Dataset()
        item.LUTDescriptor = [n, first, 8]
        if as_bytes:
            item.add_new("LUTData", "OW", lut.astype("<u2").tobytes())
        else:
            item.add_new("LUTData", "US", lut.tolist())
        ds.VOILUTSequence = [item]

    path = _implicit_copy(dicom_dir / "CR-MONO1-10-chest.dcm", tmp_path / "voi8.dcm", add_lut)
    im = load_image(path)
    assert im.meta.voi_source == "voi_lut" and im.meta.inverted
    idx = np.clip(np.rint(im.values).astype(np.int64) - first, 0, n - 1)
    assert int(idx.max()) > 255  # the stored range goes past the first 256 entries
    expected = 1.0 - lut[idx] / 255.0  # MONOCHROME1
    np.testing.assert_allclose(im.pixels, expected, rtol=0, atol=1e-6)


def test_modality_lut_sequence_with_12_bit_entries(tmp_path: Path, dicom_dir: Path) -> None:
    """A Modality LUT whose descriptor says 12 bits per entry (seen in the wild; pydicom
    asks numpy for a 'uint12' dtype and fails): looked up entry by entry."""
    n = 1024
    lut = np.round(4095 * (np.arange(n) / (n - 1)) ** 2).astype(np.uint16)

    def add_lut(ds: Dataset) -> None:
        item = Dataset()
        item.LUTDescriptor = [n, 0, 12]
        item.add_new("LUTData", "US", lut.tolist())
        item.ModalityLUTType = "US"
        ds.ModalityLUTSequence = [item]
        for kw in ("RescaleSlope", "RescaleIntercept", "RescaleType"):
            if kw in ds:
                del ds[kw]

    path = _implicit_copy(dicom_dir / "CR-MONO1-10-chest.dcm", tmp_path / "mod12.dcm", add_lut)
    raw = _read(path).pixel_array.astype(np.int64)
    im = load_image(path)
    np.testing.assert_array_equal(im.values, lut[np.clip(raw, 0, n - 1)].astype(np.float32))


def _gray(rgb: np.ndarray) -> np.ndarray:
    import cv2

    return cv2.cvtColor(rgb.astype(np.float32), cv2.COLOR_RGB2GRAY)


# (YBR file, the same picture stored as RGB, largest mean gray difference allowed: both are lossy JPEG)
YBR_PAIRS = [
    ("SC_rgb_dcmtk_+eb+cy+n1.dcm", "SC_rgb_dcmtk_+eb+cr.dcm", 3.0),  # YBR_FULL, JPEG baseline
    ("SC_rgb_dcmtk_+eb+cy+np.dcm", "SC_rgb_dcmtk_+eb+cr.dcm", 3.0),  # YBR_FULL_422, JPEG baseline
    ("SC_rgb_jpeg_dcmtk.dcm", "SC_rgb_dcmtk_+eb+cr.dcm", 3.0),  # YBR_FULL, JPEG baseline
    ("SC_ybr_full_422_uncompressed.dcm", "SC_rgb_dcmtk_+eb+cr.dcm", 3.0),  # YBR_FULL_422, native
    ("examples_ybr_color.dcm", None, 0.0),  # YBR_FULL_422 JPEG, 30 frames; no RGB twin bundled
]


@pytest.mark.parametrize("ybr, rgb, tol", YBR_PAIRS)
def test_ybr_colour_is_converted_once(pydicom_file, ybr: str, rgb: str | None, tol: float) -> None:
    """pydicom 3 returns RGB for YBR_FULL(_422) already; converting again shifted the gray
    values by up to 100 levels. The YBR file must give the gray image of its RGB twin."""
    ybr_path = pydicom_file(ybr)
    ds = pydicom.dcmread(ybr_path)
    assert ds.PhotometricInterpretation.startswith("YBR")
    im_ybr = load_image(ybr_path)
    rgb_frame = ds.pixel_array if int(ds.get("NumberOfFrames", 1) or 1) == 1 else ds.pixel_array[0]
    np.testing.assert_allclose(im_ybr.values, _gray(rgb_frame), atol=1e-3)  # pydicom's RGB, to gray
    assert any("YBR" in n and "grayscale" in n for n in im_ybr.meta.notes)
    if rgb is not None:
        im_rgb = load_image(pydicom_file(rgb))
        assert im_ybr.values.shape == im_rgb.values.shape
        assert float(np.abs(im_ybr.values - im_rgb.values).mean()) < tol  # was 25-35 gray levels


def test_jpeg2000_ybr_rct_colour_loads(pydicom_file) -> None:
    """JPEG 2000 with the reversible colour transform (YBR_RCT): the decoder already gives
    RGB; a second conversion was refused by pydicom ('YBR_RCT to RGB is not supported')."""
    path = pydicom_file("GDCMJ2K_TextGBR.dcm")
    ds = pydicom.dcmread(path)
    assert ds.PhotometricInterpretation == "YBR_RCT"
    im = load_image(path)
    np.testing.assert_allclose(im.values, _gray(ds.pixel_array), atol=1e-3)

