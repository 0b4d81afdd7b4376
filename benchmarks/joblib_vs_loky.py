"""scikit-learn and DoubleML under ``joblib.parallel_config(backend="lambdamap")`` on the local backend, against
joblib's own loky backend and a plain serial run, side by side in one run (issue 13: never slower than loky).

Cases: a random-forest grid search (GridSearchCV, n_jobs=-1, forests with n_jobs=2 inside, whose trees ask for
threads) and DoubleML's cross-fitting (``DoubleMLPLR.fit(n_jobs_cv=2)`` with random forests). Medians of
``--repeats``; identical results are asserted.

    python benchmarks/joblib_vs_loky.py [--repeats 3]

Writes benchmarks/results/joblib_vs_loky.json.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time
from pathlib import Path
from typing import Any

import joblib
import numpy as np

import lambdamap
import lambdamap.integrations.joblib  # noqa: F401 - registers the backend

RESULTS = Path(__file__).parent / "results"


def grid_search() -> Any:
    from sklearn.datasets import make_classification
    from sklearn.ensemble import RandomForestClassifier
    from sklearn.model_selection import GridSearchCV

    X, y = make_classification(n_samples=600, n_features=12, random_state=0)
    grid = {"max_depth": [3, 5, 8], "min_samples_leaf": [1, 5]}
    search = GridSearchCV(RandomForestClassifier(n_estimators=40, n_jobs=2, random_state=0), grid, cv=3, n_jobs=-1)
    return search.fit(X, y).cv_results_["mean_test_score"]


def doubleml_fit() -> Any:
    import doubleml
    from doubleml.plm.datasets import make_plr_CCDDHNR2018
    from sklearn.ensemble import RandomForestRegressor

    np.random.seed(1)
    data = make_plr_CCDDHNR2018(n_obs=800, dim_x=10, alpha=0.5)
    forest = RandomForestRegressor(n_estimators=50, max_depth=5, random_state=0)
    model = doubleml.DoubleMLPLR(data, forest, forest, n_folds=4, n_rep=2)
    return model.fit(n_jobs_cv=2).all_coef


def measure(case: Any, backend: str | None, repeats: int, **config: Any) -> tuple[float, Any]:
    times, result = [], None
    for _ in range(repeats):
        start = time.perf_counter()
        if backend is None:
            with joblib.parallel_config(backend="sequential"):
                result = case()
        else:
            with joblib.parallel_config(backend=backend, **config):
                result = case()
        times.append(time.perf_counter() - start)
    return statistics.median(times), result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    out: dict[str, Any] = {"load_average_before": os.getloadavg(), "cases": {}}
    print(f"load average {os.getloadavg()[0]:.2f}")
    with lambdamap.local_executor(workers=2, progress=False) as pwex:
        pwex.warm(["sklearn.ensemble", "doubleml"])
        for name, case in (("forest_grid_search", grid_search), ("doubleml_plr_n_jobs_cv", doubleml_fit)):
            serial_s, serial = measure(case, None, args.repeats)
            loky_s, loky = measure(case, "loky", args.repeats)
            ours_s, ours = measure(case, "lambdamap", args.repeats, executor=pwex)
            assert np.array_equal(np.asarray(serial), np.asarray(ours)) and np.array_equal(np.asarray(loky),
                                                                                         np.asarray(ours))
            row = {"serial_s": serial_s, "loky_s": loky_s, "lambdamap_s": ours_s, "lambdamap_vs_loky": ours_s / loky_s}
            out["cases"][name] = row
            print(f"{name}: serial {serial_s:.2f} s | loky {loky_s:.2f} s | lambdamap {ours_s:.2f} s "
                  f"({row['lambdamap_vs_loky']:.2f}x loky's time); results identical")
    out["load_average_after"] = os.getloadavg()
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "joblib_vs_loky.json").write_text(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
