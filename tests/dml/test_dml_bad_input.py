"""Bad input fails with a clear ValueError / TypeError before anything is stored or any task runs."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from dml_cases import iivm_data, irm_data, pliv_data, plr_data
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.ensemble import RandomForestRegressor
from sklearn.linear_model import Lasso, LinearRegression, LogisticRegression
from sklearn.svm import SVC

import dml

pytestmark = pytest.mark.timeout(60)

PLR = plr_data(60, 3, 40)
IRM = irm_data(60, 3, 41)
PLIV = pliv_data(60, 3, 2, 42)  # instruments Z1, Z2
IIVM = iivm_data(80, 3, 43)


class NotSklearn:
    """Has fit/predict but is no scikit-learn estimator."""

    def fit(self, x, y):
        return self

    def predict(self, x):
        return np.zeros(len(x))


class NoProba(ClassifierMixin, BaseEstimator):
    def fit(self, x, y):
        return self

    def predict(self, x):
        return np.zeros(len(x))


def with_column(df, name, values):
    out = df.copy()
    out[name] = values
    return out


def plr(test_executor, **kw):
    args = {"data": PLR, "y": "y", "d": "d", "ml_l": LinearRegression(), "ml_m": LinearRegression(),
            "executor": test_executor, **kw}
    return dml.fit_plr(args.pop("data"), args.pop("y"), args.pop("d"), **args)


def irm(test_executor, **kw):
    args = {"data": IRM, "y": "y", "d": "d", "ml_g": LinearRegression(), "ml_m": LogisticRegression(),
            "executor": test_executor, **kw}
    return dml.fit_irm(args.pop("data"), args.pop("y"), args.pop("d"), **args)


def pliv(test_executor, **kw):
    args = {"data": PLIV, "y": "y", "d": "d", "z": "Z1", "ml_l": LinearRegression(), "ml_m": LinearRegression(),
            "ml_r": LinearRegression(), "executor": test_executor, **kw}
    return dml.fit_pliv(args.pop("data"), args.pop("y"), args.pop("d"), args.pop("z"), **args)


def iivm(test_executor, **kw):
    args = {"data": IIVM, "y": "y", "d": "d", "z": "z", "ml_g": LinearRegression(), "ml_m": LogisticRegression(),
            "ml_r": LogisticRegression(), "executor": test_executor, **kw}
    return dml.fit_iivm(args.pop("data"), args.pop("y"), args.pop("d"), args.pop("z"), **args)


nan_x = with_column(PLR, "X1", np.where(np.arange(60) == 5, np.nan, PLR["X1"]))
inf_y = with_column(PLR, "y", np.where(np.arange(60) == 7, np.inf, PLR["y"]))
text_x = with_column(PLR, "X2", ["a", "b"] * 30)
two_valued = with_column(IRM, "d", np.where(IRM["d"] == 1, 2.0, 0.0))
smpls_overlap = [[(np.arange(30, 60), np.arange(0, 31)), (np.arange(0, 30), np.arange(30, 60))]]
smpls_out_of_range = [[(np.arange(30, 60), np.arange(0, 30)), (np.arange(0, 30), np.arange(30, 61))]]
smpls_partial_train = [[(np.arange(40, 60), np.arange(0, 30)), (np.arange(0, 30), np.arange(30, 60))]]
three_valued_z = with_column(IIVM, "z", np.where(np.arange(80) % 3 == 0, 2.0, IIVM["z"]))
no_always_takers = with_column(IIVM, "d", np.where(IIVM["z"] == 0, 0.0, IIVM["d"]))
one_class_train = [[(np.flatnonzero(IRM["d"] == 1), np.flatnonzero(IRM["d"] == 0)),
                    (np.flatnonzero(IRM["d"] == 0), np.flatnonzero(IRM["d"] == 1))]]

CASES = [
    ("data not a DataFrame", lambda ex: plr(ex, data=PLR.to_numpy()), TypeError, "pandas DataFrame"),
    ("missing y column", lambda ex: plr(ex, y="outcome"), ValueError, r"\['outcome'\] are not in data"),
    ("missing d column", lambda ex: plr(ex, d=["d", "d9"]), ValueError, r"\['d9'\] are not in data"),
    ("missing x column", lambda ex: plr(ex, x=["X1", "nope"]), ValueError, r"\['nope'\] are not in data"),
    ("y is also a treatment", lambda ex: plr(ex, d=["d", "y"]), ValueError, "both the outcome"),
    ("x overlaps d", lambda ex: plr(ex, x=["X1", "d"]), ValueError, "one role"),
    ("no covariates", lambda ex: plr(ex, data=PLR[["y", "d"]]), ValueError, "no covariates"),
    ("NaN in x", lambda ex: plr(ex, data=nan_x), ValueError, r"'X1' \(1 missing, 0 infinite\)"),
    ("inf in y", lambda ex: plr(ex, data=inf_y), ValueError, r"'y' \(0 missing, 1 infinite\)"),
    ("text column", lambda ex: plr(ex, data=text_x), TypeError, "'X2'.*not numeric"),
    ("unknown PLR score", lambda ex: plr(ex, score="DML1"), ValueError, "unknown score 'DML1'"),
    ("unknown IRM score", lambda ex: irm(ex, score="ATT"), ValueError, "unknown score 'ATT'"),
    ("n_folds 1", lambda ex: plr(ex, n_folds=1), ValueError, "n_folds must be at least 2"),
    ("n_folds not int", lambda ex: plr(ex, n_folds=2.5), TypeError, "n_folds must be an integer"),
    ("n_rep 0", lambda ex: plr(ex, n_rep=0), ValueError, "n_rep must be at least 1"),
    ("more folds than rows", lambda ex: plr(ex, n_folds=61), ValueError, "more than the 60 observations"),
    ("more folds than one treatment group", lambda ex: irm(ex, n_folds=int(IRM["d"].value_counts().min()) + 1),
     ValueError, "observations with treatment d =="),
    ("learner class not instance", lambda ex: plr(ex, ml_l=LinearRegression), TypeError,
     r"pass LinearRegression\(\)"),
    ("non-sklearn learner", lambda ex: plr(ex, ml_m=NotSklearn()), TypeError, "scikit-learn estimator"),
    ("string learner", lambda ex: plr(ex, ml_l="rf"), TypeError, "scikit-learn estimator"),
    ("IRM ml_m regressor", lambda ex: irm(ex, ml_m=Lasso()), TypeError, "classifier with predict_proba"),
    ("IRM ml_m without predict_proba", lambda ex: irm(ex, ml_m=SVC()), TypeError, "predict_proba"),
    ("IRM ml_m classifier without proba", lambda ex: irm(ex, ml_m=NoProba()), TypeError, "predict_proba"),
    ("IRM non-binary d", lambda ex: irm(ex, data=two_valued), ValueError, "binary with values 0 and 1"),
    ("IRM continuous d", lambda ex: irm(ex, data=PLR), ValueError, "binary with values 0 and 1"),
    ("IRM two treatments", lambda ex: irm(ex, d=["d", "X1"]), ValueError, "exactly one binary treatment"),
    ("PLR classifier ml_m on continuous d", lambda ex: plr(ex, ml_m=LogisticRegression()), ValueError, "binary"),
    ("PLR classifier ml_l on continuous y", lambda ex: plr(ex, ml_l=LogisticRegression()), ValueError, "binary"),
    ("IV-type classifier ml_g", lambda ex: plr(ex, score="IV-type", ml_g=LogisticRegression()), TypeError,
     "regressor"),
    ("seed negative", lambda ex: plr(ex, seed=-1), ValueError, "seed must be in"),
    ("seed float", lambda ex: plr(ex, seed=1.5), TypeError, "seed must be None or an integer"),
    ("clipping threshold", lambda ex: irm(ex, clipping_threshold=0.7), ValueError, "clipping_threshold"),
    ("normalize_ipw not bool", lambda ex: irm(ex, normalize_ipw="yes"), TypeError, "normalize_ipw"),
    ("executor wrong type", lambda ex: plr(ex, executor="local"), TypeError, "lambdamap.Executor"),
    ("smpls wrong type", lambda ex: plr(ex, smpls="folds"), TypeError, "smpls must be"),
    ("smpls test sets overlap", lambda ex: plr(ex, smpls=smpls_overlap), ValueError, "overlap"),
    ("smpls train not complement", lambda ex: plr(ex, smpls=smpls_partial_train), ValueError, "all rows outside"),
    ("smpls index out of range", lambda ex: plr(ex, smpls=smpls_out_of_range), ValueError, "outside"),
    ("smpls one class in training", lambda ex: irm(ex, smpls=one_class_train), ValueError, "only one value of 'd'"),
    ("duplicate column names", lambda ex: plr(ex, data=pd.concat([PLR, PLR[["X1"]]], axis=1)), ValueError,
     "several"),
    ("PLIV no instrument", lambda ex: pliv(ex, z=[]), ValueError, "at least one instrument column"),
    ("PLIV instrument not in data", lambda ex: pliv(ex, z="Z9"), ValueError, r"\['Z9'\] are not in data"),
    ("PLIV instrument also a covariate", lambda ex: pliv(ex, x=["X1", "Z1"]), ValueError,
     "an instrument must not be a covariate"),
    ("PLIV instrument is the treatment", lambda ex: pliv(ex, z="d"), ValueError, "each column has one role"),
    ("PLIV classifier learner", lambda ex: pliv(ex, ml_r=LogisticRegression()), TypeError, "ml_r must be a regressor"),
    ("PLIV IV-type without ml_g", lambda ex: pliv(ex, score="IV-type"), ValueError, "ml_g need to be specified"),
    ("PLIV IV-type with two instruments", lambda ex: pliv(ex, z=["Z1", "Z2"], score="IV-type",
                                                          ml_g=LinearRegression()), ValueError,
     "Valid score partialling out"),
    ("PLIV unknown score", lambda ex: pliv(ex, score="LATE"), ValueError, "unknown score 'LATE'"),
    ("IIVM non-binary z", lambda ex: iivm(ex, data=three_valued_z), ValueError, "'z' must be binary"),
    ("IIVM continuous d", lambda ex: iivm(ex, data=with_column(IIVM, "d", IIVM["X1"])), ValueError,
     "'d' must be binary"),
    ("IIVM two instruments", lambda ex: iivm(ex, z=["z", "X1"]), ValueError, "exactly one binary instrument"),
    ("IIVM no instrument", lambda ex: iivm(ex, z=None), ValueError, "at least one instrument column"),
    ("IIVM regressor ml_m", lambda ex: iivm(ex, ml_m=Lasso()), TypeError, "ml_m must be a classifier"),
    ("IIVM regressor ml_r", lambda ex: iivm(ex, ml_r=RandomForestRegressor()), TypeError,
     "ml_r must be a classifier"),
    ("IIVM bad subgroups", lambda ex: iivm(ex, subgroups={"always_takers": True}), ValueError, "Invalid subgroups"),
    ("IIVM no always takers in data", lambda ex: iivm(ex, data=no_always_takers), ValueError,
     "always_takers': False"),
    ("IRM weights of wrong length", lambda ex: irm(ex, weights=np.ones(10)), ValueError,
     r"weights must have shape \(60,\)"),
    ("IRM non-binary weights with ATTE", lambda ex: irm(ex, score="ATTE", weights=np.full(60, 0.5)), ValueError,
     "weights must be binary for ATTE"),
]


@pytest.mark.parametrize("call, error, message", [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_bad_input_fails_before_any_task(dml_executor, monkeypatch, call, error, message):
    def no_work(*args, **kwargs):
        raise AssertionError("bad input reached the executor")

    monkeypatch.setattr(dml_executor, "put", no_work)
    monkeypatch.setattr(dml_executor, "map", no_work)
    jobs = len(dml_executor.jobs())
    with pytest.raises(error, match=message):
        call(dml_executor)
    assert len(dml_executor.jobs()) == jobs


def test_good_input_still_fits(dml_executor):
    """The table's base inputs are fine: each case fails for its own reason only."""
    assert np.isfinite(plr(dml_executor, n_folds=3, seed=0).coef).all()
    assert np.isfinite(irm(dml_executor, n_folds=3, seed=0).coef).all()
    assert np.isfinite(pliv(dml_executor, n_folds=3, seed=0).coef).all()
    assert np.isfinite(iivm(dml_executor, n_folds=3, seed=0).coef).all()
    assert np.isfinite(plr(dml_executor, ml_l=RandomForestRegressor(n_estimators=3, random_state=0),
                           n_folds=3, seed=0).coef).all()
