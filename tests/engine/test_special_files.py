"""Files that are not regular files (FIFOs, devices, sockets), oversized files and links:
``load_image`` answers at once with a typed error, a batch never hangs on them."""

from __future__ import annotations

import os
import shutil
import socket
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

import engine.io.fileio
from engine.batch import analyze_folder, list_images
from engine.errors import ImageLoadError, ImageTooLargeError
from engine.io import MAX_FILE_BYTES, load_image

needs_fifo = pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="no named pipes on this system")


def _within(seconds: float, fn: Callable[[], Any], fifo: Path | None = None) -> dict[str, Any]:
    """Run ``fn`` in a thread; fail if it is still running after ``seconds``. A reader
    stuck on ``fifo`` is released (a writer opens and closes it) so no thread is left."""
    out: dict[str, Any] = {}

    def run() -> None:
        try:
            out["value"] = fn()
        except BaseException as e:  # noqa: BLE001 - handed to the test
            out["error"] = e

    t = threading.Thread(target=run, daemon=True)
    t.start()
    t.join(seconds)
    if t.is_alive():
        if fifo is not None:
            try:
                os.close(os.open(fifo, os.O_WRONLY | os.O_NONBLOCK))
            except OSError:
                pass
            t.join(5)
        pytest.fail(f"still running after {seconds} s (blocked on a special file)")
    return out


@needs_fifo
def test_fifo_is_refused_at_once(tmp_path: Path) -> None:
    fifo = tmp_path / "scan.dcm"
    os.mkfifo(fifo)
    start = time.perf_counter()
    out = _within(5, lambda: load_image(fifo), fifo)
    assert time.perf_counter() - start < 2
    err = out.get("error")
    assert isinstance(err, ImageLoadError), out
    assert str(err).startswith("scan.dcm: not a regular file (a named pipe (FIFO))")


def test_device_is_refused(tmp_path: Path) -> None:
    if not os.path.exists(os.devnull) or os.name == "nt":
        pytest.skip("no character device to try")
    with pytest.raises(ImageLoadError, match="not a regular file \\(a device\\)"):
        load_image(os.devnull)  # before: read as an empty file; /dev/zero never ended


def test_file_over_the_size_limit_is_refused_before_reading(tmp_path: Path) -> None:
    """A sparse file one byte over 2 GiB: refused from its size, in well under a second
    (reading it would take 2 GiB of memory)."""
    big = tmp_path / "huge.dcm"
    with open(big, "wb") as f:  # all zeros: should the check regress, the file is read but not parsed for long
        f.truncate(MAX_FILE_BYTES + 1)
    assert MAX_FILE_BYTES == 2 * 2**30
    start = time.perf_counter()
    with pytest.raises(ImageTooLargeError, match=r"huge.dcm: the file is 2.0 GiB, over the limit of 2.0 GiB"):
        load_image(big)
    assert time.perf_counter() - start < 1.0


def test_size_limit_applies_to_real_images(tmp_path: Path, cxr_samples: dict[str, list[Path]],
                                           monkeypatch: pytest.MonkeyPatch) -> None:
    src = cxr_samples["normal"][0]
    monkeypatch.setattr(engine.io.fileio, "MAX_FILE_BYTES", src.stat().st_size - 1)
    with pytest.raises(ImageTooLargeError, match="over the limit"):
        load_image(src)
    monkeypatch.setattr(engine.io.fileio, "MAX_FILE_BYTES", src.stat().st_size)
    assert load_image(src).shape == (224, 224)  # exactly at the limit is fine


@needs_fifo
def test_dicom_tags_of_a_fifo_is_refused_at_once(tmp_path: Path) -> None:
    from engine.io.dicom import dicom_tags

    fifo = tmp_path / "tags.dcm"
    os.mkfifo(fifo)
    out = _within(5, lambda: dicom_tags(fifo), fifo)
    assert isinstance(out.get("error"), ImageLoadError) and "not a regular file" in str(out["error"])


@needs_fifo
def test_batch_skips_fifos_and_sockets(tmp_path: Path, cxr_samples: dict[str, list[Path]], classifier) -> None:
    """A FIFO or a socket in a study folder is not listed (it is never an image and
    reading it could block): the batch finishes with the real images only."""
    shutil.copy(cxr_samples["normal"][0], tmp_path / "a.jpg")
    fifo = tmp_path / "b_pipe.dcm"
    os.mkfifo(fifo)
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        sock.bind(str(tmp_path / "c.sock"))
        assert [p.name for p in list_images(tmp_path)] == ["a.jpg"]
        out = _within(20, lambda: list(analyze_folder(tmp_path, classifier)), fifo)
        assert "error" not in out, out
        rows = out["value"]
        assert [(r.rel_path, r.status) for r in rows] == [("a.jpg", "ok")]
    finally:
        sock.close()


@needs_fifo
def test_fifo_passed_explicitly_to_a_batch_is_an_error_row(tmp_path: Path, cxr_samples: dict[str, list[Path]],
                                                          classifier) -> None:
    good = Path(shutil.copy(cxr_samples["normal"][0], tmp_path / "a.jpg"))
    fifo = tmp_path / "b.dcm"
    os.mkfifo(fifo)
    out = _within(20, lambda: list(analyze_folder(tmp_path, classifier, files=[good, fifo])), fifo)
    rows = out["value"]
    assert rows[0].ok and rows[1].status == "error" and "not a regular file" in rows[1].error


needs_symlinks = pytest.mark.skipif(os.name == "nt", reason="symbolic links need privileges on Windows")


@needs_symlinks
def test_link_to_a_folder_is_reported_as_a_link(tmp_path: Path, cxr_samples: dict[str, list[Path]],
                                                classifier) -> None:
    """Links to folders are not followed (no loops, nothing counted twice); the row says
    so instead of 'permission denied'. A link to a file is analysed like the file."""
    study, other = tmp_path / "study", tmp_path / "other"
    study.mkdir()
    other.mkdir()
    shutil.copy(cxr_samples["normal"][0], study / "a.jpg")
    shutil.copy(cxr_samples["covid"][0], other / "b.jpg")
    (study / "linked").symlink_to(other, target_is_directory=True)
    (study / "loop").symlink_to(study, target_is_directory=True)
    (study / "c.jpg").symlink_to(other / "b.jpg")
    (study / "gone.jpg").symlink_to(tmp_path / "nowhere.jpg")
    rows = {r.rel_path: r for r in analyze_folder(study, classifier)}
    assert sorted(rows) == ["a.jpg", "c.jpg", "gone.jpg", "linked", "loop"]
    assert rows["a.jpg"].ok and rows["c.jpg"].ok
    for name, target in (("linked", other), ("loop", study)):
        err = rows[name].error
        assert rows[name].status == "error" and "permission denied" not in err
        assert err.startswith(f"{name}: is a link to a folder ({target})") and "not followed" in err
    gone = rows["gone.jpg"]
    assert gone.status == "error" and "link to a file that does not exist" in gone.error
    assert [p.name for p in list_images(study)] == ["a.jpg", "c.jpg", "gone.jpg"]
