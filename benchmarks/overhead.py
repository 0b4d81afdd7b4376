"""Executor overhead: map(square, range(N)) plus collecting every result, side by side in one run.

Compares lambdamap's local backend with a warm ``concurrent.futures.ProcessPoolExecutor``, ``joblib.Parallel`` and,
when it is installed (here or in the interpreter given by ``--lithops-python``), Lithops' localhost backend. Every
pool is created and warmed up before timing; each cell is the median of ``--repeats`` runs.

    python benchmarks/overhead.py [--sizes 10 100 1000 10000] [--repeats 3] [--workers 2]
                                  [--lithops-python /path/to/python] [--lithops-max-n 1000]

Writes benchmarks/results/overhead.json and prints a Markdown table with ratios.
"""

from __future__ import annotations

import argparse
import concurrent.futures as cf
import json
import os
import platform
import statistics
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable
from pathlib import Path

RESULTS = Path(__file__).parent / "results"


def square(x: int) -> int:
    return x * x


def median_time(run: Callable[[int], list[int]], n: int, repeats: int) -> float:
    expected = [x * x for x in range(n)]
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        result = run(n)
        times.append(time.perf_counter() - start)
        if result != expected:
            raise AssertionError(f"wrong results from {run} at N={n}")
    return statistics.median(times)


LITHOPS_SCRIPT = textwrap.dedent("""
    import json, statistics, sys, time, tempfile
    import lithops
    sizes, repeats, version = json.loads(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
    config = {"lithops": {"backend": "localhost", "storage": "localhost", "log_level": "WARNING"},
              "localhost": {"runtime": sys.executable, "version": int(version)}}
    def square(x):
        return x * x
    fexec = lithops.FunctionExecutor(config=config)
    fexec.map(square, range(2)); fexec.get_result()  # warm-up
    out = {}
    for n in sizes:
        times = []
        for _ in range(repeats):
            t = time.perf_counter(); fexec.map(square, range(n)); r = fexec.get_result()
            times.append(time.perf_counter() - t)
            assert r == [x * x for x in range(n)]
        out[n] = statistics.median(times)
    print(json.dumps(out))
""")


def run_lithops(python: str, sizes: list[int], repeats: int, version: int, budget: float) -> dict[int, float]:
    try:
        proc = subprocess.run([python, "-c", LITHOPS_SCRIPT, json.dumps(sizes), str(repeats), str(version)],
                              capture_output=True, text=True, timeout=budget)
    except subprocess.TimeoutExpired:
        print(f"lithops localhost v{version}: over the {budget:.0f} s budget, not reported", file=sys.stderr)
        return {}
    if proc.returncode != 0:
        print(f"lithops localhost v{version} failed:\n{proc.stderr[-2000:]}", file=sys.stderr)
        return {}
    return {int(k): v for k, v in json.loads(proc.stdout.strip().splitlines()[-1]).items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", type=int, nargs="+", default=[10, 100, 1000, 10000])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--lithops-python", default=None, help="interpreter with lithops installed")
    parser.add_argument("--lithops-max-n", type=int, default=1000, help="largest N for Lithops (it is slow)")
    parser.add_argument("--lithops-repeats", type=int, default=1)
    args = parser.parse_args()

    import joblib

    import lambdamap

    timings: dict[str, dict[int, float]] = {}
    with lambdamap.local_executor(workers=args.workers, progress=False) as pwex:
        lambdamap.get_all_results(pwex.map(square, range(100)))  # warm-up
        timings["lambdamap local"] = {
            n: median_time(lambda n: lambdamap.get_all_results(pwex.map(square, range(n))), n, args.repeats)
            for n in args.sizes}
    with cf.ProcessPoolExecutor(max_workers=args.workers) as pool:
        list(pool.map(square, range(100)))  # warm-up: starts every worker
        timings["ProcessPoolExecutor (warm)"] = {
            n: median_time(lambda n: list(pool.map(square, range(n))), n, args.repeats) for n in args.sizes}
    with joblib.Parallel(n_jobs=args.workers) as parallel:
        parallel(joblib.delayed(square)(x) for x in range(100))  # warm-up
        timings["joblib.Parallel"] = {
            n: median_time(lambda n: parallel(joblib.delayed(square)(x) for x in range(n)), n, args.repeats)
            for n in args.sizes}

    lithops_python = args.lithops_python
    if lithops_python is None:
        try:
            import lithops  # noqa: F401
            lithops_python = sys.executable
        except ImportError:
            print("Lithops is not installed: pass --lithops-python to include it", file=sys.stderr)
    if lithops_python:
        sizes = [n for n in args.sizes if n <= args.lithops_max_n]
        for version in (2, 1):
            timings[f"Lithops localhost v{version}"] = run_lithops(lithops_python, sizes, args.lithops_repeats,
                                                                   version, budget=1800)

    base = timings["lambdamap local"]
    ratios = {name: {n: t[n] / base[n] for n in t} for name, t in timings.items() if name != "lambdamap local"}
    report = {
        "benchmark": "overhead: map(square, range(N)) + collect all results; median seconds",
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version(), "platform": platform.platform()},
        "workers": args.workers, "repeats": args.repeats,
        "seconds": timings, "ratio_other_over_lambdamap": ratios,
    }
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "overhead.json").write_text(json.dumps(report, indent=2, default=str))

    header = "| N | " + " | ".join(timings) + " |"
    print(header)
    print("|" + "---|" * (len(timings) + 1))
    for n in args.sizes:
        cells = []
        for name, t in timings.items():
            if n not in t:
                cells.append("—")
            elif name == "lambdamap local":
                cells.append(f"{t[n] * 1000:.1f} ms")
            else:
                cells.append(f"{t[n] * 1000:.1f} ms ({t[n] / base[n]:.2f}x)")
        print(f"| {n} | " + " | ".join(cells) + " |")
    print("\n(x) = that tool's time / lambdamap local's time, measured in this run")


if __name__ == "__main__":
    main()
