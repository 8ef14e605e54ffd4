"""``engine.batch``: one row per file in order, overlapped decoding, cancel, progress,
error rows, bounded memory."""

from __future__ import annotations

import shutil
import threading
import time
from pathlib import Path

import cv2
import numpy as np
import pytest

import engine.batch.generator
from engine.ai.analyze import analyze
from engine.batch import BatchRow, FolderError, analyze_folder, list_images


@pytest.fixture(scope="module")
def study(tmp_path_factory: pytest.TempPathFactory, cxr_samples: dict[str, list[Path]], dicom_dir: Path) -> Path:
    """A small study folder: real radiographs in sub-folders, a DICOM, a non-image,
    hidden files and a DICOMDIR (skipped)."""
    root = tmp_path_factory.mktemp("study")
    (root / "b" / "c").mkdir(parents=True)
    (root / "a").mkdir()
    (root / ".cache").mkdir()
    for i, p in enumerate(cxr_samples["normal"][:3]):
        shutil.copy(p, root / "a" / f"n{i}.jpg")
    for i, p in enumerate(cxr_samples["pneumonia"][:3]):
        shutil.copy(p, root / "b" / f"p{i}.jpg")
    for i, p in enumerate(cxr_samples["tuberculosis"][:2]):
        shutil.copy(p, root / "b" / "c" / f"t{i}.jpg")
    shutil.copy(cxr_samples["covid"][0], root / "z_covid.jpg")
    shutil.copy(dicom_dir / "CR-MONO1-10-chest.dcm", root / "chest.dcm")
    (root / "notes.txt").write_text("not an image")
    shutil.copy(cxr_samples["covid"][1], root / ".hidden.jpg")
    shutil.copy(cxr_samples["covid"][2], root / ".cache" / "thumb.jpg")
    (root / "DICOMDIR").write_bytes(b"\0" * 200)
    return root


EXPECTED_ORDER = ["a/n0.jpg", "a/n1.jpg", "a/n2.jpg", "b/c/t0.jpg", "b/c/t1.jpg", "b/p0.jpg", "b/p1.jpg", "b/p2.jpg",
                  "chest.dcm", "z_covid.jpg"]  # notes.txt: not an image name, skipped by the engine's one rule


def test_list_images_recursive_sorted_skips_hidden(study: Path) -> None:
    files = list_images(study)
    assert [p.relative_to(study).as_posix() for p in files] == EXPECTED_ORDER


def test_rows_in_file_order_with_progress(study: Path, classifier) -> None:
    calls: list[tuple[int, int]] = []
    job = analyze_folder(study, classifier, batch_size=3, progress=lambda d, t: calls.append((d, t)))
    assert job.total == len(EXPECTED_ORDER) and [p.relative_to(study).as_posix() for p in job.files] == EXPECTED_ORDER
    rows = list(job)
    n = len(EXPECTED_ORDER)
    assert [r.rel_path for r in rows] == EXPECTED_ORDER
    assert [r.index for r in rows] == list(range(n)) and {r.total for r in rows} == {n}
    assert calls == [(i + 1, n) for i in range(n)]
    assert [r.status for r in rows].count("error") == 0
    assert [p.name for p in job.skipped] == ["notes.txt"]


def test_batched_results_equal_single_analysis(study: Path, classifier) -> None:
    rows = [r for r in analyze_folder(study, classifier, batch_size=4, workers=2) if r.ok]
    assert len(rows) == len(EXPECTED_ORDER)
    for r in rows:
        single = analyze(r.path, classifier)
        assert r.label == single.top_label
        np.testing.assert_allclose([r.probs[lab] for lab in classifier.labels], single.probs, atol=1e-5)
        assert (r.width, r.height) == (single.image.meta.width, single.image.meta.height)
        assert r.top_prob == pytest.approx(single.top_prob, abs=1e-5)
    dcm = next(r for r in rows if r.rel_path == "chest.dcm")
    assert (dcm.modality, dcm.view_position, dcm.format) == ("CR", "PA", "dicom")


