"""Issue 25: chunks analysed side by side (lanes), each on its share of the cores; the work a batch
does not need is gone (tag rows, the lung model found per image, rows counted twice)."""

from __future__ import annotations

import json
import os
import shutil
import threading
import time
from pathlib import Path

import numpy as np
import pytest

import engine.ai.lungs
import engine.batch.generator
from engine.ai import jobs
from engine.ai.model import Classifier, default_model_path
from engine.batch import analyze_folder
from engine.batch.cli import main as batch_main
from engine.io import load_image


@pytest.fixture(scope="module")
def folder(tmp_path_factory: pytest.TempPathFactory, cxr_samples: dict[str, list[Path]], dicom_dir: Path,
           undecodable_dicom: Path) -> Path:
    """Real radiographs of every class (3 each), a DICOM, an undecodable DICOM, a torn and an empty JPEG."""
    root = tmp_path_factory.mktemp("lanes")
    for label, paths in sorted(cxr_samples.items()):
        for i, p in enumerate(paths[:3]):
            shutil.copy(p, root / f"{label}{i}.jpg")
    shutil.copy(dicom_dir / "CR-MONO1-10-chest.dcm", root / "chest.dcm")
    shutil.copy(undecodable_dicom, root / "refused.dcm")
    good = (root / "normal0.jpg").read_bytes()
    (root / "torn.jpg").write_bytes(good[: len(good) // 3])
    (root / "empty.jpg").write_bytes(b"")
    return root


@pytest.fixture(scope="module")
def real_single_threaded() -> Classifier:
    path = default_model_path()
    if not path.is_file():
        pytest.skip("the bundled model is not installed")
    return Classifier(path, device="cpu", threads=1)


def _fields(row) -> tuple:  # noqa: ANN001
    return (row.index, row.rel_path, row.status, row.error, row.label, row.flags, row.probs, row.scope,
            row.scope_reason, row.ood_score, row.width, row.height)


def test_lanes_give_the_rows_of_one_lane_bit_for_bit(folder: Path, real_single_threaded: Classifier,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    ran_in: set[str] = set()
    real_run = real_single_threaded.run

    def spy(batch, features=False):  # noqa: ANN001, ANN202
        ran_in.add(threading.current_thread().name.rsplit("_", 1)[0])
        return real_run(batch, features)

    monkeypatch.setattr(real_single_threaded, "run", spy)
    one = [_fields(r) for r in analyze_folder(folder, real_single_threaded, batch_size=4, lanes=1)]
    for lanes in (2, 3):
        ran_in.clear()
        rows = [_fields(r) for r in analyze_folder(folder, real_single_threaded, batch_size=4, lanes=lanes)]
        assert rows == one  # same chunks, same batches: the same probabilities, bit for bit
        assert ran_in == {"radlens-lane"}  # the model runs in the lane threads, not the caller's
    statuses = [r[2] for r in one]
    assert statuses.count("error") == 3 and statuses.count("ok") + statuses.count("out_of_scope") == len(one) - 3


def test_lanes_run_side_by_side(folder: Path, classifier, monkeypatch: pytest.MonkeyPatch) -> None:
    """Two chunks are in the model at once: the second starts before the first ends."""
    real_run = classifier.run
    spans: list[tuple[float, float]] = []
    lock = threading.Lock()

    def slow(batch, features=False):  # noqa: ANN001, ANN202
        t0 = time.perf_counter()
        time.sleep(0.2)
        out = real_run(batch, features)
        with lock:
            spans.append((t0, time.perf_counter()))
        return out

    monkeypatch.setattr(classifier, "run", slow)
    t0 = time.perf_counter()
    rows = list(analyze_folder(folder, classifier, batch_size=4, lanes=2))
    elapsed = time.perf_counter() - t0
    assert len(rows) == len(list(folder.iterdir()))
    spans.sort()
    assert any(b[0] < a[1] for a, b in zip(spans, spans[1:], strict=False))  # overlapping model runs
    assert elapsed < 0.2 * len(spans)  # less than the runs one after another


def test_decoded_images_held_are_bounded(folder: Path, classifier, monkeypatch: pytest.MonkeyPatch) -> None:
    real = engine.batch.generator.load_image
    started: list[str] = []

    def spy(path, **kw):  # noqa: ANN001, ANN003
        started.append(Path(path).name)
        assert kw.get("tags") is False  # a batch never builds tag rows
        return real(path, **kw)

    monkeypatch.setattr(engine.batch.generator, "load_image", spy)
    job = analyze_folder(folder, classifier, batch_size=2, workers=1, lanes=2)
    first = next(job)
    time.sleep(0.3)  # the decoders and lanes keep going while the caller holds the first row
    assert first.index == 0
    assert 2 < len(started) <= (2 + 1) * 2 + 2  # (lanes + 1) chunks in flight, plus the chunk handed out
    job.close()
    deadline = time.time() + 3
    while any(t.name.startswith(("radlens-decode", "radlens-lane")) for t in threading.enumerate()) \
            and time.time() < deadline:
        time.sleep(0.05)
    assert not any(t.name.startswith(("radlens-decode", "radlens-lane")) for t in threading.enumerate())


def test_cancel_stops_every_lane(folder: Path, classifier, monkeypatch: pytest.MonkeyPatch) -> None:
    real_run = classifier.run

    def slow(batch, features=False):  # noqa: ANN001, ANN202
        time.sleep(0.3)
        return real_run(batch, features)

    monkeypatch.setattr(classifier, "run", slow)
    event = threading.Event()
    threading.Timer(0.1, event.set).start()
    t0 = time.perf_counter()
    rows = list(analyze_folder(folder, classifier, batch_size=2, lanes=3, cancel=event))
    assert rows == [] and time.perf_counter() - t0 < 1.0  # 9 chunks x 0.3 s would take 2.7 s


def test_bad_lanes_refused(folder: Path, classifier) -> None:
    with pytest.raises(ValueError, match="lanes"):
        analyze_folder(folder, classifier, lanes=0)


def test_how_the_cores_are_shared(monkeypatch: pytest.MonkeyPatch) -> None:
    class Fake:
        def __init__(self, threads: int, provider: str = "CPUExecutionProvider") -> None:
            self.threads, self.provider = threads, provider

    monkeypatch.setattr(os, "cpu_count", lambda: 2)
    assert jobs.default_lanes() == 2 and jobs.lane_threads() == 1
    assert jobs.lanes_for(Fake(1)) == 2  # what radlens-batch opens here: 2 lanes of 1 thread
    assert jobs.lanes_for(Fake(0)) == 1  # a classifier on every core (the viewer's): one lane, as before
    assert jobs.lanes_for(Fake(0, "CUDAExecutionProvider")) == 2  # GPU: CPU steps overlap the GPU runs
    monkeypatch.setattr(os, "cpu_count", lambda: 16)
    assert jobs.default_lanes() == jobs.MAX_LANES == 4 and jobs.lane_threads() == 4
    assert jobs.lanes_for(Fake(4)) == 4 and jobs.lanes_for(Fake(1)) == 4 and jobs.lanes_for(Fake(16)) == 1
    monkeypatch.setattr(os, "cpu_count", lambda: None)
    assert jobs.default_lanes() == 1 and jobs.lane_threads() == 1


def test_tag_rows_only_when_asked(dicom_dir: Path) -> None:
    path = dicom_dir / "CR-MONO1-10-chest.dcm"
    full, bare = load_image(path), load_image(path, tags=False)
    assert len(full.tags) > 20 and bare.tags == ()
    assert np.array_equal(full.pixels, bare.pixels) and full.meta == bare.meta


def test_the_bundled_lung_model_is_found_once(tiny_model_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    clf = Classifier(tiny_model_path, device="cpu")
    calls: list[int] = []
    real = engine.ai.lungs.default_lungseg_path

    def counting():  # noqa: ANN202
        calls.append(1)
        return real()

    monkeypatch.setattr(engine.ai.lungs, "default_lungseg_path", counting)
    first = clf.lung_segmenter
    assert all(clf.lung_segmenter is first for _ in range(50))
    assert len(calls) <= 1  # not a file check per image
    monkeypatch.setenv("RADLENS_LUNGSEG", "off")
    assert clf.lung_segmenter is None  # the switch still works at once
    monkeypatch.delenv("RADLENS_LUNGSEG")
    assert clf.lung_segmenter is first


def test_the_summary_is_the_reports_counts(folder: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """The CLI prints the counts the report's JSON holds (one tally), naming 5 errors and the rest."""
    many = tmp_path / "many"
    shutil.copytree(folder, many)
    for i in range(5):
        (many / f"zz_empty{i}.jpg").write_bytes(b"")
    out = tmp_path / "r.csv"
    code = batch_main([str(many), "-o", str(out), "--no-progress"])
    text = capsys.readouterr().out
    counts = json.loads(out.with_suffix(".json").read_text())["counts"]
    n = len(list(many.iterdir()))
    assert code == 1 and counts["errors"] == 8 and counts["files"] == n
    assert (f"Processed {n} of {n} file(s)" in text and f"{counts['analysed']} analysed, {counts['out_of_scope']} out "
            f"of scope, 8 error(s)." in text)
    assert "8 file(s) could not be analysed" in text and "... and 3 more." in text
    for lab, n in counts["calls"].items():
        assert any(line.split()[:2] == [lab, str(n)] for line in text.splitlines()), lab


def _jls_files(tmp_path: Path, dicom_dir: Path) -> list[Path]:
    """JPEG-LS files: lossless and near-lossless, unsigned and signed grey, RGB by line and by sample."""
    import pydicom
    import pydicom.data
    from pydicom.dataset import FileMetaDataset
    from pydicom.uid import ImplicitVRLittleEndian, JPEGLSLossless, JPEGLSNearLossless

    out = []
    ds = pydicom.dcmread(dicom_dir / "CR-MONO1-10-chest.dcm", force=True)  # a raw file: no meta header
    ds.file_meta = FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = ImplicitVRLittleEndian
    ds.compress(JPEGLSLossless, encoding_plugin="pyjpegls")
    ds.save_as(tmp_path / "cr_jls.dcm", enforce_file_format=True)
    out.append(tmp_path / "cr_jls.dcm")
    signed = pydicom.data.get_testdata_file("CT_small.dcm")  # PixelRepresentation 1
    for ts, kw in ((JPEGLSLossless, {}), (JPEGLSNearLossless, {"jls_error": 2})):
        ct = pydicom.dcmread(signed)
        ct.compress(ts, encoding_plugin="pyjpegls", **kw)
        ct.save_as(tmp_path / f"ct_{ts[-2:]}.dcm")
        out.append(tmp_path / f"ct_{ts[-2:]}.dcm")
    out += [Path(pydicom.data.get_testdata_file(n)) for n in ("SC_rgb_jls_lossy_line.dcm", "SC_rgb_jls_lossy_sample.dcm")]
    return out


def test_jpeg_ls_goes_through_imagecodecs_charls_with_the_same_pixels(tmp_path: Path, dicom_dir: Path,
                                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    """JPEG-LS decodes through imagecodecs' CharLS (GIL released: decode threads run at once) when it is
    installed: the same pixels as pyjpegls and pylibjpeg-libjpeg, and as the uncompressed file."""
    import pydicom
    from pydicom.uid import JPEGLSLossless

    import engine.io.dicom as dicom_io

    if "imagecodecs-charls" not in dicom_io._available_plugins(JPEGLSLossless):
        pytest.skip("imagecodecs has no CharLS here")
    real = pydicom.pixels.pixel_array
    for path in _jls_files(tmp_path, dicom_dir):
        ours = real(path, decoding_plugin="imagecodecs-charls")
        for other in ("pyjpegls", "pylibjpeg"):
            assert np.array_equal(ours, real(path, decoding_plugin=other)), (path.name, other)
    used: list[object] = []

    def spy(*a, **kw):  # noqa: ANN002, ANN003, ANN202
        used.append(kw.get("decoding_plugin"))
        return real(*a, **kw)

    monkeypatch.setattr(pydicom.pixels, "pixel_array", spy)
    fast = load_image(tmp_path / "cr_jls.dcm")
    assert used == ["imagecodecs-charls"]
    plain = load_image(dicom_dir / "CR-MONO1-10-chest.dcm")
    assert np.array_equal(fast.values, plain.values) and np.array_equal(fast.pixels, plain.pixels)
    # a plugin that refuses the file: the next one, then pydicom's own order
    monkeypatch.setitem(dicom_io.PREFERRED_PLUGINS, str(JPEGLSLossless), ("gdcm", "pyjpegls"))
    monkeypatch.setitem(dicom_io._plugins, str(JPEGLSLossless), ("gdcm", "pyjpegls", "pylibjpeg"))
    used.clear()
    assert np.array_equal(load_image(tmp_path / "cr_jls.dcm").values, plain.values) and used == ["gdcm", "pyjpegls"]
    monkeypatch.setitem(dicom_io.PREFERRED_PLUGINS, str(JPEGLSLossless), ("gdcm",))
    used.clear()
    assert np.array_equal(load_image(tmp_path / "cr_jls.dcm").values, plain.values) and used == ["gdcm", None]


def test_jpeg_ls_decoding_lets_other_threads_run(cxr_samples: dict[str, list[Path]]) -> None:
    """The point of the plugin: while one thread is inside imagecodecs' CharLS, another thread's Python
    code runs (the GIL is released), so two decode threads decode two files at once. pyjpegls, whose
    CharLS holds the GIL, is the control: the other thread stands still during its call."""
    import cv2
    import imagecodecs

    jpeg_ls = pytest.importorskip("jpeg_ls")
    from engine.io import dicom_charls

    if not dicom_charls.is_available("1.2.840.10008.1.2.4.80"):
        pytest.skip("imagecodecs has no CharLS here")
    film = cv2.imread(str(cxr_samples["normal"][0]), cv2.IMREAD_GRAYSCALE)
    big = (cv2.resize(film, (1800, 1800)).astype(np.uint16) * 16)  # a 12-bit film's size and depth
    frame = bytes(imagecodecs.jpegls_encode(big))

    class Runner:
        def set_option(self, *a: object) -> None:
            pass

    def others_ran_during(fn) -> int:  # noqa: ANN001
        count, stop = [0], threading.Event()

        def spin() -> None:
            while not stop.is_set():
                count[0] += 1

        t = threading.Thread(target=spin)
        t.start()
        time.sleep(0.02)
        before = count[0]
        fn()
        ran = count[0] - before
        stop.set()
        t.join()
        return ran

    ours = max(others_ran_during(lambda: dicom_charls._decode_frame(frame, Runner())) for _ in range(3))
    control = max(others_ran_during(lambda: jpeg_ls.decode_pixel_data(frame)) for _ in range(3))
    assert ours > 3 * control + 1000, (ours, control)


def test_a_folder_of_jpegs_never_imports_pydicom(tmp_path: Path, cxr_samples: dict[str, list[Path]]) -> None:
    """pydicom's import is 0.2 s of every radlens-batch start (0.62 -> 0.45 s here): only DICOM input loads it."""
    import subprocess
    import sys

    folder = tmp_path / "in"
    folder.mkdir()
    shutil.copy(cxr_samples["normal"][0], folder / "a.jpg")
    code = ("import sys; from engine.batch.cli import main; "
            f"rc = main([{str(folder)!r}, '-o', {str(tmp_path / 'r.csv')!r}, '--no-progress']); "
            "print('pydicom' in sys.modules, rc)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip().splitlines()[-1] == "False 0"
