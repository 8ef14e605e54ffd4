"""Reaching a Dask cluster for ``engine.batch.dask_batch``: ``local:N`` starts a LocalCluster of N
single-threaded worker processes on this machine, anything else is a scheduler address. A Ctrl+C
while a local cluster starts closes it here, quietly, instead of in Dask's exit hook."""

from __future__ import annotations

import contextlib
import logging
from typing import Any

from ..errors import RadLensError
from ..io.fileio import printable

LOCAL_PREFIX = "local:"


class ClusterError(RadLensError):
    """The distributed run cannot go on: no scheduler, no workers, or a worker without the model."""


def _close_half_started_clusters() -> None:
    """Close the local clusters a Ctrl+C caught half-started, quietly, and drop them from Dask's
    list: its exit hook would otherwise close them again and print an AssertionError traceback."""
    from distributed.deploy.spec import SpecCluster

    # the run is ending: a nanny's start cut short leaves asyncio tasks whose errors would be logged
    # as "Task exception was never retrieved" tracebacks when they are collected
    logging.getLogger("asyncio").setLevel(logging.CRITICAL + 1)
    for cluster in list(SpecCluster._instances):
        with contextlib.suppress(BaseException):  # a half-started cluster may fail to close cleanly
            cluster.close(timeout=5)
        SpecCluster._instances.discard(cluster)


def connect(address: str, allowed_failures: int | None = None) -> tuple[Any, Any]:
    """(client, cluster): ``local:N`` starts a LocalCluster of N worker processes (1 thread each,
    nanny on, so a dead worker is restarted); anything else is a scheduler address."""
    try:
        import dask
        from distributed import Client, LocalCluster
    except ImportError:
        raise ClusterError("--dask needs Dask distributed, which is not installed: pip install 'radlens[dask]' "
                           "(dask[distributed] and pyarrow), then run again.") from None
    if address.startswith(LOCAL_PREFIX):
        try:
            n = int(address[len(LOCAL_PREFIX):])
        except ValueError:
            n = 0
        if n < 1:
            raise ClusterError(f"--dask {address}: use local:N with N >= 1 worker processes, e.g. local:4.")
        cfg = {} if allowed_failures is None else {"distributed.scheduler.allowed-failures": allowed_failures}
        try:
            with dask.config.set(cfg):
                cluster = LocalCluster(n_workers=n, threads_per_worker=1, processes=True, dashboard_address=None,
                                       silence_logs=logging.CRITICAL)
            return Client(cluster), cluster
        except KeyboardInterrupt:  # Ctrl+C while the cluster starts: stop it here, not in Dask's exit hook
            _close_half_started_clusters()
            raise
    try:
        client = Client(address, timeout="15s")
    except (OSError, TimeoutError, ValueError) as e:
        raise ClusterError(f"cannot reach the Dask scheduler at {printable(address)} ({e}). Start one with "
                           f"'dask scheduler' and workers with 'dask worker {printable(address)}', or run on this "
                           "machine with --dask local:N.") from None
    try:
        client.wait_for_workers(1, timeout=60)
    except (TimeoutError, OSError):
        client.close()
        raise ClusterError(f"the Dask scheduler at {printable(address)} has no workers after 60 s; start some with "
                           f"'dask worker {printable(address)}'.") from None
    return client, None
