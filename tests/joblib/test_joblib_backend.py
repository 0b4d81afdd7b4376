"""The "lambdamap" joblib backend: joblib, scikit-learn and DoubleML parallelism sent to lambdamap executors.

Runs against the session's local and Dask executors (the same ones the contract suite uses).
"""

from __future__ import annotations

import os
import time

import joblib
import numpy as np
import pytest
from joblib import Parallel, delayed

import lambdamap
from lambdamap.integrations.joblib import LambdamapBackend


@pytest.fixture(params=["local", "dask"])
def pwex(request):
    return request.getfixturevalue(f"{request.param}_backend").executor


def _job_count(pwex) -> int:
    return pwex._collector.registered  # jobs ever submitted (finished ones are released once dropped)


def pid_of(x):
    return x * x, os.getpid()


def fails_on_seven(x):
    if x == 7:
        raise ValueError(f"input {x} is bad")
    return x


def test_batches_run_on_the_executor_in_order(pwex):
    before = _job_count(pwex)
    with joblib.parallel_config(backend="lambdamap", executor=pwex):
        out = Parallel(n_jobs=-1)(delayed(pid_of)(i) for i in range(200))
    assert [value for value, _ in out] == [i * i for i in range(200)]
    assert os.getpid() not in {pid for _, pid in out}  # nothing ran in the caller's process
    assert _job_count(pwex) > before  # every batch is a lambdamap call


def test_generator_output(pwex):
    with joblib.parallel_config(backend="lambdamap", executor=pwex):
        gen = Parallel(n_jobs=2, return_as="generator")(delayed(abs)(-i) for i in range(30))
        assert list(gen) == list(range(30))


def test_exception_in_a_batch_reaches_the_caller_with_remote_traceback(pwex):
    with joblib.parallel_config(backend="lambdamap", executor=pwex):
        with pytest.raises(ValueError, match="input 7 is bad") as info:
            Parallel(n_jobs=2, batch_size=3)(delayed(fails_on_seven)(i) for i in range(20))
        cause = info.value.__cause__
        assert isinstance(cause, lambdamap.RemoteTraceback)
        assert "in fails_on_seven" in cause.tb and 'raise ValueError(f"input {x} is bad")' in cause.tb
        # The backend (and its executor) stay usable after the failure.
        assert Parallel(n_jobs=2)(delayed(abs)(-i) for i in range(5)) == [0, 1, 2, 3, 4]


def test_grid_search_equals_serial(pwex):
    from sklearn.datasets import make_classification
    from sklearn.model_selection import GridSearchCV
    from sklearn.tree import DecisionTreeClassifier

    X, y = make_classification(n_samples=300, n_features=8, random_state=0)
    grid = {"max_depth": [2, 3, 4, 6], "min_samples_leaf": [1, 5]}
    serial = GridSearchCV(DecisionTreeClassifier(random_state=0), grid, cv=3).fit(X, y)
    before = _job_count(pwex)
    with joblib.parallel_config(backend="lambdamap", executor=pwex):
        remote = GridSearchCV(DecisionTreeClassifier(random_state=0), grid, cv=3, n_jobs=-1).fit(X, y)
    assert _job_count(pwex) > before
    assert remote.best_params_ == serial.best_params_
    for key in ("mean_test_score", "std_test_score", "split0_test_score", "rank_test_score"):
        np.testing.assert_array_equal(remote.cv_results_[key], serial.cv_results_[key])
    np.testing.assert_array_equal(remote.predict(X), serial.predict(X))


def test_cross_val_score_equals_serial(pwex):
    from sklearn.datasets import make_regression
    from sklearn.ensemble import RandomForestRegressor
    from sklearn.model_selection import cross_val_score

    X, y = make_regression(n_samples=200, n_features=6, noise=1.0, random_state=1)
    model = RandomForestRegressor(n_estimators=10, random_state=0)
    serial = cross_val_score(model, X, y, cv=5)
    before = _job_count(pwex)
    with joblib.parallel_config(backend="lambdamap", executor=pwex):
        remote = cross_val_score(model, X, y, cv=5, n_jobs=-1)
    assert _job_count(pwex) > before
    np.testing.assert_array_equal(remote, serial)


def _plr(seed: int):
    import doubleml
    from doubleml.plm.datasets import make_plr_CCDDHNR2018
    from sklearn.ensemble import RandomForestRegressor

    np.random.seed(seed)
    data = make_plr_CCDDHNR2018(n_obs=300, dim_x=8, alpha=0.5)
    np.random.seed(seed + 1)  # DoubleML draws its splits from numpy's global state
    learner = RandomForestRegressor(n_estimators=20, max_depth=4, random_state=0)
    return doubleml.DoubleMLPLR(data, ml_l=learner, ml_m=learner, n_folds=3, n_rep=2)


