"""The executor contract: every backend (local, Lambda, Dask, a third party's) must pass these same tests.

To run it against a backend, import the tests into a test module and provide a ``backend`` fixture yielding a
:class:`lambdamap.testing.harness.BackendUnderTest`::

    from lambdamap.testing.executor_contract import *  # noqa: F403

    @pytest.fixture(scope="session")
    def backend():
        with my_executor() as pwex:
            yield BackendUnderTest(name="mine", executor=pwex)

The executor is best shared by the whole session: these tests also check that an executor stays usable after
failures, lost workers and timeouts. Needs pytest, hypothesis, numpy and pandas (the ``test`` extra).
"""

from __future__ import annotations

import concurrent.futures as cf
import itertools
import math
import operator
import os
import signal
import sys
import time
import uuid

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import lambdamap
from lambdamap.core import keys


def square(x):
    return x * x


def fails_on(bad):
    def fn(x):
        if x == bad:
            raise ValueError(f"input {x} is bad")
        return x
    return fn


def kill_self_once(marker_dir):
    """Kill the worker process the first time it runs for a given input; return the input afterwards."""
    def fn(x):
        marker = os.path.join(marker_dir, f"killed-{x}")
        if not os.path.exists(marker):
            open(marker, "w").close()
            os.kill(os.getpid(), signal.SIGKILL)
        return x * 10
    return fn


def test_map_returns_results_in_input_order(backend):
    futures = backend.executor.map(square, range(50), chunksize=backend.chunksize(50))
    assert all(isinstance(f, lambdamap.Future) and isinstance(f, cf.Future) for f in futures)
    assert lambdamap.get_all_results(futures) == [x * x for x in range(50)]


def test_closures_and_lambdas(backend):
    offset = 1000
    table = {i: str(i) for i in range(10)}
    futures = backend.executor.map(lambda x: (x + offset, table[x]), range(10))
    assert lambdamap.get_all_results(futures) == [(x + offset, str(x)) for x in range(10)]


def test_submit_call_async_and_kwargs(backend):
    pwex = backend.executor
    assert pwex.submit(divmod, 17, 5).result(timeout=120) == (3, 2)
    assert pwex.submit(lambda a, *, b: a - b, 10, b=3).result(timeout=120) == 7
    assert pwex.call_async(square, 12).result(timeout=120) == 144


def test_numpy_and_pandas_in_and_out(backend):
    rng = np.random.default_rng(0)
    arrays = [rng.normal(size=(20, 3)) for _ in range(4)]
    futures = backend.executor.map(lambda a: (a @ a.T, pd.DataFrame(a).describe()), arrays)
    for a, (gram, frame) in zip(arrays, lambdamap.get_all_results(futures), strict=True):
        # Another process may pick another BLAS kernel (OPENBLAS_CORETYPE differs between processes on some
        # machines), so a matrix product is equal to rounding, not bit for bit: that is BLAS, not transport.
        assert gram.dtype == np.float64 and gram.shape == (20, 20)
        np.testing.assert_allclose(gram, a @ a.T, rtol=1e-12, atol=1e-12)
        pd.testing.assert_frame_equal(frame, pd.DataFrame(a).describe())
    # Values themselves travel bit for bit.
    echoed = lambdamap.get_all_results(backend.executor.map(lambda a: a, arrays))
    for a, back in zip(arrays, echoed, strict=True):
        np.testing.assert_array_equal(back, a)


def test_exception_keeps_type_and_remote_traceback(backend):
    futures = backend.executor.map(fails_on(3), range(6), chunksize=2)
    with pytest.raises(ValueError, match="input 3 is bad") as info:
        futures[3].result(timeout=120)
    cause = info.value.__cause__
    assert isinstance(cause, lambdamap.RemoteTraceback)
    assert "in fn" in cause.tb and 'raise ValueError(f"input {x} is bad")' in cause.tb
    # The other calls of the same invocation still succeed.
    assert [futures[i].result() for i in (0, 1, 2, 4, 5)] == [0, 1, 2, 4, 5]
    assert isinstance(futures[3].exception(), ValueError)


