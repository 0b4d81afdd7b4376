"""The first run of a fresh executor (issue 15): a hyperparameter search of 8 ``KNeighborsClassifier`` fits as a plain
loop, on a fresh local executor (cold), after ``pwex.warm(imports=["sklearn.neighbors"])``, and as a second map on
the same executor (warm), side by side in one run.

Every repeat of every mode runs in a fresh interpreter, as a user's script does, so imports are really cold; modes
are interleaved so that load changes hit them alike. Reported: medians over ``--repeats``, load average before and
after. The data is digits-shaped (64 features, 10 classes) but ``--samples`` rows (default 8,000): on the 1,797 rows
of ``load_digits`` the 8 fits take 0.2 s in all, too little to show more than fixed costs.

Two more modes show what threads do. ``threads`` is the cold mode with every BLAS/OpenMP thread variable set to the
CPU count in the client's environment, which the local workers then keep: what lambdamap's default of one thread per
worker saves when every worker is busy. ``loop_one_thread`` is the plain loop with those variables set to 1 (the
plain ``loop`` uses the libraries' default, every core).

    python benchmarks/first_run.py [--repeats 5] [--samples 8000]

Writes benchmarks/results/first_run.json.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

RESULTS = Path(__file__).parent / "results"
MODES = ("loop", "loop_one_thread", "cold", "warmed", "threads")
GRID = [{"n_neighbors": k, "weights": w} for k in (1, 3, 5, 7) for w in ("uniform", "distance")]
THREAD_VARIABLES = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "BLIS_NUM_THREADS",
                    "VECLIB_MAXIMUM_THREADS", "NUMEXPR_NUM_THREADS")


def child(mode: str, samples: int) -> dict[str, Any]:
    """One fresh process: the user's script, timed step by step."""
    t = {}
    start = time.perf_counter()
    from sklearn.datasets import make_classification
    from sklearn.model_selection import cross_val_score
    from sklearn.neighbors import KNeighborsClassifier

    import lambdamap

    t["client_import_s"] = time.perf_counter() - start
    X, y = make_classification(n_samples=samples, n_features=64, n_informative=20, n_classes=10, random_state=0)

    def fit(params: dict[str, Any]) -> float:
        return float(cross_val_score(KNeighborsClassifier(**params), X, y, cv=5).mean())

    def timed(name: str, step: Any) -> Any:
        begin = time.perf_counter()
        value = step()
        t[name] = time.perf_counter() - begin
        return value

    if mode in ("loop", "loop_one_thread"):
        scores = timed("loop_s", lambda: [fit(p) for p in GRID])
        return {"times": t, "scores": scores}
    pwex = timed("start_s", lambda: lambdamap.local_executor(progress=False))
    with pwex:
        if mode == "warmed":
            t["warmed_workers"] = timed("warm_s", lambda: pwex.warm(imports=["sklearn.neighbors"]))
        sent = time.time()
        futures = timed("submit_s", lambda: pwex.map(fit, GRID))  # map() returns once every invocation is sent
        begin = time.perf_counter()
        scores = lambdamap.get_all_results(futures)
        t["map_s"] = t["submit_s"] + time.perf_counter() - begin
        # Where the first map's time went on the workers: the first invocation to start, the longest wait between
        # an invocation starting and its function starting (loading the function: the imports), the fits.
        stats = [f.stats for f in futures]
        t["first_worker_start_s"] = min(s.worker_start for s in stats) - sent
        t["longest_load_s"] = max(s.function_start - s.worker_start for s in stats)
        t["fits_s"] = sum(s.function_seconds for s in stats)
        again = timed("second_map_s", lambda: lambdamap.get_all_results(pwex.map(fit, GRID)))
        assert again == scores
        t["workers"] = pwex.workers
    return {"times": t, "scores": scores}


def run_child(mode: str, samples: int) -> dict[str, Any]:
    env = dict(os.environ)
    for name in THREAD_VARIABLES:  # the user's own setting would win over lambdamap's default: measure ours
        env.pop(name, None)
    if mode == "threads":
        env.update({name: str(os.cpu_count()) for name in THREAD_VARIABLES})
    if mode == "loop_one_thread":
        env.update({name: "1" for name in THREAD_VARIABLES})
    proc = subprocess.run([sys.executable, __file__, "--child", mode, "--samples", str(samples)], env=env,
                          capture_output=True, text=True, timeout=600)
    if proc.returncode:
        raise RuntimeError(f"{mode} failed:\n{proc.stderr}")
    return json.loads(proc.stdout.splitlines()[-1])


