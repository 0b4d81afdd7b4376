"""Conformance beyond the case table: no silent NaN, DoubleML's own errors, float32 frames, weighted IRM."""

from __future__ import annotations

import warnings

import doubleml
import numpy as np
import pytest
from dml_cases import binary_outcome_data, iivm_data, irm_data, pliv_data, plr_data
from sklearn.base import BaseEstimator, ClassifierMixin, RegressorMixin
from sklearn.linear_model import Lasso, LinearRegression, LogisticRegression

import dml

pytestmark = pytest.mark.timeout(120)


class NaNRegressor(RegressorMixin, BaseEstimator):
    """Predicts NaN on every row, as a learner with a bug might."""

    def fit(self, x, y):
        return self

    def predict(self, x):
        return np.full(len(x), np.nan)


class NaNClassifier(ClassifierMixin, BaseEstimator):
    def fit(self, x, y):
        self.classes_ = np.array([0, 1])
        return self

    def predict_proba(self, x):
        return np.full((len(x), 2), np.nan)


NAN_FITS = {
    "plr": lambda ex: dml.fit_plr(plr_data(60, 3, 50), "y", "d", ml_l=NaNRegressor(), ml_m=LinearRegression(),
                                  n_folds=2, executor=ex),
    "irm": lambda ex: dml.fit_irm(irm_data(80, 3, 51), "y", "d", ml_g=LinearRegression(), ml_m=NaNClassifier(),
                                  n_folds=2, executor=ex),
    "pliv": lambda ex: dml.fit_pliv(pliv_data(60, 3, 1, 52), "y", "d", "Z1", ml_l=LinearRegression(),
                                    ml_m=NaNRegressor(), ml_r=LinearRegression(), n_folds=2, executor=ex),
    "iivm": lambda ex: dml.fit_iivm(iivm_data(120, 3, 53), "y", "d", "z", ml_g=LinearRegression(),
                                    ml_m=LogisticRegression(), ml_r=NaNClassifier(), n_folds=2, executor=ex),
}
NAN_NAMES = {"plr": "ml_l", "irm": "ml_m", "pliv": "ml_m", "iivm": "ml_r[01]"}


@pytest.mark.parametrize("model", list(NAN_FITS))
def test_nan_predictions_raise_naming_learner_repetition_and_fold(dml_executor, model):
    with pytest.raises(ValueError, match=rf"Predictions from learner NaN\w+\(\) for {NAN_NAMES[model]} are not "
                                         r"finite .* in repetition 0, fold [01]"):
        NAN_FITS[model](dml_executor)


def test_iv_type_with_binary_outcome_raises_doubleml_error(dml_executor):
    df = binary_outcome_data(100, 3, 54)
    with pytest.raises(ValueError, match="additive probability models"):
        dml.fit_plr(df, "y", "d", ml_l=LogisticRegression(), ml_m=LogisticRegression(), score="IV-type",
                    executor=dml_executor)


def _assert_same(res, ref):
    np.testing.assert_array_equal(res.coef, ref.coef)
    np.testing.assert_array_equal(res.se, ref.se)
    for name, preds in ref.predictions.items():
        np.testing.assert_array_equal(res.model.predictions[name], preds, err_msg=name)


def test_float32_frame_dtype_rule(dml_executor):
    """The README's dtype rule: learners see float32 exactly as DoubleML's do (identical predictions, also ml_g of
    IV-type, whose target uses DoubleML's float32 theta_init); the score is computed in float64, because DoubleML's
    fit(external_predictions=...) casts predictions to float: coef equals DoubleML's own fit on its own predictions
    passed back as external ones, and DoubleML's plain float32 fit to float32 rounding."""
    df = plr_data(200, 5, 55).astype(np.float32)

    def doubleml_plr():
        np.random.seed(0)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return doubleml.DoubleMLPLR(doubleml.DoubleMLData(df, "y", "d"), Lasso(alpha=0.05), LinearRegression(),
                                        n_folds=3, score="IV-type")

    ref = doubleml_plr().fit()
    res = dml.fit_plr(df, "y", "d", ml_l=Lasso(alpha=0.05), ml_m=LinearRegression(), score="IV-type",
                      smpls=ref.smpls, executor=dml_executor)
    for name, preds in ref.predictions.items():
        np.testing.assert_array_equal(res.model.predictions[name], preds, err_msg=name)
    external = {"d": {name: preds[:, :, 0] for name, preds in ref.predictions.items()}}
    reference_external = doubleml_plr().fit(external_predictions=external)
    np.testing.assert_array_equal(res.coef, reference_external.coef)
    np.testing.assert_array_equal(res.se, reference_external.se)
    np.testing.assert_allclose(res.coef, ref.coef, rtol=1e-6)
    as64 = dml.fit_plr(df.astype(np.float64), "y", "d", ml_l=Lasso(alpha=0.05), ml_m=LinearRegression(),
                       score="IV-type", smpls=ref.smpls, executor=dml_executor)
    assert not np.array_equal(as64.model.predictions["ml_g"], res.model.predictions["ml_g"])  # dtype is kept


@pytest.mark.parametrize("weights", ["array", "dict"])
def test_weighted_irm_equals_doubleml(dml_executor, weights):
    df = irm_data(300, 4, 56)
    rng = np.random.default_rng(0)
    w = rng.uniform(0.5, 1.5, size=len(df))
    given = w if weights == "array" else {"weights": w, "weights_bar": np.column_stack([w * 0.9, w * 1.1])}
    np.random.seed(1)
    ref = doubleml.DoubleMLIRM(doubleml.DoubleMLData(df, "y", "d"), LinearRegression(), LogisticRegression(),
                               n_folds=3, n_rep=2, weights=given).fit()
    res = dml.fit_irm(df, "y", "d", ml_g=LinearRegression(), ml_m=LogisticRegression(), weights=given,
                      smpls=ref.smpls, executor=dml_executor)
    _assert_same(res, ref)
    unweighted = dml.fit_irm(df, "y", "d", ml_g=LinearRegression(), ml_m=LogisticRegression(), smpls=ref.smpls,
                             executor=dml_executor)
    assert unweighted.coef[0] != res.coef[0]


def test_doubleml_nuisance_loss_is_nan_with_external_predictions(dml_executor):
    """What the README states: DoubleML stores no targets for external predictions, so its own nuisance_loss and
    evaluate_learners() give NaN; dml's result has them from the targets dml knows."""
    res = dml.fit_plr(plr_data(100, 3, 57), "y", "d", ml_l=LinearRegression(), ml_m=LinearRegression(), n_folds=2,
                      seed=0, executor=dml_executor)
    assert np.isnan(res.model.nuisance_loss["ml_l"]).all()
    assert np.isnan(res.model.evaluate_learners()["ml_l"]).all()