def test_custom_exception_class_round_trips(backend):
    class Boom(Exception):
        pass

    def fn(x):
        raise Boom(f"boom {x}")

    exc = backend.executor.submit(fn, 1).exception(timeout=120)
    assert type(exc).__name__ == "Boom" and str(exc) == "boom 1"


def test_concurrent_futures_wait_and_as_completed(backend):
    futures = backend.executor.map(square, range(20), chunksize=backend.chunksize(20))
    done, not_done = cf.wait(futures, timeout=120)
    assert not not_done and len(done) == 20
    futures = backend.executor.map(square, range(20), chunksize=backend.chunksize(20))
    assert sorted(f.result() for f in cf.as_completed(futures, timeout=120)) == [x * x for x in range(20)]


def test_lambdamap_wait_modes(backend):
    futures = backend.executor.map(time.sleep, [0.0, 0.0, 1.0])
    done, not_done = lambdamap.wait(futures, return_when=lambdamap.ALWAYS)
    assert sorted(done + not_done, key=futures.index) == futures
    done, _ = lambdamap.wait(futures, return_when=lambdamap.ANY_COMPLETED, timeout=120)
    assert done and all(f.done() for f in done)
    done, not_done = lambdamap.wait(futures, return_when=lambdamap.ALL_COMPLETED, timeout=120)
    assert done == futures and not_done == []  # PyWren's lists, in input order


def test_lambdamap_wait_timeout_returns_what_is_left_in_order(backend):
    futures = backend.executor.map(time.sleep, [0.0, 5.0, 0.0, 5.0], chunksize=1)
    done, not_done = lambdamap.wait(futures, timeout=0.5)
    assert not_done == [f for f in futures if not f.done()] and futures[1] in not_done and futures[3] in not_done
    assert done == [f for f in futures if f in done]  # input order
    backend.executor.cancel(futures)


def test_cancel_is_consistent(backend):
    futures = backend.executor.map(time.sleep, [0.5] * 6, chunksize=1)
    cancelled = [f.cancel() for f in futures]
    lambdamap.wait(futures, timeout=120)
    for fut, was_cancelled in zip(futures, cancelled, strict=True):
        if was_cancelled:
            assert fut.cancelled()
            with pytest.raises(cf.CancelledError):
                fut.result()
        else:
            assert fut.result(timeout=120) is None


def test_timeout_fails_the_call_and_executor_stays_usable(backend):
    start = time.monotonic()
    futures = backend.executor.map(time.sleep, [60, 0.01], timeout=1.0)
    with pytest.raises(lambdamap.TaskTimeoutError):
        futures[0].result(timeout=backend.lost_worker_seconds + 60)
    assert futures[1].result(timeout=60) is None
    assert time.monotonic() - start < backend.lost_worker_seconds + 30
    assert backend.executor.submit(square, 3).result(timeout=120) == 9


@pytest.mark.timeout(300)
def test_lost_worker_fails_only_its_calls(backend, tmp_path):
    if not backend.can_kill_workers:
        pytest.fail(f"backend {backend.name} cannot test lost workers; it must say how it detects them")
    start = time.monotonic()
    futures = backend.executor.map(kill_self_once(str(tmp_path)), [1, 2], chunksize=1)
    ok = backend.executor.map(square, range(5))
    for fut in futures:
        exc = fut.exception(timeout=backend.lost_worker_seconds + 60)
        assert isinstance(exc, lambdamap.WorkerLostError), exc
        assert f"call {fut.call_id}" in str(exc)
    assert time.monotonic() - start < backend.lost_worker_seconds + 60
    assert lambdamap.get_all_results(ok, timeout=120) == [x * x for x in range(5)]


