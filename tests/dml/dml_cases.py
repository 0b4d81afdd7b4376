"""Conformance cases for dml against the doubleml package, as helpers that take any lambdamap executor.

A backend's own test module runs the same comparison with::

    from dml_cases import CASES, check_case
    @pytest.mark.parametrize("case", CASES, ids=lambda c: c.id)
    def test_dml_matches_doubleml_on_mybackend(mybackend_executor, case):
        check_case(mybackend_executor, case)

Each case builds a data set, fits DoubleML the usual way (its own splits drawn from a seeded numpy, learners with a
fixed integer random_state), then fits dml with ``smpls=`` DoubleML's splits and checks coef, se, every repetition's
estimate and every nuisance prediction agree to 1e-10.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import doubleml
import numpy as np
import pandas as pd
from doubleml.irm.datasets import make_iivm_data, make_irm_data
from doubleml.plm.datasets import make_pliv_CHS2015, make_plr_CCDDHNR2018
from doubleml.utils import PSProcessorConfig
from sklearn.ensemble import RandomForestClassifier, RandomForestRegressor
from sklearn.linear_model import Lasso, LinearRegression, LogisticRegression

import dml

TOL = 1e-10


def plr_data(n_obs: int, dim_x: int, seed: int) -> pd.DataFrame:
    np.random.seed(seed)
    return make_plr_CCDDHNR2018(n_obs=n_obs, dim_x=dim_x, alpha=0.5, return_type="DataFrame")


def irm_data(n_obs: int, dim_x: int, seed: int) -> pd.DataFrame:
    np.random.seed(seed)
    return make_irm_data(n_obs=n_obs, dim_x=dim_x, theta=0.5, return_type="DataFrame")


def pliv_data(n_obs: int, dim_x: int, dim_z: int, seed: int) -> pd.DataFrame:
    """Columns X1.., y, d, Z1.. (one or several instruments)."""
    np.random.seed(seed)
    return make_pliv_CHS2015(n_obs=n_obs, alpha=0.5, dim_x=dim_x, dim_z=dim_z, return_type="DataFrame")


def iivm_data(n_obs: int, dim_x: int, seed: int) -> pd.DataFrame:
    """Columns X1.., y, d (binary), z (binary)."""
    np.random.seed(seed)
    return make_iivm_data(n_obs=n_obs, dim_x=dim_x, theta=0.5, alpha_x=1.0, return_type="DataFrame")


def multi_treatment_data(n_obs: int, dim_x: int, seed: int) -> pd.DataFrame:
    """Two continuous treatments that depend on x and on each other's drivers."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n_obs, dim_x))
    d1 = x[:, 0] + 0.5 * x[:, 1] + rng.normal(size=n_obs)
    d2 = 0.3 * d1 - x[:, 2] + rng.normal(size=n_obs)
    y = 0.7 * d1 - 0.4 * d2 + np.sin(x[:, 0]) + x[:, 3] + rng.normal(size=n_obs)
    df = pd.DataFrame(x, columns=[f"X{i + 1}" for i in range(dim_x)])
    df.insert(0, "d2", d2)
    df.insert(0, "d1", d1)
    df.insert(0, "y", y)
    return df