def test_keep_predictions(study: Path, classifier) -> None:
    kept = [r for r in analyze_folder(study, classifier, keep_predictions=True) if r.ok]
    assert all(r.prediction is not None for r in kept)
    r = kept[0]
    assert r.prediction.image.shape == (r.height, r.width) and r.prediction.heatmap().shape == (r.height, r.width)
    np.testing.assert_allclose(r.prediction.probs, [r.probs[lab] for lab in classifier.labels], atol=1e-7)


def test_default_rows_hold_no_pixels(study: Path, classifier) -> None:
    for r in analyze_folder(study, classifier):
        assert r.prediction is None
        assert not any(isinstance(getattr(r, f), np.ndarray) for f in BatchRow.__dataclass_fields__)


@pytest.mark.parametrize("kind", ["event", "callable"])
def test_cancel_stops_at_once(study: Path, classifier, kind: str) -> None:
    event = threading.Event()
    cancel = event if kind == "event" else event.is_set
    rows = []
    for row in analyze_folder(study, classifier, batch_size=2, cancel=cancel):
        rows.append(row)
        if len(rows) == 3:
            event.set()
    assert len(rows) == 3  # no row after the cancel


def test_cancel_while_decoders_are_slow(study: Path, classifier, monkeypatch: pytest.MonkeyPatch) -> None:
    real = engine.batch.generator.load_image

    def slow(path, **kw):  # noqa: ANN001, ANN003
        time.sleep(0.4)
        return real(path, **kw)

    monkeypatch.setattr(engine.batch.generator, "load_image", slow)
    event = threading.Event()
    threading.Timer(0.3, event.set).start()
    t0 = time.perf_counter()
    rows = list(analyze_folder(study, classifier, batch_size=8, workers=1, cancel=event))
    elapsed = time.perf_counter() - t0
    assert rows == [] and elapsed < 1.0  # 11 files x 0.4 s would take 4.4 s


