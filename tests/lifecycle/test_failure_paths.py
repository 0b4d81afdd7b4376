"""Failure paths of one executor, in process: a result that raises SystemExit when unpickled, fork, shutdown from
a done-callback, workers that die or stop behind a held pipe, storage that cannot be written, a function blob
deleted from outside, memory kept by finished jobs."""

from __future__ import annotations

import concurrent.futures as cf
import gc
import os
import signal
import sys
import threading
import time

import psutil
import pytest
from conftest import _alive
from support.waiting import wait_until

import lambdamap
import lambdamap.core.executor
from lambdamap.backends import local as local_backend


class ExitsWhenUnpickled:
    def __reduce__(self):
        return (sys.exit, (1,))


def test_a_result_raising_systemexit_fails_only_its_call_and_nothing_hangs():
    with lambdamap.local_executor(workers=1, progress=False) as pwex:
        bad = pwex.submit(ExitsWhenUnpickled)
        with pytest.raises(lambdamap.SerializationError, match="cannot be unpickled"):
            bad.result(timeout=60)
        assert pwex.submit(abs, -4).result(timeout=60) == 4  # the collector thread lived on
    assert not pwex.usable


@pytest.mark.skipif(not hasattr(os, "fork"), reason="fork is POSIX")
def test_a_forked_child_cannot_touch_the_parents_executor():
    with lambdamap.local_executor(workers=2, progress=False) as pwex:
        futures = pwex.map(time.sleep, [0.05] * 40, chunksize=1)
        read, write = os.pipe()
        pid = os.fork()
        if pid == 0:  # the child: its map is refused, its exit touches nothing of the parent's
            os.close(read)
            try:
                pwex.map(abs, [1])
                message = b"accepted"
            except lambdamap.ExecutorShutdownError as exc:
                message = str(exc).encode()
            os.write(write, message)
            os.close(write)
            pwex.shutdown()
            import atexit

            atexit._run_exitfuncs()  # what sys.exit(0) runs in a real child (here pytest would catch SystemExit)
            os._exit(0)
        os.close(write)
        child_said = os.read(read, 4096).decode()
        os.close(read)
        os.waitpid(pid, 0)
        assert "forked child" in child_said and "create a new executor" in child_said
        assert lambdamap.get_all_results(futures, timeout=60) == [None] * 40
        assert pwex.storage.root.exists()


def test_shutdown_from_a_done_callback_neither_deadlocks_nor_leaks():
    pwex = lambdamap.local_executor(workers=2, progress=False)
    pids, root = pwex.invoker.pids, pwex.storage.root
    futures = pwex.map(abs, range(100), chunksize=1)
    futures[0].add_done_callback(lambda _: pwex.shutdown())
    assert lambdamap.get_all_results(futures, timeout=60) == list(range(100))
    wait_until(lambda: not root.exists() and not any(_alive(p) for p in pids), 10)
    assert not root.exists()
    pwex.shutdown()  # a second call returns at once


def spawn_daemon_then_die(_):
    os.system("sleep 40 &")  # a process of the call's own, holding the worker's pipes
    os.kill(os.getpid(), signal.SIGKILL)


def test_a_dead_worker_is_noticed_while_its_child_holds_the_pipe():
    with lambdamap.local_executor(workers=1, progress=False) as pwex:
        start = time.monotonic()
        fut = pwex.submit(spawn_daemon_then_die, 0)
        with pytest.raises(lambdamap.WorkerLostError, match="SIGKILL"):
            fut.result(timeout=30)
        assert time.monotonic() - start < 10  # was 40 s: the pipe stayed open until `sleep 40` ended


def test_a_stopped_worker_is_reported_and_replaced(monkeypatch):
    monkeypatch.setattr(local_backend, "STOPPED_LIMIT", 2.0)
    with lambdamap.local_executor(workers=1, progress=False) as pwex:
        fut = pwex.submit(lambda: os.kill(os.getpid(), signal.SIGSTOP))
        with pytest.raises(lambdamap.WorkerLostError, match="stopped"):
            fut.result(timeout=30)
        assert pwex.submit(abs, -2).result(timeout=60) == 2


