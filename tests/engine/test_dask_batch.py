"""Distributed batch on a real Dask LocalCluster (2 worker processes, 1 thread each, nannies on)
over real radiographs of ../shared/data/cxr: the same rows as a local run, a killed worker,
an interrupted run resumed, a file that kills its worker, and a worker with another model."""

from __future__ import annotations

import io
import json
import os
import pickle
import signal
import sys
import threading
from pathlib import Path

import pytest

pytest.importorskip("distributed")
pyarrow_parquet = pytest.importorskip("pyarrow.parquet")

from distributed import LocalCluster  # noqa: E402
from distributed.diagnostics.plugin import WorkerPlugin  # noqa: E402

from engine.batch import BatchRow, analyze_files, analyze_folder  # noqa: E402
from engine.batch.cli import advance, main, progress_bar  # noqa: E402
from engine.batch.dask_batch import analyze_on_dask  # noqa: E402
from engine.batch.journal import Journal, JournalError, journal_path  # noqa: E402
from engine.batch.report import read_report  # noqa: E402
from engine.io.filelist import Source, read_list  # noqa: E402

N_FILES = 200  # the identity run (CLI, its own local:2 cluster)
N_SMALL = 64  # the fault runs (a shared cluster)
POISON = "poisoned.jpg"


def _sample(manifest: list[dict[str, str]], cxr_dir: Path, n: int) -> list[Path]:
    step = len(manifest) // n
    return [cxr_dir / r["file"] for r in manifest[::step][:n]]


@pytest.fixture(scope="module")
def list_file(tmp_path_factory: pytest.TempPathFactory, cxr_dir: Path, cxr_manifest: list[dict[str, str]]) -> Path:
    """200 real radiographs of every class (absolute paths), a missing file and an empty one
    (relative to the list), one path twice and a comment."""
    d = tmp_path_factory.mktemp("lists")
    (d / "empty.png").write_bytes(b"")
    paths = [str(p) for p in _sample(cxr_manifest, cxr_dir, N_FILES)]
    lines = ["# an archive that is not one folder", *paths[:100], "empty.png", str(d / "missing.jpg"), paths[5],
             "", *paths[100:]]
    out = d / "archive.txt"
    out.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return out


@pytest.fixture(scope="module")
def small(tmp_path_factory: pytest.TempPathFactory, cxr_dir: Path, cxr_manifest: list[dict[str, str]]) -> Source:
    """64 files in a folder, one of them the poisoned file name (a real radiograph)."""
    d = tmp_path_factory.mktemp("small")
    for i, p in enumerate(_sample(cxr_manifest, cxr_dir, N_SMALL)):
        name = POISON if i == 21 else f"f{i:03d}{p.suffix}"
        os.symlink(p, d / name)
    return Source(root=d, files=sorted(d.iterdir()))


@pytest.fixture(scope="module")
def local_rows(small: Source, classifier) -> list[BatchRow]:
    return list(analyze_folder(small.root, classifier, batch_size=8, files=small.files))


@pytest.fixture(scope="module")
def cluster():
    import dask

    with dask.config.set({"distributed.scheduler.allowed-failures": 1}):  # 2 attempts: a short poisoned-file test
        c = LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None,
                         silence_logs=50)
    yield c.scheduler_address
    c.close()


def _csv_rows(path: Path) -> list[dict[str, str]]:
    return read_report(path)[1]


def test_list_file_rules(list_file: Path) -> None:
    src = read_list(list_file)
    assert len(src.files) == N_FILES + 2 and src.duplicates == 1
    assert src.files[100] == list_file.parent / "empty.png" and src.root == list_file.parent


