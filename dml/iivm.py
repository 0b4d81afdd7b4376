"""Interactive IV model (DoubleML's ``DoubleMLIIVM``: binary treatment, binary instrument, the LATE) with its
nuisance fits as lambdamap tasks.

Predictions (DoubleML's names): ``ml_g0`` / ``ml_g1`` E[y|x, z=0/1] and ``ml_r0`` / ``ml_r1`` P[d=1|x, z=0/1], each
fitted on the training rows with z == 0 / z == 1; ``ml_m`` P[z=1|x] (DoubleML clips it). Without always takers
(``subgroups={"always_takers": False, ...}``) DoubleML sets r0 = 0 and ``ml_r0`` is not fitted; without never takers
r1 = 1 and ``ml_r1`` is not fitted.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from doubleml import DoubleMLData, DoubleMLIIVM
from doubleml.utils import PSProcessorConfig

import lambdamap
from dml import splits, validate
from dml.crossfit import CrossFit, Kind, fold_ids
from dml.result import DMLResult


def fit_iivm(data: Any, y: str, d: str | Sequence[str], z: str | Sequence[str], x: str | Sequence[str] | None = None,
             *, ml_g: Any, ml_m: Any, ml_r: Any, subgroups: dict[str, bool] | None = None, n_folds: int = 5,
             n_rep: int = 1, smpls: Any = None, seed: int | None = None, clipping_threshold: float = 1e-2,
             normalize_ipw: bool = False, executor: lambdamap.Executor | None = None) -> DMLResult:
    """Interactive IV model: the local average treatment effect (LATE) of a binary ``d`` with a binary instrument
    ``z``, by double machine learning on lambdamap.

    ``ml_g`` learns E[y|x, z] (a regressor, or a classifier for a binary y); ``ml_m`` (P[z=1|x]) and ``ml_r``
    (P[d=1|x, z]) are classifiers with ``predict_proba``. ``subgroups``: DoubleML's
    ``{"always_takers": bool, "never_takers": bool}`` (default both True). ``clipping_threshold`` clips ``ml_m``'s
    predictions (DoubleML's trimming); ``normalize_ipw`` normalizes the inverse probability weights. Default splits
    are stratified on (d, z), as in DoubleML. Other arguments as in :func:`dml.fit_plr`.
    """
    validate.check_executor(executor)
    prep = validate.prepare(data, y, d, x, z, instruments=True)
    if len(prep.d) != 1:
        raise ValueError(f"fit_iivm takes exactly one binary treatment column, got {prep.d}")
    if len(prep.z) != 1:
        raise ValueError(f"fit_iivm takes exactly one binary instrument column, got {prep.z}")
    seed = validate.check_seed(seed)
    clipping_threshold = validate.check_clipping(clipping_threshold)
    normalize_ipw = validate.check_bool("normalize_ipw", normalize_ipw)
    g_classifier = validate.check_learner(ml_g, "ml_g")
    validate.check_learner(ml_m, "ml_m", proba=True)
    validate.check_learner(ml_r, "ml_r", proba=True)
    treatment, instrument = prep.data.d[:, 0], prep.data.z[:, 0] if prep.data.z is not None else None
    assert instrument is not None
    validate.check_binary(treatment, prep.d[0], "the IIVM treatment")
    validate.check_binary(instrument, prep.z[0], "the IIVM instrument")
    if g_classifier:
        validate.check_binary(prep.data.y, prep.y, "ml_g is a classifier")
    folds = fold_ids(prep.data.n_obs, n_folds, n_rep, smpls, seed, strata=treatment + 2 * instrument,
                     strata_label="d + 2 z")
    # DoubleML's own checks (e.g. of subgroups) before ours on the splits.
    model = DoubleMLIIVM(DoubleMLData(prep.frame, prep.y, prep.d, prep.x, prep.z), ml_g, ml_m, ml_r,
                         n_folds=int(folds.max()) + 1, n_rep=folds.shape[0], subgroups=subgroups,
                         normalize_ipw=normalize_ipw,
                         ps_processor_config=PSProcessorConfig(clipping_threshold=clipping_threshold),
                         draw_sample_splitting=False)
    always, never = model.subgroups["always_takers"], model.subgroups["never_takers"]
    splits.check_both_classes(folds, instrument, prep.z[0])
    if always:
        splits.check_both_classes(folds, treatment, prep.d[0], within=instrument == 0,
                                  hint="ml_r0 is fitted on z == 0; without always takers pass "
                                  "subgroups={'always_takers': False, 'never_takers': True}")
    if never:
        splits.check_both_classes(folds, treatment, prep.d[0], within=instrument == 1,
                                  hint="ml_r1 is fitted on z == 1; without never takers pass "
                                  "subgroups={'always_takers': True, 'never_takers': False}")
    model.set_sample_splitting(splits.to_smpls(folds))

    kinds = [Kind("ml_g0", "ml_g", "y", ("z", 0), g_classifier), Kind("ml_g1", "ml_g", "y", ("z", 1), g_classifier),
             Kind("ml_m", "ml_m", "z", proba=True)]
    if always:
        kinds.append(Kind("ml_r0", "ml_r", "d", ("z", 0), True))
    if never:
        kinds.append(Kind("ml_r1", "ml_r", "d", ("z", 1), True))
    fit = CrossFit(executor, prep.data, folds, {"ml_g": ml_g, "ml_m": ml_m, "ml_r": ml_r}, seed)
    return fit.finish(model, fit.run(1, kinds), prep.d)
