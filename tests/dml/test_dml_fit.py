"""dml behaviour beyond conformance: seeds and determinism, default splits, shared data, results, errors, stats."""

from __future__ import annotations

import doubleml
import numpy as np
import pytest
from dml_cases import irm_data, multi_treatment_data, plr_data
from sklearn.base import BaseEstimator, RegressorMixin
from sklearn.ensemble import RandomForestClassifier, RandomForestRegressor
from sklearn.linear_model import LinearRegression, LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

import dml
import lambdamap
from dml import execution, splits, tasks
from lambdamap.core import keys

pytestmark = pytest.mark.timeout(120)


def unseeded_forest() -> RandomForestRegressor:
    return RandomForestRegressor(n_estimators=5, max_depth=3)  # random_state None: derived from the fit's seed


def predictions(res: dml.DMLResult) -> dict[str, np.ndarray]:
    return {name: np.array(arr) for name, arr in res.model.predictions.items()}


def assert_bit_identical(a: dml.DMLResult, b: dml.DMLResult) -> None:
    assert a.coef.tobytes() == b.coef.tobytes()
    assert a.se.tobytes() == b.se.tobytes()
    pa, pb = predictions(a), predictions(b)
    assert pa.keys() == pb.keys()
    for name in pa:
        assert pa[name].tobytes() == pb[name].tobytes(), name


# -- determinism ---------------------------------------------------------------------------------------------------
def test_seeded_fit_is_bit_identical_across_runs_and_worker_counts(dml_executor):
    df = plr_data(300, 6, 21)
    kwargs = dict(ml_l=unseeded_forest(), ml_m=make_pipeline(StandardScaler(), unseeded_forest()),
                  score="IV-type", n_folds=4, n_rep=2, seed=1234)
    first = dml.fit_plr(df, "y", "d", executor=dml_executor, **kwargs)
    second = dml.fit_plr(df, "y", "d", executor=dml_executor, **kwargs)
    assert_bit_identical(first, second)
    with lambdamap.local_executor(workers=1, progress=False) as single:
        assert_bit_identical(first, dml.fit_plr(df, "y", "d", executor=single, **kwargs))
    other = dml.fit_plr(df, "y", "d", executor=dml_executor, **{**kwargs, "seed": 1235})
    assert other.coef.tobytes() != first.coef.tobytes()


def test_seeded_irm_is_bit_identical(dml_executor):
    df = irm_data(300, 5, 22)
    kwargs = dict(ml_g=unseeded_forest(), ml_m=RandomForestClassifier(n_estimators=5, max_depth=3), n_rep=2, seed=7)
    assert_bit_identical(dml.fit_irm(df, "y", "d", executor=dml_executor, **kwargs),
                         dml.fit_irm(df, "y", "d", executor=dml_executor, **kwargs))


def test_derived_random_state_is_documented_formula_and_fixed_states_are_kept():
    expected = int(np.random.SeedSequence(5, spawn_key=(tasks.LEARNER_IDS["ml_m"], 1, 2, 3))
                   .generate_state(1, dtype=np.uint32)[0])
    assert tasks.derive_random_state(5, "ml_m", 1, 2, 3) == expected
    states = {tasks.derive_random_state(5, n, 0, 0, f) for n in tasks.LEARNER_IDS for f in range(5)}
    assert len(states) == 5 * len(tasks.LEARNER_IDS)
    assert tasks.derive_random_state(5, "ml_m", 0, 0, 0, instrument=1) not in states  # PLIV: one per instrument
    assert tasks.derive_random_state(5, "ml_m", 0, 0, 0, instrument=1) != tasks.derive_random_state(
        5, "ml_m", 0, 0, 0, instrument=2)
    assert tasks.needs_random_state(unseeded_forest())
    assert tasks.needs_random_state(make_pipeline(StandardScaler(), unseeded_forest()))
    assert not tasks.needs_random_state(RandomForestRegressor(random_state=0))
    assert not tasks.needs_random_state(LinearRegression())


def test_seed_gives_doubleml_splits_of_the_same_numpy_seed():
    df = plr_data(103, 4, 23)
    fold_ids = splits.draw(len(df), 4, 3, seed=99)
    np.random.seed(99)
    ref = doubleml.DoubleMLPLR(doubleml.DoubleMLData(df, "y", "d"), LinearRegression(), LinearRegression(),
                               n_folds=4, n_rep=3)
    _assert_same_smpls(splits.to_smpls(fold_ids), ref.smpls)
    dfi = irm_data(101, 4, 24)
    fold_ids = splits.draw(len(dfi), 5, 2, seed=5, strata=dfi["d"].to_numpy())
    np.random.seed(5)
    ref = doubleml.DoubleMLIRM(doubleml.DoubleMLData(dfi, "y", "d"), LinearRegression(), LogisticRegression(),
                               n_folds=5, n_rep=2)
    _assert_same_smpls(splits.to_smpls(fold_ids), ref.smpls)


