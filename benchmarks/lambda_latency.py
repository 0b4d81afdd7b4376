"""The Lambda path with the network in the loop: a real S3 server, a Lambda API running the real handler, and a
proxy adding a round trip between the client and each.

::

    this process (the client: Executor, S3Storage, LambdaInvoker)
        ├──▶ proxy (+delay per round trip) ──▶ SeaweedFS (a real S3 server) ◀─────────────────┐
        └──▶ proxy (+delay per round trip) ──▶ Lambda API ──▶ lambda_handler in 4 processes ──┘ (directly, as
                                               └─ lambda_standin.py (asyncio), its own process ─┘  in-region)

The proxies hold every chunk ``delay / 2`` in each direction, so a request and its response cost ``delay`` more,
waiting for ``100 Continue`` costs another ``delay``, and a new connection costs one more (TCP's handshake; TLS,
which AWS adds on top, is not modelled). They count the connections the client opens.

For each cell (N calls x chunksize x delay) it runs ``get_all_results(executor.map(identity, range(N),
chunksize=c))`` on one warm executor (``workers=1000``, as many as the account's default Lambda concurrency) and
reports, as the median of the repetitions: wall time; submission (the ``map`` call); collection after the last
handler ended; the client's CPU time (this process, every thread); the TCP connections the client opened to S3 and
to the Lambda API; and the load average of the machine. Runs longer than ``--slow`` seconds are not repeated (the
JSON says how many ran).

::

    python benchmarks/lambda_latency.py --label baseline            # the full grid (N 100, 1000 x c 1, 10 x 0/25/50 ms)
    python benchmarks/lambda_latency.py --quick --label after-core  # N 100, 1000 x c 1 x 0, 50 ms, one run each

Writes (merging by ``--label``) ``benchmarks/results/lambda_latency.json`` and prints markdown tables; with several
labels in the file it also prints them side by side.
"""

from __future__ import annotations

import argparse
import contextlib
import itertools
import json
import os
import platform
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # this checkout's lambdamap, whatever is installed
sys.path.insert(0, str(ROOT / "tests"))  # SeaweedFS from the test support

from support.aws_servers import REGION, Endpoint, create_bucket, seaweedfs  # noqa: E402

import lambdamap  # noqa: E402
from lambdamap.aws.invoker import LambdaInvoker  # noqa: E402
from lambdamap.aws.s3 import S3Storage  # noqa: E402

RESULTS = Path(__file__).parent / "results" / "lambda_latency.json"
BUCKET = "lambdamap-bench"
FUNCTION = "lambdamap-runtime"
METRICS = ("wall_s", "submit_s", "after_last_end_s", "client_cpu_s", "lambda_connections", "s3_connections")


def identity(x: int) -> int:
    return x


@dataclass
class StandIn:
    """The running ``lambda_standin.py`` process."""

    process: subprocess.Popen[bytes]
    control_url: str
    lambda_url: str
    s3_url: str
    log: Path

    def call(self, path: str, method: str = "GET") -> dict[str, Any]:
        request = urllib.request.Request(self.control_url + path, method=method, data=b"" if method == "POST" else None)
        with urllib.request.urlopen(request, timeout=30) as response:
            result: dict[str, Any] = json.loads(response.read())
            return result

    def set_delay(self, seconds: float) -> None:
        self.call(f"/_bench/delay?seconds={seconds}", "POST")


@contextlib.contextmanager
def stand_in(s3: Endpoint, workdir: Path, *, processes: int, handshake: bool) -> Iterator[StandIn]:
    ready = workdir / "standin.json"
    log = workdir / "standin.log"
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(workdir), "LANG": "C.UTF-8",
           "AWS_ACCESS_KEY_ID": s3.access_key, "AWS_SECRET_ACCESS_KEY": s3.secret_key, "AWS_DEFAULT_REGION": REGION,
           "OPENBLAS_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}
    command = [sys.executable, str(Path(__file__).with_name("lambda_standin.py")), "--s3-endpoint", s3.endpoint_url,
               "--ready-file", str(ready), "--function-name", FUNCTION, "--handler-processes", str(processes)]
    if not handshake:
        command.append("--no-handshake")
    with open(log, "wb") as out:
        process = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env,
                                   start_new_session=True)
    try:
        deadline = time.monotonic() + 60
        while not ready.exists():
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"the Lambda stand-in did not start:\n{log.read_text(errors='replace')[-3000:]}")
            time.sleep(0.05)
        info = json.loads(ready.read_text())
        yield StandIn(process, info["control_url"], info["lambda_url"], info["s3_url"], log)
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=10)


