"""PLR and IRM: which nuisance tasks a fit runs, in which stages, and how their predictions become a DoubleML fit.

::

    check input ─▶ splits (fold ids) ─▶ DoubleML model built (its own checks) ─▶ executor.put(data, folds, learners)
      ─▶ map stage 1 ─▶ [IV-type: theta_init ─▶ put ─▶ map stage 2 (ml_g)] ─▶ assemble (n_obs, n_rep) predictions
      ─▶ model.fit(external_predictions=...)   (DoubleML's own scores, variance, aggregation over repetitions)

Only DoubleML's public API is used: ``DoubleMLData``, ``DoubleMLPLR`` / ``DoubleMLIRM``, ``set_sample_splitting`` and
``fit(external_predictions={treatment: {learner: array (n_obs, n_rep)}})``. The prediction names are DoubleML's:
PLR ``ml_l`` (E[y|x]), ``ml_m`` (E[d|x]) and, for IV-type, ``ml_g`` (E[y - theta_init d|x]); IRM ``ml_g0``, ``ml_g1``
(E[y|x, d=0/1], fitted on the training rows with d == 0 / d == 1) and ``ml_m`` (P[d=1|x]; DoubleML clips it).
"""

from __future__ import annotations

import time
import warnings
from collections.abc import Sequence
from typing import Any

import numpy as np
from doubleml import DoubleMLData, DoubleMLIRM, DoubleMLPLR
from doubleml.utils import PSProcessorConfig
from sklearn.base import clone

import lambdamap
from dml import splits, validate
from dml.execution import fit_stats, gather, shared_executor, submit_stage
from dml.result import DMLResult
from dml.tasks import NuisanceTask, Target, TaskInputs, derive_random_state, needs_random_state

Predictions = dict[tuple[str, int], np.ndarray]  # (name, treatment) -> (n_obs, n_rep)


def _fold_ids(prep: validate.Prepared, n_folds: Any, n_rep: Any, smpls: Any, seed: int | None,
              strata: np.ndarray | None) -> np.ndarray:
    """The splits as fold ids: from ``smpls`` when given (then n_folds and n_rep come from it), else drawn."""
    if smpls is not None:
        return splits.from_smpls(smpls, prep.data.n_obs)
    n_folds = validate.check_int("n_folds", n_folds, 2)
    n_rep = validate.check_int("n_rep", n_rep, 1)
    return splits.draw(prep.data.n_obs, n_folds, n_rep, seed, strata)


class _Planner:
    """Builds the tasks of one fit; derives per-task random states from the seed (see :mod:`dml.tasks`)."""

    def __init__(self, fold_ids: np.ndarray, learners: dict[str, Any], seed: int | None) -> None:
        self.n_rep, self.n_folds = fold_ids.shape[0], int(fold_ids.max()) + 1
        self.seeded = {key: seed is not None and needs_random_state(est) for key, est in learners.items()}
        self.seed = seed

    def tasks(self, n_treat: int, kinds: Sequence[tuple[str, str, Target, int | None, bool]]) -> list[NuisanceTask]:
        """One task per (repetition, fold, treatment, kind); kinds are (name, learner, target, train_d, proba).

        Repetition-major order, kinds innermost, so that each batch of consecutive tasks mixes the learners.
        """
        out = []
        for rep in range(self.n_rep):
            for fold in range(self.n_folds):
                for j in range(n_treat):
                    for name, learner, target, train_d, proba in kinds:
                        state = derive_random_state(self.seed, name, j, rep, fold) if self.seeded[learner] else None
                        out.append(NuisanceTask(name=name, learner=learner, treatment=j, rep=rep, fold=fold,
                                                target=target, train_d=train_d, proba=proba, random_state=state))
        return out


