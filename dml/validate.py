"""Input checks for :func:`dml.fit_plr`, :func:`dml.fit_irm`, :func:`dml.fit_pliv` and :func:`dml.fit_iivm`.

Everything here runs on the client before any data is stored or any task is sent, and every error names the problem
and the fix. ``ValueError`` for bad values, ``TypeError`` for bad types.
"""

from __future__ import annotations

import numbers
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from sklearn.base import clone
from sklearn.utils import get_tags

from dml.tasks import FitData

PLR_SCORES = ("partialling out", "IV-type")
IRM_SCORES = ("ATE", "ATTE")
PLIV_SCORES = ("partialling out", "IV-type")


@dataclass(frozen=True)
class Prepared:
    """The checked input: column roles, the frame for DoubleML and the arrays the tasks use.

    Dtypes are kept as DoubleML keeps them (its data object takes ``frame[cols].to_numpy()`` per role): a float32
    frame is fitted in float32 by both, so results stay identical.
    """

    y: str
    d: list[str]
    x: list[str]
    z: list[str]
    frame: pd.DataFrame  # columns y, d..., x..., z... in their own dtypes, RangeIndex
    data: FitData


def _names(value: Any, what: str) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, Sequence) and value and all(isinstance(v, str) for v in value):
        if len(set(value)) != len(value):
            raise ValueError(f"{what} lists a column twice: {list(value)}")
        return list(value)
    raise TypeError(f"{what} must be a column name or a non-empty list of column names (str), got {value!r}")


def prepare(data: Any, y: Any, d: Any, x: Any, z: Any = None, *, instruments: bool = False) -> Prepared:
    """Check the frame and the column roles; return the arrays. ``x=None`` means every other column.

    ``instruments=True``: ``z`` (one column name or a list) is required (PLIV, IIVM).
    """
    if not isinstance(data, pd.DataFrame):
        raise TypeError(
            f"data must be a pandas DataFrame, got {type(data).__name__}; for arrays build one first, e.g. "
            "pd.DataFrame(np.column_stack([y, d, x]), columns=['y', 'd', *x_names])"
        )
    if not isinstance(y, str):
        raise TypeError(f"y must be one column name (str), got {y!r}")
    d_cols = _names(d, "d")
    z_cols: list[str] = []
    if instruments:
        if z is None or (isinstance(z, Sequence) and not isinstance(z, str) and len(z) == 0):
            raise ValueError("an instrumental variable model needs at least one instrument column: pass z='name' or "
                             "z=[...]")
        z_cols = _names(z, "z")
    if x is None:
        x_cols = [c for c in data.columns if c != y and c not in d_cols and c not in z_cols]
        bad = [c for c in x_cols if not isinstance(c, str)]
        if bad:
            raise TypeError(f"column labels must be strings, got {bad!r}: rename them, e.g. data.columns = "
                            "[str(c) for c in data.columns]")
    else:
        x_cols = _names(x, "x")
    used = [y, *d_cols, *x_cols, *z_cols]
    missing = [c for c in used if c not in data.columns]
    if missing:
        raise ValueError(f"columns {missing} are not in data (its columns: {list(data.columns)[:20]}"
                         f"{' ...' if len(data.columns) > 20 else ''})")
    if y in d_cols:
        raise ValueError(f"column {y!r} cannot be both the outcome y and a treatment d")
    overlap = [c for c in x_cols if c == y or c in d_cols]
    if overlap:
        raise ValueError(f"columns {overlap} are given as covariates x and as y or d: each column has one role")
    z_overlap = [c for c in z_cols if c == y or c in d_cols or c in x_cols]
    if z_overlap:
        raise ValueError(f"columns {z_overlap} are given as instruments z and as y, d or covariates x: each column "
                         "has one role (an instrument must not be a covariate)")
    if not x_cols:
        raise ValueError("there are no covariates: data has no columns besides y and d (pass x=[...] or add columns)")
    duplicated = sorted({c for c in data.columns[data.columns.duplicated()] if c in used})
    if duplicated:
        raise ValueError(f"data has several columns named {duplicated}: rename them so each name is unique")
    frame = data.loc[:, used]
    non_numeric = [f"{c!r} ({frame[c].dtype})" for c in used
                   if not pd.api.types.is_numeric_dtype(frame[c]) or pd.api.types.is_complex_dtype(frame[c])]
    if non_numeric:
        raise TypeError(
            f"columns {', '.join(non_numeric)} are not numeric: encode them as numbers first, e.g. "
            "pd.get_dummies(data, columns=[...], dtype=float) for categories"
        )
    values = frame.to_numpy(dtype=np.float64, na_value=np.nan)
    nan, inf = np.isnan(values).sum(axis=0), np.isinf(values).sum(axis=0)
    bad = [f"{c!r} ({n} missing, {i} infinite)" for c, n, i in zip(used, nan, inf, strict=True) if n or i]
    if bad:
        raise ValueError(f"columns {', '.join(bad)} have missing or infinite values: drop or impute those rows "
                         "first (e.g. data.dropna())")
    if values.shape[0] < 2:
        raise ValueError(f"data has {values.shape[0]} rows; cross-fitting needs at least 2")
    clean = frame.reset_index(drop=True)
    arrays = FitData(x=_block(clean, x_cols), y=clean[y].to_numpy().copy(), d=_block(clean, d_cols),
                     z=_block(clean, z_cols) if z_cols else None)
    return Prepared(y=y, d=d_cols, x=x_cols, z=z_cols, frame=clean, data=arrays)