@pytest.mark.timeout(300)
def test_retries_rerun_lost_calls_exactly_once(backend, tmp_path):
    futures = backend.executor.map(kill_self_once(str(tmp_path)), [1, 2, 3], chunksize=1, retries=1)
    assert lambdamap.get_all_results(futures, timeout=backend.lost_worker_seconds + 120) == [10, 20, 30]
    assert all(f.stats.attempts == 2 for f in futures)


def test_retries_do_not_rerun_calls_whose_function_raised(backend, tmp_path):
    counter = str(tmp_path / "runs")

    def fn(x):
        with open(counter, "a") as fh:
            fh.write("x")
        raise RuntimeError("deterministic failure")

    fut = backend.executor.map(fn, [1], retries=3)[0]
    assert isinstance(fut.exception(timeout=120), RuntimeError)
    with open(counter) as fh:
        assert fh.read() == "x"


def test_chunksize_batches_calls_into_invocations(backend):
    futures = backend.executor.map(square, range(50), chunksize=7)
    assert lambdamap.get_all_results(futures) == [x * x for x in range(50)]
    invocations = {f.stats.invocation for f in futures}
    assert len(invocations) == math.ceil(50 / 7)
    assert len({f.stats.worker_start for f in futures if f.stats.invocation == 0}) == 1


def test_map_reduce(backend):
    fut = backend.executor.map_reduce(square, range(30), sum, chunksize=backend.chunksize(30))
    assert fut.result(timeout=120) == sum(x * x for x in range(30))
    failing = backend.executor.map_reduce(fails_on(2), range(5), sum)
    with pytest.raises(ValueError, match="input 2 is bad"):
        failing.result(timeout=120)


def test_reduce_over_futures_pywren_style(backend):
    futures = backend.executor.map(square, range(10), chunksize=backend.chunksize(10))
    assert backend.executor.reduce(sum, futures).result(timeout=120) == sum(x * x for x in range(10))
    assert backend.executor.reduce(len, []).result(timeout=120) == 0


@pytest.mark.timeout(600)
def test_ten_thousand_calls_all_correct(backend):
    n = 10_000
    futures = backend.executor.map(square, range(n), chunksize=backend.chunksize(n))
    results = lambdamap.get_all_results(futures, timeout=500)
    assert results == [x * x for x in range(n)]
    assert len({f.call_id for f in futures}) == n


@settings(max_examples=10, deadline=None, suppress_health_check=list(HealthCheck))
@given(xs=st.lists(st.integers(min_value=-10**6, max_value=10**6), max_size=40))
def test_property_results_equal_builtin_map(backend, xs):
    fn = operator.neg
    futures = backend.executor.map(fn, xs, chunksize=backend.chunksize(len(xs)))
    assert lambdamap.get_all_results(futures, timeout=120) == list(map(fn, xs))


def test_stats_are_filled_and_ordered(backend):
    futures = backend.executor.map(time.sleep, [0.05, 0.05])
    lambdamap.get_all_results(futures, timeout=120)
    for fut in futures:
        s = fut.stats
        slack = 1.0  # worker and client clocks are the same machine here, but allow scheduling jitter
        assert s.submitted - slack <= s.worker_start <= s.function_start <= s.function_end
        assert s.function_end <= s.result_received + slack
        assert s.function_seconds >= 0.04
        assert s.worker_id and isinstance(s.warm, bool) and s.attempts == 1


def test_extra_env_is_visible_to_the_function(backend):
    fut = backend.executor.map(lambda name: os.environ.get(name), ["LAMBDAMAP_TEST_VAR"],
                               extra_env={"LAMBDAMAP_TEST_VAR": "hello"})[0]
    assert fut.result(timeout=120) == "hello"