def median(runs: list[dict[str, Any]], key: str) -> float:
    return statistics.median(r["times"][key] for r in runs)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--samples", type=int, default=8000)
    parser.add_argument("--child", choices=MODES, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(child(args.child, args.samples)))
        return

    import sklearn

    import lambdamap

    load_before = os.getloadavg()
    print(f"load average {load_before[0]:.2f}, {os.cpu_count()} CPUs; {args.repeats} fresh processes per mode")
    runs: dict[str, list[dict[str, Any]]] = {mode: [] for mode in MODES}
    for repeat in range(args.repeats):
        for mode in MODES:
            runs[mode].append(run_child(mode, args.samples))
        print(f"  repeat {repeat + 1}: load average {os.getloadavg()[0]:.2f}")
    reference = runs["loop"][0]["scores"]
    assert all(r["scores"] == reference for rs in runs.values() for r in rs), "the modes disagree"

    loop = median(runs["loop"], "loop_s")
    loop_one = median(runs["loop_one_thread"], "loop_s")
    cold = median(runs["cold"], "map_s")
    warm_cost = median(runs["warmed"], "warm_s")
    after_warm = median(runs["warmed"], "map_s")
    warm_sum = statistics.median(r["times"]["warm_s"] + r["times"]["map_s"] for r in runs["warmed"])
    second = median(runs["cold"], "second_map_s")
    threads_second = median(runs["threads"], "second_map_s")
    summary = {
        "client_import_s": median(runs["loop"], "client_import_s"),
        "plain_loop_s": loop,
        "plain_loop_one_thread_s": loop_one,
        "cold_first_map_s": cold,
        "cold_submit_s": median(runs["cold"], "submit_s"),
        "warm_s": warm_cost,
        "map_after_warm_s": after_warm,
        "warm_plus_map_s": warm_sum,
        "second_map_s": second,
        "threads_per_worker_cpus_first_map_s": median(runs["threads"], "map_s"),
        "threads_per_worker_cpus_second_map_s": threads_second,
        "cold_vs_loop": cold / loop,
        "second_map_vs_loop": second / loop,
        "warm_plus_map_vs_cold": warm_sum / cold,
        "threads_cpus_vs_one": threads_second / second,
    }
    out = {
        "python": platform.python_version(), "sklearn": sklearn.__version__, "lambdamap": lambdamap.__version__,
        "cpus": os.cpu_count(), "workers": runs["cold"][0]["times"]["workers"], "samples": args.samples,
        "fits": len(GRID), "repeats": args.repeats, "load_average_before": load_before,
        "load_average_after": os.getloadavg(), "summary": summary, "runs": runs,
    }
    print(f"client's own imports (sklearn, lambdamap): {summary['client_import_s']:.2f} s (paid by every mode)")
    print(f"plain loop:                       {loop:.2f} s (with one BLAS/OpenMP thread: {loop_one:.2f} s)")
    print(f"fresh executor, first map (cold): {cold:.2f} s ({cold / loop:.2f}x the loop; map() returned after "
          f"{summary['cold_submit_s'] * 1000:.0f} ms)")
    print(f"warm(imports=['sklearn.neighbors']): {warm_cost:.2f} s, then the map {after_warm:.2f} s, "
          f"sum {warm_sum:.2f} s ({warm_sum / cold:.2f}x cold)")
    print(f"second map, same executor (warm): {second:.2f} s ({second / loop:.2f}x the loop)")
    print(f"second map with {os.cpu_count()} BLAS/OpenMP threads per worker: {threads_second:.2f} s "
          f"({threads_second / second:.2f}x one thread per worker)")
    print(f"load average after {os.getloadavg()[0]:.2f}")
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "first_run.json").write_text(json.dumps(out, indent=2) + "\n")


if __name__ == "__main__":
    main()
