"""The Dask backend for the contract suite: a real ``distributed.LocalCluster`` with two worker processes (each
under a nanny, one thread each) on 127.0.0.1, shared by the session and stopped at its end.

Also provides ``dask_cluster`` and ``dask_client`` (session-scoped) for tests/dask and tests/joblib."""

from __future__ import annotations

import os
import signal

import pytest

import lambdamap
from support.harness import BackendUnderTest


@pytest.fixture(scope="session")
def dask_cluster():
    """A LocalCluster of 2 worker processes; its worker processes are stopped by PID if closing leaves any."""
    import distributed

    # dashboard_address=None turns the dashboard off, but the scheduler still serves HTTP (health, metrics) on
    # port 8787 by default: a random port on 127.0.0.1 instead, so parallel sessions do not collide.
    cluster = distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, host="127.0.0.1",
                                       dashboard_address=None, scheduler_kwargs={"dashboard_address": "127.0.0.1:0"})
    try:
        yield cluster
    finally:
        pids: list[int] = []
        try:
            with distributed.Client(cluster, set_as_default=False) as client:
                pids = list(client.run(os.getpid).values())
        except Exception:  # noqa: BLE001 - collecting pids is best effort; close() below still runs
            pass
        cluster.close(timeout=30)
        for pid in pids:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass


@pytest.fixture(scope="session")
def dask_client(dask_cluster):
    import distributed

    with distributed.Client(dask_cluster, set_as_default=False) as client:
        yield client


@pytest.fixture(scope="session")
def dask_backend(dask_client):
    with lambdamap.dask_executor(dask_client, progress=False) as pwex:
        yield BackendUnderTest(name="dask", executor=pwex, lost_worker_seconds=30)
