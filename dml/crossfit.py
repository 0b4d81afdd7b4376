"""The cross-fitting every native model shares: splits, the tasks of a stage, running a stage, and turning the
tasks' out-of-fold predictions into DoubleML's ``external_predictions``.

::

    splits (fold ids) ─▶ executor.put(data, folds, learners) ─▶ map stage 1 ─▶ [theta_init ─▶ put ─▶ map stage 2]
      ─▶ assemble (n_obs, n_rep) predictions ─▶ model.fit(external_predictions=...)

The per-model modules (:mod:`dml.plr`, :mod:`dml.irm`, :mod:`dml.pliv`, :mod:`dml.iivm`) say which tasks a fit runs;
this module runs them.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np

import lambdamap
from dml import splits, validate
from dml.execution import fit_stats, gather, shared_executor, submit_stage
from dml.result import DMLResult
from dml.tasks import FitData, NuisanceTask, Target, TaskInputs, derive_random_state, needs_random_state

Predictions = dict[tuple[str, int], np.ndarray]  # (prediction name, treatment) -> (n_obs, n_rep)


def fold_ids(n_obs: int, n_folds: Any, n_rep: Any, smpls: Any, seed: int | None, strata: np.ndarray | None = None,
             strata_label: str = "treatment d") -> np.ndarray:
    """The splits as fold ids: from ``smpls`` when given (then n_folds and n_rep come from it), else drawn."""
    if smpls is not None:
        return splits.from_smpls(smpls, n_obs)
    n_folds = validate.check_int("n_folds", n_folds, 2)
    n_rep = validate.check_int("n_rep", n_rep, 1)
    return splits.draw(n_obs, n_folds, n_rep, seed, strata, strata_label)


@dataclass(frozen=True)
class Kind:
    """One kind of nuisance fit, repeated for every (repetition, fold, treatment).

    ``name``: DoubleML's prediction name; ``learner``: key into the learners; ``seed_name`` / ``seed_instrument``:
    what the derived random state is keyed by (see :func:`dml.tasks.derive_random_state`; default: ``name``).
    """

    name: str
    learner: str
    target: Target
    train_where: tuple[Literal["d", "z"], int] | None = None
    proba: bool = False
    instrument: int = 0
    seed_name: str | None = None
    seed_instrument: int | None = None


class Planner:
    """Builds the tasks of one fit; derives per-task random states from the seed (see :mod:`dml.tasks`)."""

    def __init__(self, fold_ids: np.ndarray, learners: dict[str, Any], seed: int | None) -> None:
        self.n_rep, self.n_folds = fold_ids.shape[0], int(fold_ids.max()) + 1
        self.seeded = {key: seed is not None and needs_random_state(est) for key, est in learners.items()}
        self.seed = seed

    def tasks(self, n_treat: int, kinds: Sequence[Kind]) -> list[NuisanceTask]:
        """One task per (repetition, fold, treatment, kind).

        Repetition-major order, kinds innermost, so that each batch of consecutive tasks mixes the learners.
        """
        out = []
        for rep in range(self.n_rep):
            for fold in range(self.n_folds):
                for j in range(n_treat):
                    for kind in kinds:
                        state = None
                        if self.seed is not None and self.seeded[kind.learner]:
                            state = derive_random_state(self.seed, kind.seed_name or kind.name, j, rep, fold,
                                                        kind.seed_instrument)
                        out.append(NuisanceTask(name=kind.name, learner=kind.learner, treatment=j, rep=rep,
                                                fold=fold, target=kind.target, train_where=kind.train_where,
                                                proba=kind.proba, random_state=state, instrument=kind.instrument))
        return out


def assemble(tasks: Sequence[NuisanceTask], results: Sequence[np.ndarray], fold_ids: np.ndarray) -> Predictions:
    """Put each task's test-fold predictions into its rows of a (n_obs, n_rep) array per (name, treatment), in the
    tasks' dtype (see :func:`dml.tasks.prediction_dtype`)."""
    n_rep, n_obs = fold_ids.shape
    preds: Predictions = {}
    for task, values in zip(tasks, results, strict=True):
        arr = preds.setdefault((task.name, task.treatment), np.full((n_obs, n_rep), np.nan, dtype=values.dtype))
        test = fold_ids[task.rep] == task.fold
        if values.shape != (int(test.sum()),):
            raise ValueError(f"{task.describe()} returned predictions of shape {values.shape}, expected "
                             f"({int(test.sum())},): the learner's predict must return one value per row")
        arr[test, task.rep] = values
    return preds


def external(preds: Predictions, d_cols: Sequence[str]) -> dict[str, dict[str, np.ndarray]]:
    """DoubleML's ``external_predictions``: ``{treatment column: {prediction name: (n_obs, n_rep)}}``."""
    out: dict[str, dict[str, np.ndarray]] = {col: {} for col in d_cols}
    for (name, j), arr in preds.items():
        out[d_cols[j]][name] = arr
    return out


class CrossFit:
    """The maps of one fit on one executor: stores the shared inputs once, runs stages, keeps every future (for the
    stats) and finally hands the predictions to DoubleML."""

    def __init__(self, executor: lambdamap.Executor | None, data: FitData, fold_ids: np.ndarray,
                 learners: dict[str, Any], seed: int | None) -> None:
        self.start = time.perf_counter()
        self.executor = shared_executor() if executor is None else executor
        self.fold_ids = fold_ids
        self.planner = Planner(fold_ids, learners, seed)
        self.inputs = TaskInputs(data=self.executor.put(data), folds=self.executor.put(fold_ids),
                                 learners=self.executor.put(learners))
        self.futures: list[lambdamap.Future] = []
        self.stages = 0

    def run(self, n_treat: int, kinds: Sequence[Kind], theta: np.ndarray | None = None) -> Predictions:
        """One stage: a task per (repetition, fold, treatment, kind); ``theta`` (n_treat, n_rep) for IV-type."""
        tasks = self.planner.tasks(n_treat, kinds)
        inputs = self.inputs
        if theta is not None:
            inputs = TaskInputs(inputs.data, inputs.folds, inputs.learners, self.executor.put(theta))
        futures = submit_stage(self.executor, tasks, inputs)
        self.futures.extend(futures)
        self.stages += 1
        return assemble(tasks, gather(tasks, futures), self.fold_ids)

    def finish(self, model: Any, preds: Predictions, d_cols: Sequence[str]) -> DMLResult:
        """DoubleML's own scores, variance and aggregation over repetitions, on our predictions."""
        model.fit(external_predictions=external(preds, d_cols))
        return DMLResult(model, fit_stats(self.executor, self.futures, self.stages, time.perf_counter() - self.start),
                         self.futures)