def _assert_same_smpls(ours, theirs):
    assert len(ours) == len(theirs)
    for rep_a, rep_b in zip(ours, theirs, strict=True):
        assert len(rep_a) == len(rep_b)
        for (tr_a, te_a), (tr_b, te_b) in zip(rep_a, rep_b, strict=True):
            np.testing.assert_array_equal(tr_a, np.sort(tr_b))
            np.testing.assert_array_equal(te_a, np.sort(te_b))


def test_smpls_round_trip_through_fold_ids():
    np.random.seed(3)
    ref = doubleml.DoubleMLPLR(doubleml.DoubleMLData(plr_data(57, 3, 25), "y", "d"), LinearRegression(),
                               LinearRegression(), n_folds=3, n_rep=2)
    fold_ids = splits.from_smpls(ref.smpls, 57)
    assert fold_ids.shape == (2, 57) and fold_ids.dtype == np.int16
    _assert_same_smpls(splits.to_smpls(fold_ids), ref.smpls)
    _assert_same_smpls(splits.to_smpls(splits.from_smpls(ref.smpls[0], 57)), ref.smpls[:1])  # one repetition


# -- data stored once ----------------------------------------------------------------------------------------------
def test_second_fit_on_same_data_stores_no_new_blob_and_tasks_stay_small(dml_executor, monkeypatch):
    df = plr_data(3000, 20, 26)  # about 0.5 MB of float64
    stored: list[tuple[str, int]] = []
    put = dml_executor.storage.put

    def spy(key, data):
        stored.append((key, len(data)))
        return put(key, data)

    monkeypatch.setattr(dml_executor.storage, "put", spy)
    kwargs = dict(ml_l=LinearRegression(), ml_m=LinearRegression(), n_folds=5, n_rep=2, seed=3, executor=dml_executor)
    blobs = keys.blobs_prefix(dml_executor.prefix)

    first = dml.fit_plr(df, "y", "d", **kwargs)
    first_blobs = [(k, n) for k, n in stored if k.startswith(blobs)]
    assert max(n for _, n in first_blobs) > 3000 * 20 * 8  # the data went up once, as a blob
    args = [n for k, n in stored if not k.startswith(blobs)]
    assert len(args) == first.stats.invocations
    assert max(args) < 4096  # an invocation's payload: a few tasks and refs, never the data

    stored.clear()
    second = dml.fit_plr(df, "y", "d", **kwargs)
    assert [k for k, _ in stored if k.startswith(blobs)] == []
    assert len(stored) == second.stats.invocations  # only the invocations' small call payloads
    assert_bit_identical(first, second)


# -- results and stats ---------------------------------------------------------------------------------------------
def test_result_api_multiple_treatments(dml_executor):
    df = multi_treatment_data(250, 4, 27)
    res = dml.fit_plr(df, "y", ["d1", "d2"], ml_l=LinearRegression(), ml_m=LinearRegression(), n_folds=3,
                      n_rep=2, seed=1, executor=dml_executor)
    assert res.coef.shape == res.se.shape == res.pval.shape == res.t_stat.shape == (2,)
    assert list(res.summary.index) == ["d1", "d2"]
    assert list(res.summary.columns) == ["coef", "std err", "t", "P>|t|", "2.5 %", "97.5 %"]
    ci90, ci95 = res.confint(level=0.90), res.confint()
    assert np.all(ci90.iloc[:, 0] > ci95.iloc[:, 0]) and np.all(ci90.iloc[:, 1] < ci95.iloc[:, 1])
    np.random.seed(0)
    assert res.bootstrap(method="wild", n_rep_boot=200) is res
    joint = res.confint(joint=True)
    assert np.all(joint.iloc[:, 0] < res.coef) and np.all(joint.iloc[:, 1] > res.coef)
    assert isinstance(res.model, doubleml.DoubleMLPLR)
    assert abs(res.coef[0] - 0.7) < 0.3 and abs(res.coef[1] + 0.4) < 0.3  # the simulated effects
    stats = res.stats
    assert (stats.backend, stats.tasks, stats.stages) == ("local", 2 * 2 * 3 * 2, 1)
    assert 1 <= stats.invocations <= stats.tasks and 1 <= stats.workers <= 2
    assert 0 < stats.task_seconds and 0 < stats.wall_seconds and stats.cost_usd is None
    assert "DoubleMLPLR" in repr(res)


def test_iv_type_runs_two_stages_and_warns_about_unused_ml_g(dml_executor):
    df = plr_data(150, 3, 28)
    res = dml.fit_plr(df, "y", "d", ml_l=LinearRegression(), ml_m=LinearRegression(), score="IV-type", n_folds=3,
                      seed=0, executor=dml_executor)
    assert (res.stats.stages, res.stats.tasks) == (2, 9)
    with pytest.warns(UserWarning, match="ml_g is only used"):
        res = dml.fit_plr(df, "y", "d", ml_l=LinearRegression(), ml_m=LinearRegression(), ml_g=LinearRegression(),
                          n_folds=3, seed=0, executor=dml_executor)
    assert res.stats.stages == 1