def test_put_shares_an_object_with_every_call(backend):
    data = np.arange(10_000, dtype=float)
    ref = backend.executor.put(data)
    assert backend.executor.put(data) == ref  # content-addressed: same key
    futures = backend.executor.map(lambda i: float(ref.get()[i]), [0, 5, 9999])
    assert lambdamap.get_all_results(futures, timeout=120) == [0.0, 5.0, 9999.0]


def test_function_is_stored_once_per_content(backend):
    pwex = backend.executor
    payload = np.ones(1000)
    fn = lambda x: float(payload.sum()) + x  # noqa: E731
    lambdamap.get_all_results(pwex.map(fn, [1, 2]), timeout=120)
    blobs_before = set(pwex.storage.list(keys.blobs_prefix(pwex.prefix)))
    assert lambdamap.get_all_results(pwex.map(fn, [3]), timeout=120) == [1003.0]
    assert set(pwex.storage.list(keys.blobs_prefix(pwex.prefix))) == blobs_before


def test_job_objects_removed_after_collection_unless_kept(backend):
    pwex = backend.executor
    futures = pwex.map(square, range(4))
    lambdamap.get_all_results(futures, timeout=120)
    prefix = keys.job_prefix(pwex.prefix, futures[0].job_id)
    deadline = time.monotonic() + 30
    while pwex.storage.list(prefix) and time.monotonic() < deadline:
        time.sleep(0.05)  # cleanup runs on the collector thread just after the last future completes
    assert pwex.storage.list(prefix) == []
    kept = pwex.map(square, range(4), keep=True)
    lambdamap.get_all_results(kept, timeout=120)
    assert pwex.storage.list(keys.job_prefix(pwex.prefix, kept[0].job_id))


def test_unpicklable_function_is_rejected_before_anything_is_stored(backend):
    pwex = backend.executor
    import threading

    lock = threading.Lock()
    before = set(pwex.storage.list(keys.jobs_prefix(pwex.prefix)))
    with pytest.raises(lambdamap.SerializationError, match="cannot be pickled"):
        pwex.map(lambda x: (lock, x), [1, 2])
    assert set(pwex.storage.list(keys.jobs_prefix(pwex.prefix))) == before


def test_unpicklable_argument_is_named(backend):
    import threading

    with pytest.raises(lambdamap.SerializationError, match=r"call 2 \(positional argument 0, type lock\)"):
        backend.executor.map(square, [1, 2, threading.Lock(), 4], chunksize=4)


def test_unpicklable_return_value_fails_only_that_call(backend):
    def fn(x):
        import threading
        return threading.Lock() if x == 1 else x

    futures = backend.executor.map(fn, [0, 1, 2], chunksize=3)
    assert futures[0].result(timeout=120) == 0 and futures[2].result(timeout=120) == 2
    exc = futures[1].exception(timeout=120)
    assert isinstance(exc, lambdamap.SerializationError)
    assert "return value of call 1" in str(exc)


@pytest.mark.parametrize("kwargs, fragment", [
    ({"timeout": -1}, "timeout must be a positive number"),
    ({"timeout": "5"}, "timeout must be a positive number"),
    ({"retries": -1}, "retries must be an integer >= 0"),
    ({"retries": 1.5}, "retries must be an integer >= 0"),
    ({"chunksize": 0}, "chunksize must be an integer >= 1"),
    ({"extra_env": {"A": 1}}, "extra_env must be a dict of str to str"),
    ({"keep": "yes"}, "keep must be True or False"),
    ({"exclude_modules": "helper"}, r"exclude_modules must be a list of module names.*wrap it"),
])
def test_bad_options_raise_config_error(backend, kwargs, fragment):
    with pytest.raises(lambdamap.ConfigError, match=fragment):
        backend.executor.map(square, [1], **kwargs)


@pytest.mark.parametrize("iterable, fragment", [(5, "needs an iterable"), ("abc", "got a string")])
def test_bad_iterables_raise_config_error(backend, iterable, fragment):
    with pytest.raises(lambdamap.ConfigError, match=fragment):
        backend.executor.map(square, iterable)