def make_executor(s3: Endpoint, si: StandIn, workers: int) -> lambdamap.Executor:
    """As ``lambdamap.aws.invoker.make_executor`` builds it, pointed at the proxies."""
    session = s3.session()
    storage = S3Storage(BUCKET, region=REGION, endpoint_url=si.s3_url, session=session,
                        max_pool_connections=max(50, workers))
    invoker = LambdaInvoker(FUNCTION, region=REGION, endpoint_url=si.lambda_url, session=session, workers=workers,
                            storage=storage, completion_margin=60.0)
    invoker.preflight()
    return lambdamap.Executor(storage, invoker, progress=False, backend="lambda")


def run_once(pwex: lambdamap.Executor, si: StandIn, n: int, chunksize: int) -> dict[str, Any]:
    si.call("/_bench/reset", "POST")
    standin_cpu0 = si.call("/_bench/stats")["standin_cpu_s"]
    cpu0, t0 = time.process_time(), time.time()
    futures = pwex.map(identity, range(n), chunksize=chunksize)
    submitted = time.time()
    results = pwex.get_all_results(futures)
    done = time.time()
    cpu = time.process_time() - cpu0
    stats = si.call("/_bench/stats")
    if results != list(range(n)):
        raise AssertionError(f"wrong results for N={n}, chunksize={chunksize}")
    return {"wall_s": done - t0, "submit_s": submitted - t0, "after_last_end_s": done - stats["last_end"],
            "first_handler_start_s": stats["first_start"] - t0, "client_cpu_s": cpu,
            "lambda_connections": stats["lambda_connections"], "s3_connections": stats["s3_connections"],
            "invocations": stats["invocations"], "handler_errors": stats["handler_errors"],
            "standin_cpu_s": stats["standin_cpu_s"] - standin_cpu0}


def run_cell(pwex: lambdamap.Executor, si: StandIn, n: int, chunksize: int, delay_ms: int, repeats: int,
             slow: float) -> dict[str, Any]:
    si.set_delay(delay_ms / 1000)
    load = os.getloadavg()
    pwex.get_all_results(pwex.map(identity, range(10), chunksize=1))  # warm: connections, caches, the function
    runs: list[dict[str, Any]] = []
    for _ in range(repeats):
        runs.append(run_once(pwex, si, n, chunksize))
        print(f"    run {len(runs)}: wall {runs[-1]['wall_s']:.2f} s", flush=True)
        if runs[-1]["wall_s"] > slow:
            break
    cell: dict[str, Any] = {"n": n, "chunksize": chunksize, "delay_ms": delay_ms, "repeats": len(runs),
                            "load_average_before": load, "load_average_after": os.getloadavg(), "runs": runs}
    for metric in (*METRICS, "first_handler_start_s", "standin_cpu_s"):
        cell[metric] = statistics.median(r[metric] for r in runs)
    return cell


def fmt_row(c: dict[str, Any]) -> str:
    return (f"| {c['n']} | {c['chunksize']} | {c['delay_ms']} | {c['wall_s']:.2f} | {c['submit_s']:.2f} | "
            f"{c['after_last_end_s']:.2f} | {c['client_cpu_s']:.2f} | {c['lambda_connections']:.0f} | "
            f"{c['s3_connections']:.0f} | {c['repeats']} | {c['load_average_before'][0]:.1f} |")


HEADER = ("| N | chunksize | delay (ms) | wall (s) | submission (s) | collection after last end (s) | client CPU (s) "
          "| connections to Lambda | connections to S3 | runs | load avg (1 min) |\n"
          "|---|---|---|---|---|---|---|---|---|---|---|")