def test_cli_dask_rows_identical_to_local(tmp_path: Path, list_file: Path, tiny_model_path: Path,
                                          capsys: pytest.CaptureFixture[str]) -> None:
    """radlens-batch @LIST locally and with --dask local:2: the same CSV, byte for byte; the
    sidecar records the cluster options; Parquet partitions hold the same rows."""
    local, dist = tmp_path / "local.csv", tmp_path / "dask.csv"
    common = [f"@{list_file}", "--model", str(tiny_model_path), "--no-progress", "--batch-size", "16"]
    assert main([*common, "-o", str(local)]) == 1  # two files cannot be analysed
    code = main([*common, "-o", str(dist), "--dask", "local:2", "--chunk", "32", "--parquet", str(tmp_path / "pq")])
    out = capsys.readouterr().out
    assert code == 1 and "Dask: local:2, 2 worker(s); tasks of 32 files" in out
    assert dist.read_bytes() == local.read_bytes()
    rows = _csv_rows(dist)
    assert len(rows) == N_FILES + 2 and len({r["file"] for r in rows}) == N_FILES + 2
    assert [r["status"] for r in rows].count("error") == 2
    meta_l, meta_d = json.loads(local.with_suffix(".json").read_text()), json.loads(dist.with_suffix(".json").read_text())
    assert meta_d["counts"] == meta_l["counts"] and meta_d["model"]["sha256"] == meta_l["model"]["sha256"]
    opts = meta_d["options"]["dask"]
    assert opts["scheduler"] == "local:2" and opts["chunk"] == 32 and opts["analysed_here"] == N_FILES + 2
    assert opts["worker_processes"] == 2 and meta_d["options"]["list_file"] == str(list_file.resolve())
    assert not journal_path(dist).exists()  # dropped once the report is written
    table = pyarrow_parquet.read_table(tmp_path / "pq" / "part-00000.parquet").to_pylist()
    assert [t["file"] for t in table] == [r["file"] for r in rows]
    assert all(t["prob_normal"] == (float(r["prob_normal"]) if r["prob_normal"] else None) for t, r in zip(table, rows, strict=True))


def test_killed_worker_every_file_once(tmp_path: Path, small: Source, classifier, cluster: str,
                                       local_rows: list[BatchRow]) -> None:
    job = analyze_on_dask(small, classifier, cluster, chunk=8, batch_size=8, journal=tmp_path / "r.csv.journal")
    rows, killed = [], None
    for row in job:
        rows.append(row)
        if len(rows) == 4:  # after the first results: kill a worker process mid-run
            killed = next(iter(job.client.run(os.getpid).values()))
            os.kill(killed, signal.SIGKILL)
    assert killed is not None
    assert [r.index for r in rows] == list(range(N_SMALL))
    assert rows == local_rows  # every file exactly once, the rows of a local run


def test_interrupted_then_resume(tmp_path: Path, small: Source, classifier, cluster: str,
                                 local_rows: list[BatchRow]) -> None:
    journal = tmp_path / "r.csv.journal"
    stop = threading.Event()
    job = analyze_on_dask(small, classifier, cluster, chunk=8, batch_size=8, journal=journal, cancel=stop)
    first = []
    for row in job:
        first.append(row)
        if len(first) == 12:
            stop.set()
    job.close()
    assert len(first) == 12
    with pytest.raises(JournalError, match="--resume"):  # a fresh run would lose the journal's work
        analyze_on_dask(small, classifier, cluster, chunk=8, journal=journal)
    with open(journal, "ab") as f:
        f.write(b'{"rows": [{"index": 63, "tot')  # a line cut short by a crash: dropped, its files run again
    assert journal.stat().st_mode & 0o777 == 0o600  # paths and results: owner only
    in_journal = set(Journal.open(journal, {}, resume=True).done)
    done = len(in_journal)
    assert 12 <= done < N_SMALL
    resumed = analyze_on_dask(small, classifier, cluster, chunk=8, batch_size=8, journal=journal, resume=True)
    assert resumed.resumed == done and resumed.resumed_indices == in_journal
    # the CLI's bar starts at the journal's files and counts only this run's work (its rate and ETA)
    shown = io.StringIO()
    rows = []
    with progress_bar(resumed, file=shown) as bar:
        assert bar.n == bar.initial == done and f"{done}/{N_SMALL}" in shown.getvalue()
        for row in resumed:
            advance(bar, resumed, row)
            rows.append(row)
        assert bar.n == N_SMALL and bar.n - bar.initial == resumed.processed
    assert resumed.processed == N_SMALL - done  # only the remainder ran
    assert [r.index for r in rows] == list(range(N_SMALL)) and rows == local_rows
    resumed.report_written()
    assert not journal.exists()


class Poison(WorkerPlugin):
    """Test-only: in each worker process, reading the poisoned file kills the process, as a
    decoder crash would (a segfault in a codec)."""

    name = "radlens-test-poison"

    def __init__(self, filename: str) -> None:
        self.filename = filename

    def setup(self, worker) -> None:  # noqa: ANN001
        import engine.batch.generator

        real = engine.batch.generator.load_image

        def load(path, *args, **kwargs):  # noqa: ANN001, ANN002, ANN003, ANN202
            if Path(path).name == self.filename:
                os._exit(1)
            return real(path, *args, **kwargs)

        engine.batch.generator.load_image = load