def test_non_callable_is_rejected(backend):
    with pytest.raises(lambdamap.ConfigError, match="fn must be callable"):
        backend.executor.map(42, [1])


def test_empty_map_returns_no_futures(backend):
    assert backend.executor.map(square, []) == []
    assert backend.executor.map_reduce(square, [], len).result(timeout=120) == 0


def test_unique_job_ids(backend):
    ids = {backend.executor.submit(str, uuid.uuid4()).job_id for _ in range(3)}
    assert len(ids) == 3


# -- the map people already know -----------------------------------------------------------------------------------
def add(a, b=0):
    return a + b


def add_two(a, b):
    return a + b


def test_map_zips_several_iterables_and_starmap_unpacks(backend):
    pwex = backend.executor
    assert lambdamap.get_all_results(pwex.map(add, [1, 2, 3], [10, 20, 30])) == [11, 22, 33]
    assert lambdamap.get_all_results(pwex.starmap(add, [(1, 10), (2,), {"a": 3, "b": 30}])) == [11, 2, 33]
    with pytest.raises(lambdamap.ConfigError, match="different lengths"):
        pwex.map(add, [1, 2], [1])
    with pytest.raises(lambdamap.ConfigError, match=r"needs 2 \(a, b\).*starmap"):
        pwex.map(add_two, [(1, 10), (2, 20)])  # certain to fail on every worker: refused before sending
    with pytest.raises(lambdamap.ConfigError, match="tuple of positional arguments or a dict"):
        pwex.starmap(add, [1, 2])


def fails_on_odd(x):
    if x % 2:
        print(f"odd input {x}")
        raise ValueError(f"odd {x}")
    return x


def test_every_failure_is_named_and_none_is_dropped(backend):
    futures = backend.executor.map(fails_on_odd, range(6), chunksize=3)
    out = lambdamap.get_all_results(futures, return_exceptions=True)
    assert [type(v).__name__ if isinstance(v, Exception) else v for v in out] == [0, "ValueError", 2, "ValueError",
                                                                                    4, "ValueError"]
    with pytest.raises(ValueError, match="odd 1") as info:
        lambdamap.get_all_results(futures)
    notes = "\n".join(info.value.__notes__)
    assert "call 1 of job" in notes and "input (1)" in notes
    assert "2 other call(s) of these 6 failed too (first indexes: [3, 5])" in notes
    assert "odd input 1" in notes  # what the failed call printed, echoed on the client
    assert futures[3].output == "odd input 3\n" and futures[0].output == ""


class UnpicklableOnWorker:
    """Pickles on the client, refuses to unpickle anywhere (its __reduce__ calls a function that raises)."""

    def __reduce__(self):
        return (_refuse, ())


def _refuse():
    raise RuntimeError("this value cannot be rebuilt")


class ExitOnUnpickle:
    def __reduce__(self):
        return (sys.exit, (3,))


def test_one_bad_value_fails_only_its_own_call(backend):
    pwex = backend.executor
    futures = pwex.map(lambda x: 0 if isinstance(x, UnpicklableOnWorker) else x, [1, UnpicklableOnWorker(), 3],
                       chunksize=3)
    assert futures[0].result(timeout=120) == 1 and futures[2].result(timeout=120) == 3
    with pytest.raises(lambdamap.SerializationError, match="arguments of call 1 cannot be unpickled on the worker"):
        futures[1].result(timeout=120)
    results = pwex.map(lambda x: ExitOnUnpickle() if x == 1 else x, [0, 1, 2], chunksize=3)
    assert results[0].result(timeout=120) == 0 and results[2].result(timeout=120) == 2
    with pytest.raises(lambdamap.SerializationError, match="result of call 1 cannot be unpickled"):
        results[1].result(timeout=120)


