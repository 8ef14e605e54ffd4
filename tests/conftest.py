"""Shared fixtures: the shared data beside the checkout (../shared/data), a PNG made from
one of its radiographs, a DICOM file that no installed decoder reads, a tiny real ONNX model
that satisfies the full contract, and a classifier on it. No Qt here: tests/desktop_core runs
where PySide6 is not installed."""

from __future__ import annotations

import csv
import sys
from pathlib import Path

import pytest

TESTS = Path(__file__).resolve().parent
REPO = TESTS.parent
SHARED = REPO.parent / "shared"
DATA = SHARED / "data"
DICOM_DIR = DATA / "dicom"
CXR_DIR = DATA / "cxr"

if str(TESTS) not in sys.path:
    sys.path.insert(0, str(TESTS))


def _need(path: Path) -> Path:
    if not path.exists():
        pytest.skip(f"shared test data not found at {path} (clone ../shared beside the repository)")
    return path


@pytest.fixture(scope="session")
def dicom_dir() -> Path:
    return _need(DICOM_DIR)


@pytest.fixture(scope="session")
def cxr_dir() -> Path:
    return _need(CXR_DIR)


@pytest.fixture(scope="session")
def cxr_manifest(cxr_dir: Path) -> list[dict[str, str]]:
    with open(cxr_dir / "manifest.csv", newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f))


@pytest.fixture(scope="session")
def cxr_samples(cxr_dir: Path, cxr_manifest: list[dict[str, str]]) -> dict[str, list[Path]]:
    """A few real radiographs per class, first by manifest order."""
    out: dict[str, list[Path]] = {}
    for row in cxr_manifest:
        lst = out.setdefault(row["label"], [])
        if len(lst) < 5:
            lst.append(cxr_dir / row["file"])
    return out


@pytest.fixture
def png_path(tmp_path: Path, cxr_samples: dict[str, list[Path]]) -> Path:
    """A PNG written from a real chest radiograph JPEG."""
    import cv2

    src = cxr_samples["pneumonia"][0]
    img = cv2.imread(str(src), cv2.IMREAD_GRAYSCALE)
    out = tmp_path / "chest.png"
    assert cv2.imwrite(str(out), img)
    return out


@pytest.fixture(scope="session")
def pydicom_file():
    """Path of a file bundled with pydicom (never downloads: skips if not bundled)."""
    import pydicom.data

    local = Path(pydicom.data.__file__).parent / "test_files"

    def get(name: str) -> Path:
        if not (local / name).exists():
            pytest.skip(f"pydicom test file {name} is not bundled with this pydicom")
        return Path(pydicom.data.get_testdata_file(name))

    return get


def write_undecodable_dicom(src: Path, dst: Path) -> Path:
    """``src``, a 12-bit JPEG Extended file with one frame (SOF1), written to ``dst`` with its
    frame header marker changed to SOF5: a differential frame of hierarchical JPEG, which
    pydicom's plugins, libjpeg-turbo (imagecodecs) and DCMTK's dcmdjpeg all refuse."""
    import pydicom
    from pydicom.encaps import encapsulate, get_frame

    ds = pydicom.dcmread(src)
    frame = get_frame(ds.PixelData, 0, number_of_frames=1)
    sof = frame.index(b"\xff\xc1")
    ds.PixelData = encapsulate([frame[:sof] + b"\xff\xc5" + frame[sof + 2 :]])
    ds["PixelData"].is_undefined_length = True
    ds.save_as(dst)
    return dst


@pytest.fixture(scope="session")
def undecodable_dicom(tmp_path_factory: pytest.TempPathFactory, pydicom_file) -> Path:
    """A well-formed DICOM file that no decoder reads, for the tests of what a refused image
    gives (a typed error naming the transfer syntax, one reason per decoder, an error row):
    pydicom's 12-bit JPEG Extended sample JPEG-lossy.dcm patched by ``write_undecodable_dicom``.
    Shared by the session: copy it under the name a test needs rather than change it."""
    from engine.errors import UnsupportedImageError
    from engine.io import load_image

    path = write_undecodable_dicom(pydicom_file("JPEG-lossy.dcm"), tmp_path_factory.mktemp("undecodable") / "jpeg_sof5.dcm")
    try:
        load_image(path)
    except UnsupportedImageError:
        return path
    raise AssertionError(f"{path.name} was meant to be undecodable, but the engine opens it: pick another file")


@pytest.fixture(scope="session")
def tiny_model_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from tinymodel import build_tiny_model

    return build_tiny_model(tmp_path_factory.mktemp("model") / "tiny.onnx")


@pytest.fixture(scope="session")
def classifier(tiny_model_path: Path):
    from engine.ai.model import Classifier

    return Classifier(tiny_model_path, device="auto")
