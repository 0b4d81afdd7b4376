"""Dask-specific behaviour: workers killed from outside mid-job, timeouts that restart the worker, a cluster reached
by its address string (scheduler and worker started as separate command-line processes), shared storage folders,
and the preflight checks that refuse bad setups before any work is sent."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

import lambdamap
from lambdamap.core import keys
from lambdamap.storage.local import LocalStorage


def _wait_for(predicate, seconds: float, what: str):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"timed out after {seconds} s waiting for {what}")


def sleeps_once(folder: str):
    """Write the worker's pid, then sleep long on the first run for an input; return at once on later runs."""
    def fn(x):
        pidfile = os.path.join(folder, f"pid-{x}")
        if os.path.exists(pidfile):
            return x
        with open(pidfile + ".tmp", "w") as fh:
            fh.write(str(os.getpid()))
        os.replace(pidfile + ".tmp", pidfile)
        time.sleep(60)
        return x
    return fn


def _pid_in(path: Path) -> int:
    return _wait_for(lambda: path.exists() and int(path.read_text()), 60, f"{path}")


def _gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    return False


@pytest.mark.timeout(180)
def test_worker_killed_from_outside_mid_job_fails_or_retries(dask_backend, dask_client, tmp_path):
    pwex = dask_backend.executor
    start = time.monotonic()
    fut = pwex.map(sleeps_once(str(tmp_path)), [1])[0]
    os.kill(_pid_in(tmp_path / "pid-1"), signal.SIGKILL)
    exc = fut.exception(timeout=60)
    assert isinstance(exc, lambdamap.WorkerLostError), exc
    assert "died while running invocation" in str(exc)
    assert time.monotonic() - start < 30

    fut = pwex.map(sleeps_once(str(tmp_path)), [2], retries=1)[0]
    os.kill(_pid_in(tmp_path / "pid-2"), signal.SIGKILL)
    assert fut.result(timeout=60) == 2
    assert fut.stats.attempts == 2
    dask_client.wait_for_workers(2, timeout=60)


@pytest.mark.timeout(180)
def test_timeout_restarts_the_worker_that_ran_the_call(dask_backend, dask_client, tmp_path):
    pwex = dask_backend.executor
    fut = pwex.map(sleeps_once(str(tmp_path)), [1], timeout=1.0)[0]
    pid = _pid_in(tmp_path / "pid-1")
    with pytest.raises(lambdamap.TaskTimeoutError, match="is being restarted"):
        fut.result(timeout=60)
    _wait_for(lambda: _gone(pid), 30, f"the timed-out worker process {pid} to be stopped")
    dask_client.wait_for_workers(2, timeout=60)
    assert pwex.submit(abs, -3).result(timeout=60) == 3


@pytest.mark.timeout(180)
def test_cancel_ends_every_future_and_the_executor_stays_usable(dask_backend):
    """Ctrl-C's path on Dask: queued calls never run, running tasks are cancelled (their calls end on the client at
    once), and the next job runs normally on the same workers."""
    import concurrent.futures as cf

    pwex = dask_backend.executor
    futures = pwex.map(time.sleep, [3] * 4, chunksize=1)
    deadline = time.monotonic() + 60
    while sum(f.running() for f in futures) < 2 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert pwex.cancel(futures) == 4
    assert all(f.done() for f in futures) and sum(f.cancelled() for f in futures) == 2
    assert all(isinstance(f.exception(), cf.CancelledError) for f in futures if not f.cancelled())
    assert lambdamap.get_all_results(pwex.map(abs, [-1, -2]), timeout=120) == [1, 2]


def test_storage_dir_is_used_and_kept(dask_client, tmp_path):
    with lambdamap.dask_executor(dask_client, storage_dir=str(tmp_path), progress=False) as pwex:
        futures = pwex.map(abs, [-1, -2], keep=True)
        assert lambdamap.get_all_results(futures, timeout=60) == [1, 2]
        job = keys.job_prefix(pwex.prefix, futures[0].job_id)
        assert LocalStorage(tmp_path).list(job)  # the workers wrote their records into our folder
    assert tmp_path.is_dir() and LocalStorage(tmp_path).list(job)  # a folder we were given is not removed
    assert dask_client.status == "running"  # a client we were given is left open


def test_default_storage_folder_is_removed_at_shutdown(dask_client):
    pwex = lambdamap.dask_executor(dask_client, progress=False)
    root = Path(pwex.storage.location()["root"])
    assert pwex.submit(abs, -5).result(timeout=60) == 5
    assert root.is_dir()
    pwex.shutdown()
    assert not root.exists()


class _ElsewhereStorage(LocalStorage):
    """A folder the workers would look for at another path, as on a machine that does not share ours."""

    def location(self) -> dict[str, str]:
        return {"kind": "local", "root": str(self.root) + "-not-mounted-on-the-workers"}


