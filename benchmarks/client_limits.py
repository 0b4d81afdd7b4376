"""The client's own limits, measured side by side in one run (issues 12, 13, 15):

1. ``throughput``: ``get_all_results(pwex.map(square, range(N)))`` on the local backend against the futures floor
   (creating, completing and reading one ``concurrent.futures.Future`` per call, cyclic GC paused) and
   ``joblib.Parallel`` with 2 workers; medians of ``--repeats``.
2. ``memory``: client RSS over ``--maps`` consecutive maps of 4 results of 8 MB, dropped each time (the executor
   must not keep finished jobs).
3. ``pending`` (run first): client RSS held per pending call, right after ``map`` of ``--pending-n`` calls returns (the
   workers are busy with a first slow call, so nearly all are still pending), per 10,000 calls.
4. ``stream``: ``pwex.imap`` over a generator of ``--stream-n`` small items (never listed), client RSS before and
   after.

    python benchmarks/client_limits.py [--sizes 1000 10000 100000] [--repeats 3] [--maps 1000] [--pending-n 100000]
        [--stream-n 10000000]

Writes benchmarks/results/client_limits.json and prints the tables, with the load average.
"""

from __future__ import annotations

import argparse
import concurrent.futures as cf
import gc
import json
import os
import platform
import statistics
import time
from pathlib import Path
from typing import Any

import psutil

import lambdamap

RESULTS = Path(__file__).parent / "results"


def square(x: int) -> int:
    return x * x


def big(_: int) -> bytes:
    return bytes(8 * 2**20)


def futures_floor(n: int) -> float:
    gc.disable()
    try:
        start = time.perf_counter()
        futures: list[cf.Future[int]] = [cf.Future() for _ in range(n)]
        for i, fut in enumerate(futures):
            fut.set_running_or_notify_cancel()
            fut.set_result(i)
        [fut.result() for fut in futures]
        return time.perf_counter() - start
    finally:
        gc.enable()


