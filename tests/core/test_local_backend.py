"""Local-backend behaviour beyond the shared contract: cancellation, shutdown, orphans, scripts, progress, storage."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import time

import pytest
from support.waiting import wait_until

import lambdamap
from lambdamap.storage.local import LocalStorage


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:  # a zombie still answers kill(0); it is gone for our purposes
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().split()[2] != "Z"
    except FileNotFoundError:
        return False


def test_cancel_works_for_calls_not_yet_started(tmp_path):
    with lambdamap.local_executor(workers=1, progress=False) as pwex:
        blocker = pwex.submit(time.sleep, 1.0)
        queued = pwex.map(abs, [-1, -2, -3], chunksize=1)
        assert all(f.cancel() for f in queued)
        assert blocker.result(timeout=30) is None
        assert all(f.cancelled() for f in queued)
        assert pwex.submit(abs, -5).result(timeout=30) == 5  # still usable
        assert not blocker.cancel()  # finished calls cannot be cancelled


def test_shutdown_mid_job_leaves_no_processes_or_files(tmp_path):
    """As concurrent.futures: wait=False returns at once, cancel_futures cancels what has not started, the calls
    already running finish; then the workers stop and the temporary folder goes, by themselves."""
    pwex = lambdamap.local_executor(workers=2, progress=False)
    root = pwex.storage.root
    pids = pwex.invoker.pids
    futures = pwex.map(time.sleep, [2] * 6, chunksize=1)
    assert wait_until(lambda: sum(f.running() for f in futures) == 2, 30)
    start = time.monotonic()
    pwex.shutdown(wait=False, cancel_futures=True)
    assert time.monotonic() - start < 1
    with pytest.raises(lambdamap.ExecutorShutdownError, match="shut down"):
        pwex.map(abs, [1])
    assert sum(f.cancelled() for f in futures) == 4
    assert [f.result(timeout=30) for f in futures if not f.cancelled()] == [None, None]
    wait_until(lambda: not any(pid_alive(p) for p in pids) and not root.exists(), 10)
    assert not any(pid_alive(p) for p in pids)
    assert not root.exists()


def test_shutdown_without_cancel_runs_every_submitted_call(tmp_path):
    pwex = lambdamap.local_executor(workers=1, progress=False)
    futures = pwex.map(time.sleep, [0.2] * 4, chunksize=1)
    pwex.shutdown(wait=False)  # cancel_futures=False: nothing is dropped, as in concurrent.futures
    assert [f.result(timeout=30) for f in futures] == [None] * 4
    assert not any(f.cancelled() for f in futures)


def test_user_storage_dir_is_kept_and_cleanup_empties_it(tmp_path):
    with lambdamap.local_executor(workers=1, storage_dir=str(tmp_path), progress=False) as pwex:
        ref = pwex.put([1, 2, 3])
        lambdamap.get_all_results(pwex.map(lambda i: ref.get()[i], [0, 2], keep=True))
        assert pwex.storage.list("lambdamap/")
        pwex.cleanup()
        assert pwex.storage.list("lambdamap/") == []
    assert tmp_path.exists()


def test_worker_killed_by_os_exit_and_segfault_is_reported(tmp_path):
    def crash(kind):
        if kind == "exit":
            os._exit(7)
        import ctypes
        ctypes.string_at(0)  # segfault

    with lambdamap.local_executor(workers=2, progress=False) as pwex:
        futures = pwex.map(crash, ["exit", "segv"], chunksize=1)
        messages = [str(f.exception(timeout=30)) for f in futures]
        assert "exited with code 7" in messages[0]
        assert "SIGSEGV" in messages[1]
        assert pwex.submit(abs, -1).result(timeout=30) == 1


def test_script_without_main_guard_works(tmp_path):
    script = tmp_path / "unguarded.py"
    script.write_text(textwrap.dedent("""
        import lambdamap
        pwex = lambdamap.default_executor(workers=2)
        futures = pwex.map(lambda x: x * x, range(1000))
        print(sum(lambdamap.get_all_results(futures)))
        pwex.shutdown()
    """))
    env = {**os.environ, "LAMBDAMAP_CONFIG": str(tmp_path / "none.toml")}
    env.pop("LAMBDAMAP_BACKEND", None)
    out = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=120, env=env,
                         cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == str(sum(x * x for x in range(1000)))


def test_functions_from_a_local_module_are_pickled_by_value(tmp_path):
    (tmp_path / "usermod.py").write_text("OFFSET = 5\ndef shift(x):\n    return x + OFFSET\n")
    script = tmp_path / "main.py"
    script.write_text(textwrap.dedent("""
        import sys
        import lambdamap, usermod
        from lambdamap.core.serialize import dumps_function
        assert b"OFFSET" in dumps_function(usermod.shift)  # by value: the worker needs no usermod.py
        with lambdamap.local_executor(workers=1) as pwex:
            print(lambdamap.get_all_results(pwex.map(usermod.shift, [1, 2])))
    """))
    out = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=120, cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[6, 7]"


def test_progress_bar_when_asked(capsys):
    with lambdamap.local_executor(workers=2) as pwex:
        futures = pwex.map(time.sleep, [0.2] * 4, chunksize=1)
        lambdamap.wait(futures, progress=True)
    err = capsys.readouterr().err
    assert "lambdamap:" in err and "0/4" in err and "call/s" in err


def test_no_progress_bar_when_not_a_terminal(capsys):
    with lambdamap.local_executor(workers=2) as pwex:
        lambdamap.get_all_results(pwex.map(time.sleep, [0.01] * 4))
    assert capsys.readouterr().err == ""


def test_get_all_results_timeout_raises():
    with lambdamap.local_executor(workers=1, progress=False) as pwex:
        futures = pwex.map(time.sleep, [3])
        with pytest.raises(TimeoutError, match="1 of 1 calls not done"):
            lambdamap.get_all_results(futures, timeout=0.2)


def test_bad_return_when():
    with pytest.raises(ValueError, match="return_when"):
        lambdamap.wait([], return_when="SOMETIMES")


def test_local_storage_is_atomic_and_rejects_bad_keys(tmp_path):
    storage = LocalStorage(tmp_path)
    storage.put("a/b/c.pkl", b"1")
    storage.put("a/b/c.pkl", b"22")
    assert storage.get("a/b/c.pkl") == b"22"
    assert not [p for p in tmp_path.rglob("*") if p.name.startswith(".tmp-")]
    with pytest.raises(lambdamap.StorageError, match="invalid storage key"):
        storage.put("../escape", b"x")
    with pytest.raises(lambdamap.ObjectNotFoundError):
        storage.get("a/b/missing.pkl")


def test_warm_imports_modules_on_the_workers_before_the_first_call():
    with lambdamap.local_executor(workers=1, progress=False) as pwex:
        assert pwex.warm(["wave"]) == 1
        assert pwex.submit(lambda: "wave" in __import__("sys").modules).result(timeout=60)
        with pytest.raises(lambdamap.ConfigError, match="imports must be module names"):
            pwex.warm([42])


def test_workers_use_one_blas_thread_unless_told_otherwise(monkeypatch):
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    monkeypatch.setenv("OPENBLAS_NUM_THREADS", "3")  # the client's own setting wins
    with lambdamap.local_executor(workers=1, progress=False) as pwex:
        env = pwex.submit(lambda: {k: __import__("os").environ.get(k) for k in ("OMP_NUM_THREADS",
                                                                               "OPENBLAS_NUM_THREADS")}).result(60)
    assert env == {"OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "3"}


def test_waiting_on_some_futures_of_a_job_does_not_wait_for_the_rest():
    with lambdamap.local_executor(workers=2, progress=False) as pwex:
        futures = pwex.map(time.sleep, [0, 30, 0, 30], chunksize=1)
        start = time.monotonic()
        assert lambdamap.get_all_results([futures[0], futures[2]], timeout=60) == [None, None]
        assert time.monotonic() - start < 10
        pwex.cancel(futures)


def hangs_in_c_on_one(x):
    import signal as _signal
    import time as _time

    if x == 1:
        _signal.pthread_sigmask(_signal.SIG_BLOCK, {_signal.SIGALRM})  # as code stuck in C: no soft timeout
        _time.sleep(60)
    return x


def test_a_call_hanging_in_c_is_named_and_the_others_say_what_became_of_them():
    with lambdamap.local_executor(workers=1, progress=False) as pwex:
        futures = pwex.map(hangs_in_c_on_one, [0, 1, 2], chunksize=3, timeout=1)
        errors = [f.exception(timeout=60) for f in futures]
    assert isinstance(errors[1], lambdamap.TaskTimeoutError) and "call 1 hung past its timeout" in str(errors[1])
    assert isinstance(errors[0], lambdamap.WorkerLostError) and "finished, but its result was lost" in str(errors[0])
    assert isinstance(errors[2], lambdamap.WorkerLostError) and "call 2 did not run" in str(errors[2])