def test_retry_on_reruns_a_flaky_call_with_backoff(backend, tmp_path):
    marker = str(tmp_path / f"flaky-{uuid.uuid4().hex}")

    def flaky(x):
        tries = len(os.listdir(marker)) if os.path.isdir(marker) else 0
        os.makedirs(marker, exist_ok=True)
        open(os.path.join(marker, str(tries)), "w").close()
        if tries < 2:
            raise ConnectionError(f"flaky {tries}")
        return x * 2

    fut = backend.executor.map(flaky, [21], retries=3, retry_on=(ConnectionError,), backoff=0.01)[0]
    assert fut.result(timeout=120) == 42
    assert len(os.listdir(marker)) == 3  # failed twice, then succeeded
    never = backend.executor.map(fails_on(0), [0], retries=3, retry_on=(ConnectionError,), backoff=0.01)[0]
    with pytest.raises(ValueError):  # other exceptions are never re-run
        never.result(timeout=120)
    with pytest.raises(lambdamap.ConfigError, match="retry_on must be a tuple of exception types"):
        backend.executor.map(abs, [1], retries=1, retry_on=("ConnectionError",))
    with pytest.raises(lambdamap.ConfigError, match="backoff must be"):
        backend.executor.map(abs, [1], retries=1, retry_on=(ValueError,), backoff=-1)


def test_results_stream_in_completion_order_and_imap_is_lazy(backend):
    pwex = backend.executor
    futures = pwex.map(time.sleep, [3, 0], chunksize=1)
    first, _ = next(lambdamap.as_completed(futures, with_results=True, timeout=120))
    assert first is futures[1]
    lambdamap.wait(futures)
    consumed = []

    def endless():
        for i in itertools.count():
            consumed.append(i)
            yield i

    stream = pwex.imap(square, endless(), window=8)
    assert [next(stream) for _ in range(5)] == [0, 1, 4, 9, 16]
    stream.close()  # stops what is still outstanding
    assert len(consumed) <= 5 + 8 + 2  # never read far ahead of the consumer
    unordered = sorted(pwex.imap(square, range(20), ordered=False, window=4))
    assert unordered == [x * x for x in range(20)]


def test_a_standard_library_executor_view(backend):
    view = backend.executor.as_standard_executor()
    assert isinstance(view, cf.Executor)
    assert list(view.map(add, [1, 2], [3, 4], timeout=120)) == [4, 6]
    assert view.submit(add, 1, b=2).result(timeout=120) == 3
    # lambdamap's own map options pass through the view; a misspelt one is refused, never ignored
    assert list(view.map(add, [1], [2], timeout=120, retries=1, buffersize=4)) == [3]
    with pytest.raises(TypeError, match="retires"):
        view.map(add, [1], [2], retires=1)


def pid_and_square(x):
    if x == 5:
        os.kill(os.getpid(), signal.SIGKILL)  # one forked process dies: only its slice of calls fails
    return os.getpid(), x * x


def test_cores_runs_the_calls_of_one_invocation_in_several_processes(backend):
    futures = backend.executor.map(pid_and_square, range(8), chunksize=8, cores=2)
    outcomes = lambdamap.get_all_results(futures, return_exceptions=True)
    ok = [o for o in outcomes if not isinstance(o, BaseException)]
    lost = [i for i, o in enumerate(outcomes) if isinstance(o, lambdamap.WorkerLostError)]
    assert lost == [4, 5, 6, 7]  # the slice whose process died, in its places
    assert [sq for _, sq in ok] == [0, 1, 4, 9]
    assert len({f.stats.invocation for f in futures}) == 1  # one invocation ...
    good = lambdamap.get_all_results(backend.executor.map(pid_and_square, [0, 1, 2, 3], chunksize=4, cores=2))
    assert len({pid for pid, _ in good}) == 2  # ... on two processes
    with pytest.raises(lambdamap.ConfigError, match="cores must be an integer >= 1"):
        backend.executor.map(abs, [1], cores=0)
