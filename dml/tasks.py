"""One nuisance fit as a task: :class:`NuisanceTask` says which, :func:`fit_predict` does it (a pure function).

A task fits a fresh clone of one learner on the training rows of one fold of one repetition (for one treatment) and
predicts on the fold's test rows, exactly as DoubleML's ``_dml_cv_predict`` does, so the out-of-fold predictions are
DoubleML's own. The data, the splits and the learners live in storage (:class:`TaskInputs` holds their refs): a task
itself is a few integers and names.

**Random states.** When a fit has a ``seed``, every learner parameter ``random_state`` (also nested ones such as
``rf__random_state`` in a pipeline) that is ``None`` gets, in each task, the integer
:func:`derive_random_state` ``(seed, name, treatment, rep, fold)`` =
``np.random.SeedSequence(seed, spawn_key=(LEARNER_IDS[name], treatment, rep, fold)).generate_state(1)[0]``
(with the instrument's index appended to the spawn key for PLIV's per-instrument ``ml_m`` when there are several).
So results do not depend on which worker runs which task or in what order. Integer random states are left as they
are (that is how a fit reproduces a DoubleML fit exactly).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
from sklearn.base import clone
from sklearn.preprocessing import LabelEncoder

from lambdamap import ObjectRef

#: Stable numbers of the prediction names, used to derive per-task random states (never renumber them).
LEARNER_IDS = {"ml_l": 0, "ml_m": 1, "ml_g": 2, "ml_g0": 3, "ml_g1": 4, "ml_r": 5, "ml_r0": 6, "ml_r1": 7}

#: What a task learns: the outcome, its treatment, an instrument (``instrument`` says which) or, for the IV-type
#: scores, ``y - theta_init * d``.
Target = Literal["y", "d", "z", "y_minus_theta_d"]


@dataclass(frozen=True)
class NuisanceTask:
    """One fit of one learner on one fold.

    ``name`` is DoubleML's name of the predictions (``ml_l``, ``ml_m``, ``ml_m_<z>``, ``ml_g``, ``ml_g0``, ``ml_r1``
    ...); ``learner`` the key of the learner in the stored learners (``ml_g0`` and ``ml_g1`` both use ``ml_g``).
    ``target``: ``y``, the treatment ``d``, the instrument ``z[:, instrument]``, or ``y - theta_init * d`` (IV-type).
    ``train_where``: fit only on the training rows where the treatment (``("d", v)``, IRM) or the first instrument
    (``("z", v)``, IIVM) equals ``v``. ``proba``: predict ``predict_proba(...)[:, 1]`` (classifiers).
    """

    name: str
    learner: str
    treatment: int
    rep: int
    fold: int
    target: Target
    train_where: tuple[Literal["d", "z"], int] | None = None
    proba: bool = False
    random_state: int | None = None
    instrument: int = 0

    def describe(self) -> str:
        return f"{self.name} for treatment {self.treatment}, repetition {self.rep}, fold {self.fold}"


@dataclass(frozen=True)
class FitData:
    """The numbers of one fit: covariates ``x`` (n_obs, n_x), outcome ``y`` (n_obs,), treatments ``d`` (n_obs, n_d)
    and instruments ``z`` (n_obs, n_z) or None. Each in the dtype DoubleML's data object holds (float32 stays float32).
    """

    x: np.ndarray
    y: np.ndarray
    d: np.ndarray
    z: np.ndarray | None = None

    @property
    def n_obs(self) -> int:
        return int(self.y.shape[0])

    def features(self, treatment: int) -> np.ndarray:
        """The learners' input for one treatment: x, then the other treatments (DoubleML's column order with
        ``use_other_treat_as_covariate=True``)."""
        if self.d.shape[1] == 1:
            return self.x
        others = [j for j in range(self.d.shape[1]) if j != treatment]
        return np.hstack([self.x, self.d[:, others]])


@dataclass(frozen=True)
class TaskInputs:
    """References to what every task of a fit shares, stored once with :meth:`lambdamap.Executor.put`.

    ``folds``: fold ids (n_rep, n_obs); ``learners``: dict name -> unfitted learner; ``theta``: the initial estimates
    (n_d, n_rep) for IV-type targets, else None.
    """

    data: ObjectRef[FitData]
    folds: ObjectRef[np.ndarray]
    learners: ObjectRef[dict[str, Any]]
    theta: ObjectRef[np.ndarray] | None = None


def derive_random_state(seed: int, name: str, treatment: int, rep: int, fold: int,
                        instrument: int | None = None) -> int:
    """The random_state a task gives learners whose random_state is None (see the module docstring)."""
    key = (LEARNER_IDS[name], treatment, rep, fold) + (() if instrument is None else (instrument,))
    seq = np.random.SeedSequence(seed, spawn_key=key)
    return int(seq.generate_state(1, dtype=np.uint32)[0])


def _unset_random_states(learner: Any) -> list[str]:
    return [key for key, value in learner.get_params(deep=True).items()
            if (key == "random_state" or key.endswith("__random_state")) and value is None]


def needs_random_state(learner: Any) -> bool:
    """Whether ``learner`` has a ``random_state`` parameter (possibly nested) left at None."""
    return bool(_unset_random_states(learner))


def fit_predict(task: NuisanceTask, data: FitData, fold_ids: np.ndarray, learner: Any,
                theta: np.ndarray | None = None) -> np.ndarray:
    """Fit a clone of ``learner`` on the task's training rows; return its predictions for the fold's test rows (in
    row order). Pure: same inputs, same output. Non-finite predictions raise ValueError, as in DoubleML."""
    folds = fold_ids[task.rep]
    d = data.d[:, task.treatment]
    train_mask = folds != task.fold
    if task.train_where is not None:
        column, value = task.train_where
        train_mask &= (d if column == "d" else _instruments(data, task)[:, 0]) == value
    train, test = np.flatnonzero(train_mask), np.flatnonzero(folds == task.fold)
    if task.target == "y":
        target = data.y
    elif task.target == "d":
        target = d
    elif task.target == "z":
        target = _instruments(data, task)[:, task.instrument]
    else:
        if theta is None:
            raise ValueError(f"task {task.describe()} needs the initial estimate theta, which was not given")
        target = data.y - theta[task.treatment, task.rep] * d  # as DoubleML's PLR computes it
    if task.proba:
        target = LabelEncoder().fit_transform(target)  # sklearn's cross_val_predict encodes classes the same way
    estimator = clone(learner)
    if task.random_state is not None:
        estimator.set_params(**{key: task.random_state for key in _unset_random_states(estimator)})
    x = data.features(task.treatment)
    estimator.fit(x[train], target[train])
    raw = estimator.predict_proba(x[test])[:, 1] if task.proba else estimator.predict(x[test])
    preds = np.asarray(raw, dtype=prediction_dtype(np.asarray(raw).dtype, task.train_where is None))
    if not np.all(np.isfinite(preds)):  # DoubleML's own check; a NaN would otherwise end up in coef silently
        raise ValueError(f"Predictions from learner {learner!r} for {task.name} are not finite "
                         f"({int(np.sum(~np.isfinite(preds)))} of {preds.size}) in repetition {task.rep}, fold "
                         f"{task.fold} (treatment {task.treatment})")
    return preds


def prediction_dtype(learner_dtype: np.dtype[Any], all_training_rows: bool) -> type[np.floating[Any]]:
    """The dtype DoubleML's own fit holds a learner's predictions in, which its scores are then computed in.

    DoubleML (``_dml_cv_predict``) uses sklearn's ``cross_val_predict`` when the training rows of the folds are all
    other rows: the predictions keep the learner's dtype (float32 for a float32 frame). For fits on a subgroup
    (IRM's d == 0 / 1, IIVM's z == 0 / 1) it fills a float64 array. Keeping the same dtype keeps results equal.
    """
    return np.float32 if all_training_rows and learner_dtype == np.float32 else np.float64


def _instruments(data: FitData, task: NuisanceTask) -> np.ndarray:
    if data.z is None:
        raise ValueError(f"task {task.describe()} needs instruments, but the data has none")
    return data.z


def run(task: NuisanceTask, inputs: TaskInputs) -> np.ndarray:
    """The worker entry point: load the shared inputs (once per warm worker) and run :func:`fit_predict`."""
    learners = inputs.learners.get()
    theta = inputs.theta.get() if inputs.theta is not None else None
    return fit_predict(task, inputs.data.get(), inputs.folds.get(), learners[task.learner], theta)
