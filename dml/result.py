"""The result of a dml fit: DoubleML's own fitted model, plus the stats of the maps that made its predictions."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

from dml.execution import FitStats


class DMLResult:
    """A fitted double machine learning model.

    ``coef`` and ``se`` are arrays with one entry per treatment; ``summary``, :meth:`confint` and :meth:`bootstrap`
    are DoubleML's. ``model`` is the fitted ``doubleml.DoubleMLPLR`` / ``DoubleMLIRM`` object itself (its
    ``predictions``, ``smpls``, ``all_coef``, ``sensitivity_analysis()`` ... all work). ``stats`` describes the run;
    ``futures`` are the fit's lambdamap futures (for ``executor.job_summary(res.futures)`` or ``lambdamap.plot``).
    """

    def __init__(self, model: Any, stats: FitStats, futures: Sequence[Any] = ()) -> None:
        self.model = model
        self.stats = stats
        self.futures = list(futures)

    @property
    def coef(self) -> np.ndarray:
        """The estimates, one per treatment (aggregated over repetitions as DoubleML does: the median)."""
        return np.array(self.model.coef, dtype=float)

    @property
    def se(self) -> np.ndarray:
        """The standard errors, one per treatment."""
        return np.array(self.model.se, dtype=float)

    @property
    def t_stat(self) -> np.ndarray:
        return np.array(self.model.t_stat, dtype=float)

    @property
    def pval(self) -> np.ndarray:
        return np.array(self.model.pval, dtype=float)

    @property
    def summary(self) -> pd.DataFrame:
        """coef, std err, t, P>|t| and the 95 % confidence interval, one row per treatment."""
        return self.model.summary

    def confint(self, level: float = 0.95, joint: bool = False) -> pd.DataFrame:
        """Confidence intervals; ``joint=True`` needs :meth:`bootstrap` first (as in DoubleML)."""
        return self.model.confint(joint=joint, level=level)

    def bootstrap(self, method: str = "normal", n_rep_boot: int = 500) -> DMLResult:
        """DoubleML's multiplier bootstrap (``"normal"``, ``"Bayes"`` or ``"wild"``); returns this result.

        Like DoubleML it draws from numpy's global random state: call ``np.random.seed(...)`` first to repeat it.
        """
        self.model.bootstrap(method=method, n_rep_boot=n_rep_boot)
        return self

    def __repr__(self) -> str:
        return (f"<dml.DMLResult {type(self.model).__name__} coef={np.array2string(self.coef, precision=4)} "
                f"se={np.array2string(self.se, precision=4)} tasks={self.stats.tasks} "
                f"wall={self.stats.wall_seconds:.2f}s>")
