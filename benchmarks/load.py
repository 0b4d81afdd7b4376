"""Load figures for the local backend and the emulated Lambda backend (SeaweedFS + MiniStack on 127.0.0.1).

For each backend, measured in one run:
- the largest job run (calls) and the calls per second sustained through it;
- peak client memory per 10,000 pending futures (RSS growth while every call of a large job is still pending);
- storage requests per call (client side counted by a wrapping storage, worker side reported in result records).

    python benchmarks/load.py [--local-calls 100000] [--lambda-calls 5000] [--skip-lambda]

Writes benchmarks/results/load.json. The Lambda figures come from the local emulator, which runs each invocation as a
process on this 2-core machine: they show lambdamap's client-side costs, not AWS's throughput.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RESULTS = Path(__file__).parent / "results"


def rss_mb() -> float:
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    raise RuntimeError("no VmRSS")


def gated(gate: str):
    """A trivial call that waits until ``gate`` exists, so a whole job can be held pending."""
    def fn(x):
        while not os.path.exists(gate):
            time.sleep(0.01)
        return x
    return fn


def measure(pwex, counting, n: int, chunksize: int | None) -> dict[str, float]:
    import lambdamap

    lambdamap.get_all_results(pwex.map(abs, range(10)))  # warm-up
    # Memory: hold the whole job pending.
    gate = tempfile.mktemp(prefix="lambdamap-gate-")
    base = rss_mb()
    futures = pwex.map(gated(gate), range(n), chunksize=chunksize)
    pending_mb = rss_mb() - base
    Path(gate).touch()
    lambdamap.get_all_results(futures, timeout=1800)
    os.unlink(gate)
    del futures
    # Throughput and storage requests: a fresh job of trivial calls.
    requests_before = counting.requests
    start = time.perf_counter()
    futures = pwex.map(abs, range(n), chunksize=chunksize)
    results = lambdamap.get_all_results(futures, timeout=1800)
    wall = time.perf_counter() - start
    assert results == list(range(n))
    job = next(j for j in pwex.jobs() if j.job_id == futures[0].job_id)
    deadline = time.time() + 30
    while job.finished is None and time.time() < deadline:
        time.sleep(0.05)
    client_requests = counting.requests - requests_before
    worker_requests = sum(r["extra"].get("storage", {}).get("requests", 0) for r in job.records)
    return {
        "calls": n, "invocations": len(job.records), "wall_seconds": wall, "calls_per_second": n / wall,
        "client_rss_mb_per_10k_pending": pending_mb / (n / 10_000), "client_rss_mb_pending_total": pending_mb,
        "storage_requests_per_call": (client_requests + worker_requests) / n,
        "client_storage_requests": client_requests, "worker_storage_requests": worker_requests,
    }


def local_figures(n: int) -> dict[str, float]:
    import lambdamap
    from lambdamap.backends.local import LocalInvoker
    from lambdamap.storage.base import CountingStorage
    from lambdamap.storage.local import LocalStorage

    with tempfile.TemporaryDirectory() as root:
        counting = CountingStorage(LocalStorage(root))
        with lambdamap.Executor(counting, LocalInvoker(2), progress=False, backend="local") as pwex:
            return measure(pwex, counting, n, chunksize=None)


def lambda_figures(n: int, max_invocations: int) -> dict[str, float]:
    sys.path.insert(0, str(ROOT / "tests"))
    from support.aws_servers import aws_stack

    import lambdamap
    from lambdamap.aws.invoker import LambdaInvoker
    from lambdamap.aws.s3 import S3Storage
    from lambdamap.storage.base import CountingStorage

    with aws_stack() as stack:
        stack.create_function("lambdamap-runtime", timeout=120)
        session = stack.session()
        counting = CountingStorage(S3Storage(stack.bucket, region=stack.region, endpoint_url=stack.s3.endpoint_url,
                                             session=session))
        invoker = LambdaInvoker("lambdamap-runtime", region=stack.region, endpoint_url=stack.lambda_endpoint_url,
                                session=session, workers=16, storage=counting)
        with lambdamap.Executor(counting, invoker, progress=False, backend="lambda") as pwex:
            return measure(pwex, counting, n, chunksize=-(-n // max_invocations))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--local-calls", type=int, default=100_000)
    parser.add_argument("--lambda-calls", type=int, default=5_000)
    parser.add_argument("--lambda-max-invocations", type=int, default=25)
    parser.add_argument("--skip-lambda", action="store_true")
    args = parser.parse_args()

    figures = {"local": local_figures(args.local_calls)}
    if not args.skip_lambda:
        figures["lambda (emulated: MiniStack + SeaweedFS on this machine)"] = lambda_figures(
            args.lambda_calls, args.lambda_max_invocations)
    RESULTS.mkdir(exist_ok=True)
    path = RESULTS / "load.json"
    saved = json.loads(path.read_text()) if path.is_file() else {}
    saved.update(figures)  # --skip-lambda keeps the last Lambda row
    path.write_text(json.dumps(saved, indent=2))
    print("| backend | largest job (calls) | invocations | calls/s | client MB per 10k pending | "
          "storage requests per call |")
    print("|---|---|---|---|---|---|")
    for name, f in figures.items():
        print(f"| {name} | {f['calls']:,} | {f['invocations']} | {f['calls_per_second']:,.0f} | "
              f"{f['client_rss_mb_per_10k_pending']:.1f} | {f['storage_requests_per_call']:.4f} |")


if __name__ == "__main__":
    main()
