"""The Dask backend vs the local backend, side by side in one run: executor overhead and a dml PLR fit.

1. Overhead: ``map(square, range(N))`` plus collecting every result, N = 10, 100, 1000, 10000, on
   * ``local``: :func:`lambdamap.local_executor` with 2 warm worker processes,
   * ``dask``: :func:`lambdamap.dask_executor` on a ``distributed.LocalCluster`` of 2 worker processes (1 thread
     each), the same work through the same storage layout and the same ``run_task``,
   * ``dask_native``: for reference, Dask's own ``client.map(square, range(N))`` + ``gather`` (one task per call,
     no storage) on the same cluster.
   Medians of ``--repeats`` runs after a warm-up; ratios dask / local.
2. dml: ``dml.fit_plr`` (random forests, same seed) on each backend; the estimates must be identical.

Writes ``benchmarks/results/dask.json``. Run: ``python benchmarks/dask_overhead.py`` (about 2 minutes on 2 cores).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import time
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import distributed
import numpy as np

import lambdamap

RESULTS = Path(__file__).parent / "results" / "dask.json"
SIZES = (10, 100, 1000, 10_000)


def square(x: int) -> int:
    return x * x


def timed(run: Callable[[], Any], repeats: int) -> list[float]:
    run()  # warm-up
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        run()
        times.append(time.perf_counter() - start)
    return times


def overhead(executors: dict[str, lambdamap.Executor], client: Any, repeats: int) -> dict[str, Any]:
    rows: dict[str, Any] = {}
    for n in SIZES:
        expected = [x * x for x in range(n)]
        runs: dict[str, Callable[[], Any]] = {
            name: (lambda pwex=pwex, n=n: lambdamap.get_all_results(pwex.map(square, range(n)), timeout=600))
            for name, pwex in executors.items()
        }
        runs["dask_native"] = lambda n=n: client.gather(client.map(square, range(n), pure=False))
        row: dict[str, Any] = {}
        for name, run in runs.items():
            assert run() == expected, name
            times = timed(run, repeats)
            row[name] = {"median_seconds": statistics.median(times), "seconds": times}
        row["ratio_dask_over_local"] = row["dask"]["median_seconds"] / row["local"]["median_seconds"]
        row["ratio_dask_over_dask_native"] = row["dask"]["median_seconds"] / row["dask_native"]["median_seconds"]
        rows[str(n)] = row
        print(f"  N={n:>6}: local {row['local']['median_seconds'] * 1e3:8.1f} ms   dask "
              f"{row['dask']['median_seconds'] * 1e3:8.1f} ms   dask_native "
              f"{row['dask_native']['median_seconds'] * 1e3:8.1f} ms   dask/local "
              f"{row['ratio_dask_over_local']:5.2f}x", flush=True)
    return rows


def dml_fits(executors: dict[str, lambdamap.Executor], repeats: int, n_obs: int) -> dict[str, Any]:
    from doubleml.plm.datasets import make_plr_CCDDHNR2018
    from sklearn.ensemble import RandomForestRegressor

    import dml

    np.random.seed(3141)
    df = make_plr_CCDDHNR2018(n_obs=n_obs, dim_x=20, alpha=0.5, return_type="DataFrame")
    forest = RandomForestRegressor(n_estimators=100, max_features=20, max_depth=5, min_samples_leaf=2, n_jobs=1)
    fits: dict[str, Any] = {}
    times: dict[str, list[float]] = {}
    for name, pwex in executors.items():
        def run(pwex: lambdamap.Executor = pwex, name: str = name) -> None:
            fits[name] = dml.fit_plr(df, "y", "d", ml_l=forest, ml_m=forest, n_folds=5, n_rep=2, seed=42,
                                     executor=pwex)
        times[name] = timed(run, repeats)
        print(f"  dml.fit_plr on {name:<6} {statistics.median(times[name]):6.2f} s", flush=True)
    identical = all(np.array_equal(fits[name].coef, fits["local"].coef) and
                    np.array_equal(fits[name].se, fits["local"].se) for name in fits)
    medians = {name: statistics.median(t) for name, t in times.items()}
    return {
        "model": "PLR, RandomForestRegressor(100 trees, max_depth 5) for ml_l and ml_m, 5 folds, n_rep 2, seed 42",
        "n_obs": n_obs, "seconds": times, "median_seconds": medians,
        "ratio_dask_over_local": medians["dask"] / medians["local"],
        "estimates_identical": identical, "coef": float(fits["local"].coef[0]), "se": float(fits["local"].se[0]),
        "tasks": fits["local"].stats.tasks,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3, help="timed runs per measurement (medians reported)")
    parser.add_argument("--dml-n-obs", type=int, default=1000)
    parser.add_argument("--skip-dml", action="store_true")
    parser.add_argument("--output", type=Path, default=RESULTS)
    args = parser.parse_args()
    warnings.filterwarnings("ignore", category=FutureWarning)

    cluster = distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, host="127.0.0.1",
                                       dashboard_address=None, scheduler_kwargs={"dashboard_address": "127.0.0.1:0"})
    client = distributed.Client(cluster, set_as_default=False)
    try:
        with lambdamap.local_executor(workers=2, progress=False) as local, \
                lambdamap.dask_executor(client, progress=False) as dask:
            executors = {"local": local, "dask": dask}
            print("executor overhead: map(square, range(N)) + results, median of", args.repeats, flush=True)
            report: dict[str, Any] = {
                "machine": {"cpu_count": os.cpu_count(), "python": platform.python_version(),
                            "distributed": distributed.__version__, "lambdamap": lambdamap.__version__},
                "setup": "local: 2 worker processes; dask: LocalCluster(n_workers=2, threads_per_worker=1, "
                         "processes=True); both with LocalStorage in a temporary folder",
                "repeats": args.repeats,
                "overhead": overhead(executors, client, args.repeats),
            }
            if not args.skip_dml:
                report["dml_plr"] = dml_fits(executors, args.repeats, args.dml_n_obs)
    finally:
        client.close()
        cluster.close()
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(report, indent=2) + "\n")
    print(f"saved {args.output}")
    if "dml_plr" in report and not report["dml_plr"]["estimates_identical"]:
        raise SystemExit("the dml estimates differ between the backends: the comparison is void")


if __name__ == "__main__":
    main()
