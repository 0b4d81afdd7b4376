"""Sample splitting, stored compactly as fold ids: one small integer array per repetition.

``fold_ids[r, i] == k`` means observation ``i`` is in the test fold ``k`` of repetition ``r``; the training rows of that
fold are all other rows (standard cross-fitting). :func:`to_smpls` turns fold ids into DoubleML's format (a list over
repetitions of lists over folds of ``(train, test)`` index arrays, sorted as DoubleML sorts them), :func:`from_smpls`
turns DoubleML's format into fold ids.

Default splits (:func:`draw`) are DoubleML's: :class:`sklearn.model_selection.RepeatedKFold` (stratified on the
treatment for IRM) with ``random_state=seed``. ``seed=None`` draws from numpy's global random state as DoubleML does,
and ``seed=s`` gives exactly the splits ``DoubleMLPLR`` / ``DoubleMLIRM`` draw after ``np.random.seed(s)``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from sklearn.model_selection import RepeatedKFold, RepeatedStratifiedKFold

Smpls = list[list[tuple[np.ndarray, np.ndarray]]]


def _fold_dtype(n_folds: int) -> type[np.integer[Any]]:
    return np.int16 if n_folds < 2**15 else np.int32


def check_counts(n_obs: int, n_folds: int, strata: np.ndarray | None = None, strata_label: str = "treatment d") -> None:
    """Fail early when there are fewer observations (per stratum) than folds."""
    if n_folds > n_obs:
        raise ValueError(f"n_folds={n_folds} is more than the {n_obs} observations: use at most {n_obs} folds")
    if strata is not None:
        values, counts = np.unique(strata, return_counts=True)
        if counts.min() < n_folds:
            value = values[counts.argmin()]
            raise ValueError(f"n_folds={n_folds} is more than the {counts.min()} observations with {strata_label} "
                             f"== {value:g}: the splits are stratified on it, use at most {counts.min()} folds")


def draw(n_obs: int, n_folds: int, n_rep: int, seed: int | None, strata: np.ndarray | None = None,
         strata_label: str = "treatment d") -> np.ndarray:
    """DoubleML's default splits as fold ids of shape ``(n_rep, n_obs)``; ``strata``: stratify on these values."""
    check_counts(n_obs, n_folds, strata, strata_label)
    # One random stream, as DoubleML's draws share numpy's global state (None keeps using that global state).
    rng = None if seed is None else np.random.RandomState(seed)
    splitter: RepeatedKFold | RepeatedStratifiedKFold = RepeatedKFold(
        n_splits=n_folds, n_repeats=n_rep, random_state=rng)
    if strata is not None:
        # DoubleMLIRM / DoubleMLIIVM draw unstratified splits in their base class first and then the stratified ones
        # they use: draw and drop the first set too, so that seed=s gives their splits after np.random.seed(s).
        for _ in splitter.split(np.zeros(n_obs)):
            pass
        splitter = RepeatedStratifiedKFold(n_splits=n_folds, n_repeats=n_rep, random_state=rng)
    fold_ids = np.empty((n_rep, n_obs), dtype=_fold_dtype(n_folds))
    for i, (_, test) in enumerate(splitter.split(np.zeros(n_obs), strata)):
        fold_ids[i // n_folds, test] = i % n_folds
    return fold_ids


def _index_array(value: Any, where: str, n_obs: int) -> np.ndarray:
    arr = np.asarray(value)
    if arr.ndim != 1 or (arr.size and not np.issubdtype(arr.dtype, np.integer)):
        raise TypeError(f"smpls{where} must be a one-dimensional array of integer row indices, got {arr.dtype} "
                        f"with shape {arr.shape}")
    if arr.size and (arr.min() < 0 or arr.max() >= n_obs):
        raise ValueError(f"smpls{where} has indices outside [0, {n_obs})")
    return arr.astype(np.intp, copy=False)


def from_smpls(smpls: Any, n_obs: int) -> np.ndarray:
    """Fold ids from splits in DoubleML's format (a list of folds, or a list over repetitions of lists of folds).

    Each repetition's test sets must partition the rows, and each fold must train on all rows outside its test set.
    """
    if not isinstance(smpls, Sequence) or isinstance(smpls, (str, bytes)) or not smpls:
        raise TypeError("smpls must be a non-empty list over repetitions of lists over folds of (train, test) index "
                        "arrays, as DoubleML's `smpls` attribute holds")
    reps = [smpls] if _is_pair(smpls[0]) else list(smpls)
    if not all(isinstance(rep, list) and rep and all(_is_pair(p) for p in rep) for rep in reps):
        raise TypeError("smpls must be a list over repetitions of lists over folds of (train, test) tuples of index "
                        "arrays (or, for one repetition, a list of (train, test) tuples)")
    n_folds = len(reps[0])
    if any(len(rep) != n_folds for rep in reps):
        raise ValueError(f"every repetition of smpls needs the same number of folds, got {[len(r) for r in reps]}")
    if n_folds < 2:
        raise ValueError("smpls needs at least 2 folds per repetition for cross-fitting")
    fold_ids = np.full((len(reps), n_obs), -1, dtype=_fold_dtype(n_folds))
    for r, rep in enumerate(reps):
        for k, (_, test) in enumerate(rep):
            test = _index_array(test, f"[{r}][{k}] (test)", n_obs)
            if np.unique(test).size != test.size or np.any(fold_ids[r, test] != -1):
                raise ValueError(f"the test sets of repetition {r} of smpls overlap: each row must be in one test fold")
            fold_ids[r, test] = k
        if np.any(fold_ids[r] == -1):
            raise ValueError(f"the test sets of repetition {r} of smpls miss {(fold_ids[r] == -1).sum()} rows: "
                             "they must partition all rows")
        for k, (train, _) in enumerate(rep):
            train = np.sort(_index_array(train, f"[{r}][{k}] (train)", n_obs))
            if not np.array_equal(train, np.flatnonzero(fold_ids[r] != k)):
                raise ValueError(f"smpls[{r}][{k}]: the training rows must be all rows outside the fold's test rows "
                                 "(dml runs standard cross-fitting)")
    return fold_ids


def _is_pair(value: Any) -> bool:
    """A fold in DoubleML's format: a tuple (train, test)."""
    return isinstance(value, tuple) and len(value) == 2


def to_smpls(fold_ids: np.ndarray) -> Smpls:
    """DoubleML's format: ``smpls[r][k] == (train_rows, test_rows)``, both sorted."""
    n_folds = int(fold_ids.max()) + 1
    return [[(np.flatnonzero(rep != k), np.flatnonzero(rep == k)) for k in range(n_folds)] for rep in fold_ids]


def check_both_classes(fold_ids: np.ndarray, labels: np.ndarray, column: str, within: np.ndarray | None = None,
                       hint: str = "use stratified splits") -> None:
    """Every training set (restricted to the rows where ``within`` is True, if given) must hold both classes of a
    binary ``labels``, else a classifier cannot be fitted there."""
    for r, rep in enumerate(fold_ids):
        for k in range(int(rep.max()) + 1):
            rows = rep != k if within is None else (rep != k) & within
            train = labels[rows]
            if not (np.any(train == 0) and np.any(train == 1)):
                where = "" if within is None else " (of the subgroup it is fitted on)"
                raise ValueError(f"the training rows{where} of fold {k} in repetition {r} have only one value of "
                                 f"{column!r}: every training set needs both 0 and 1 ({hint})")
