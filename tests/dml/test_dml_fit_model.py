"""dml.fit_model: any DoubleML model with external-prediction support, cross-fitted on lambdamap, equals model.fit()."""

from __future__ import annotations

import doubleml
import numpy as np
import pytest
from dml_cases import irm_data
from fit_model_cases import MODEL_CASES, apos, check_fit_model, irm, plr_iv_type
from sklearn.base import BaseEstimator, RegressorMixin
from sklearn.linear_model import LinearRegression, LogisticRegression

import dml

pytestmark = pytest.mark.timeout(120)


@pytest.mark.parametrize("build", [b for _, b in MODEL_CASES], ids=[n for n, _ in MODEL_CASES])
def test_fit_model_equals_doubleml_fit(dml_executor, build):
    check_fit_model(dml_executor, build)


def test_fitted_model_supports_doubleml_api(dml_executor):
    res = dml.fit_model(apos(), executor=dml_executor)
    contrast = res.model.causal_contrast(reference_levels=0)
    assert contrast.summary.shape[0] == 2
    np.random.seed(0)
    res.model.bootstrap(n_rep_boot=50)
    assert res.model.confint(joint=True).shape == (3, 2)
    irm_res = dml.fit_model(irm(), executor=dml_executor)
    irm_res.model.sensitivity_analysis()
    assert "Bounds with CI" in irm_res.model.sensitivity_summary


def test_unsupported_model_names_supported_ones(dml_executor):
    data = doubleml.DoubleMLData(irm_data(100, 3, 39), "y", "d")
    model = doubleml.DoubleMLCVAR(data, LinearRegression(), LogisticRegression(), treatment=1, n_folds=2)
    with pytest.raises(TypeError, match="does not accept external predictions.*DoubleMLAPOS"):
        dml.fit_model(model, executor=dml_executor)
    with pytest.raises(TypeError, match="cannot distribute str"):
        dml.fit_model("DoubleMLPLR", executor=dml_executor)


def test_set_ml_nuisance_params_is_refused(dml_executor):
    model = plr_iv_type()
    model.set_ml_nuisance_params("ml_l", "d", {"alpha": 0.1})
    with pytest.raises(NotImplementedError, match="set_ml_nuisance_params"):
        dml.fit_model(model, executor=dml_executor)


class NaNRegressor(RegressorMixin, BaseEstimator):
    def fit(self, x, y):
        return self

    def predict(self, x):
        return np.full(len(x), np.nan)


def test_nan_predictions_raise_doubleml_error_naming_repetition(dml_executor):
    np.random.seed(0)
    data = doubleml.DoubleMLData(doubleml.plm.datasets.make_plr_CCDDHNR2018(n_obs=60, return_type="DataFrame"),
                                 "y", "d")
    model = doubleml.DoubleMLPLR(data, LinearRegression(), NaNRegressor(), n_folds=2, n_rep=2)
    with pytest.raises(ValueError, match="Predictions from learner .* for ml_m are not finite") as info:
        dml.fit_model(model, executor=dml_executor)
    assert any("DoubleMLPLR, repetition" in note for note in info.value.__notes__)
