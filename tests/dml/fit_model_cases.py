"""Cases for dml.fit_model: builders of unfitted DoubleML models and a check that fit_model equals model.fit().

Each builder seeds numpy before building, so two calls give two models with the same splits; learners have fixed
integer random states. Backend test modules import ``MODEL_CASES`` and ``check_fit_model`` from here.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from typing import Any

import doubleml
import numpy as np
import pandas as pd
from dml_cases import iivm_data, irm_data, pliv_data, plr_data, rf_clf, rf_reg
from doubleml.did.datasets import make_did_SZ2020
from doubleml.irm.datasets import make_irm_data_discrete_treatments
from sklearn.linear_model import Lasso, LinearRegression, LogisticRegression

import dml


def _discrete_treatment_frame(seed: int) -> pd.DataFrame:
    data = make_irm_data_discrete_treatments(n_obs=300, n_levels=3, random_state=seed)
    df = pd.DataFrame(data["x"], columns=[f"x{i}" for i in range(data["x"].shape[1])])
    df["y"], df["d"] = data["y"], data["d"]
    return df


def apos() -> Any:
    data = doubleml.DoubleMLData(_discrete_treatment_frame(31), "y", "d")
    np.random.seed(1)
    return doubleml.DoubleMLAPOS(data, rf_reg(1), rf_clf(2), treatment_levels=[0, 1, 2], n_folds=3, n_rep=2)


def did_panel() -> Any:
    np.random.seed(32)
    data = make_did_SZ2020(n_obs=300, dgp_type=1)
    np.random.seed(2)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # DoubleMLDID: "use DoubleMLDIDBinary" (0.12)
        return doubleml.DoubleMLDID(data, rf_reg(3), LogisticRegression(), n_folds=4, n_rep=3)


def did_cs() -> Any:
    np.random.seed(33)
    data = make_did_SZ2020(n_obs=300, dgp_type=2, cross_sectional_data=True)
    np.random.seed(3)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        return doubleml.DoubleMLDIDCS(data, LinearRegression(), rf_clf(4), n_folds=3, n_rep=2)


def irm() -> Any:
    data = doubleml.DoubleMLData(irm_data(300, 5, 34), "y", "d")
    np.random.seed(4)
    return doubleml.DoubleMLIRM(data, rf_reg(5), rf_clf(6), n_folds=4, n_rep=3, score="ATTE")


def plr_iv_type() -> Any:
    data = doubleml.DoubleMLData(plr_data(200, 5, 35), "y", "d")
    np.random.seed(5)
    return doubleml.DoubleMLPLR(data, Lasso(alpha=0.05), rf_reg(7), rf_reg(8), n_folds=3, n_rep=2, score="IV-type")


def pliv_iv_type() -> Any:
    data = doubleml.DoubleMLData(pliv_data(200, 5, 1, 36), "y", "d", z_cols="Z1")
    np.random.seed(6)
    return doubleml.DoubleMLPLIV(data, rf_reg(9), LinearRegression(), rf_reg(10), Lasso(alpha=0.1), n_folds=3,
                                 n_rep=2, score="IV-type")


def iivm() -> Any:
    data = doubleml.DoubleMLData(iivm_data(300, 5, 37), "y", "d", z_cols="z")
    np.random.seed(7)
    return doubleml.DoubleMLIIVM(data, rf_reg(11), LogisticRegression(), rf_clf(12), n_folds=3, n_rep=2,
                                 subgroups={"always_takers": False, "never_takers": True})


def apo() -> Any:
    data = doubleml.DoubleMLData(_discrete_treatment_frame(38), "y", "d")
    np.random.seed(8)
    return doubleml.DoubleMLAPO(data, LinearRegression(), rf_clf(13), treatment_level=1, n_folds=3, n_rep=2)


MODEL_CASES: list[tuple[str, Callable[[], Any]]] = [
    ("APOS", apos), ("DID-panel", did_panel), ("DIDCS", did_cs), ("IRM-ATTE", irm), ("PLR-IV-type", plr_iv_type),
    ("PLIV-IV-type", pliv_iv_type), ("IIVM-no-always-takers", iivm), ("APO", apo),
]


def _predictions(model: Any) -> dict[str, np.ndarray]:
    if isinstance(model, doubleml.DoubleMLAPOS):
        return {f"{lvl}:{k}": v for lvl, sub in zip(model.treatment_levels, model.modellist, strict=True)
                for k, v in sub.predictions.items()}
    return dict(model.predictions)


def check_fit_model(executor: Any, build: Callable[[], Any]) -> dml.DMLResult:
    """fit_model(build()) on ``executor`` equals build().fit(): coef, se, per-repetition estimates, predictions."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ref = build().fit()
        model = build()
        res = dml.fit_model(model, executor=executor)
    assert res.model is model
    np.testing.assert_array_equal(res.coef, np.asarray(ref.coef), err_msg="coef")
    np.testing.assert_array_equal(res.se, np.asarray(ref.se), err_msg="se")
    np.testing.assert_array_equal(np.asarray(model.all_coef), np.asarray(ref.all_coef), err_msg="all_coef")
    ours, theirs = _predictions(model), _predictions(ref)
    assert ours.keys() == theirs.keys()
    for name in theirs:
        np.testing.assert_array_equal(ours[name], theirs[name], err_msg=name)
    assert res.stats.tasks == model.n_rep
    return res