def print_comparison(report: dict[str, Any]) -> None:
    labels = list(report["runs"])
    if len(labels) < 2:
        return
    cells: dict[tuple[int, int, int], dict[str, dict[str, Any]]] = {}
    for label in labels:
        for c in report["runs"][label]["cells"]:
            cells.setdefault((c["n"], c["chunksize"], c["delay_ms"]), {})[label] = c
    print("\nSide by side (wall s / submission s / after last end s / Invoke connections):")
    print("| N | chunksize | delay (ms) | " + " | ".join(labels) + " |")
    print("|---|---|---|" + "---|" * len(labels))
    for (n, chunksize, delay), by_label in sorted(cells.items()):
        values = [f"{c['wall_s']:.2f} / {c['submit_s']:.2f} / {c['after_last_end_s']:.2f} / "
                  f"{c['lambda_connections']:.0f}" if (c := by_label.get(label)) else "-" for label in labels]
        print(f"| {n} | {chunksize} | {delay} | " + " | ".join(values) + " |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--label", default="latest", help="name of this run in the JSON (e.g. baseline, after)")
    parser.add_argument("--quick", action="store_true", help="N 100, 1000 x chunksize 1 x delay 0, 50 ms, 1 run")
    parser.add_argument("--n", type=int, nargs="+", default=[100, 1000])
    parser.add_argument("--chunksize", type=int, nargs="+", default=[1, 10])
    parser.add_argument("--delay-ms", type=int, nargs="+", default=[0, 25, 50])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--slow", type=float, default=40.0, help="a run longer than this (s) is not repeated")
    parser.add_argument("--workers", type=int, default=1000, help="the invoker's window (invocations in flight)")
    parser.add_argument("--handler-processes", type=int, default=4, help="processes running the handlers")
    parser.add_argument("--no-handshake", action="store_true", help="a new connection costs no extra round trip")
    parser.add_argument("--output", type=Path, default=RESULTS)
    args = parser.parse_args()
    if args.quick:
        args.n, args.chunksize, args.delay_ms, args.repeats = [100, 1000], [1], [0, 50], 1

    load_before = os.getloadavg()
    print(f"{os.cpu_count()} CPUs, load average {load_before[0]:.1f} {load_before[1]:.1f} {load_before[2]:.1f}",
          flush=True)
    cells = []
    started = time.time()
    with tempfile.TemporaryDirectory(prefix="lambdamap-latency-") as tmp, seaweedfs() as s3:
        create_bucket(s3, BUCKET)
        with stand_in(s3, Path(tmp), processes=args.handler_processes, handshake=not args.no_handshake) as si:
            pwex = make_executor(s3, si, args.workers)
            try:
                for n, chunksize, delay in itertools.product(args.n, args.chunksize, args.delay_ms):
                    print(f"  N={n} chunksize={chunksize} delay={delay} ms", flush=True)
                    cells.append(run_cell(pwex, si, n, chunksize, delay, args.repeats, args.slow))
                    print("  " + fmt_row(cells[-1]), flush=True)
            finally:
                pwex.shutdown(wait=False, cancel_futures=True)

    print(f"\n{args.label}: load average {load_before[0]:.1f} before, {os.getloadavg()[0]:.1f} after")
    print(HEADER)
    for c in cells:
        print(fmt_row(c))
    run = {"cells": cells, "seconds": time.time() - started, "load_average_before": load_before,
           "load_average_after": os.getloadavg(), "workers": args.workers, "handler_processes": args.handler_processes,
           "handshake_round_trip": not args.no_handshake, "repeats": args.repeats, "slow_s": args.slow,
           "cpu_count": os.cpu_count(), "python": platform.python_version(), "lambdamap": lambdamap.__version__,
           "when": time.strftime("%Y-%m-%dT%H:%M:%S%z")}
    report: dict[str, Any] = {"runs": {}}
    if args.output.exists():
        with contextlib.suppress(ValueError):
            report = json.loads(args.output.read_text())
    report.setdefault("runs", {})[args.label] = run
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(report, indent=1) + "\n")
    print_comparison(report)
    print(f"\nwrote {args.output}")


if __name__ == "__main__":
    main()
