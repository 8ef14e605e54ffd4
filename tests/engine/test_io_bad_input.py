"""Bad input: each case gives a clear typed error from ``load_image`` and an error row
(never an abort) in a batch."""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np
import pydicom
import pytest
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.encaps import encapsulate
from pydicom.uid import MPEG2MPML, BasicTextSRStorage, ExplicitVRLittleEndian, generate_uid

import engine.io.fileio
import engine.io.load
from engine.batch import FolderError, analyze_folder, list_images
from engine.errors import CorruptImageError, ImageLoadError, ImageTooLargeError, UnsupportedImageError
from engine.io import load_image

IS_ROOT = hasattr(os, "geteuid") and os.geteuid() == 0


def _png_bytes(cxr: Path) -> bytes:
    ok, buf = cv2.imencode(".png", cv2.imread(str(cxr), cv2.IMREAD_UNCHANGED))
    assert ok
    return buf.tobytes()


def _write(path: Path, data: bytes | str) -> Path:
    if isinstance(data, str):
        path.write_text(data, encoding="utf-8")
    else:
        path.write_bytes(data)
    return path


def _sr_dataset(path: Path) -> Path:
    """A minimal Basic Text SR: a valid DICOM file that holds no image."""
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = BasicTextSRStorage
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = Dataset()
    ds.file_meta = meta
    ds.SOPClassUID, ds.SOPInstanceUID = BasicTextSRStorage, meta.MediaStorageSOPInstanceUID
    ds.Modality, ds.PatientID, ds.StudyInstanceUID = "SR", "TEST-1", generate_uid()
    ds.ValueType, ds.ContinuityOfContent = "CONTAINER", "SEPARATE"
    ds.save_as(path, enforce_file_format=True)
    return path


def _unknown_codec(src: Path, path: Path) -> Path:
    """A real image re-labelled with a transfer syntax no installed decoder handles."""
    ds = pydicom.dcmread(src)
    ds.file_meta.TransferSyntaxUID = MPEG2MPML
    ds.PixelData = encapsulate([b"\x00" * 256])
    ds["PixelData"].VR = "OB"
    ds.save_as(path, enforce_file_format=True)
    return path


