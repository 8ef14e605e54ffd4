"""Send results to PACS for a batch: the SR and Secondary Capture objects wait on disk, not in
memory (a capture is the size of its source image in RGB: 20+ MB for a full-size radiograph, so
a batch of hundreds would not fit), and are stored on a real Orthanc a few at a time."""

from __future__ import annotations

import os

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

import threading  # noqa: E402
import tracemalloc  # noqa: E402
from pathlib import Path  # noqa: E402

import pydicom  # noqa: E402
import pytest  # noqa: E402
import requests  # noqa: E402
from conftest import Orthanc  # noqa: E402  (tests/pacs/conftest.py)

pytest.importorskip("PySide6")

from desktop.pacs.pacs_send import SendItem, build_objects  # noqa: E402
from engine import Classifier, default_model_path  # noqa: E402
from engine.pacs.dicomweb import PacsClient  # noqa: E402


def test_a_batch_send_keeps_its_objects_on_disk_and_stores_them_all(orthanc: Orthanc, dicom_dir: Path,
                                                                    tmp_path: Path) -> None:
    clf = Classifier(default_model_path())
    dx = str(dicom_dir / "nccid_nih_dx.dcm")  # 1100 x 1024: its capture is 3.4 MB of RGB pixels
    build_objects([SendItem(dx, clf)], lambda d, t: None, threading.Event(), str(tmp_path / "warm"))
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        built = build_objects([SendItem(dx, clf)] * 3, lambda d, t: None, threading.Event(), str(tmp_path / "send"))
        held = tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()
    assert held < 3_000_000, f"the built objects hold {held / 1e6:.1f} MB in memory"
    assert sorted(built.kinds) == ["SC"] * 3 + ["SR"] * 3 and len(built.files) == 6
    assert all(Path(f).parent == tmp_path / "send" and Path(f).is_file() for f in built.files)
    result = PacsClient(orthanc.server()).store_files(built.files)
    assert (result.stored, result.failed) == (6, 0)
    for f in built.files:
        uid = pydicom.dcmread(f, stop_before_pixels=True).SOPInstanceUID
        found = requests.post(f"{orthanc.url}/tools/find", json={"Level": "Instance", "Query": {"SOPInstanceUID": uid}},
                              timeout=10).json()
        assert len(found) == 1, f"{uid} is not on the server"