def median(run: Any, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        run()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def throughput(pwex: lambdamap.Executor, sizes: list[int], repeats: int) -> list[dict[str, Any]]:
    import joblib

    rows = []
    with joblib.Parallel(n_jobs=2) as parallel:
        parallel(joblib.delayed(square)(i) for i in range(100))  # warm
        for n in sizes:
            expected = [x * x for x in range(n)]

            def ours(n: int = n, expected: list[int] = expected) -> None:
                assert lambdamap.get_all_results(pwex.map(square, range(n))) == expected

            def theirs(n: int = n, expected: list[int] = expected) -> None:
                assert parallel(joblib.delayed(square)(i) for i in range(n)) == expected

            row = {"n": n, "floor_s": median(lambda n=n: futures_floor(n), repeats),
                   "lambdamap_s": median(ours, repeats), "joblib_s": median(theirs, repeats)}
            row["vs_floor"] = row["lambdamap_s"] / row["floor_s"]
            row["vs_joblib"] = row["lambdamap_s"] / row["joblib_s"]
            rows.append(row)
            print(f"N={n:>7}: lambdamap {row['lambdamap_s'] * 1e3:8.1f} ms | floor {row['floor_s'] * 1e3:7.1f} ms "
                  f"({row['vs_floor']:.1f}x) | joblib {row['joblib_s'] * 1e3:7.1f} ms ({row['vs_joblib']:.1f}x)")
    return rows


def memory(pwex: lambdamap.Executor, maps: int) -> dict[str, Any]:
    process = psutil.Process()
    lambdamap.get_all_results(pwex.map(big, range(4)))
    gc.collect()
    start = process.memory_info().rss
    peak = start
    began = time.perf_counter()
    for _ in range(maps):
        results = lambdamap.get_all_results(pwex.map(big, range(4)))
        assert len(results) == 4
        del results
        peak = max(peak, process.memory_info().rss)
    gc.collect()
    end = process.memory_info().rss
    row = {"maps": maps, "mb_per_map": 32, "rss_start_mb": start / 2**20, "rss_end_mb": end / 2**20,
           "rss_peak_mb": peak / 2**20, "grown_mb": (end - start) / 2**20, "seconds": time.perf_counter() - began}
    print(f"{maps} maps of 4 x 8 MB: RSS {row['rss_start_mb']:.0f} -> {row['rss_end_mb']:.0f} MB "
          f"(peak {row['rss_peak_mb']:.0f}, grown {row['grown_mb']:.0f} MB) in {row['seconds']:.0f} s")
    return row


def hold(x: float) -> float:
    time.sleep(x)
    return x


def pending(pwex: lambdamap.Executor, n: int) -> dict[str, Any]:
    process = psutil.Process()
    gc.collect()
    start = process.memory_info().rss
    futures = pwex.map(hold, [2.0, 2.0] + [0.0] * (n - 2), chunksize=1000)
    held = process.memory_info().rss
    waiting = sum(not f.done() for f in futures)
    assert lambdamap.get_all_results(futures)[-1] == 0.0
    row = {"n": n, "pending_when_measured": waiting, "rss_start_mb": start / 2**20, "rss_held_mb": held / 2**20,
           "mb_per_10000_pending": (held - start) / 2**20 / n * 10_000}
    print(f"map of {n:,} calls ({waiting:,} pending when measured): RSS {row['rss_start_mb']:.0f} -> "
          f"{row['rss_held_mb']:.0f} MB, {row['mb_per_10000_pending']:.1f} MB per 10,000 pending calls")
    del futures
    return row


def stream(pwex: lambdamap.Executor, n: int) -> dict[str, Any]:
    process = psutil.Process()
    gc.collect()
    start = process.memory_info().rss
    peak, count, total = start, 0, 0
    began = time.perf_counter()
    for value in pwex.imap(square, (i for i in range(n)), window=20_000):
        total += value
        count += 1
        if count % 100_000 == 0:
            peak = max(peak, process.memory_info().rss)
    assert count == n and total == sum(i * i for i in range(n))
    row = {"n": n, "rss_start_mb": start / 2**20, "rss_peak_mb": peak / 2**20, "seconds": time.perf_counter() - began}
    print(f"imap over a generator of {n:,}: RSS {row['rss_start_mb']:.0f} -> peak {row['rss_peak_mb']:.0f} MB "
          f"in {row['seconds']:.0f} s")
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", type=int, nargs="+", default=[1000, 10_000, 100_000])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--maps", type=int, default=1000)
    parser.add_argument("--pending-n", type=int, default=100_000)
    parser.add_argument("--stream-n", type=int, default=10_000_000)
    parser.add_argument("--only", choices=["throughput", "memory", "pending", "stream"], nargs="*")
    args = parser.parse_args()
    only = set(args.only or ["throughput", "memory", "pending", "stream"])
    out: dict[str, Any] = {"python": platform.python_version(), "cpus": os.cpu_count(),
                           "load_average_before": os.getloadavg()}
    print(f"load average {os.getloadavg()[0]:.2f}, {os.cpu_count()} CPUs")
    with lambdamap.local_executor(workers=2, progress=False) as pwex:
        lambdamap.get_all_results(pwex.map(square, range(1000)))  # warm
        if "pending" in only:  # first: later runs leave freed memory the allocator would reuse unseen
            out["pending"] = pending(pwex, args.pending_n)
        if "throughput" in only:
            out["throughput"] = throughput(pwex, args.sizes, args.repeats)
        if "memory" in only:
            out["memory"] = memory(pwex, args.maps)
        if "stream" in only:
            out["stream"] = stream(pwex, args.stream_n)
    out["load_average_after"] = os.getloadavg()
    RESULTS.mkdir(exist_ok=True)
    path = RESULTS / "client_limits.json"
    saved = json.loads(path.read_text()) if path.is_file() else {}
    saved.update(out)  # a run of some parts keeps the others' last results
    path.write_text(json.dumps(saved, indent=2))
    print(f"load average after {os.getloadavg()[0]:.2f}; saved {RESULTS / 'client_limits.json'}")


if __name__ == "__main__":
    main()