def test_poisoned_file_becomes_error_row(small: Source, classifier, cluster: str,
                                         local_rows: list[BatchRow]) -> None:
    import cloudpickle
    from distributed import Client

    cloudpickle.register_pickle_by_value(sys.modules[__name__])
    with Client(cluster) as admin:
        admin.register_plugin(Poison(POISON))
        try:
            job = analyze_on_dask(small, classifier, cluster, chunk=8, batch_size=8)
            rows = list(job)
        finally:
            admin.unregister_worker_plugin(Poison.name)
            admin.run(_unpoison)
    assert [r.index for r in rows] == list(range(N_SMALL))
    bad = [r for r in rows if r.status == "error"]
    assert [r.rel_path for r in bad] == [POISON]
    # 2 attempts (allowed-failures 1) in its task, alone in a task, then alone on the drained cluster
    assert "the worker process died while analysing this file (6 attempts)" in bad[0].error
    assert job.stats["files_that_killed_workers"] == 1 and job.stats["split_tasks"] >= 1
    for r, want in zip(rows, local_rows, strict=True):
        if r.rel_path != POISON:  # a file split out of the poisoned task ran alone: same call, same figures
            assert (r.status, r.label, r.flags) == (want.status, want.label, want.flags)
            assert r.probs == pytest.approx(want.probs, abs=1e-5)


def _unpoison() -> None:
    import importlib

    import engine.batch.generator
    import engine.io.load

    importlib.reload(engine.io.load)
    engine.batch.generator.load_image = engine.io.load.load_image


def test_worker_with_another_model_is_refused(tmp_path: Path, small: Source, tiny_model_path: Path, cluster: str,
                                              capsys: pytest.CaptureFixture[str]) -> None:
    from tinymodel import build_tiny_model

    other = build_tiny_model(tmp_path / "other.onnx", seed=1)  # same card, other weights: another SHA-256
    lst = tmp_path / "files.txt"
    lst.write_text("\n".join(str(p) for p in small.files[:16]), encoding="utf-8")
    out = tmp_path / "r.csv"
    code = main([f"@{lst}", "-o", str(out), "--model", str(tiny_model_path), "--no-progress", "--dask", cluster,
                 "--worker-model", str(other)])
    err = capsys.readouterr().err
    assert code == 2 and not out.exists()
    assert "analysed with the model" in err and "mixes model versions" in err and "other.onnx" in err
    journal = journal_path(out)
    assert journal.read_text().count("\n") == 1  # the header only: no row of the other model was kept


def test_analyze_files_is_the_local_path(small: Source, classifier, local_rows: list[BatchRow]) -> None:
    """The per-chunk function gives a local run's rows for an aligned chunk, with global indices."""
    rows = analyze_files(small.root, small.files[16:32], classifier, indices=range(16, 32), total=N_SMALL, batch_size=8)
    assert rows == local_rows[16:32]
    assert pickle.loads(pickle.dumps(rows)) == rows  # rows travel between processes: numpy and str only


@pytest.mark.parametrize(("extra", "message"), [
    (["--dask", "local:0"], "use local:N with N >= 1"),
    (["--resume"], "belong to a distributed run; add --dask"),
    (["--dask", "local:1", "--chunk", "0"], "--chunk must be at least 1"),
])
def test_bad_cluster_options_exit_2_and_leave_no_journal(tmp_path: Path, list_file: Path, tiny_model_path: Path,
                                                         capsys: pytest.CaptureFixture[str], extra: list[str],
                                                         message: str) -> None:
    out = tmp_path / "r.csv"
    assert main([f"@{list_file}", "-o", str(out), "--model", str(tiny_model_path), *extra]) == 2
    assert message in capsys.readouterr().err
    assert not out.exists() and not journal_path(out).exists()


def test_identifiers_leave_the_worker_only_on_request(dicom_dir: Path, tiny_model_path: Path) -> None:
    """The task function as a worker runs it: patient identifiers only when the report wants them."""
    from engine.batch.dask_batch import analyze_chunk

    args = (str(tiny_model_path), "cpu", 1, str(dicom_dir), [str(dicom_dir / "nccid_nih_dx.dcm")], [0], 1, 16,
            10**8)
    kept, dropped = analyze_chunk(*args, True), analyze_chunk(*args)
    assert kept.rows[0].identifiers.patient_id == "Covid0000" and dropped.rows[0].identifiers.as_dict() == dict.fromkeys(
        kept.rows[0].identifiers.as_dict(), "")
    assert kept.model_sha256 == dropped.model_sha256 and kept.rows[0].probs == dropped.rows[0].probs


