"""Issue 13's own measurement: DoubleML's test files ``irm/tests/test_cvar.py`` and ``plm/tests/test_lplr.py`` run
by pytest under ``joblib.parallel_config(backend=..., n_jobs=2)``, against loky and a plain run, in one session.

Thousands of small ``Parallel`` calls: a fold fit of a 10-tree forest per process task, and forests whose trees
(``prefer="threads"``) and predictions (``require="sharedmem"``) are fractions of a millisecond. When the issue was
filed, lambdamap took 204 s here against 77 s with loky and 43 s plain.

Each run is a fresh ``python -m pytest`` process (so every backend pays its own start-up); the runs take turns in a
rotating order within each repeat, and the ratio is the median of the per-repeat ratios.

    python benchmarks/doubleml_tests_under_joblib.py [--repeats 3]

Writes benchmarks/results/doubleml_tests_under_joblib.json.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

RESULTS = Path(__file__).parent / "results"
TEST_FILES = ("irm/tests/test_cvar.py", "plm/tests/test_lplr.py")

# A pytest plugin that puts the whole session under one joblib configuration (none for the plain run).
PLUGIN = '''
import os
import joblib
import pytest


@pytest.fixture(autouse=True, scope="session")
def _joblib_backend():
    backend = os.environ["BENCH_JOBLIB_BACKEND"]
    if backend == "plain":
        yield
        return
    if backend == "lambdamap":
        import lambdamap.integrations.joblib  # noqa: F401 - registers the backend (the default local executor)
    with joblib.parallel_config(backend=backend, n_jobs=int(os.environ["BENCH_JOBLIB_N_JOBS"])):
        yield
'''


def run_suite(backend: str, n_jobs: int, plugin_dir: str, tests: list[str]) -> tuple[float, str]:
    env = dict(os.environ, BENCH_JOBLIB_BACKEND=backend, BENCH_JOBLIB_N_JOBS=str(n_jobs),
               PYTHONPATH=os.pathsep.join([plugin_dir, *filter(None, [os.environ.get("PYTHONPATH")])]),
               LAMBDAMAP_WORKERS=str(n_jobs), LAMBDAMAP_BACKEND="local")
    start = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-p", "bench_joblib_plugin",
                           *tests], env=env, capture_output=True, text=True, timeout=1800)
    took = time.perf_counter() - start
    summary = (done.stdout.strip().splitlines() or ["(no output)"])[-1]
    if done.returncode != 0:
        raise SystemExit(f"{backend}: the tests failed ({summary})\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}")
    return took, summary


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--n-jobs", type=int, default=2, help="joblib n_jobs (and local lambdamap workers)")
    args = parser.parse_args()
    import doubleml

    root = Path(doubleml.__file__).parent
    tests = [str(root / name) for name in TEST_FILES]
    missing = [t for t in tests if not Path(t).is_file()]
    if missing:
        raise SystemExit(f"this DoubleML ({doubleml.__version__}) does not ship {missing}")
    runs = ["plain", "loky", "lambdamap"]
    times: dict[str, list[float]] = {key: [] for key in runs}
    out: dict[str, Any] = {"doubleml": doubleml.__version__, "tests": list(TEST_FILES), "n_jobs": args.n_jobs,
                           "repeats": args.repeats, "cpus": os.cpu_count(), "load_average_before": os.getloadavg()}
    print(f"load average {os.getloadavg()[0]:.2f}, {os.cpu_count()} CPUs, DoubleML {doubleml.__version__}")
    with tempfile.TemporaryDirectory(prefix="bench-joblib-") as plugin_dir:
        Path(plugin_dir, "bench_joblib_plugin.py").write_text(PLUGIN)
        for repeat in range(args.repeats):
            order = runs[repeat % len(runs):] + runs[:repeat % len(runs)]
            for key in order:
                took, summary = run_suite(key, args.n_jobs, plugin_dir, tests)
                times[key].append(took)
                print(f"  repeat {repeat + 1} {key:9s} {took:6.1f} s  ({summary}; load {os.getloadavg()[0]:.1f})",
                      flush=True)
    ratios = [ours / loky for ours, loky in zip(times["lambdamap"], times["loky"], strict=True)]
    out.update({f"{key}_s": statistics.median(ts) for key, ts in times.items()})
    out.update(times=times, lambdamap_vs_loky=statistics.median(ratios), ratios=ratios,
               load_average_after=os.getloadavg())
    print(f"plain {out['plain_s']:.1f} s | loky {out['loky_s']:.1f} s | lambdamap {out['lambdamap_s']:.1f} s: "
          f"{out['lambdamap_vs_loky']:.2f}x loky's time (per repeat {min(ratios):.2f}-{max(ratios):.2f}); load "
          f"{out['load_average_before'][0]:.1f} before, {out['load_average_after'][0]:.1f} after")
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "doubleml_tests_under_joblib.json").write_text(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
