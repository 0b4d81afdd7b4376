"""dml fits on the Dask backend equal the same fits on the local backend, bit for bit."""

from __future__ import annotations

import numpy as np
import pytest

import dml


def _plr_data():
    from doubleml.plm.datasets import make_plr_CCDDHNR2018

    np.random.seed(3)
    return make_plr_CCDDHNR2018(n_obs=300, dim_x=8, alpha=0.5, return_type="DataFrame")


def _irm_data():
    from doubleml.irm.datasets import make_irm_data

    np.random.seed(4)
    return make_irm_data(n_obs=300, dim_x=6, theta=0.5, return_type="DataFrame")


def _assert_identical(a, b):
    np.testing.assert_array_equal(a.coef, b.coef)
    np.testing.assert_array_equal(a.se, b.se)
    np.testing.assert_array_equal(a.model.all_coef, b.model.all_coef)
    assert a.model.predictions.keys() == b.model.predictions.keys()
    for learner, values in a.model.predictions.items():  # arrays (n_obs, n_rep, n_treatments)
        np.testing.assert_array_equal(values, b.model.predictions[learner])


@pytest.mark.timeout(300)
@pytest.mark.parametrize("score", ["partialling out", "IV-type"])
def test_plr_on_dask_equals_local(dask_backend, local_backend, score):
    from sklearn.ensemble import RandomForestRegressor

    df = _plr_data()
    learner = RandomForestRegressor(n_estimators=20, max_depth=5)  # random_state derived from seed
    fits = [dml.fit_plr(df, y="y", d="d", ml_l=learner, ml_m=learner, score=score, n_folds=3, n_rep=2, seed=11,
                        executor=backend.executor) for backend in (local_backend, dask_backend)]
    _assert_identical(*fits)
    assert fits[1].stats.tasks == fits[0].stats.tasks > 0


@pytest.mark.timeout(300)
def test_irm_on_dask_equals_local(dask_backend, local_backend):
    from sklearn.ensemble import RandomForestClassifier, RandomForestRegressor

    df = _irm_data()
    fits = [dml.fit_irm(df, y="y", d="d", ml_g=RandomForestRegressor(n_estimators=20, max_depth=5),
                        ml_m=RandomForestClassifier(n_estimators=20, max_depth=5), n_folds=3, n_rep=1, seed=5,
                        executor=backend.executor) for backend in (local_backend, dask_backend)]
    _assert_identical(*fits)


@pytest.mark.timeout(300)
def test_pliv_on_dask_equals_local_and_doubleml(dask_backend, local_backend):
    import sys
    from pathlib import Path

    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "dml"))
    try:
        from dml_cases import CASES, check_case
    finally:
        sys.path.pop(0)
    case = next(c for c in CASES if c.id == "pliv-iv-lasso-one-z-rep3")
    _assert_identical(check_case(dask_backend.executor, case), check_case(local_backend.executor, case))


@pytest.mark.timeout(300)
def test_fit_model_on_dask_equals_doubleml(dask_backend):
    import sys
    from pathlib import Path

    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "dml"))
    try:
        from fit_model_cases import apos, check_fit_model
    finally:
        sys.path.pop(0)
    assert check_fit_model(dask_backend.executor, apos).stats.backend == "dask"
