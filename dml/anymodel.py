"""Any DoubleML model, cross-fitted on lambdamap: :func:`fit_model`.

The decomposition uses DoubleML's public API only: each task takes a copy of the user's model, gives it one
repetition's splits (``set_sample_splitting``), fits it there with ``store_predictions=True`` and returns its
``predictions``. The client stacks the repetitions into ``(n_obs, n_rep)`` arrays and calls
``model.fit(external_predictions=...)`` on the user's own object, so DoubleML computes the scores, the aggregation
over repetitions and everything after on exactly the predictions a plain ``model.fit()`` makes (same splits, same
learners; learners need a fixed integer ``random_state`` for that, as with any two DoubleML fits).

A task is one repetition (not one fold): DoubleML's public API fits all folds of a repetition at once, and some
models (PLR / PLIV IV-type) need every fold's predictions before their second stage.
"""

from __future__ import annotations

import copy
import functools
import time
from dataclasses import dataclass
from typing import Any

import numpy as np

import lambdamap
from dml import validate
from dml.execution import fit_stats, gather, shared_executor, submit
from dml.result import DMLResult
from lambdamap import ObjectRef

#: The classes fit_model is tested with (tests/dml/test_dml_fit_model.py); other DoubleML subclasses that accept
#: external predictions and take splits through set_sample_splitting work the same way.
TESTED = ("DoubleMLPLR", "DoubleMLPLIV", "DoubleMLIRM", "DoubleMLIIVM", "DoubleMLAPO", "DoubleMLAPOS", "DoubleMLDID",
          "DoubleMLDIDCS")

RepPredictions = dict[Any, dict[str, np.ndarray]]  # treatment column (APOS: treatment level) -> name -> (n_obs,)


@dataclass(frozen=True)
class RepetitionTask:
    """Fit the stored model on the splits of repetition ``rep``."""

    rep: int
    model_name: str

    def describe(self) -> str:
        return f"{self.model_name}, repetition {self.rep}"


def _is_apos(model: Any) -> bool:
    from doubleml import DoubleMLAPOS

    return isinstance(model, DoubleMLAPOS)


def check_supported(model: Any) -> None:
    """Raise a TypeError / NotImplementedError naming what fit_model supports unless ``model`` is one of them."""
    from doubleml.double_ml import DoubleML

    name = type(model).__name__
    supported = f"supported: DoubleML models that accept external predictions, tested with {', '.join(TESTED)}"
    if not (_is_apos(model) or (isinstance(model, DoubleML)
                                and getattr(model, "_external_predictions_implemented", False))):
        raise TypeError(f"fit_model cannot distribute {name}: DoubleML does not accept external predictions for it "
                        f"({supported}); fit it with model.fit() instead")
    weights = getattr(model, "weights", None)
    if isinstance(weights, dict) and "weights_bar" in weights:
        raise NotImplementedError(f"fit_model does not support {name} with weights_bar (one column per repetition): "
                                  "a one-repetition copy would use the first column for every repetition")
    params = getattr(model, "params", None)
    if isinstance(params, dict) and any(v is not None for per_treat in params.values() for per_rep in
                                        per_treat.values() for v in per_rep):
        raise NotImplementedError(f"fit_model does not support {name} with set_ml_nuisance_params(): set the "
                                  "hyperparameters on the learners instead (a one-repetition copy drops them)")
    try:
        one_repetition(model, 0)
    except Exception as exc:
        raise NotImplementedError(f"fit_model cannot give {name} the splits of one repetition ({exc}); {supported}"
                                  ) from exc


def one_repetition(model: Any, rep: int) -> Any:
    """A copy of ``model`` whose only repetition is repetition ``rep`` of ``model``'s splits."""
    clone = copy.deepcopy(model)
    cluster = getattr(model, "smpls_cluster", None)
    clone.set_sample_splitting(all_smpls=[list(model.smpls[rep])],
                               all_smpls_cluster=None if cluster is None else [cluster[rep]])
    return clone


def fit_repetition(task: RepetitionTask, model: ObjectRef[Any]) -> RepPredictions:
    """The worker side: fit repetition ``task.rep`` of the stored model; return its out-of-fold predictions."""
    clone = one_repetition(model.get(), task.rep)
    clone.fit(store_predictions=True)
    if _is_apos(clone):
        return {level: {name: np.asarray(arr[:, 0, 0]) for name, arr in sub.predictions.items()}
                for level, sub in zip(clone.treatment_levels, clone.modellist, strict=True)}
    treatments = list(clone.summary.index)
    out: RepPredictions = {col: {} for col in treatments}
    for name, arr in clone.predictions.items():
        if arr.shape[2] != len(treatments):
            raise NotImplementedError(f"{type(clone).__name__} has {arr.shape[2]} coefficients but "
                                      f"{len(treatments)} treatments: fit_model cannot key its predictions")
        for j, col in enumerate(treatments):
            out[col][name] = np.asarray(arr[:, 0, j])
    return out


def stack(results: list[RepPredictions]) -> dict[Any, dict[str, np.ndarray]]:
    """DoubleML's ``external_predictions`` from the repetitions' predictions: (n_obs, n_rep) per name.

    Predictions a repetition left all NaN (a learner the model's settings did not use) are left out, so DoubleML
    handles them as in its own fit.
    """
    external: dict[Any, dict[str, np.ndarray]] = {}
    for key, names in results[0].items():
        external[key] = {}
        for name in names:
            arr = np.column_stack([rep[key][name] for rep in results])
            if not np.all(np.isnan(arr)):
                external[key][name] = arr
    return external


def fit_model(model: Any, executor: lambdamap.Executor | None = None) -> DMLResult:
    """Fit an unfitted DoubleML model with its cross-fitting on ``executor``; return it fitted (in a DMLResult).

    ``model`` is any DoubleML model you built (e.g. ``DoubleMLAPOS``, ``DoubleMLDID``, ``DoubleMLPLIV``) whose class
    accepts external predictions. One task per repetition fits a copy of it on that repetition's splits; then
    ``model.fit(external_predictions=...)`` runs on this machine, so ``model`` itself ends up fitted and all of
    DoubleML's API (summary, bootstrap, sensitivity analysis, p_adjust ...) works on it. With learners that have a
    fixed integer ``random_state``, the result equals ``model.fit()``.
    """
    start = time.perf_counter()
    validate.check_executor(executor)
    check_supported(model)
    executor = shared_executor() if executor is None else executor
    name = type(model).__name__
    tasks = [RepetitionTask(rep, name) for rep in range(model.n_rep)]
    futures = submit(executor, functools.partial(fit_repetition, model=executor.put(model)), tasks)
    model.fit(external_predictions=stack(gather(tasks, futures)))
    return DMLResult(model, fit_stats(executor, futures, 1, time.perf_counter() - start), futures)