def test_cost_is_lambdamaps_job_summary(dml_executor, monkeypatch):
    """FitStats.cost_usd is whatever executor.job_summary reports for the fit's futures (one cost model)."""
    df = plr_data(80, 3, 31)
    seen = []
    summary = dml_executor.job_summary

    def priced(futures, **kw):
        seen.append(list(futures))
        return summary(futures, memory_mb=1024, **kw)

    monkeypatch.setattr(dml_executor, "job_summary", priced)
    res = dml.fit_plr(df, "y", "d", ml_l=LinearRegression(), ml_m=LinearRegression(), n_folds=2, seed=0,
                      executor=dml_executor)
    assert len(seen) == 1 and len(seen[0]) == res.stats.tasks
    assert res.stats.cost_usd == summary(seen[0], memory_mb=1024).cost_usd > 0
    assert set(res.stats.job_ids) == {f.job_id for f in seen[0]}
    assert not hasattr(execution, "LAMBDA_USD_PER_GB_SECOND")  # no second price list in dml


def test_chunksize_batches_tasks_and_keeps_workers_evenly_busy():
    assert execution.chunksize(40, 2) == 5  # 8 invocations, 4 per worker
    assert execution.chunksize(10, 2) == 1  # 5 invocations of 2 would take 3 rounds on 2 workers
    assert execution.chunksize(45, 2) == 6  # 7 x 6 + 3: the busiest worker runs 24 fits, 23 is the best possible
    assert execution.chunksize(40, 1000) == 1
    assert execution.chunksize(1, 2) == 1
    assert execution.chunksize(400, 4) == 25


def test_batches_end_with_smaller_invocations():
    assert execution.batches(40, 2) == [(34, 5), (4, 2), (2, 1)]
    assert execution.batches(10, 2) == [(10, 1)]
    assert execution.batches(40, 1000) == [(40, 1)]
    assert execution.batches(9, 1) == [(9, 3)]  # one worker: nothing to balance
    assert execution.batches(12, 3) == [(12, 1)]
    for n, p in [(40, 2), (45, 2), (1000, 2), (123, 7), (1, 1)]:
        plan = execution.batches(n, p)
        assert sum(count for count, _ in plan) == n
        assert [size for _, size in plan] == sorted((size for _, size in plan), reverse=True)


def test_default_executor_is_shared_and_reused(monkeypatch, tmp_path):
    monkeypatch.setenv("LAMBDAMAP_CONFIG", str(tmp_path / "none.toml"))  # the embedded default: the local backend
    monkeypatch.setenv("LAMBDAMAP_BACKEND", "local")
    df = plr_data(120, 3, 29)
    a = dml.fit_plr(df, "y", "d", ml_l=LinearRegression(), ml_m=LinearRegression(), n_folds=2, seed=1)
    shared = execution.shared_executor()
    b = dml.fit_plr(df, "y", "d", ml_l=LinearRegression(), ml_m=LinearRegression(), n_folds=2, seed=1)
    assert execution.shared_executor() is shared and shared.backend == "local"
    assert b.stats.job_ids and set(a.stats.job_ids).isdisjoint(b.stats.job_ids)  # two fits, one executor
    assert_bit_identical(a, b)


# -- failures inside tasks -----------------------------------------------------------------------------------------
class FailingRegressor(RegressorMixin, BaseEstimator):
    """Fails on the worker, to check that the error reaches the caller with the task named."""

    def fit(self, x, y):
        raise ArithmeticError("this learner always fails")

    def predict(self, x):  # pragma: no cover - never reached
        return np.zeros(len(x))


@pytest.mark.timeout(90)
def test_task_error_names_the_task_cancels_the_rest_and_shuts_down_cleanly(monkeypatch):
    df = plr_data(100, 3, 30)
    with lambdamap.local_executor(workers=1, progress=False) as pwex:
        submitted: list[lambdamap.Future] = []
        real_map = pwex.map

        def recording_map(*args, **kwargs):
            futures = real_map(*args, **kwargs)
            submitted.extend(futures)
            return futures

        monkeypatch.setattr(pwex, "map", recording_map)
        with pytest.raises(ArithmeticError, match="always fails") as info:
            dml.fit_plr(df, "y", "d", ml_l=LinearRegression(), ml_m=FailingRegressor(), n_folds=2, n_rep=5,
                        executor=pwex)
        assert any("ml_m for treatment 0, repetition 0" in note for note in getattr(info.value, "__notes__", []))
        assert isinstance(info.value.__cause__, lambdamap.RemoteTraceback)
        assert len(submitted) == 20 and any(f.cancelled() for f in submitted)  # the queued fits never ran
        monkeypatch.undo()
        res = dml.fit_plr(df, "y", "d", ml_l=LinearRegression(), ml_m=LinearRegression(), n_folds=2, executor=pwex)
        assert np.isfinite(res.coef).all()  # the executor is still usable
    # leaving the block shut the executor down (waiting for every future, cancelled ones included)