def test_doubleml_fit_n_jobs_cv_gives_identical_estimates(pwex):
    serial = _plr(7).fit()
    before = _job_count(pwex)
    with joblib.parallel_config(backend="lambdamap", executor=pwex):
        remote = _plr(7).fit(n_jobs_cv=2)
    assert _job_count(pwex) > before  # DoubleML's cross-fitting ran on the executor
    np.testing.assert_array_equal(remote.coef, serial.coef)
    np.testing.assert_array_equal(remote.se, serial.se)
    np.testing.assert_array_equal(remote.all_coef, serial.all_coef)


@pytest.mark.parametrize("kwargs, fragment", [
    ({"executor": "not an executor"}, "executor must be a lambdamap Executor"),
    ({"retries": -1}, "retries must be an integer >= 0"),
    ({"batch_timeout": 0}, "batch_timeout must be a positive number"),
])
def test_bad_backend_options_raise_config_error(kwargs, fragment):
    with pytest.raises(lambdamap.ConfigError, match=fragment):
        with joblib.parallel_config(backend="lambdamap", **kwargs):
            pass


@pytest.mark.parametrize("limit", [0, 1.5, True])
def test_bad_inner_max_num_threads_raises_config_error_when_parallel_starts(local_backend, limit):
    with joblib.parallel_config(backend="lambdamap", executor=local_backend.executor, inner_max_num_threads=limit):
        with pytest.raises(lambdamap.ConfigError, match="inner_max_num_threads must be an integer >= 1"):
            Parallel(n_jobs=2)(delayed(abs)(-i) for i in range(2))


def test_sharedmem_work_runs_on_the_client_and_shares_its_memory(local_backend):
    seen: list[int] = []
    backend = LambdamapBackend(executor=local_backend.executor)
    before = _job_count(local_backend.executor)
    out = Parallel(n_jobs=2, backend=backend, require="sharedmem")(delayed(seen.append)(i) for i in range(6))
    assert out == [None] * 6 and sorted(seen) == list(range(6))  # the client's own list was appended to
    assert _job_count(local_backend.executor) == before


def test_tiny_thread_work_runs_inline_without_a_thread_pool(local_backend):
    import threading

    backend = LambdamapBackend(executor=local_backend.executor)
    where = Parallel(n_jobs=2, backend=backend, prefer="threads")(
        delayed(lambda i: (i, threading.get_ident()))(i) for i in range(50))
    assert [i for i, _ in where] == list(range(50))
    assert {ident for _, ident in where} == {threading.get_ident()}


def test_thread_work_that_takes_time_moves_to_the_thread_pool(local_backend):
    import threading

    def slow(i):
        time.sleep(0.01)  # past INLINE_BATCH_SECONDS: the first batch runs inline, the rest in the pool
        return i, threading.get_ident()

    backend = LambdamapBackend(executor=local_backend.executor)
    where = Parallel(n_jobs=2, backend=backend, prefer="threads")(delayed(slow)(i) for i in range(8))
    assert [i for i, _ in where] == list(range(8))
    assert where[0][1] == threading.get_ident()
    assert threading.get_ident() not in {ident for _, ident in where[1:]}


def test_many_inline_batches_do_not_recurse(local_backend, monkeypatch):
    # joblib dispatches the next batch from the completion callback of the previous one: run inline without a
    # queue, 5,000 batches would nest 5,000 callbacks deep and raise RecursionError.
    monkeypatch.setattr(LambdamapBackend, "INLINE_TOTAL_SECONDS", 3600.0)
    backend = LambdamapBackend(executor=local_backend.executor)
    assert Parallel(n_jobs=2, backend=backend, prefer="threads")(delayed(abs)(-i) for i in range(5000)) == \
        list(range(5000))


def _sum_in_threads(n):
    return sum(Parallel(n_jobs=2, prefer="threads")(delayed(abs)(-j) for j in range(n)))


def test_inline_thread_work_streams_and_nests(local_backend):
    with joblib.parallel_config(backend="lambdamap", executor=local_backend.executor, n_jobs=2):
        ordered = Parallel(prefer="threads", return_as="generator")(delayed(abs)(-i) for i in range(100))
        assert list(ordered) == list(range(100))
        unordered = Parallel(prefer="threads", return_as="generator_unordered")(delayed(abs)(-i) for i in range(100))
        assert sorted(unordered) == list(range(100))
        nested = Parallel(prefer="threads")(delayed(_sum_in_threads)(i) for i in range(10))
        assert nested == [sum(range(i)) for i in range(10)]