def binary_outcome_data(n_obs: int, dim_x: int, seed: int) -> pd.DataFrame:
    """Binary treatment and binary outcome (for classifier outcome learners)."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n_obs, dim_x))
    d = (rng.uniform(size=n_obs) < 1 / (1 + np.exp(-x[:, 0]))).astype(float)
    y = (rng.uniform(size=n_obs) < 1 / (1 + np.exp(-(0.8 * d + x[:, 1])))).astype(float)
    df = pd.DataFrame(x, columns=[f"X{i + 1}" for i in range(dim_x)])
    df.insert(0, "d", d)
    df.insert(0, "y", y)
    return df


def rf_reg(seed: int = 0) -> RandomForestRegressor:
    return RandomForestRegressor(n_estimators=8, max_depth=4, random_state=seed)


def rf_clf(seed: int = 0) -> RandomForestClassifier:
    return RandomForestClassifier(n_estimators=8, max_depth=4, random_state=seed)


@dataclass
class Case:
    """One conformance case: ``model`` is "plr", "irm", "pliv" or "iivm"; ``kwargs`` go to both DoubleML and dml."""

    id: str
    model: str
    data: Callable[[], pd.DataFrame]
    d: Any
    learners: Callable[[], dict[str, Any]]
    score: str | None
    n_folds: int = 5
    n_rep: int = 1
    split_seed: int = 0
    options: dict[str, Any] = field(default_factory=dict)  # IRM/IIVM: normalize_ipw, clipping_threshold, subgroups
    z: Any = None  # PLIV / IIVM instruments

    def tasks_per_split(self) -> int:
        """Nuisance fits per (treatment, repetition, fold)."""
        if self.model == "plr":
            return 3 if self.score == "IV-type" else 2
        if self.model == "irm":
            return 3
        if self.model == "pliv":
            n_z = 1 if isinstance(self.z, str) else len(self.z)
            return 2 + n_z + (self.score == "IV-type")
        groups = self.options.get("subgroups") or {"always_takers": True, "never_takers": True}
        return 3 + groups["always_takers"] + groups["never_takers"]


CASES = [
    Case("plr-po-linear-n200", "plr", lambda: plr_data(200, 5, 1), "d",
         lambda: {"ml_l": LinearRegression(), "ml_m": LinearRegression()}, "partialling out"),
    Case("plr-po-forest-n300-rep3", "plr", lambda: plr_data(300, 8, 2), "d",
         lambda: {"ml_l": rf_reg(1), "ml_m": rf_reg(2)}, "partialling out", n_folds=4, n_rep=3),
    Case("plr-po-classifier-m-rep2", "plr", lambda: irm_data(400, 6, 3), "d",
         lambda: {"ml_l": Lasso(alpha=0.05), "ml_m": LogisticRegression()}, "partialling out", n_rep=2),
    Case("plr-po-forest-classifier-m", "plr", lambda: irm_data(300, 5, 4), "d",
         lambda: {"ml_l": rf_reg(3), "ml_m": rf_clf(4)}, "partialling out", n_folds=3),
    Case("plr-iv-lasso-rep3", "plr", lambda: plr_data(250, 10, 5), "d",
         lambda: {"ml_l": Lasso(alpha=0.05), "ml_m": Lasso(alpha=0.05), "ml_g": Lasso(alpha=0.1)}, "IV-type",
         n_rep=3),
    Case("plr-iv-forest-default-g", "plr", lambda: plr_data(300, 6, 6), "d",
         lambda: {"ml_l": rf_reg(5), "ml_m": rf_reg(6)}, "IV-type", n_folds=4, n_rep=2),
    Case("plr-po-two-treatments-rep2", "plr", lambda: multi_treatment_data(300, 5, 7), ["d1", "d2"],
         lambda: {"ml_l": LinearRegression(), "ml_m": rf_reg(7)}, "partialling out", n_rep=2),
    Case("plr-iv-two-treatments", "plr", lambda: multi_treatment_data(250, 4, 8), ["d1", "d2"],
         lambda: {"ml_l": Lasso(alpha=0.02), "ml_m": Lasso(alpha=0.02), "ml_g": rf_reg(8)}, "IV-type"),
    Case("irm-ate-forest-n400", "irm", lambda: irm_data(400, 6, 9), "d",
         lambda: {"ml_g": rf_reg(9), "ml_m": LogisticRegression()}, "ATE"),
    Case("irm-ate-normalized-rep3", "irm", lambda: irm_data(300, 5, 10), "d",
         lambda: {"ml_g": LinearRegression(), "ml_m": rf_clf(10)}, "ATE", n_folds=4, n_rep=3,
         options={"normalize_ipw": True}),
    Case("irm-atte-rep2", "irm", lambda: irm_data(500, 8, 11), "d",
         lambda: {"ml_g": Lasso(alpha=0.05), "ml_m": LogisticRegression()}, "ATTE", n_rep=2),
    Case("irm-atte-normalized-clip05", "irm", lambda: irm_data(350, 6, 12), "d",
         lambda: {"ml_g": rf_reg(12), "ml_m": rf_clf(12)}, "ATTE", n_folds=3, n_rep=2,
         options={"normalize_ipw": True, "clipping_threshold": 0.05}),
    Case("irm-ate-binary-outcome-classifier-g", "irm", lambda: binary_outcome_data(400, 4, 13), "d",
         lambda: {"ml_g": LogisticRegression(), "ml_m": LogisticRegression()}, "ATE", n_rep=2),
    Case("pliv-po-linear-one-z", "pliv", lambda: pliv_data(200, 5, 1, 14), "d",
         lambda: {"ml_l": LinearRegression(), "ml_m": LinearRegression(), "ml_r": LinearRegression()},
         "partialling out", z="Z1"),
    Case("pliv-po-forest-one-z-rep3", "pliv", lambda: pliv_data(240, 6, 1, 15), "d",
         lambda: {"ml_l": rf_reg(1), "ml_m": rf_reg(2), "ml_r": rf_reg(3)}, "partialling out", n_folds=4, n_rep=3,
         z="Z1"),
    Case("pliv-iv-lasso-one-z-rep3", "pliv", lambda: pliv_data(250, 8, 1, 16), "d",
         lambda: {"ml_l": Lasso(alpha=0.05), "ml_m": Lasso(alpha=0.05), "ml_r": Lasso(alpha=0.05),
                  "ml_g": Lasso(alpha=0.1)}, "IV-type", n_rep=3, z="Z1"),
    Case("pliv-iv-forest-one-z", "pliv", lambda: pliv_data(200, 5, 1, 17), "d",
         lambda: {"ml_l": rf_reg(4), "ml_m": rf_reg(5), "ml_r": rf_reg(6), "ml_g": rf_reg(7)}, "IV-type", n_folds=3,
         z="Z1"),
    Case("pliv-po-two-z", "pliv", lambda: pliv_data(220, 5, 2, 18), "d",
         lambda: {"ml_l": LinearRegression(), "ml_m": rf_reg(8), "ml_r": Lasso(alpha=0.05)}, "partialling out",
         z=["Z1", "Z2"]),
    Case("pliv-po-two-z-rep3", "pliv", lambda: pliv_data(200, 4, 2, 19), "d",
         lambda: {"ml_l": rf_reg(9), "ml_m": LinearRegression(), "ml_r": rf_reg(10)}, "partialling out", n_folds=3,
         n_rep=3, z=["Z1", "Z2"]),
    Case("iivm-forest", "iivm", lambda: iivm_data(400, 5, 20), "d",
         lambda: {"ml_g": rf_reg(11), "ml_m": rf_clf(12), "ml_r": rf_clf(13)}, None, z="z"),
    Case("iivm-logit-normalized-rep3", "iivm", lambda: iivm_data(400, 5, 21), "d",
         lambda: {"ml_g": LinearRegression(), "ml_m": LogisticRegression(), "ml_r": LogisticRegression()}, None,
         n_folds=4, n_rep=3, z="z", options={"normalize_ipw": True}),
    Case("iivm-no-always-takers-rep2", "iivm", lambda: iivm_data(400, 5, 22), "d",
         lambda: {"ml_g": Lasso(alpha=0.05), "ml_m": LogisticRegression(), "ml_r": rf_clf(14)}, None, n_rep=2,
         z="z", options={"subgroups": {"always_takers": False, "never_takers": True}}),
    Case("iivm-no-never-takers-clip05", "iivm", lambda: iivm_data(400, 5, 23), "d",
         lambda: {"ml_g": rf_reg(15), "ml_m": rf_clf(16), "ml_r": LogisticRegression()}, None, n_folds=3, z="z",
         options={"subgroups": {"always_takers": True, "never_takers": False}, "clipping_threshold": 0.05}),
    Case("iivm-no-subgroups-trimmed-normalized", "iivm", lambda: iivm_data(350, 4, 24), "d",
         lambda: {"ml_g": LinearRegression(), "ml_m": rf_clf(17), "ml_r": LogisticRegression()}, None, n_rep=2,
         z="z", options={"subgroups": {"always_takers": False, "never_takers": False}, "clipping_threshold": 0.1,
                         "normalize_ipw": True}),
]


def fit_reference(case: Case, df: pd.DataFrame) -> Any:
    """DoubleML's own fit, splits drawn after ``np.random.seed(case.split_seed)``."""
    learners = case.learners()
    data = doubleml.DoubleMLData(df, "y", case.d, z_cols=case.z)
    np.random.seed(case.split_seed)
    config = PSProcessorConfig(clipping_threshold=case.options.get("clipping_threshold", 1e-2))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # e.g. DoubleML's note that IV-type without ml_g clones ml_l
        if case.model == "plr":
            model = doubleml.DoubleMLPLR(data, learners["ml_l"], learners["ml_m"], learners.get("ml_g"),
                                         n_folds=case.n_folds, n_rep=case.n_rep, score=case.score)
        elif case.model == "pliv":
            model = doubleml.DoubleMLPLIV(data, learners["ml_l"], learners["ml_m"], learners["ml_r"],
                                          learners.get("ml_g"), n_folds=case.n_folds, n_rep=case.n_rep,
                                          score=case.score)
        elif case.model == "iivm":
            model = doubleml.DoubleMLIIVM(data, learners["ml_g"], learners["ml_m"], learners["ml_r"],
                                          n_folds=case.n_folds, n_rep=case.n_rep,
                                          subgroups=case.options.get("subgroups"), ps_processor_config=config,
                                          normalize_ipw=case.options.get("normalize_ipw", False))
        else:
            model = doubleml.DoubleMLIRM(data, learners["ml_g"], learners["ml_m"], n_folds=case.n_folds,
                                         n_rep=case.n_rep, score=case.score, ps_processor_config=config,
                                         normalize_ipw=case.options.get("normalize_ipw", False))
        model.fit()
    return model


