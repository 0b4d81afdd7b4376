"""dml equals the doubleml package: same coef, se, per-repetition estimates and nuisance predictions (1e-10)."""

from __future__ import annotations

import pytest
from dml_cases import CASES, assert_same_fit, check_case, fit_dml, fit_reference


@pytest.mark.timeout(120)
@pytest.mark.parametrize("case", CASES, ids=lambda c: c.id)
def test_dml_matches_doubleml(dml_executor, case):
    check_case(dml_executor, case)


SEED_CASES = [c for c in CASES if c.id in ("plr-iv-forest-default-g", "irm-atte-normalized-clip05",
                                         "pliv-iv-lasso-one-z-rep3", "iivm-logit-normalized-rep3")]


@pytest.mark.timeout(120)
@pytest.mark.parametrize("case", SEED_CASES, ids=lambda c: c.id)
def test_seed_reproduces_doubleml_after_numpy_seed(dml_executor, case):
    """``seed=s`` draws the splits DoubleML draws after ``np.random.seed(s)``: same fit without passing smpls."""
    df = case.data()
    ref = fit_reference(case, df)  # np.random.seed(case.split_seed), then DoubleML draws its splits
    assert_same_fit(fit_dml(case, df, dml_executor, seed=case.split_seed), ref)
    other = fit_dml(case, df, dml_executor, seed=case.split_seed + 1)
    assert other.coef[0] != ref.coef[0]