def test_an_error_in_inline_thread_work_reaches_the_caller(local_backend):
    backend = LambdamapBackend(executor=local_backend.executor)
    with pytest.raises(ValueError, match="input 7 is bad"):
        Parallel(n_jobs=2, backend=backend, prefer="threads")(delayed(fails_on_seven)(i) for i in range(10))


def test_forest_predictions_under_the_backend_equal_serial(local_backend):
    from sklearn.ensemble import RandomForestClassifier

    X = np.random.default_rng(0).normal(size=(200, 4))
    y = (X[:, 0] > 0).astype(int)
    forest = RandomForestClassifier(n_estimators=30, max_depth=4, random_state=0).fit(X, y)
    serial = forest.predict_proba(X)
    with joblib.parallel_config(backend="lambdamap", executor=local_backend.executor, n_jobs=2):
        np.testing.assert_array_equal(forest.predict_proba(X), serial)  # require="sharedmem" accumulation
        refit = RandomForestClassifier(n_estimators=30, max_depth=4, random_state=0).fit(X, y)
    np.testing.assert_array_equal(refit.predict_proba(X), serial)


def test_effective_n_jobs_follows_the_executor(local_backend):
    backend = LambdamapBackend(executor=local_backend.executor)
    workers = local_backend.executor.invoker.workers
    assert backend.effective_n_jobs(-1) == workers
    assert backend.effective_n_jobs(None) == workers
    assert backend.effective_n_jobs(5) == 5
    with pytest.raises(ValueError):
        backend.effective_n_jobs(0)


def test_batch_timeout_and_retries_reach_the_executor(local_backend):
    with joblib.parallel_config(backend="lambdamap", executor=local_backend.executor, batch_timeout=1.0):
        start = time.monotonic()
        with pytest.raises(lambdamap.TaskTimeoutError):
            Parallel(n_jobs=2)(delayed(time.sleep)(s) for s in (30, 0))
        assert time.monotonic() - start < 20


def test_without_an_executor_the_configured_default_is_used(monkeypatch):
    import lambdamap.integrations.joblib as jb

    monkeypatch.setenv("LAMBDAMAP_BACKEND", "local")
    monkeypatch.setenv("LAMBDAMAP_WORKERS", "2")
    monkeypatch.setattr(jb, "_default", None)
    try:
        out = Parallel(n_jobs=2, backend="lambdamap")(delayed(pid_of)(i) for i in range(6))
        assert [value for value, _ in out] == [i * i for i in range(6)]
        assert isinstance(jb._default, lambdamap.Executor) and jb._default.backend == "local"
        assert os.getpid() not in {pid for _, pid in out}
    finally:
        if jb._default is not None:
            jb._default.shutdown()


def test_work_that_asks_for_threads_runs_in_local_threads(pwex):
    """A forest's trees (prefer="threads") cost far less than an invocation: they stay in the client's threads."""
    import threading

    from sklearn.ensemble import RandomForestRegressor

    before = _job_count(pwex)
    with joblib.parallel_config(backend="lambdamap", executor=pwex):
        where = Parallel(n_jobs=2, prefer="threads")(delayed(lambda: (os.getpid(), threading.get_ident()))()
                                                     for _ in range(8))
        RandomForestRegressor(n_estimators=20, n_jobs=2, random_state=0).fit(np.random.rand(50, 3), np.random.rand(50))
    assert {pid for pid, _ in where} == {os.getpid()}
    assert _job_count(pwex) == before  # no tree became a lambdamap call


def nested_backend(_):
    """Runs in a batch: the backend and thread count a nested Parallel would get there."""
    from joblib.parallel import get_active_backend

    backend, _ = get_active_backend()
    return type(backend).__name__, getattr(backend, "max_threads", "n/a"), backend.effective_n_jobs(8)