def _assemble(tasks: Sequence[NuisanceTask], results: Sequence[np.ndarray], fold_ids: np.ndarray) -> Predictions:
    """Put each task's test-fold predictions into its rows of a (n_obs, n_rep) array per (name, treatment)."""
    n_rep, n_obs = fold_ids.shape
    preds: Predictions = {}
    for task, values in zip(tasks, results, strict=True):
        arr = preds.setdefault((task.name, task.treatment), np.full((n_obs, n_rep), np.nan))
        test = fold_ids[task.rep] == task.fold
        if values.shape != (int(test.sum()),):
            raise ValueError(f"{task.describe()} returned predictions of shape {values.shape}, expected "
                             f"({int(test.sum())},): the learner's predict must return one value per row")
        arr[test, task.rep] = values
    return preds


def _external(preds: Predictions, d_cols: Sequence[str]) -> dict[str, dict[str, np.ndarray]]:
    external: dict[str, dict[str, np.ndarray]] = {col: {} for col in d_cols}
    for (name, j), arr in preds.items():
        external[d_cols[j]][name] = arr
    return external


def _run_stage(executor: lambdamap.Executor, tasks: list[NuisanceTask], inputs: TaskInputs,
               fold_ids: np.ndarray, futures_seen: list[lambdamap.Future]) -> Predictions:
    futures = submit_stage(executor, tasks, inputs)
    futures_seen.extend(futures)
    return _assemble(tasks, gather(tasks, futures), fold_ids)


