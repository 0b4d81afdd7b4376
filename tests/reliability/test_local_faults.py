"""Fault injection on the local backend: workers SIGKILLed at random during a 10,000-call job.

With retries every result arrives exactly once and is correct; without, the calls of killed invocations fail with
WorkerLostError and every other call succeeds; the executor stays usable and no call waits forever.
"""

from __future__ import annotations

import os
import random
import signal
import threading
import time

import pytest

import lambdamap

N = 10_000


def slow_square(x):
    time.sleep(0.0004)  # the job lasts a few seconds, so the killer has something to hit
    return x * x


def kill_workers_during(pwex, futures, kills, seed):
    """Kill ``kills`` busy worker processes at random moments while ``futures`` run; return how many were killed."""
    rng = random.Random(seed)
    killed = []

    def killer():
        while len(killed) < kills and not all(f.done() for f in futures[-50:]):
            time.sleep(rng.uniform(0.05, 0.3))
            busy = [w.process.pid for w in pwex.invoker._workers if w.spec is not None]
            if busy:
                pid = rng.choice(busy)
                try:
                    os.kill(pid, signal.SIGKILL)
                    killed.append(pid)
                except ProcessLookupError:
                    pass

    thread = threading.Thread(target=killer, daemon=True)
    thread.start()
    return thread, killed


@pytest.mark.timeout(300)
def test_random_kills_with_retries_lose_nothing():
    with lambdamap.local_executor(workers=2, progress=False) as pwex:
        futures = pwex.map(slow_square, range(N), chunksize=250, retries=10)
        thread, killed = kill_workers_during(pwex, futures, kills=6, seed=1)
        results = lambdamap.get_all_results(futures, timeout=240)
        thread.join(timeout=30)
        assert killed, "the killer never hit a busy worker"
        assert results == [x * x for x in range(N)]
        assert sum(f.stats.attempts > 1 for f in futures) >= 250  # at least one whole invocation was re-run
        assert lambdamap.get_all_results(pwex.map(abs, [-1, -2])) == [1, 2]


@pytest.mark.timeout(300)
def test_random_kills_without_retries_fail_only_the_killed_invocations():
    with lambdamap.local_executor(workers=2, progress=False) as pwex:
        futures = pwex.map(slow_square, range(N), chunksize=250)
        thread, killed = kill_workers_during(pwex, futures, kills=4, seed=2)
        done, not_done = lambdamap.wait(futures, timeout=240)
        thread.join(timeout=30)
        assert not not_done
        failed_invocations = set()
        by_invocation: dict[int, list] = {}
        for fut in futures:
            by_invocation.setdefault(fut.stats.invocation, []).append(fut)
            exc = fut.exception()
            if exc is None:
                assert fut.result() == fut.call_id ** 2
            else:
                assert isinstance(exc, lambdamap.WorkerLostError), exc
                assert f"call {fut.call_id} " in str(exc) and "SIGKILL" in str(exc)
                failed_invocations.add(fut.stats.invocation)
        assert killed and failed_invocations
        assert len(failed_invocations) <= len(killed)
        for n in failed_invocations:  # a lost invocation fails all of its calls, and nothing else fails
            assert all(isinstance(f.exception(), lambdamap.WorkerLostError) for f in by_invocation[n])
        assert lambdamap.get_all_results(pwex.map(abs, [-3])) == [3]