def test_option_refused_after_the_cluster_started_leaves_no_cluster_or_journal(
        tmp_path: Path, list_file: Path, tiny_model_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """--parquet naming a file is refused once the job is open (cluster up, journal made): the
    LocalCluster's worker processes are stopped and the new journal does not block the next run."""
    import psutil

    blocker = tmp_path / "not-a-folder"
    blocker.write_text("x")
    out = tmp_path / "r.csv"
    before = {p.pid for p in psutil.Process().children(recursive=True)}
    assert main([f"@{list_file}", "-o", str(out), "--model", str(tiny_model_path), "--no-progress",
                 "--dask", "local:1", "--parquet", str(blocker)]) == 2
    assert "cannot create the Parquet folder" in capsys.readouterr().err
    assert not out.exists() and not journal_path(out).exists()
    started = [p for p in psutil.Process().children(recursive=True)  # multiprocessing's resource tracker
               if p.pid not in before and "resource_tracker" not in " ".join(p.cmdline())]  # lives with pytest
    _, left = psutil.wait_procs(started, timeout=10)  # a closed cluster's processes exit within seconds
    assert not left, f"worker processes left running: {[p.cmdline() for p in left]}"


class Slow(WorkerPlugin):
    """Test-only: in each worker process, reading one file takes seconds (a hung network share)."""

    name = "radlens-test-slow"

    def __init__(self, filename: str, seconds: float) -> None:
        self.filename, self.seconds = filename, seconds

    def setup(self, worker) -> None:  # noqa: ANN001
        import time

        import engine.batch.generator

        real = engine.batch.generator.load_image

        def load(path, *args, **kwargs):  # noqa: ANN001, ANN002, ANN003, ANN202
            if Path(path).name == self.filename:
                time.sleep(self.seconds)
            return real(path, *args, **kwargs)

        engine.batch.generator.load_image = load


def test_slow_first_file_does_not_buffer_the_archive(small: Source, classifier, cluster: str,
                                                     local_rows: list[BatchRow]) -> None:
    """Rows come out in listing order, so a slow first file holds the others on the client: only
    ``max_ahead`` files beyond it are analysed meanwhile (client memory stays bounded), then the rest."""
    import cloudpickle
    from distributed import Client

    cloudpickle.register_pickle_by_value(sys.modules[__name__])
    src = Source(root=small.root, files=small.files[:32])
    with Client(cluster) as admin:
        admin.register_plugin(Slow(src.files[0].name, 4.0))
        try:
            job = analyze_on_dask(src, classifier, cluster, chunk=1, batch_size=1, max_ahead=4)
            it = iter(job)
            head = next(it)  # yielded once the slow file is done
            ahead = job.processed  # files analysed while the slow one ran, itself included
            rows = [head, *it]
        finally:
            admin.unregister_worker_plugin(Slow.name)
            admin.run(_unpoison)
    limit = max(4, job._window_size)  # tasks of one file: never fewer in flight than the window (6 here)
    assert ahead <= 1 + limit, f"{ahead} files analysed (and held) while the first one was slow"
    assert [r.index for r in rows] == list(range(32))
    assert [(r.status, r.label) for r in rows] == [(r.status, r.label) for r in local_rows[:32]]


def test_relative_folder_reaches_workers_with_another_cwd(tmp_path: Path, small: Source, classifier, cluster: str,
                                                          local_rows: list[BatchRow],
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    """A folder given relative to the client's working folder: the workers (started elsewhere, as on
    other machines) get absolute paths; the report's relative paths are unchanged."""
    from engine.io.filelist import open_source

    (tmp_path / "in").mkdir()
    for p in small.files[:6]:
        os.symlink(p.resolve(), tmp_path / "in" / p.name)
    monkeypatch.chdir(tmp_path)  # the cluster's workers were started in another folder
    rows = list(analyze_on_dask(open_source("in"), classifier, cluster, chunk=4, batch_size=4))
    assert [r.error for r in rows if r.status == "error"] == []
    assert [(r.rel_path, r.status, r.label) for r in rows] == [(w.rel_path, w.status, w.label) for w in local_rows[:6]]