def _theta_init(preds: Predictions, data: Any) -> np.ndarray:
    """Initial estimates (n_d, n_rep) from the partialling-out score, exactly as DoubleML's PLR computes them for
    IV-type (``doubleml/plm/plr.py``, ``_nuisance_est``: theta = -nanmean(psi_b) / nanmean(psi_a))."""
    n_d = data.d.shape[1]
    n_rep = preds[("ml_m", 0)].shape[1]
    theta = np.empty((n_d, n_rep))
    for j in range(n_d):
        d = data.d[:, j]
        for r in range(n_rep):
            m_hat, l_hat = preds[("ml_m", j)][:, r], preds[("ml_l", j)][:, r]
            psi_a = -np.multiply(d - m_hat, d - m_hat)
            psi_b = np.multiply(d - m_hat, data.y - l_hat)
            theta[j, r] = -np.nanmean(psi_b) / np.nanmean(psi_a)
    return theta


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
    reproducible (bit-identical on every run and backend). ``executor`` runs the fits (None: a shared
    ``lambdamap.default_executor()``, kept warm across fits). Every input is checked before any task runs.
    """
    start = time.perf_counter()
    validate.check_executor(executor)
    prep = validate.prepare(data, y, d, x)
    score = validate.check_score(score, validate.PLR_SCORES)
    seed = validate.check_seed(seed)
    l_classifier = validate.check_learner(ml_l, "ml_l")
    m_classifier = validate.check_learner(ml_m, "ml_m")
    learners = {"ml_l": ml_l, "ml_m": ml_m}
    if score == "IV-type":
        learners["ml_g"] = clone(ml_l) if ml_g is None else ml_g  # DoubleML's default for a missing ml_g
        if validate.check_learner(learners["ml_g"], "ml_g"):
            raise TypeError("ml_g must be a regressor: it predicts y - theta * d (for score='IV-type')")
    elif ml_g is not None:
        warnings.warn("ml_g is only used with score='IV-type'; it is ignored for 'partialling out'", UserWarning,
                      stacklevel=2)
    if l_classifier:
        validate.check_binary(prep.data.y, prep.y, "ml_l is a classifier")
    if m_classifier:
        for j, col in enumerate(prep.d):
            validate.check_binary(prep.data.d[:, j], col, "ml_m is a classifier")
    fold_ids = _fold_ids(prep, n_folds, n_rep, smpls, seed, strata=None)
    if l_classifier:
        splits.check_both_classes(fold_ids, prep.data.y, prep.y)
    if m_classifier:
        for j, col in enumerate(prep.d):
            splits.check_both_classes(fold_ids, prep.data.d[:, j], col)
    model = DoubleMLPLR(DoubleMLData(prep.frame, prep.y, prep.d, prep.x), ml_l, ml_m, learners.get("ml_g"),
                        n_folds=int(fold_ids.max()) + 1, n_rep=fold_ids.shape[0], score=score,
                        draw_sample_splitting=False)
    model.set_sample_splitting(splits.to_smpls(fold_ids))

    executor = shared_executor() if executor is None else executor
    planner = _Planner(fold_ids, learners, seed)
    n_d = len(prep.d)
    inputs = TaskInputs(data=executor.put(prep.data), folds=executor.put(fold_ids), learners=executor.put(learners))
    futures: list[lambdamap.Future] = []
    stage1 = planner.tasks(n_d, [("ml_l", "ml_l", "y", None, l_classifier), ("ml_m", "ml_m", "d", None, m_classifier)])
    preds = _run_stage(executor, stage1, inputs, fold_ids, futures)
    stages = 1
    if score == "IV-type":
        theta = executor.put(_theta_init(preds, prep.data))
        stage2 = planner.tasks(n_d, [("ml_g", "ml_g", "y_minus_theta_d", None, False)])
        preds.update(_run_stage(executor, stage2, TaskInputs(inputs.data, inputs.folds, inputs.learners, theta),
                                fold_ids, futures))
        stages = 2
    model.fit(external_predictions=_external(preds, prep.d))
    return DMLResult(model, fit_stats(executor, futures, stages, time.perf_counter() - start))


def fit_irm(data: Any, y: str, d: str | Sequence[str], x: str | Sequence[str] | None = None, *, ml_g: Any, ml_m: Any,
            score: str = "ATE", n_folds: int = 5, n_rep: int = 1, smpls: Any = None, seed: int | None = None,
            clipping_threshold: float = 1e-2, normalize_ipw: bool = False,
            executor: lambdamap.Executor | None = None) -> DMLResult:
    """Interactive regression model (binary treatment): the ATE or ATTE by double machine learning on lambdamap.

    ``ml_g`` learns E[y|x, d] (fitted separately on the training rows with d == 0 and d == 1; a classifier's
    ``predict_proba`` for a binary y); ``ml_m`` is a classifier with ``predict_proba`` for P[d=1|x], whose
    predictions DoubleML clips to [clipping_threshold, 1 - clipping_threshold]. ``normalize_ipw`` normalizes the
    inverse probability weights. Default splits are stratified on d. Other arguments as in :func:`fit_plr`.
    """
    start = time.perf_counter()
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
    fold_ids = _fold_ids(prep, n_folds, n_rep, smpls, seed, strata=treatment)
    splits.check_both_classes(fold_ids, treatment, prep.d[0])
    model = DoubleMLIRM(DoubleMLData(prep.frame, prep.y, prep.d, prep.x), ml_g, ml_m,
                        n_folds=int(fold_ids.max()) + 1, n_rep=fold_ids.shape[0], score=score,
                        normalize_ipw=normalize_ipw,
                        ps_processor_config=PSProcessorConfig(clipping_threshold=clipping_threshold),
                        draw_sample_splitting=False)
    model.set_sample_splitting(splits.to_smpls(fold_ids))

    executor = shared_executor() if executor is None else executor
    learners = {"ml_g": ml_g, "ml_m": ml_m}
    planner = _Planner(fold_ids, learners, seed)
    inputs = TaskInputs(data=executor.put(prep.data), folds=executor.put(fold_ids), learners=executor.put(learners))
    futures: list[lambdamap.Future] = []
    tasks = planner.tasks(1, [("ml_g0", "ml_g", "y", 0, g_classifier), ("ml_g1", "ml_g", "y", 1, g_classifier),
                              ("ml_m", "ml_m", "d", None, True)])
    preds = _run_stage(executor, tasks, inputs, fold_ids, futures)
    model.fit(external_predictions=_external(preds, prep.d))
    return DMLResult(model, fit_stats(executor, futures, 1, time.perf_counter() - start))