# name -> (builder(folder, cxr_jpeg, dicom_dir, pydicom_file, undecodable_dicom) -> path, error type, message fragment)
Builder = Callable[[Path, Path, Path, Callable[[str], Path], Path], Path]
CASES: dict[str, tuple[Builder, type[ImageLoadError], str]] = {
    "zero_byte": (lambda d, c, dd, pf, ud: _write(d / "zero.png", b""),
                  CorruptImageError, "the file is empty (0 bytes)"),
    "truncated_png": (lambda d, c, dd, pf, ud: _write(d / "cut.png", _png_bytes(c)[:3000]),
                      CorruptImageError, "truncated PNG"),
    "truncated_jpeg": (lambda d, c, dd, pf, ud: _write(d / "cut.jpg", c.read_bytes()[: c.stat().st_size // 2]),
                       CorruptImageError, "truncated JPEG"),
    "text_named_dcm": (lambda d, c, dd, pf, ud: _write(d / "notes.dcm", "Patient notes: not an image.\n" * 20),
                       UnsupportedImageError, "not a PNG, JPEG or DICOM file"),
    "dicom_sr_built": (lambda d, c, dd, pf, ud: _sr_dataset(d / "report_sr.dcm"),
                       UnsupportedImageError, "holds no image (Basic Text SR Storage)"),
    "dicom_sr_pydicom": (lambda d, c, dd, pf, ud: Path(shutil.copy(pf("test-SR.dcm"), d / "test-SR.dcm")),
                         UnsupportedImageError, "holds no image"),
    "mr_truncated": (lambda d, c, dd, pf, ud: Path(shutil.copy(pf("MR_truncated.dcm"), d / "MR_truncated.dcm")),
                     CorruptImageError, "pixel data is truncated"),
    # a 12-bit JPEG Extended file whose frame no decoder reads (hierarchical JPEG: tests/conftest.py)
    "jpeg_extended_12bit": (lambda d, c, dd, pf, ud: Path(shutil.copy(ud, d / "jpeg_sof5.dcm")),
                            UnsupportedImageError,
                            "unsupported compression: JPEG Extended (Process 2 and 4) (1.2.840.10008.1.2.4.51)"),
    "unknown_codec": (lambda d, c, dd, pf, ud: _unknown_codec(dd / "nccid_nih_dx.dcm", d / "mpeg2.dcm"),
                      UnsupportedImageError, "unsupported compression: MPEG2 Main Profile"),
    "decompression_bomb": (lambda d, c, dd, pf, ud: cv2.imwrite(str(d / "bomb.png"), np.zeros((10001, 10001), np.uint8)) and d / "bomb.png",
                           ImageTooLargeError, "10001x10001 pixels exceeds the limit"),
}


@pytest.fixture(scope="module")
def bad_folder(tmp_path_factory: pytest.TempPathFactory, cxr_samples: dict[str, list[Path]], dicom_dir: Path,
               pydicom_file, undecodable_dicom: Path) -> tuple[Path, dict[str, Path], Path]:
    d = tmp_path_factory.mktemp("bad")
    paths = {name: builder(d, cxr_samples["normal"][0], dicom_dir, pydicom_file, undecodable_dicom)
             for name, (builder, _, _) in CASES.items()}
    good = Path(shutil.copy(cxr_samples["covid"][0], d / "good.jpg"))
    return d, paths, good


@pytest.mark.parametrize("case", sorted(CASES))
def test_load_image_gives_typed_clear_error(bad_folder, case: str) -> None:
    _, paths, _ = bad_folder
    _, exc_type, fragment = CASES[case]
    with pytest.raises(exc_type) as info:
        load_image(paths[case])
    msg = str(info.value)
    assert fragment in msg
    assert msg.startswith(paths[case].name + ":")  # names the file
    assert msg.rstrip().endswith(".")  # a sentence, with what to do next where there is something to do


def test_pixel_limit_is_checked_before_decoding(bad_folder, monkeypatch: pytest.MonkeyPatch) -> None:
    _, paths, good = bad_folder

    def no_decode(*a, **k):  # noqa: ANN002, ANN003
        raise AssertionError("the decoder must not run on an image over the pixel limit")

    monkeypatch.setattr(engine.io.load.cv2, "imdecode", no_decode)
    with pytest.raises(ImageTooLargeError, match="decompression bomb"):
        load_image(paths["decompression_bomb"])
    with pytest.raises(ImageTooLargeError, match="50,000 pixels"):
        load_image(good, max_pixels=50_000)  # a real 224x224 radiograph under a lowered limit


def test_dicom_over_pixel_limit(dicom_dir: Path) -> None:
    with pytest.raises(ImageTooLargeError, match="1955|1841"):
        load_image(dicom_dir / "RG1_J2KI.dcm", max_pixels=1_000_000)


def test_missing_file_and_folder_given_as_image(tmp_path: Path) -> None:
    with pytest.raises(ImageLoadError, match="file not found"):
        load_image(tmp_path / "nope.png")
    with pytest.raises(ImageLoadError, match="is a folder, not an image"):
        load_image(tmp_path)


@pytest.fixture
def unreadable(tmp_path: Path, cxr_samples: dict[str, list[Path]], monkeypatch: pytest.MonkeyPatch) -> Path:
    """A real image the process may not read: chmod 000, or, as root (who reads
    anything), ``open`` in engine.io.fileio (which reads files) raising PermissionError for that file."""
    path = Path(shutil.copy(cxr_samples["normal"][1], tmp_path / "locked.jpg"))
    if IS_ROOT or os.name == "nt":
        real_open = open

        def guarded_open(file, *args, **kwargs):  # noqa: ANN001, ANN002, ANN003
            if Path(file).name == "locked.jpg":
                raise PermissionError(13, "Permission denied", str(file))
            return real_open(file, *args, **kwargs)

        monkeypatch.setattr(engine.io.fileio, "open", guarded_open, raising=False)
    else:
        path.chmod(0)
    yield path
    if path.exists():
        path.chmod(0o644)


def test_unreadable_permissions(unreadable: Path) -> None:
    with pytest.raises(ImageLoadError, match="permission denied"):
        load_image(unreadable)


def test_unreadable_file_is_an_error_row(unreadable: Path, classifier) -> None:
    rows = list(analyze_folder(unreadable.parent, classifier))
    assert len(rows) == 1 and rows[0].status == "error" and "permission denied" in rows[0].error


def test_non_utf8_file_name(tmp_path: Path, cxr_samples: dict[str, list[Path]], classifier) -> None:
    raw_dir = os.fsencode(tmp_path)
    good_name, bad_name = b"\xff\xfe.png", b"cut\xe9.png"
    try:
        with open(os.path.join(raw_dir, good_name), "wb") as f:
            f.write(_png_bytes(cxr_samples["normal"][0]))
        with open(os.path.join(raw_dir, bad_name), "wb") as f:
            f.write(_png_bytes(cxr_samples["normal"][0])[:2000])
    except (OSError, UnicodeError):
        pytest.skip("this file system does not accept non-UTF-8 file names")
    good = Path(os.fsdecode(os.path.join(raw_dir, good_name)))
    im = load_image(good)  # a valid image whatever its name
    assert im.shape == (224, 224)
    with pytest.raises(CorruptImageError, match="truncated PNG"):
        load_image(Path(os.fsdecode(os.path.join(raw_dir, bad_name))))
    rows = {r.rel_path: r for r in analyze_folder(tmp_path, classifier)}
    assert set(rows) == {"\\xff\\xfe.png", "cut\\xe9.png"}  # printable escapes, valid UTF-8
    assert rows["\\xff\\xfe.png"].ok
    err = rows["cut\\xe9.png"]
    assert err.status == "error" and "truncated PNG" in err.error
    err.error.encode("utf-8")  # printable: no lone surrogates left
    assert os.fsencode(rows["\\xff\\xfe.png"].path).endswith(good_name)  # the real path still opens the file


def test_empty_folder(tmp_path: Path, classifier) -> None:
    (tmp_path / ".hidden.png").write_bytes(b"x")  # hidden files do not count
    with pytest.raises(FolderError, match="no (image )?files in"):
        list_images(tmp_path)
    with pytest.raises(FolderError, match="no (image )?files in"):
        analyze_folder(tmp_path, classifier)  # raised at once, before iterating


def test_every_bad_input_is_an_error_row_in_a_batch(bad_folder, classifier) -> None:
    folder, paths, good = bad_folder
    rows = list(analyze_folder(folder, classifier, batch_size=4))
    by_name = {Path(r.path).name: r for r in rows}
    assert len(rows) == len(CASES) + 1
    assert [r.index for r in rows] == list(range(len(rows))) and all(r.total == len(rows) for r in rows)
    for case, path in paths.items():
        row = by_name[path.name]
        assert row.status == "error", case
        with pytest.raises(ImageLoadError) as info:
            load_image(path)
        assert row.error == str(info.value), case  # the same message as load_image
        assert row.label == "" and row.probs == {} and row.prediction is None
    ok = by_name[good.name]
    assert ok.status == "ok" and ok.label in classifier.labels and ok.error == ""