def test_threads_nested_in_a_batch_get_the_workers_share_of_the_cpus(pwex):
    """Two workers each starting a forest of two threads on two cores only fight over them: on the local backend a
    batch's nested Parallel gets cpu_count() // concurrent batches threads; elsewhere the worker's CPUs are its own."""
    with joblib.parallel_config(backend="lambdamap", executor=pwex):
        out = Parallel(n_jobs=2)(delayed(nested_backend)(i) for i in range(4))
    share = max(1, joblib.cpu_count() // min(2, pwex.workers)) if pwex.backend == "local" else None
    assert set(out) == {("NestedThreads", share, 8 if share is None else min(8, share))}


def test_inner_max_num_threads_sets_the_nested_cap(pwex):
    with joblib.parallel_config(backend="lambdamap", executor=pwex, inner_max_num_threads=3):
        out = Parallel(n_jobs=2)(delayed(nested_backend)(i) for i in range(2))
    assert set(out) == {("NestedThreads", 3, 3)}


def test_capped_nested_threads_keep_results(local_backend):
    from sklearn.datasets import make_classification
    from sklearn.ensemble import RandomForestClassifier
    from sklearn.model_selection import cross_val_score

    X, y = make_classification(n_samples=200, n_features=6, random_state=0)
    model = RandomForestClassifier(n_estimators=12, n_jobs=4, random_state=0)  # asks for 4 threads per fit
    serial = cross_val_score(model, X, y, cv=4)
    with joblib.parallel_config(backend="lambdamap", executor=local_backend.executor, inner_max_num_threads=1):
        np.testing.assert_array_equal(cross_val_score(model, X, y, cv=4, n_jobs=2), serial)


def test_batches_far_longer_than_their_cost_stay_one_call_each(local_backend):
    """A batch on the local backend costs milliseconds: 0.25 s calls are not grouped (a fixed 0.5 s target grouped
    them, and one worker then idled behind the other's last batch)."""
    pwex = local_backend.executor
    with joblib.parallel_config(backend="lambdamap", executor=pwex):
        Parallel(n_jobs=2)(delayed(abs)(-i) for i in range(4))  # measures the cost of a batch
        before = _job_count(pwex)
        out = Parallel(n_jobs=2)(delayed(time.sleep)(0.25) for _ in range(8))
    assert out == [None] * 8
    assert _job_count(pwex) - before == 8


def test_tiny_calls_are_batched_up(pwex):
    before = _job_count(pwex)
    with joblib.parallel_config(backend="lambdamap", executor=pwex):
        assert Parallel(n_jobs=2)(delayed(abs)(-i) for i in range(3000)) == list(range(3000))
    assert _job_count(pwex) - before < 300  # joblib's auto-batching grouped them, from the measured cost


class _Done:
    def __init__(self, received: float, function_seconds: float | None) -> None:
        from lambdamap.core.future import CallStats

        self.stats = CallStats(submitted=0.0, function_start=0.0 if function_seconds is not None else None,
                               function_end=function_seconds, result_received=received)


def test_batch_cost_is_the_least_delayed_of_recent_batches():
    from lambdamap.integrations.joblib import BatchCost

    cost = BatchCost()
    assert cost.seconds is None
    cost.add(10.0, _Done(received=10.5, function_seconds=0.49))  # 10 ms beyond its work
    cost.add(20.0, _Done(received=20.3, function_seconds=0.296))  # 4 ms
    cost.add(30.0, _Done(received=30.2, function_seconds=None))  # no timings: ignored
    assert cost.seconds == pytest.approx(0.004)
    for n in range(BatchCost.WINDOW):  # older samples leave the window
        cost.add(40.0 + n, _Done(received=40.0 + n + 0.1, function_seconds=0.09))
    assert cost.seconds == pytest.approx(0.01)


def test_the_batch_target_follows_the_measured_cost(local_backend, monkeypatch):
    import types

    import lambdamap.integrations.joblib as jb

    cost = jb.BatchCost()
    monkeypatch.setattr(jb, "_cost_of", lambda executor: cost)
    backend = LambdamapBackend(executor=local_backend.executor)
    backend.parallel = types.SimpleNamespace(verbose=0)
    backend.compute_batch_size()
    assert backend.MIN_IDEAL_BATCH_DURATION == LambdamapBackend.MIN_IDEAL_BATCH_DURATION  # nothing measured yet
    cost.add(0.0, _Done(received=0.103, function_seconds=0.1))  # a local batch: 3 ms beyond its work
    backend.compute_batch_size()
    assert backend.MIN_IDEAL_BATCH_DURATION == pytest.approx(0.06)
    assert backend.MAX_IDEAL_BATCH_DURATION == pytest.approx(2.0)
    cost = jb.BatchCost()
    cost.add(0.0, _Done(received=1.4, function_seconds=1.0))  # a slow remote batch: 0.4 s beyond its work
    backend.compute_batch_size()
    assert backend.MIN_IDEAL_BATCH_DURATION == 2.0  # capped: bigger batches would only straggle
