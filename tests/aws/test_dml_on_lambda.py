"""dml fits on the Lambda backend (emulated: MiniStack running our handler, SeaweedFS S3) equal the local backend's,
bit for bit, with a Lambda cost estimate in their stats."""

from __future__ import annotations

import numpy as np
import pytest
from support.lambda_fixtures import lambda_executor_for

import dml


@pytest.fixture(scope="module")
def lambda_dml(local_aws):
    """A window of 4 invocations: each emulated invocation is a process importing scikit-learn on this 2-core
    machine, and 16 cold starts at once would outlast the emulated function's 15 s limit."""
    with lambda_executor_for(local_aws, workers=4) as pwex:
        yield pwex


def _assert_identical(a, b):
    np.testing.assert_array_equal(a.coef, b.coef)
    np.testing.assert_array_equal(a.se, b.se)
    np.testing.assert_array_equal(a.model.all_coef, b.model.all_coef)
    for learner, values in a.model.predictions.items():
        np.testing.assert_array_equal(values, b.model.predictions[learner])


@pytest.mark.timeout(400)
@pytest.mark.parametrize("score", ["partialling out", "IV-type"])
def test_plr_on_lambda_equals_local(lambda_dml, local_backend, score):
    from doubleml.plm.datasets import make_plr_CCDDHNR2018
    from sklearn.ensemble import RandomForestRegressor

    np.random.seed(3)
    df = make_plr_CCDDHNR2018(n_obs=300, dim_x=8, alpha=0.5, return_type="DataFrame")
    learner = RandomForestRegressor(n_estimators=20, max_depth=5)  # random_state derived from the seed
    fits = [dml.fit_plr(df, y="y", d="d", ml_l=learner, ml_m=learner, score=score, n_folds=3, n_rep=2, seed=11,
                        executor=ex) for ex in (local_backend.executor, lambda_dml)]
    _assert_identical(*fits)
    assert fits[1].stats.backend == "lambda" and fits[1].stats.cost_usd > 0
    assert fits[0].stats.cost_usd is None


@pytest.mark.timeout(400)
def test_irm_on_lambda_equals_local(lambda_dml, local_backend):
    from doubleml.irm.datasets import make_irm_data
    from sklearn.ensemble import RandomForestClassifier, RandomForestRegressor

    np.random.seed(4)
    df = make_irm_data(n_obs=300, dim_x=6, theta=0.5, return_type="DataFrame")
    fits = [dml.fit_irm(df, y="y", d="d", ml_g=RandomForestRegressor(n_estimators=20, max_depth=5),
                        ml_m=RandomForestClassifier(n_estimators=20, max_depth=5), n_folds=3, n_rep=1, seed=5,
                        executor=ex) for ex in (local_backend.executor, lambda_dml)]
    _assert_identical(*fits)


@pytest.mark.timeout(400)
def test_iivm_on_lambda_equals_doubleml_and_costs_what_job_summary_says(lambda_dml):
    import sys
    from pathlib import Path

    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "dml"))
    try:
        from dml_cases import CASES, check_case
    finally:
        sys.path.pop(0)
    case = next(c for c in CASES if c.id == "iivm-no-always-takers-rep2")
    res = check_case(lambda_dml, case)
    futures = res.futures
    assert len(futures) == res.stats.tasks and {f.job_id for f in futures} == set(res.stats.job_ids)
    assert res.stats.cost_usd == lambda_dml.job_summary(futures).cost_usd > 0