def test_executor_cancel_stops_running_calls_at_once():
    with lambdamap.local_executor(workers=2, progress=False) as pwex:
        pids = pwex.invoker.pids
        futures = pwex.map(time.sleep, [30] * 5, chunksize=1)
        assert wait_until(lambda: sum(f.running() for f in futures) == 2, 30)
        start = time.monotonic()
        assert pwex.cancel(futures) == 5
        assert all(f.done() for f in futures)
        assert sum(f.cancelled() for f in futures) == 3
        assert all(isinstance(f.exception(), cf.CancelledError) for f in futures if not f.cancelled())
        wait_until(lambda: not any(_alive(p) for p in pids), 5)
        assert time.monotonic() - start < 3  # killed, not waited for
        assert pwex.submit(abs, -3).result(timeout=60) == 3  # the pool was refilled


def test_read_only_storage_is_a_storage_error_naming_the_folder(tmp_path):
    if os.geteuid() == 0:
        # root ignores permission bits: a folder under a regular file cannot be created by anyone
        blocked = tmp_path / "file"
        blocked.write_text("x")
        target = blocked / "store"
    else:
        target = tmp_path / "ro"
        target.mkdir(mode=0o500)
    with pytest.raises(lambdamap.StorageError, match=str(target)):
        lambdamap.local_executor(workers=1, storage_dir=str(target))


def test_a_map_that_fails_half_way_leaves_nothing_stored(tmp_path, monkeypatch):
    with lambdamap.local_executor(workers=1, storage_dir=str(tmp_path), progress=False) as pwex:
        real_put, calls = pwex.storage.put, []

        def put(key, data):
            calls.append(key)
            if len(calls) == 4:  # the function blob, then two invocations' arguments, then a full disk
                raise lambdamap.StorageError("disk full")
            real_put(key, data)

        monkeypatch.setattr(pwex.storage, "put", put)
        with pytest.raises(lambdamap.StorageError, match="disk full"):
            pwex.map(abs, range(10), chunksize=2)
        monkeypatch.undo()
        assert pwex.storage.list("lambdamap/jobs/") == []


def test_a_function_blob_deleted_from_outside_is_put_back(tmp_path):
    with lambdamap.local_executor(workers=1, storage_dir=str(tmp_path), progress=False) as pwex:
        def triple(x):
            return 3 * x

        assert pwex.submit(triple, 2).result(timeout=60) == 6
        pwex.storage.delete_prefix("lambdamap/blobs/")  # e.g. `lambdamap cleanup --blobs` from another process
        assert lambdamap.get_all_results(pwex.map(triple, [1, 2]), timeout=60) == [3, 6]
        assert pwex.submit(triple, 5).result(timeout=60) == 15


def test_finished_jobs_are_released_when_their_futures_are_dropped():
    process = psutil.Process()
    with lambdamap.local_executor(workers=2, progress=False) as pwex:
        def big(i):
            return bytes(8 * 2**20)

        lambdamap.get_all_results(pwex.map(big, range(4)))  # warm up
        gc.collect()
        start = process.memory_info().rss
        for _ in range(30):  # 30 x 32 MB of results: ~960 MB if the executor kept them
            results = lambdamap.get_all_results(pwex.map(big, range(4)))
            assert len(results) == 4
            del results
        gc.collect()
        grown = (process.memory_info().rss - start) / 2**20
        assert grown < 150, f"client grew {grown:.0f} MB over 30 maps of 32 MB"
        futures = pwex.map(abs, [-1])
        lambdamap.wait(futures)
        assert [j.job_id for j in pwex.jobs()] == [futures[0].job_id]  # only the job whose futures are held
        assert pwex.job_summary(futures).calls == 1


def test_the_collector_thread_dying_fails_every_call_at_once(tmp_path):
    from lambdamap.backends.local import LocalInvoker
    from lambdamap.core import collector as collector_module
    from lambdamap.storage.local import LocalStorage

    release = threading.Event()

    class DyingCollector(collector_module.Collector):
        def _run(self):
            release.wait(30)
            raise SystemError("simulated bug in the collector")

    original = collector_module.Collector
    lambdamap.core.executor.Collector = DyingCollector
    try:
        pwex = lambdamap.Executor(LocalStorage(tmp_path), LocalInvoker(1), progress=False, backend="local")
    finally:
        lambdamap.core.executor.Collector = original
    with pwex:
        futures = pwex.map(abs, [-1, -2])
        release.set()
        for fut in futures:
            with pytest.raises(lambdamap.ExecutorShutdownError, match="collector thread died.*simulated bug"):
                fut.result(timeout=30)
        with pytest.raises(lambdamap.ExecutorShutdownError, match="collector thread died"):
            pwex.map(abs, [1])
