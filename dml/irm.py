"""Interactive regression model (DoubleML's ``DoubleMLIRM``) with its nuisance fits as lambdamap tasks.

Predictions: ``ml_g0`` / ``ml_g1`` E[y|x, d=0/1], fitted on the training rows with d == 0 / d == 1, and ``ml_m``
P[d=1|x] (a classifier; DoubleML clips it).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from doubleml import DoubleMLData, DoubleMLIRM
from doubleml.utils import PSProcessorConfig

import lambdamap
from dml import splits, validate
from dml.crossfit import CrossFit, Kind, fold_ids
from dml.result import DMLResult


def fit_irm(data: Any, y: str, d: str | Sequence[str], x: str | Sequence[str] | None = None, *, ml_g: Any, ml_m: Any,
            score: str = "ATE", n_folds: int = 5, n_rep: int = 1, smpls: Any = None, seed: int | None = None,
            clipping_threshold: float = 1e-2, normalize_ipw: bool = False, weights: Any = None,
            executor: lambdamap.Executor | None = None) -> DMLResult:
    """Interactive regression model (binary treatment): the ATE or ATTE by double machine learning on lambdamap.

    ``ml_g`` learns E[y|x, d] (fitted separately on the training rows with d == 0 and d == 1; a classifier's
    ``predict_proba`` for a binary y); ``ml_m`` is a classifier with ``predict_proba`` for P[d=1|x], whose
    predictions DoubleML clips to [clipping_threshold, 1 - clipping_threshold]. ``normalize_ipw`` normalizes the
    inverse probability weights. ``weights``: DoubleML's weights, an array (n_obs,) or, for "ATE", a dict with
    ``weights`` and ``weights_bar`` (n_obs, n_rep) (for "ATTE" binary, a subgroup). Default splits are stratified
    on d.
    Other arguments as in :func:`dml.fit_plr`.
    """
    validate.check_executor(executor)
    prep = validate.prepare(data, y, d, x)
    if len(prep.d) != 1:
        raise ValueError(f"fit_irm takes exactly one binary treatment column, got {prep.d}: fit one model per "
                         "treatment, or use fit_plr for several treatments")
    score = validate.check_score(score, validate.IRM_SCORES)
    seed = validate.check_seed(seed)
    clipping_threshold = validate.check_clipping(clipping_threshold)
    normalize_ipw = validate.check_bool("normalize_ipw", normalize_ipw)
    g_classifier = validate.check_learner(ml_g, "ml_g")
    validate.check_learner(ml_m, "ml_m", proba=True)
    treatment = prep.data.d[:, 0]
    validate.check_binary(treatment, prep.d[0], "the IRM treatment")
    if g_classifier:
        validate.check_binary(prep.data.y, prep.y, "ml_g is a classifier")
    folds = fold_ids(prep.data.n_obs, n_folds, n_rep, smpls, seed, strata=treatment)
    splits.check_both_classes(folds, treatment, prep.d[0])
    model = DoubleMLIRM(DoubleMLData(prep.frame, prep.y, prep.d, prep.x), ml_g, ml_m,
                        n_folds=int(folds.max()) + 1, n_rep=folds.shape[0], score=score, weights=weights,
                        normalize_ipw=normalize_ipw,
                        ps_processor_config=PSProcessorConfig(clipping_threshold=clipping_threshold),
                        draw_sample_splitting=False)
    model.set_sample_splitting(splits.to_smpls(folds))

    fit = CrossFit(executor, prep.data, folds, {"ml_g": ml_g, "ml_m": ml_m}, seed)
    preds = fit.run(1, [Kind("ml_g0", "ml_g", "y", ("d", 0), g_classifier),
                        Kind("ml_g1", "ml_g", "y", ("d", 1), g_classifier),
                        Kind("ml_m", "ml_m", "d", proba=True)])
    return fit.finish(model, preds, prep.d)