def _block(frame: pd.DataFrame, cols: list[str]) -> np.ndarray:
    """The columns as one C-contiguous array in their common dtype (what ``DataFrame.to_numpy`` and DoubleML give)."""
    return np.ascontiguousarray(frame[cols].to_numpy())


def is_binary(values: np.ndarray) -> bool:
    """Whether ``values`` holds exactly the two values 0 and 1 (DoubleML's definition of a binary variable)."""
    return bool(np.all((values == 0) | (values == 1)) and np.any(values == 0) and np.any(values == 1))


def check_binary(values: np.ndarray, column: str, why: str) -> None:
    if not is_binary(values):
        shown = np.unique(values)[:6]
        raise ValueError(f"column {column!r} must be binary with values 0 and 1 ({why}); it has values "
                         f"{shown.tolist()}{' ...' if np.unique(values).size > 6 else ''}")


def check_learner(learner: Any, name: str, *, proba: bool = False) -> bool:
    """Check that ``learner`` is a scikit-learn estimator instance; return whether it is a classifier.

    ``proba=True``: the learner must be a classifier with ``predict_proba``.
    """
    if isinstance(learner, type):
        raise TypeError(f"{name} must be a learner instance, got the class {learner.__name__}: "
                        f"pass {learner.__name__}() instead")
    try:
        tags = get_tags(learner)
    except Exception:
        raise TypeError(
            f"{name} must be a scikit-learn estimator (fit/predict, get_params/set_params, estimator tags), got "
            f"{type(learner).__name__}: use a scikit-learn learner or wrap yours in a class that inherits "
            "sklearn.base.BaseEstimator with RegressorMixin or ClassifierMixin"
        ) from None
    for method in ("fit", "get_params", "set_params"):
        if not callable(getattr(learner, method, None)):
            raise TypeError(f"{name} ({learner!r}) has no method {method}(): it is not a scikit-learn estimator")
    try:
        clone(learner)
    except Exception as exc:
        raise TypeError(f"{name} ({learner!r}) cannot be cloned with sklearn.base.clone: {exc}") from exc
    classifier = tags.estimator_type == "classifier"
    if proba and not (classifier and callable(getattr(learner, "predict_proba", None))):
        raise TypeError(f"{name} must be a classifier with predict_proba() (e.g. LogisticRegression() or "
                        f"RandomForestClassifier()), got {learner!r}")
    needed = "predict_proba" if classifier else "predict"
    if not callable(getattr(learner, needed, None)):
        raise TypeError(f"{name} ({learner!r}) has no method {needed}()")
    return classifier


def check_score(score: Any, valid: Sequence[str]) -> str:
    if not isinstance(score, str) or score not in valid:
        raise ValueError(f"unknown score {score!r}: choose one of {', '.join(repr(s) for s in valid)}")
    return score


def check_int(name: str, value: Any, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name} must be an integer, got {value!r}")
    if value < minimum:
        raise ValueError(f"{name} must be at least {minimum}, got {value}")
    return int(value)


def check_seed(seed: Any) -> int | None:
    if seed is None:
        return None
    if isinstance(seed, bool) or not isinstance(seed, numbers.Integral):
        raise TypeError(f"seed must be None or an integer, got {seed!r}")
    if not 0 <= int(seed) < 2**32:
        raise ValueError(f"seed must be in [0, 2**32), got {seed}")
    return int(seed)


def check_clipping(threshold: Any) -> float:
    if isinstance(threshold, bool) or not isinstance(threshold, numbers.Real) or not 0 < float(threshold) < 0.5:
        raise ValueError(f"clipping_threshold must be a number in (0, 0.5), got {threshold!r}")
    return float(threshold)


def check_bool(name: str, value: Any) -> bool:
    if not isinstance(value, bool):
        raise TypeError(f"{name} must be True or False, got {value!r}")
    return value


def check_executor(executor: Any) -> None:
    from lambdamap import Executor

    if executor is not None and not isinstance(executor, Executor):
        raise TypeError(f"executor must be a lambdamap.Executor or None (the shared default executor), got "
                        f"{type(executor).__name__}")
