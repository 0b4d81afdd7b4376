"""Partially linear IV regression (DoubleML's ``DoubleMLPLIV``, partialling out X) with its nuisance fits as
lambdamap tasks.

Predictions (DoubleML's names): ``ml_l`` E[y|x], ``ml_r`` E[d|x], ``ml_m`` E[z|x] (one instrument) or ``ml_m_<z>``
per instrument (several: DoubleML's 2SLS-type score), and, for IV-type (one instrument only, as in DoubleML),
``ml_g`` E[y - theta_init d|x], fitted in a second stage once theta_init is known.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from doubleml import DoubleMLData, DoubleMLPLIV

import lambdamap
from dml import splits, validate
from dml.crossfit import CrossFit, Kind, Predictions, fold_ids
from dml.result import DMLResult
from dml.tasks import FitData


def theta_init(preds: Predictions, data: FitData) -> np.ndarray:
    """Initial estimates (n_d, n_rep) from the partialling-out score, exactly as DoubleML's PLIV computes them for
    IV-type (``doubleml/plm/pliv.py``, ``_nuisance_est_partial_x``): psi_a = -(d - r_hat)(z - m_hat),
    psi_b = (z - m_hat)(y - l_hat), theta = -nanmean(psi_b) / nanmean(psi_a)."""
    assert data.z is not None
    z = data.z[:, 0]
    n_d, n_rep = data.d.shape[1], preds[("ml_m", 0)].shape[1]
    rows = []
    for j in range(n_d):
        d, row = data.d[:, j], []
        for r in range(n_rep):
            l_hat, m_hat, r_hat = (preds[(name, j)][:, r] for name in ("ml_l", "ml_m", "ml_r"))
            psi_a = -np.multiply(d - r_hat, z - m_hat)
            psi_b = np.multiply(z - m_hat, data.y - l_hat)
            row.append(-np.nanmean(psi_b) / np.nanmean(psi_a))
        rows.append(row)
    return np.array(rows)  # float32 when the predictions are (float32 data), as DoubleML's theta_initial is


def _regressor(learner: Any, name: str, what: str) -> None:
    if validate.check_learner(learner, name):
        raise TypeError(f"{name} must be a regressor: it predicts {what} (DoubleMLPLIV uses predict() of every "
                        f"learner), got the classifier {learner!r}")


def fit_pliv(data: Any, y: str, d: str | Sequence[str], z: str | Sequence[str], x: str | Sequence[str] | None = None,
             *, ml_l: Any, ml_m: Any, ml_r: Any, ml_g: Any = None, score: str = "partialling out", n_folds: int = 5,
             n_rep: int = 1, smpls: Any = None, seed: int | None = None,
             executor: lambdamap.Executor | None = None) -> DMLResult:
    """Partially linear IV regression ``y = theta d + g(x) + e``, E[e | z, x] = 0, cross-fitted on lambdamap.

    ``z`` is one instrument column or a list (several instruments: only ``score="partialling out"``, as in
    DoubleML). Regressors: ``ml_l`` learns E[y|x], ``ml_m`` E[z|x] (one fit per instrument), ``ml_r`` E[d|x] and
    ``ml_g`` E[y - theta d|x] (required for ``score="IV-type"``, as in DoubleML). ``x`` None means every column
    that is not y, d or z. Other arguments as in :func:`dml.fit_plr`.
    """
    validate.check_executor(executor)
    prep = validate.prepare(data, y, d, x, z, instruments=True)
    score = validate.check_score(score, validate.PLIV_SCORES)
    seed = validate.check_seed(seed)
    _regressor(ml_l, "ml_l", "E[y|x]")
    _regressor(ml_m, "ml_m", "E[z|x]")
    _regressor(ml_r, "ml_r", "E[d|x]")
    if ml_g is not None and score == "IV-type":
        _regressor(ml_g, "ml_g", "E[y - theta d|x]")
    folds = fold_ids(prep.data.n_obs, n_folds, n_rep, smpls, seed)
    # DoubleML's own checks: IV-type needs ml_g and exactly one instrument; ml_g is ignored for partialling out.
    model = DoubleMLPLIV(DoubleMLData(prep.frame, prep.y, prep.d, prep.x, prep.z), ml_l, ml_m, ml_r, ml_g,
                         n_folds=int(folds.max()) + 1, n_rep=folds.shape[0], score=score, draw_sample_splitting=False)
    model.set_sample_splitting(splits.to_smpls(folds))

    learners = {"ml_l": ml_l, "ml_m": ml_m, "ml_r": ml_r}
    if score == "IV-type":
        learners["ml_g"] = ml_g
    if len(prep.z) == 1:
        m_kinds = [Kind("ml_m", "ml_m", "z")]
    else:  # one fit per instrument, named as DoubleML names them
        m_kinds = [Kind(f"ml_m_{col}", "ml_m", "z", instrument=i, seed_name="ml_m", seed_instrument=i)
                   for i, col in enumerate(prep.z)]
    fit = CrossFit(executor, prep.data, folds, learners, seed)
    n_d = len(prep.d)
    preds = fit.run(n_d, [Kind("ml_l", "ml_l", "y"), Kind("ml_r", "ml_r", "d"), *m_kinds])
    if score == "IV-type":
        preds.update(fit.run(n_d, [Kind("ml_g", "ml_g", "y_minus_theta_d")], theta=theta_init(preds, prep.data)))
    return fit.finish(model, preds, prep.d)
