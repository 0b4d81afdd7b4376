"""dml: double machine learning where every nuisance fit is one lambdamap task.

Natively: PLR, IRM, PLIV and IIVM (:func:`fit_plr`, :func:`fit_irm`, :func:`fit_pliv`, :func:`fit_iivm`); any other
DoubleML model with external-prediction support through :func:`fit_model`.
Cross-fitting runs as a map over (learner, treatment, repetition, fold) on any lambdamap backend (local processes,
AWS Lambda, Dask); the scores, standard errors, aggregation over repetitions and the bootstrap are DoubleML's own,
fed through its ``fit(external_predictions=...)``. With DoubleML's splits and learners with a fixed
``random_state``, ``coef`` and ``se`` equal those of a plain ``doubleml`` fit.

>>> import lambdamap, dml
>>> from doubleml.plm.datasets import make_plr_CCDDHNR2018
>>> from sklearn.linear_model import LassoCV
>>> df = make_plr_CCDDHNR2018(n_obs=500, dim_x=10, alpha=0.5, return_type="DataFrame")
>>> with lambdamap.local_executor(workers=2) as pwex:
...     res = dml.fit_plr(df, y="y", d="d", ml_l=LassoCV(), ml_m=LassoCV(), n_folds=5, n_rep=2, seed=42,
...                       executor=pwex)
>>> res.summary.columns.tolist()
['coef', 'std err', 't', 'P>|t|', '2.5 %', '97.5 %']
>>> res.stats.tasks  # 2 learners x 2 repetitions x 5 folds
20

``executor=None`` uses one shared ``lambdamap.default_executor()`` (configured by the ``LAMBDAMAP_*`` environment
variables or the lambdamap config file; the local process pool by default), created on the first fit, reused by
later fits so that their workers are warm and already hold the data, and shut down when the interpreter exits.

With ``seed`` set, the splits and every learner ``random_state`` left at None are derived from it (see
:mod:`dml.tasks`), so a fit is bit-identical on every run and on every backend with the same library versions
and BLAS kernel.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from dml.anymodel import fit_model
    from dml.execution import FitStats
    from dml.iivm import fit_iivm
    from dml.irm import fit_irm
    from dml.pliv import fit_pliv
    from dml.plr import fit_plr
    from dml.result import DMLResult

__all__ = ["DMLResult", "FitStats", "fit_iivm", "fit_irm", "fit_model", "fit_pliv", "fit_plr"]

# Imported on first use: workers import dml.tasks to run a task and should not pay for importing doubleml.
_LAZY = {"DMLResult": "dml.result", "FitStats": "dml.execution", "fit_iivm": "dml.iivm", "fit_irm": "dml.irm",
         "fit_model": "dml.anymodel", "fit_pliv": "dml.pliv", "fit_plr": "dml.plr"}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'dml' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted([*globals(), *__all__])