def fit_dml(case: Case, df: pd.DataFrame, executor: Any, **overrides: Any) -> dml.DMLResult:
    kwargs = {**case.learners(), "n_folds": case.n_folds, "n_rep": case.n_rep, **case.options, "executor": executor,
              **({} if case.score is None else {"score": case.score}), **overrides}
    if case.model in ("pliv", "iivm"):
        fit_iv = dml.fit_pliv if case.model == "pliv" else dml.fit_iivm
        return fit_iv(df, "y", case.d, case.z, **kwargs)
    fit = dml.fit_plr if case.model == "plr" else dml.fit_irm
    return fit(df, "y", case.d, **kwargs)


def assert_same_fit(res: dml.DMLResult, ref: Any, tol: float = TOL) -> None:
    np.testing.assert_allclose(res.coef, ref.coef, rtol=0, atol=tol, err_msg="coef")
    np.testing.assert_allclose(res.se, ref.se, rtol=0, atol=tol, err_msg="se")
    np.testing.assert_allclose(res.model.all_coef, ref.all_coef, rtol=0, atol=tol, err_msg="all_coef")
    np.testing.assert_allclose(res.model.all_se, ref.all_se, rtol=0, atol=tol, err_msg="all_se")
    for name, preds in ref.predictions.items():
        np.testing.assert_allclose(res.model.predictions[name], preds, rtol=0, atol=tol, err_msg=name)


def check_case(executor: Any, case: Case) -> dml.DMLResult:
    """Fit ``case`` with DoubleML and with dml on ``executor`` using DoubleML's splits; assert they agree."""
    df = case.data()
    ref = fit_reference(case, df)
    res = fit_dml(case, df, executor, smpls=ref.smpls)
    assert_same_fit(res, ref)
    n_treat = 1 if isinstance(case.d, str) else len(case.d)
    assert res.coef.shape == res.se.shape == (n_treat,)
    assert res.stats.tasks == case.tasks_per_split() * n_treat * case.n_folds * case.n_rep
    return res
