"""The executor's whole life, as users live it: Ctrl-C, SIGTERM, SIGKILL of the client, scripts that end without
shutdown(). Each test runs a real script and counts the processes and folders it leaves behind."""

from __future__ import annotations

import signal
import time

import pytest
from conftest import wait_gone

SLOW_MAP = """
    import time
    import lambdamap

    pwex = lambdamap.default_executor(workers=2, progress=False)   # no `with`, as in PyWren's talk
    futures = pwex.map(time.sleep, [30] * 6, chunksize=1)
    while sum(f.running() for f in futures) < 2:
        time.sleep(0.02)
    print("running", flush=True)
    lambdamap.get_all_results(futures)
"""


def test_ctrl_c_cancels_the_job_and_leaves_nothing(script):
    s = script(SLOW_MAP)
    s.wait_for_line("running")
    assert len(s.tree) >= 3  # the client and its two workers
    start = time.monotonic()
    s.proc.send_signal(signal.SIGINT)
    code, _, err = s.finish(timeout=10)
    assert time.monotonic() - start < 3
    assert code != 0 and "KeyboardInterrupt" in err
    assert "lambdamap: cancelled 6 calls of job" in err
    assert "BrokenPipeError" not in err
    assert wait_gone(s.tree, 2) == []
    assert s.leftovers()[1] == []


def test_ctrl_c_outside_any_wait_cancels_at_exit_instead_of_waiting(script):
    # The script is sleeping, not waiting on lambdamap, when Ctrl-C lands: it ends on the KeyboardInterrupt, and the
    # exit must cancel the six 30 s calls (not wait for them, as it does when a script simply ends).
    s = script(SLOW_MAP.replace("lambdamap.get_all_results(futures)", "time.sleep(60)"))
    s.wait_for_line("running")
    start = time.monotonic()
    s.proc.send_signal(signal.SIGINT)
    code, _, err = s.finish(timeout=10)
    assert time.monotonic() - start < 3
    assert code != 0 and "KeyboardInterrupt" in err
    assert "lambdamap: cancelled 6 calls of job" in err and "waiting for" not in err
    assert wait_gone(s.tree, 2) == []
    assert s.leftovers()[1] == []


def test_second_ctrl_c_during_cleanup_orphans_nothing(script):
    s = script(SLOW_MAP)
    s.wait_for_line("running")
    s.proc.send_signal(signal.SIGINT)
    time.sleep(0.05)
    s.proc.send_signal(signal.SIGINT)
    s.finish(timeout=10)
    assert wait_gone(s.tree, 2) == []
    assert s.leftovers()[1] == []


def test_sigterm_cleans_up_like_ctrl_c_and_exits_as_asked(script):
    s = script(SLOW_MAP)
    s.wait_for_line("running")
    s.proc.send_signal(signal.SIGTERM)
    code, _, err = s.finish(timeout=10)
    assert code == -signal.SIGTERM
    assert "BrokenPipeError" not in err and "Traceback" not in err
    assert wait_gone(s.tree, 2) == []
    assert s.leftovers()[1] == []


def test_workers_do_not_outlive_a_killed_client(script):
    s = script(SLOW_MAP)
    s.wait_for_line("running")
    workers = s.tree - {s.proc.pid}
    s.proc.send_signal(signal.SIGKILL)
    s.finish(timeout=10)
    assert wait_gone(workers, 2) == []


def test_a_script_that_ends_without_shutdown_runs_its_calls_and_cleans_up(script):
    s = script("""
        import time
        import lambdamap

        pwex = lambdamap.default_executor(workers=2, progress=False)
        print(lambdamap.get_all_results(pwex.map(abs, [-1, -2])), flush=True)
        late = pwex.map(time.sleep, [0.3, 0.3])     # submitted just before the end, never waited for
        print("done", flush=True)
    """)
    s.wait_for_line("done")
    code, _, err = s.finish(timeout=30)
    assert code == 0
    assert "waiting for 2 unfinished calls before exit" in err  # never silently dropped
    assert "BrokenPipeError" not in err and "Traceback" not in err
    assert wait_gone(s.tree, 2) == []
    assert s.leftovers()[1] == []


@pytest.mark.parametrize("rounds", [5])
def test_dropped_executors_release_their_workers_and_folders(script, rounds):
    s = script(f"""
        import gc
        import os
        import lambdamap

        pids = []
        for _ in range({rounds}):
            pwex = lambdamap.local_executor(workers=2, progress=False)
            assert pwex.submit(abs, -1).result() == 1
            pids += pwex.invoker.pids
            del pwex
            gc.collect()
        print(" ".join(map(str, pids)), flush=True)
        print("dropped", flush=True)
        import time
        time.sleep(60)  # still running while the test counts: nothing was released by the process ending
    """)
    lines = s.wait_for_line("dropped")
    pids = [int(p) for p in lines[-2].split()]
    assert len(pids) == 2 * rounds
    assert wait_gone(pids, 5) == []
    assert s.leftovers()[1] == []
    assert s.proc.poll() is None
    s.proc.kill()


def test_only_an_uncaught_ctrl_c_outside_interactive_sessions_counts_as_the_reason_for_exit(monkeypatch):
    import sys

    from lambdamap.core.lifecycle import _ended_by_ctrl_c

    monkeypatch.delattr(sys, "ps1", raising=False)
    monkeypatch.setattr(sys, "last_type", KeyboardInterrupt, raising=False)
    assert _ended_by_ctrl_c()
    monkeypatch.setattr(sys, "last_type", ValueError)
    assert not _ended_by_ctrl_c()  # a script failing on another error still waits for its calls
    monkeypatch.setattr(sys, "last_type", KeyboardInterrupt)
    monkeypatch.setattr(sys, "ps1", ">>> ", raising=False)
    assert not _ended_by_ctrl_c()  # a REPL or Jupyter kernel (both set sys.ps1) keeps an old interrupt around
