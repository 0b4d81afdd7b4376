"""Partially linear regression (DoubleML's ``DoubleMLPLR``) with its nuisance fits as lambdamap tasks.

Predictions (DoubleML's names): ``ml_l`` E[y|x], ``ml_m`` E[d|x] and, for IV-type, ``ml_g`` E[y - theta_init d|x],
fitted in a second stage once theta_init is known.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from typing import Any

import numpy as np
from doubleml import DoubleMLData, DoubleMLPLR
from sklearn.base import clone

import lambdamap
from dml import splits, validate
from dml.crossfit import CrossFit, Kind, Predictions, fold_ids
from dml.result import DMLResult
from dml.tasks import FitData


def theta_init(preds: Predictions, data: FitData) -> np.ndarray:
    """Initial estimates (n_d, n_rep) from the partialling-out score, exactly as DoubleML's PLR computes them for
    IV-type (``doubleml/plm/plr.py``, ``_nuisance_est``: theta = -nanmean(psi_b) / nanmean(psi_a))."""
    n_d = data.d.shape[1]
    n_rep = preds[("ml_m", 0)].shape[1]
    rows = []
    for j in range(n_d):
        d, row = data.d[:, j], []
        for r in range(n_rep):
            m_hat, l_hat = preds[("ml_m", j)][:, r], preds[("ml_l", j)][:, r]
            psi_a = -np.multiply(d - m_hat, d - m_hat)
            psi_b = np.multiply(d - m_hat, data.y - l_hat)
            row.append(-np.nanmean(psi_b) / np.nanmean(psi_a))
        rows.append(row)
    return np.array(rows)  # float32 when the predictions are (float32 data), as DoubleML's theta_initial is


def fit_plr(data: Any, y: str, d: str | Sequence[str], x: str | Sequence[str] | None = None, *, ml_l: Any, ml_m: Any,
            ml_g: Any = None, score: str = "partialling out", n_folds: int = 5, n_rep: int = 1, smpls: Any = None,
            seed: int | None = None, executor: lambdamap.Executor | None = None) -> DMLResult:
    """Partially linear regression ``y = theta d + g(x) + e`` by double machine learning, cross-fitted on lambdamap.

    ``data`` is a DataFrame; ``y`` the outcome column; ``d`` one treatment column or a list (each treatment is
    estimated with the other treatments as extra covariates, as in DoubleML); ``x`` the covariates (None: every other
    column). ``ml_l`` learns E[y|x]; ``ml_m`` learns E[d|x] (a classifier's ``predict_proba`` for a binary d);
    ``ml_g`` learns E[y - theta d|x] for ``score="IV-type"`` (default: a clone of ``ml_l``, as in DoubleML).

    ``n_folds`` folds, ``n_rep`` repetitions of the splitting; or ``smpls``, splits in DoubleML's format (then
    ``n_folds`` and ``n_rep`` come from it). ``seed`` makes the splits and the learners' unset random states
    reproducible (bit-identical on every run, and on every backend with the same library versions and BLAS
    kernel). ``executor`` runs the fits (None: a shared ``lambdamap.default_executor()``, kept warm across fits).
    Every input is checked before any task runs.
    """
    validate.check_executor(executor)
    prep = validate.prepare(data, y, d, x)
    score = validate.check_score(score, validate.PLR_SCORES)
    seed = validate.check_seed(seed)
    l_classifier = validate.check_learner(ml_l, "ml_l")
    m_classifier = validate.check_learner(ml_m, "ml_m")
    learners = {"ml_l": ml_l, "ml_m": ml_m}
    if score == "IV-type":
        learners["ml_g"] = clone(ml_l) if ml_g is None else ml_g  # DoubleML's default for a missing ml_g
    elif ml_g is not None:
        warnings.warn("ml_g is only used with score='IV-type'; it is ignored for 'partialling out'", UserWarning,
                      stacklevel=2)
    if l_classifier:
        validate.check_binary(prep.data.y, prep.y, "ml_l is a classifier")
    if m_classifier:
        for j, col in enumerate(prep.d):
            validate.check_binary(prep.data.d[:, j], col, "ml_m is a classifier")
    folds = fold_ids(prep.data.n_obs, n_folds, n_rep, smpls, seed)
    if l_classifier:
        splits.check_both_classes(folds, prep.data.y, prep.y)
    if m_classifier:
        for j, col in enumerate(prep.d):
            splits.check_both_classes(folds, prep.data.d[:, j], col)
    # DoubleML's own checks come first (e.g. its ValueError for IV-type with a binary outcome), then ours.
    model = DoubleMLPLR(DoubleMLData(prep.frame, prep.y, prep.d, prep.x), ml_l, ml_m, learners.get("ml_g"),
                        n_folds=int(folds.max()) + 1, n_rep=folds.shape[0], score=score, draw_sample_splitting=False)
    if "ml_g" in learners and validate.check_learner(learners["ml_g"], "ml_g"):
        raise TypeError("ml_g must be a regressor: it predicts y - theta * d (for score='IV-type')")
    model.set_sample_splitting(splits.to_smpls(folds))

    fit = CrossFit(executor, prep.data, folds, learners, seed)
    n_d = len(prep.d)
    preds = fit.run(n_d, [Kind("ml_l", "ml_l", "y", proba=l_classifier), Kind("ml_m", "ml_m", "d", proba=m_classifier)])
    if score == "IV-type":
        preds.update(fit.run(n_d, [Kind("ml_g", "ml_g", "y_minus_theta_d")], theta=theta_init(preds, prep.data)))
    return fit.finish(model, preds, prep.d)
