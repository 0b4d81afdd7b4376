"""scikit-learn and DoubleML under ``joblib.parallel_config(backend="lambdamap")`` on the local backend, against
joblib's own loky backend and a plain serial run, side by side in one run (issue 13: never slower than loky).

Cases: a random-forest grid search (GridSearchCV, n_jobs=-1, forests with n_jobs=2 inside, whose trees ask for
threads) and DoubleML's cross-fitting (``DoubleMLPLR.fit(n_jobs_cv=2)`` with random forests). A fourth run,
lambdamap with its cap on threads nested in a batch lifted (``inner_max_num_threads=cpu_count()``), shows what that
cap does. Medians of ``--repeats``; the runs take turns within each repeat, in a rotating order (so a change of load
on this shared machine hits them alike), and the ratio reported is the median of the per-repeat ratios. Identical
results are asserted.

    python benchmarks/joblib_vs_loky.py [--repeats 5] [--case forest_grid_search|doubleml_plr_n_jobs_cv]

Writes benchmarks/results/joblib_vs_loky.json (with ``--case``: joblib_vs_loky_<case>.json).
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


def run_once(case: Any, backend: str, **config: Any) -> tuple[float, Any]:
    start = time.perf_counter()
    with joblib.parallel_config(backend=backend, **config):
        result = case()
    return time.perf_counter() - start, result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--case", choices=["forest_grid_search", "doubleml_plr_n_jobs_cv"], help="run only this case")
    args = parser.parse_args()
    out: dict[str, Any] = {"load_average_before": os.getloadavg(), "repeats": args.repeats, "cases": {}}
    print(f"load average {os.getloadavg()[0]:.2f}")
    with lambdamap.local_executor(workers=2, progress=False) as pwex:
        pwex.warm(["sklearn.ensemble", "doubleml"])
        for name, case in (("forest_grid_search", grid_search), ("doubleml_plr_n_jobs_cv", doubleml_fit)):
            if args.case not in (None, name):
                continue
            runs: dict[str, tuple[str, dict[str, Any]]] = {
                "serial": ("sequential", {}), "loky": ("loky", {}), "lambdamap": ("lambdamap", {"executor": pwex}),
                # diagnostic: threads nested in a batch as many as asked for (the cap off), as loky runs them
                "lambdamap_uncapped": ("lambdamap", {"executor": pwex, "inner_max_num_threads": os.cpu_count()}),
            }
            for backend, config in runs.values():  # untimed: loky starts its workers, every path imports
                run_once(case, backend, **config)
            times: dict[str, list[float]] = {key: [] for key in runs}
            load = os.getloadavg()[0]
            for repeat in range(args.repeats):
                results = {}
                order = list(runs)[repeat % len(runs):] + list(runs)[:repeat % len(runs)]  # no run always first
                for key in order:
                    backend, config = runs[key]
                    times[key].append((timed := run_once(case, backend, **config))[0])
                    results[key] = np.asarray(timed[1])
                assert all(np.array_equal(results["loky"], value) for value in results.values())
            ratios = [ours / loky for ours, loky in zip(times["lambdamap"], times["loky"], strict=True)]
            uncapped = [ours / loky for ours, loky in zip(times["lambdamap_uncapped"], times["loky"], strict=True)]
            row: dict[str, Any] = {f"{key}_s": statistics.median(ts) for key, ts in times.items()}
            row.update(lambdamap_vs_loky=statistics.median(ratios), ratios=ratios,
                       uncapped_vs_loky=statistics.median(uncapped), times=times,
                       load_average=[load, os.getloadavg()[0]])
            out["cases"][name] = row
            print(f"{name}: serial {row['serial_s']:.2f} s | loky {row['loky_s']:.2f} s | lambdamap "
                  f"{row['lambdamap_s']:.2f} s (median ratio {row['lambdamap_vs_loky']:.2f}x loky's time, per repeat "
                  f"{min(ratios):.2f}-{max(ratios):.2f}; nested threads uncapped {row['uncapped_vs_loky']:.2f}x); load "
                  f"{load:.1f}-{os.getloadavg()[0]:.1f}; results identical")
    out["load_average_after"] = os.getloadavg()
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / ("joblib_vs_loky.json" if args.case is None else f"joblib_vs_loky_{args.case}.json")).write_text(
        json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