def test_decoding_runs_in_worker_threads_ahead_of_inference(study: Path, classifier,
                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    real = engine.batch.generator.load_image
    decoded_in: list[str] = []

    def spy(path, **kw):  # noqa: ANN001, ANN003
        decoded_in.append(threading.current_thread().name)
        return real(path, **kw)

    monkeypatch.setattr(engine.batch.generator, "load_image", spy)
    job = analyze_folder(study, classifier, batch_size=2, workers=1)
    first = next(job)
    time.sleep(0.3)  # the pool keeps decoding while the caller holds the first row
    assert first.index == 0
    started = len(decoded_in)
    assert 2 < started <= 2 * 2 + 1 + 2  # prefetched ahead, but bounded (2 x batch + workers, + the batch taken)
    assert all(name.startswith("radlens-decode") for name in decoded_in)
    job.close()
    deadline = time.time() + 3
    while any(t.name.startswith("radlens-decode") for t in threading.enumerate()) and time.time() < deadline:
        time.sleep(0.05)
    assert not any(t.name.startswith("radlens-decode") for t in threading.enumerate())


def test_unexpected_exception_becomes_error_row(study: Path, classifier, monkeypatch: pytest.MonkeyPatch) -> None:
    real = engine.batch.generator.load_image

    def flaky(path, **kw):  # noqa: ANN001, ANN003
        if Path(path).name == "p1.jpg":
            raise ZeroDivisionError("boom")
        return real(path, **kw)

    monkeypatch.setattr(engine.batch.generator, "load_image", flaky)
    rows = {r.rel_path: r for r in analyze_folder(study, classifier)}
    assert len(rows) == len(EXPECTED_ORDER)
    assert rows["b/p1.jpg"].status == "error" and "unexpected error (ZeroDivisionError: boom)" in rows["b/p1.jpg"].error
    assert rows["b/p2.jpg"].ok and rows["b/p0.jpg"].ok


def test_model_failure_on_one_image_is_isolated(tmp_path: Path, cxr_samples: dict[str, list[Path]], classifier,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    for i, p in enumerate(cxr_samples["normal"][:3]):
        shutil.copy(p, tmp_path / f"img{i}.jpg")
    cv2.imwrite(str(tmp_path / "img1_flat.png"), np.full((64, 64), 128, np.uint8))
    real_run = classifier.run

    def picky(x: np.ndarray):  # noqa: ANN202
        if any(float(xi.std()) == 0.0 for xi in x):
            raise RuntimeError("cannot handle a flat image")
        return real_run(x)

    monkeypatch.setattr(classifier, "run", picky)
    rows = {r.rel_path: r for r in analyze_folder(tmp_path, classifier, batch_size=4)}
    assert rows["img1_flat.png"].status == "error"
    assert "the model failed on this image (RuntimeError: cannot handle a flat image)" in rows["img1_flat.png"].error
    assert all(rows[f"img{i}.jpg"].ok for i in range(3))


def test_unreadable_subfolder_is_an_error_row(tmp_path: Path, cxr_samples: dict[str, list[Path]], classifier,
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    shutil.copy(cxr_samples["normal"][0], tmp_path / "ok.jpg")
    (tmp_path / "locked").mkdir()
    shutil.copy(cxr_samples["normal"][1], tmp_path / "locked" / "inside.jpg")
    real = engine.batch.generator.os.scandir

    def guarded(path):  # noqa: ANN001, ANN202 - root reads anything, so emulate the refusal
        if Path(path).name == "locked":
            raise PermissionError(13, "Permission denied", str(path))
        return real(path)

    monkeypatch.setattr(engine.batch.generator.os, "scandir", guarded)
    rows = list(analyze_folder(tmp_path, classifier))
    assert [r.rel_path for r in rows] == ["locked", "ok.jpg"]
    assert rows[0].status == "error" and "sub-folder cannot be read" in rows[0].error and rows[1].ok


def test_folder_errors(tmp_path: Path, classifier) -> None:
    with pytest.raises(FolderError, match="folder not found"):
        analyze_folder(tmp_path / "missing", classifier)
    (tmp_path / "file.jpg").write_bytes(b"x")
    with pytest.raises(FolderError, match="is a file, not a folder"):
        list_images(tmp_path / "file.jpg")
    with pytest.raises(ValueError, match="batch_size"):
        analyze_folder(tmp_path, classifier, batch_size=0)


def test_unreadable_top_folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(path):  # noqa: ANN001, ANN202
        raise PermissionError(13, "Permission denied", str(path))

    monkeypatch.setattr(engine.batch.generator.os, "scandir", refuse)
    with pytest.raises(FolderError, match="permission denied"):
        list_images(tmp_path)


def test_explicit_file_list(study: Path, classifier) -> None:
    files = [study / "z_covid.jpg", study / "a" / "n0.jpg"]
    rows = list(analyze_folder(study, classifier, files=files))
    assert [r.rel_path for r in rows] == ["z_covid.jpg", "a/n0.jpg"] and all(r.ok for r in rows)


def test_model_failure_with_batch_size_one(tmp_path: Path, cxr_samples: dict[str, list[Path]], classifier,
                                           monkeypatch: pytest.MonkeyPatch) -> None:
    shutil.copy(cxr_samples["normal"][0], tmp_path / "a.jpg")
    shutil.copy(cxr_samples["normal"][1], tmp_path / "b.jpg")
    real_run = classifier.run
    calls = {"n": 0}

    def first_fails(x: np.ndarray):  # noqa: ANN202
        calls["n"] += 1
        if calls["n"] == 1:
            raise MemoryError("out of memory")
        return real_run(x)

    monkeypatch.setattr(classifier, "run", first_fails)
    rows = list(analyze_folder(tmp_path, classifier, batch_size=1))
    assert rows[0].status == "error" and "the model failed on this image (MemoryError: out of memory)" in rows[0].error
    assert rows[1].ok
