"""Issue 24 item 11: Ctrl+C while ``radlens-batch --dask local:N`` starts its cluster exits 130 with
one line, no traceback (not even from Dask's exit hook), no report, and no worker process left."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest

pytest.importorskip("distributed")


def _children(pid: int) -> list[int]:
    out = []
    for d in Path("/proc").iterdir():
        if d.name.isdigit():
            try:
                if f"PPid:\t{pid}\n" in (d / "status").read_text():
                    out.append(int(d.name))
            except OSError:
                pass
    return out


def _marked(mark: bytes) -> list[str]:
    left = []
    for d in Path("/proc").iterdir():
        if d.name.isdigit() and d.name != str(os.getpid()):
            try:
                if mark in (d / "environ").read_bytes():
                    left.append(d.name)
            except OSError:
                pass
    return left


@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="reads /proc to find the worker processes")
@pytest.mark.parametrize("delay", [0.0, 0.4])
def test_ctrl_c_while_the_dask_cluster_starts(tmp_path: Path, cxr_samples: dict[str, list[Path]], delay: float) -> None:
    folder = tmp_path / "in"
    folder.mkdir()
    for i in range(48):  # enough that a late Ctrl+C still finds the analysis running (130 either way)
        src = cxr_samples["normal"][i % len(cxr_samples["normal"])]
        shutil.copy(src, folder / f"{i:02d}_{src.name}")
    mark = f"radlens-ctrl-c-{uuid.uuid4().hex}"
    exe = Path(sys.executable).with_name("radlens-batch")
    proc = subprocess.Popen([str(exe), str(folder), "-o", str(tmp_path / "r.csv"), "--dask", "local:2", "--no-progress"],
                            env={**os.environ, "RADLENS_TEST_MARK": mark}, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 60
    while time.time() < deadline and not _children(proc.pid) and proc.poll() is None:
        time.sleep(0.02)  # the first worker process: the cluster is starting
    assert proc.poll() is None, proc.communicate()
    time.sleep(delay)
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, (out, err)
    assert "Traceback" not in err and "Error" not in err, err
    assert "Interrupted" in err and err.strip().count("\n") <= 2, err
    assert not (tmp_path / "r.csv").exists() and not (tmp_path / "r.json").exists()
    deadline = time.time() + 15
    while _marked(mark.encode()) and time.time() < deadline:
        time.sleep(0.1)
    assert _marked(mark.encode()) == []  # no worker or nanny process outlives the CLI