def test_storage_the_workers_cannot_read_is_refused_before_any_work(dask_client, tmp_path):
    storage = _ElsewhereStorage(tmp_path)
    with pytest.raises(lambdamap.PreflightError, match="not shared with the workers"):
        lambdamap.dask_executor(dask_client, storage=storage)
    assert storage.list("") == []  # the probe object is gone, nothing else was stored
    assert not Path(str(tmp_path) + "-not-mounted-on-the-workers").exists()


@pytest.mark.parametrize("args, kwargs, fragment", [
    ((42,), {}, "takes a distributed.Client, a cluster or a scheduler address"),
    (("",), {}, "address is empty"),
    ((None,), {"storage": "s3://bucket"}, "storage must be a lambdamap Storage"),
    ((None,), {"storage_dir": "/tmp/x", "storage": "a LocalStorage"}, "not both"),
    ((None,), {"connect_timeout": 0}, "connect_timeout must be a positive number"),
])
def test_bad_arguments_raise_config_error(args, kwargs, fragment, tmp_path):
    if kwargs.get("storage") == "a LocalStorage":  # made here, in the test's own folder, not at collection in /tmp
        kwargs = {**kwargs, "storage": LocalStorage(tmp_path / "store")}
    with pytest.raises(lambdamap.ConfigError, match=fragment):
        lambdamap.dask_executor(*args, **kwargs)


def test_bad_invoker_options_raise_config_error(dask_client):
    with pytest.raises(lambdamap.ConfigError, match="workers must be a positive integer"):
        lambdamap.dask_executor(dask_client, workers=0)
    with pytest.raises(lambdamap.ConfigError, match="submit_options may not set"):
        lambdamap.dask_executor(dask_client, submit_options={"retries": 3})


def test_no_cluster_given_names_the_fix():
    import distributed

    with pytest.raises(ValueError):
        distributed.default_client()  # precondition: the session's clients are not the default
    with pytest.raises(lambdamap.ConfigError, match="needs a cluster"):
        lambdamap.dask_executor()


def test_unreachable_scheduler_fails_fast():
    start = time.monotonic()
    with pytest.raises(lambdamap.PreflightError, match="cannot connect to the Dask scheduler"):
        lambdamap.dask_executor("tcp://127.0.0.1:9", connect_timeout=2)
    assert time.monotonic() - start < 30


# -- a cluster started as separate processes, reached by its address ------------------------------------------------
@pytest.fixture(scope="module")
def cli_cluster(tmp_path_factory):
    """``dask scheduler`` and ``dask worker`` (one nanny, one thread) as command-line processes on 127.0.0.1."""
    folder = tmp_path_factory.mktemp("cli-cluster")
    scheduler_file = folder / "scheduler.json"
    common = {"stdout": subprocess.DEVNULL, "stderr": subprocess.DEVNULL, "cwd": folder}
    procs = [subprocess.Popen([sys.executable, "-m", "distributed.cli.dask_scheduler", "--host", "127.0.0.1",
                               "--port", "0", "--no-dashboard", "--dashboard-address", "127.0.0.1:0",
                               "--scheduler-file", str(scheduler_file)], **common)]
    try:
        _wait_for(lambda: scheduler_file.exists() and scheduler_file.stat().st_size, 60, "the scheduler file")
        address = json.loads(scheduler_file.read_text())["address"]
        procs.append(subprocess.Popen([sys.executable, "-m", "distributed.cli.dask_worker", address,
                                       "--host", "127.0.0.1", "--nthreads", "1", "--nworkers", "1",
                                       "--no-dashboard", "--dashboard-address", "127.0.0.1:0"], **common))
        yield address
    finally:
        for proc in reversed(procs):  # the worker first, while its scheduler still answers
            proc.terminate()
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=10)


def _worker_pids(address: str) -> list[int]:
    import distributed

    with distributed.Client(address, set_as_default=False, timeout=30) as client:
        client.wait_for_workers(1, timeout=60)
        return list(client.run(os.getpid).values())


@pytest.mark.timeout(180)
def test_scheduler_address_string(cli_cluster):
    worker_pids = _worker_pids(cli_cluster)
    pwex = lambdamap.dask_executor(cli_cluster, progress=False)
    try:
        assert pwex.backend == "dask" and pwex.invoker.workers == 1
        out = lambdamap.get_all_results(pwex.map(lambda x: (x * 3, os.getpid()), range(10)), timeout=60)
        assert [value for value, _ in out] == [x * 3 for x in range(10)]
        assert {pid for _, pid in out} <= set(worker_pids)
    finally:
        pwex.shutdown()
    assert pwex.invoker.client.status == "closed"  # we opened this client, so we closed it


@pytest.mark.timeout(180)
def test_config_selects_the_dask_backend(cli_cluster, monkeypatch):
    monkeypatch.setenv("LAMBDAMAP_DASK_ADDRESS", cli_cluster)
    with lambdamap.default_executor(backend="dask", progress=False) as pwex:
        assert pwex.backend == "dask"
        assert pwex.submit(divmod, 17, 5).result(timeout=60) == (3, 2)
