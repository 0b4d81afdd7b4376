"""Lambda at scale, on paper: the DoubleML-Serverless README case on AWS Lambda versus one 2-core laptop.

The case (DoubleML-Serverless README): PLR on the Pennsylvania Bonus data (n = 5,099, 15 covariates), random forests
with 500 trees for ``ml_l`` and ``ml_m``, 5 folds, n_rep = 100: 2 x 100 x 5 = 1,000 nuisance fits. With dml every fit
is one lambdamap task.

Measured here, in this run:

* the time of one task (``dml.tasks.fit_predict``: fit a 500-tree forest on 4/5 of n = 5,099 rows, predict the other
  1/5), each in a fresh process, alone and two at once (both cores busy, as on the laptop), with its peak memory;
* what a cold worker imports before its first task (a fresh interpreter importing the Lambda handler, dml's task
  module and scikit-learn's forests);
* the client: Invoke calls per second from ``LambdaInvoker``'s thread pool (through the real executor, against a
  Lambda API stand-in in another process that answers every asynchronous Invoke with 202 at once), the executor's
  submission time per invocation (one S3 PUT each, sequential) and the collector's time per result record (one S3
  GET each, sequential), both against SeaweedFS on 127.0.0.1;
* DoubleML's own part on the client (splits, model, ``fit(external_predictions=...)`` over 100 repetitions).

Everything else is a named assumption with its source (printed in the second table). The laptop takes the measured
task time x 1,000 / 2 cores. Lambda is a discrete-event simulation of today's client and of Lambda (:func:`simulate`):
serial PUTs, the invoker's window of ``workers`` outstanding invocations, Lambda's concurrency and warm reuse, the
collector's adaptive polling and serial GETs. It predicts the wall time of several Lambda set-ups, and their cost with
``lambdamap.observe.summary.lambda_cost``.

Run (about 2 minutes here; needs the test extras for SeaweedFS and MiniStack, as ``local_vs_lambda.py``)::

    python benchmarks/lambda_scale_model.py [--repeats 1] [--s3-latency 0.05] [--invoke-latency 0.05]
    python benchmarks/lambda_scale_model.py --replay [--put-round-trips 2]  # predict again from the saved measurements

Writes ``benchmarks/results/lambda_scale_model.json``; prints the tables pasted into ``benchmarks/README.md``.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import platform
import resource
import select
import statistics
import subprocess
import sys
import threading
import time
import warnings
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # this checkout's lambdamap and dml, whatever is installed

import numpy as np  # noqa: E402

import lambdamap  # noqa: E402
from lambdamap.observe.summary import lambda_cost  # noqa: E402

RESULTS = Path(__file__).parent / "results" / "lambda_scale_model.json"

# -- the case --------------------------------------------------------------------------------------------------------
N_OBS, N_FOLDS, N_REP, N_TREES = 5099, 5, 100, 500
LEARNERS = ("ml_l", "ml_m")
N_TASKS = len(LEARNERS) * N_REP * N_FOLDS  # 1,000
LAPTOP_CORES = 2


# -- published figures and assumptions (every one is printed with its source) ----------------------------------------
@dataclass(frozen=True)
class Assumption:
    name: str
    value: float
    unit: str
    source: str


def assumptions(s3_latency: float, invoke_latency: float, put_round_trips: int = 1) -> dict[str, Assumption]:
    a = [
        Assumption("concurrency", 1000, "executions",
                   "Lambda default concurrent executions per Region: 1,000 "
                   "(https://docs.aws.amazon.com/lambda/latest/dg/gettingstarted-limits.html; new accounts start "
                   "lower and are raised with use)"),
        Assumption("scaling_rate", 1000, "new environments per 10 s",
                   "per function: 1,000 execution environments every 10 s "
                   "(https://docs.aws.amazon.com/lambda/latest/dg/scaling-behavior.html); not binding here: no "
                   "set-up needs more than 1,000 environments"),
        Assumption("memory_mb", 1769, "MB",
                   "1,769 MB = one vCPU (one vCPU-second of credits per second) "
                   "(https://docs.aws.amazon.com/lambda/latest/dg/configuration-memory.html); a forest with n_jobs=1 "
                   "uses one core, so more memory would not make a task faster"),
        Assumption("cpu_speed_factor", 1.0, "x",
                   "a Lambda x86_64 vCPU runs a task as fast as one core of this machine (AMD EPYC); not measured"),
        Assumption("platform_init_s", 0.24, "s",
                   "Lambda's own cold start for a small package: 242 ms mean init, Node.js 20, 256 MB, us-east-1, "
                   "100 cold starts (https://gist.github.com/adriantanasa/06a9cbc36744ef0bf946255e9e75efbe)"),
        Assumption("big_package_init_s", 3.18, "s",
                   "the same benchmark with a 64 MB package: 3,184 ms mean init (p90 3,515 ms); our layer is 77 MB "
                   "zipped, 240 MB unzipped: the pessimistic cold start (same source)"),
        Assumption("init_billed", 1.0, "yes",
                   "since 1 Aug 2025 the INIT phase is billed for zip functions on managed runtimes too "
                   "(https://aws.amazon.com/blogs/compute/aws-lambda-standardizes-billing-for-init-phase)"),
        Assumption("s3_latency_s", s3_latency, "s per request",
                   "one S3 PUT or GET of a few KB from a laptop, on top of the client's own time measured here: S3's "
                   "small-request median is 'often in the tens of milliseconds' in the Region (https://docs.aws.amazon"
                   ".com/whitepapers/latest/s3-optimizing-performance-best-practices/timeouts-and-retries-for-latency"
                   "-sensitive-applications.html), plus the laptop's round trip to the Region"),
        Assumption("put_round_trips", put_round_trips, "round trips per PUT",
                   "S3Storage.put sends a body up to 1 MiB at once: one round trip. botocore's default (the client "
                   "before issue 15) sent 'Expect: 100-continue' and waited for '100 Continue' first: two "
                   "(benchmarks/lambda_latency.py measures both through a latency proxy)"),
        Assumption("invoke_latency_s", invoke_latency, "s per Invoke",
                   "one asynchronous Invoke round trip from a laptop (202 Accepted); assumed equal to the S3 latency"),
        Assumption("worker_s3_get_s", 0.03, "s per object",
                   "a worker's GET of each shared input (data, folds, learners: 3 objects of at most 1 MB) inside the "
                   "Region; assumed"),
        Assumption("poll_interval_s", 2.0, "s at most",
                   "lambdamap's collector lists a job's results 0.02 s after finding some, else 1.5 times later "
                   "than the last time, up to 2 s (lambdamap.core.collector; simulated as such)"),
        Assumption("laptop_cost_usd", 0.0, "USD", "the laptop is already paid for: no marginal cost counted"),
    ]
    return {x.name: x for x in a}


# -- measurements ------------------------------------------------------------------------------------------------------
def bonus_shaped(n: int, seed: int) -> Any:
    """Synthetic data shaped like the Bonus data's covariates (15 dummies from one-hot categories), a continuous
    outcome and a random binary treatment. Not the real data (DoubleML's fetch_bonus downloads it)."""
    import pandas as pd

    rng = np.random.default_rng(seed)

    def onehot(levels: int, p: list[float]) -> np.ndarray:
        return np.eye(levels)[rng.choice(levels, size=n, p=p)][:, 1:]  # drop the base level

    cols = {
        "female": rng.random(n) < 0.4, "black": rng.random(n) < 0.12, "othrace": rng.random(n) < 0.01,
        **dict(zip(("dep1", "dep2"), onehot(3, [0.55, 0.25, 0.2]).T, strict=True)),
        **dict(zip(("q2", "q3", "q4", "q5", "q6"), onehot(6, [0.1, 0.2, 0.2, 0.2, 0.2, 0.1]).T, strict=True)),
        **dict(zip(("agelt35", "agegt54"), onehot(3, [0.5, 0.4, 0.1])[:, [0, 1]].T, strict=True)),
        "durable": rng.random(n) < 0.15,
        **dict(zip(("lusd", "husd"), onehot(3, [0.5, 0.25, 0.25]).T, strict=True)),
    }
    x = pd.DataFrame({k: np.asarray(v, dtype=float) for k, v in cols.items()})
    d = (rng.random(n) < 0.5).astype(float)
    y = 2.0 + x.to_numpy() @ rng.normal(0, 0.3, x.shape[1]) - 0.08 * d + rng.normal(0, 1.0, n)
    return pd.concat([pd.DataFrame({"y": y, "d": d}), x], axis=1)


def dataset(name: str) -> Any:
    if name == "plr_dim20":
        from doubleml.plm.datasets import make_plr_CCDDHNR2018

        np.random.seed(5099)
        return make_plr_CCDDHNR2018(n_obs=N_OBS, dim_x=20, alpha=0.5, return_type="DataFrame")
    if name == "bonus_shaped":
        return bonus_shaped(N_OBS, 5099)
    raise ValueError(f"unknown dataset {name!r}")


def one_task(dataset_name: str, learner: str, rep: int) -> dict[str, float]:
    """One nuisance fit exactly as a worker runs it (dml.tasks.fit_predict); run in a fresh process."""
    from sklearn.ensemble import RandomForestRegressor

    from dml import splits, validate
    from dml.tasks import NuisanceTask, derive_random_state, fit_predict

    data = validate.prepare(dataset(dataset_name), "y", "d", None).data
    folds = splits.draw(data.n_obs, N_FOLDS, 1, seed=rep)
    task = NuisanceTask(name=learner, learner=learner, treatment=0, rep=0, fold=0,
                        target="y" if learner == "ml_l" else "d",
                        random_state=derive_random_state(42, learner, 0, rep, 0))
    forest = RandomForestRegressor(n_estimators=N_TREES, n_jobs=1)  # the README's learner (defaults otherwise)
    rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    start = time.perf_counter()
    fit_predict(task, data, folds, forest)
    seconds = time.perf_counter() - start
    return {"seconds": seconds, "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
            "rss_before_mb": rss_before, "n_features": data.x.shape[1]}


def run_tasks(jobs: list[tuple[str, str, int]], timeout: float = 600) -> list[dict[str, float]]:
    """Run the given tasks, each in its own fresh process, all at once; return what each measured."""
    procs = [subprocess.Popen([sys.executable, __file__, "--one-task", *map(str, job)], stdout=subprocess.PIPE,
                              text=True) for job in jobs]
    out = []
    for proc in procs:
        stdout, _ = proc.communicate(timeout=timeout)
        if proc.returncode != 0:
            raise RuntimeError(f"task process failed with code {proc.returncode}")
        out.append(json.loads(stdout.strip().splitlines()[-1]))
    return out


def cold_import_seconds(repeats: int = 3) -> dict[str, float]:
    """A fresh interpreter importing what a cold Lambda worker imports before its first task."""
    code = ("import time; t = time.perf_counter(); import lambdamap.aws.handler, lambdamap.core.worker, dml.tasks, "
            "sklearn.ensemble, numpy, cloudpickle; print(time.perf_counter() - t)")
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    imports, totals = [], []
    for _ in range(repeats):
        start = time.perf_counter()
        out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120,
                             check=True)
        totals.append(time.perf_counter() - start)
        imports.append(float(out.stdout.strip()))
    return {"imports_s": statistics.median(imports), "interpreter_and_imports_s": statistics.median(totals)}


def doubleml_client_seconds() -> float:
    """DoubleML's own work on the client for this case: splits, the model, fit from 100 repetitions of external
    predictions (random numbers stand in for the forests' predictions: the cost does not depend on them)."""
    from doubleml import DoubleMLData, DoubleMLPLR
    from sklearn.ensemble import RandomForestRegressor

    from dml import splits

    df = dataset("plr_dim20")
    start = time.perf_counter()
    fold_ids = splits.draw(N_OBS, N_FOLDS, N_REP, seed=42)
    model = DoubleMLPLR(DoubleMLData(df, "y", "d"), RandomForestRegressor(), RandomForestRegressor(),
                        n_folds=N_FOLDS, n_rep=N_REP, draw_sample_splitting=False)
    model.set_sample_splitting(splits.to_smpls(fold_ids))
    rng = np.random.default_rng(0)
    model.fit(external_predictions={"d": {name: rng.normal(size=(N_OBS, N_REP)) for name in LEARNERS}})
    return time.perf_counter() - start


PROXY = r"""
import sys
sys.path.insert(0, sys.argv[2])
from support.aws_servers import LambdaProxy
proxy = LambdaProxy(sys.argv[1], drop_invokes=lambda body: True)  # every Invoke: 202 Accepted, never run
print(proxy.endpoint_url, flush=True)
sys.stdin.read()  # until the parent closes our stdin
proxy.stop()
"""


@contextlib.contextmanager
def accepting_lambda_api(upstream: str) -> Iterator[str]:
    """A Lambda API stand-in in its own process (so it does not share the client's GIL): answers every Invoke with
    202 at once, forwards everything else (the preflight's reads) to MiniStack."""
    proc = subprocess.Popen([sys.executable, "-c", PROXY, upstream, str(ROOT / "tests")], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None and proc.stdin is not None
    try:
        ready, _, _ = select.select([proc.stdout], [], [], 30)
        if not ready:
            raise RuntimeError("the Lambda API stand-in did not start within 30 s")
        yield proc.stdout.readline().strip()
    finally:
        proc.stdin.close()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)


def _cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def client_rates(n_invocations: int, invoke_workers: int, repeats: int = 3) -> dict[str, Any]:
    """Submission, Invoke and result-read speed of the lambdamap client (SeaweedFS + a 202 Lambda API here)."""
    sys.path.insert(0, str(ROOT / "tests"))
    from support.aws_servers import aws_stack

    from lambdamap.aws.s3 import S3Storage

    with aws_stack() as stack:
        stack.create_function("lambdamap-runtime", timeout=60, memory_mb=1769)
        session = stack.session()
        storage = S3Storage(stack.bucket, region=stack.region, endpoint_url=stack.s3.endpoint_url, session=session)
        # The collector's cost per record: sequential GETs of result-sized objects (about 8 KB: 1,020 floats).
        blob = os.urandom(8 * 1024)
        keys = [f"scale-model/get-{i}" for i in range(300)]
        for key in keys:
            storage.put(key, blob)
        start = time.perf_counter()
        for key in keys:
            storage.get(key)
        get_s = (time.perf_counter() - start) / len(keys)
        storage.delete(keys)

        with accepting_lambda_api(stack.lam.endpoint_url) as api:
            runs = [_invoke_run(storage, stack.region, api, session, n_invocations, invoke_workers)
                    for _ in range(repeats)]
    return {
        "invocations": n_invocations, "invoke_workers": invoke_workers, "runs": runs,
        **{k: statistics.median(r[k] for r in runs) for k in runs[0]},
        "get_s_per_record": get_s,
    }


def _invoke_run(storage: Any, region: str, api: str, session: Any, n_invocations: int,
                invoke_workers: int) -> dict[str, float]:
    """One job of ``n_invocations`` trivial invocations through the real executor and LambdaInvoker."""
    from lambdamap.aws.invoker import LambdaInvoker

    invoker = LambdaInvoker("lambdamap-runtime", region=region, endpoint_url=api, session=session,
                            workers=invoke_workers, storage=storage)
    done: list[float] = []
    first: list[tuple[float, float]] = []  # (time, client CPU seconds) when the first Invoke began
    lock = threading.Lock()

    def began(**_: Any) -> None:
        with lock:
            if not first:
                first.append((time.perf_counter(), _cpu_seconds()))

    def count(**_: Any) -> None:
        with lock:
            done.append(time.perf_counter())

    invoker.client.meta.events.register("before-call.lambda.Invoke", began)
    invoker.client.meta.events.register("after-call.lambda.Invoke", count)
    executor = lambdamap.Executor(storage, invoker, progress=False, backend="lambda")
    try:
        start = time.perf_counter()
        futures = executor.map(abs, range(n_invocations), chunksize=1)  # one S3 PUT per invocation, then Invokes
        deadline = time.perf_counter() + 300
        # An accepted Invoke leaves its future running (the stand-in runs nothing); a refused one fails it.
        while time.perf_counter() < deadline:
            failed = [f for f in futures if f.done()]
            if failed or len(done) >= n_invocations:
                break
            time.sleep(0.01)
        if failed:
            raise RuntimeError(f"{len(failed)} of {n_invocations} Invokes failed, e.g.: {failed[0].exception()}")
        if len(done) < n_invocations:
            raise RuntimeError(f"only {len(done)} of {n_invocations} Invoke calls returned within 300 s")
        last, cpu_last = max(done), _cpu_seconds()
    finally:
        executor.shutdown(wait=False, cancel_futures=True)  # the 202s ran nothing: nothing to wait for
    # Timed from the first Invoke's start: the main thread returning from map() competes with the pool's threads
    # for the GIL, so its own clock would say the Invokes were nearly all done.
    invoking, cpu_first = first[0]
    return {
        "submit_s_per_invocation": (invoking - start) / n_invocations,
        "invoke_calls_per_s": n_invocations / (last - invoking),
        # Client CPU per Invoke (all threads, the collector's polling included): the rate a free core would allow.
        "client_cpu_s_per_invoke": (cpu_last - cpu_first) / n_invocations,
    }


# -- the model -------------------------------------------------------------------------------------------------------
@dataclass
class Client:
    """What one client request costs (seconds): the measured local time plus the assumed round trip to AWS."""

    put_s: float  # the executor stores one invocation's payload
    get_s: float  # the collector reads one result record
    list_s: float  # the collector lists a job's results
    invoke_gap_s: float  # between two Invoke calls: the measured Invoke rate of the invoker's threads
    invoke_latency_s: float  # from the Invoke call to the event reaching Lambda


def simulate(segments: list[list[int]], workers: int, concurrency: int, cold_start_s: float, task_s: float,
             client: Client, a: dict[str, Assumption], client_s: float) -> dict[str, Any]:
    """Discrete-event simulation of one dml fit through today's lambdamap client and Lambda.

    ``segments`` are dml's maps in order (``dml.execution.batches``), each a list of fits per invocation. The
    client's main thread PUTs each invocation's payload, one after the other, and queues a map's invocations when
    its PUTs are done; the invoker keeps at most ``workers`` invocations outstanding (sent, result not yet applied),
    sending Invokes at the measured rate; Lambda runs at most ``concurrency`` at once (first come, first served),
    reusing an idle environment when there is one (warm: the inputs are cached) or starting one (cold start and the
    3 input GETs); the collector thread lists the results at lambdamap's adaptive interval, reads each new record
    (one GET after the other) and settles it, which lets the invoker send the next invocation.
    """
    import heapq
    from collections import deque

    events: list[tuple[float, int, str, Any]] = []
    seq = 0

    def at(t: float, kind: str, data: Any = None) -> None:
        nonlocal seq
        seq += 1
        heapq.heappush(events, (t, seq, kind, data))

    fits = [k for seg in segments for k in seg]
    inputs_s = a["worker_s3_get_s"].value * 3
    t = 3 * client.put_s  # the data, the folds and the learners, stored once
    first = 0
    for seg in segments:  # the main thread's PUTs; each map's invocations are queued when its PUTs are done
        t += len(seg) * client.put_s
        at(t, "queue", list(range(first, first + len(seg))))
        first += len(seg)
    waiting: deque[int] = deque()
    outstanding = 0
    next_send = 0.0
    running: list[float] = []  # end times of the invocations running on Lambda
    idle: list[float] = []  # times at which environments become free
    landed: list[tuple[float, int]] = []  # (record written, invocation), as a heap
    billed: list[float] = []
    cold = 0
    collected = 0
    interval = 0.02

    def pump(now: float) -> None:
        nonlocal outstanding, next_send, cold
        while waiting and outstanding < workers:
            inv = waiting.popleft()
            outstanding += 1
            send = max(now, next_send)
            next_send = send + client.invoke_gap_s
            arrive = send + client.invoke_latency_s
            start = arrive if len(running) < concurrency else max(arrive, heapq.heappop(running))
            if idle and idle[0] <= start:
                heapq.heappop(idle)
                duration = fits[inv] * task_s
            else:
                cold += 1
                duration = cold_start_s + inputs_s + fits[inv] * task_s
            end = start + duration
            heapq.heappush(running, end)
            heapq.heappush(idle, end)
            heapq.heappush(landed, (end, inv))
            billed.append(duration)

    at(0.0, "wake")
    end = 0.0
    while events:
        now, _, kind, data = heapq.heappop(events)
        if now > 10 * 24 * 3600:
            raise RuntimeError(f"the simulation did not finish: {collected} of {len(fits)} results after 10 days")
        if kind == "queue":
            waiting.extend(data)
            pump(now)
        elif kind == "wake":
            found = []
            while landed and landed[0][0] <= now:
                found.append(heapq.heappop(landed)[1])
            at(now + client.list_s, "listed", found)
        elif kind == "listed":
            if data:
                at(now + client.get_s, "got", (data, 0))
            else:
                interval = min(2.0, interval * 1.5)
                if collected < len(fits):
                    at(now + interval, "wake")
        elif kind == "got":
            found, i = data
            outstanding -= 1
            collected += 1
            end = now
            pump(now)
            if i + 1 < len(found):
                at(now + client.get_s, "got", (found, i + 1))
            else:
                interval = 0.02
                at(now + interval, "wake")
    wall = end + client_s
    return {"invocations": len(fits), "fits_per_invocation": max(fits), "workers": workers,
            "concurrency": concurrency, "cold_starts": cold, "submit_s": t, "results_s": end, "wall_s": wall,
            "billed_gb_s": sum(math.ceil(b * 1000) for b in billed) / 1000 * a["memory_mb"].value / 1024,
            "cost_usd": lambda_cost(billed, int(a["memory_mb"].value))}


def model(m: dict[str, float], a: dict[str, Assumption]) -> dict[str, Any]:
    """The laptop and the Lambda set-ups, for the measured task time ``m["task_s"]``."""
    from dml.execution import batches

    task_s = m["task_s"] * a["cpu_speed_factor"].value
    cold = a["platform_init_s"].value + m["cold_imports_s"]
    cold_big = a["big_package_init_s"].value + m["cold_imports_s"]
    conc = int(a["concurrency"].value)
    lat = a["s3_latency_s"].value

    def client(in_flight: int = 1) -> Client:
        # in_flight: S3 requests the client keeps going at once (today: 1, the PUTs and GETs go one by one).
        put_s = m["submit_s_per_invocation"] + a["put_round_trips"].value * lat
        return Client(put_s=max(put_s / in_flight, m["submit_s_per_invocation"]),
                      get_s=max((m["get_s_per_record"] + lat) / in_flight, m["get_s_per_record"]),
                      list_s=m["get_s_per_record"] + lat, invoke_gap_s=1 / m["invoke_calls_per_s"],
                      invoke_latency_s=a["invoke_latency_s"].value)

    # dml sends the 1,000 fits as maps of invocations sized for the executor's `workers` (dml.execution.batches):
    # workers=W gives invocations of about 1000 / (4 W) fits and keeps W of them outstanding.
    def dml_segments(workers: int) -> list[list[int]]:
        return [[k for k in [size] * (n // size) + [n % size] if k] for n, size in batches(N_TASKS, workers)]

    def run(name: str, workers: int, cold_s: float = cold, concurrency: int = conc, in_flight: int = 1) -> dict:
        out = simulate(dml_segments(workers), workers, concurrency, cold_s, task_s, client(in_flight), a,
                       m["doubleml_client_s"])
        return {"scenario": name, **out}

    choices = (10, 20, 30, 50, 100, 200, 300, 500, 1000)
    best = min(choices, key=lambda w: run("", w)["wall_s"])
    scenarios = [
        run("Lambda, workers=1000: 1 fit per invocation, all at once", 1000),
        run("same, pessimistic cold start (the 64 MB package figure)", 1000, cold_s=cold_big),
        run("Lambda, default workers=100 (also right for an account limited to 100)", 100),
        run(f"Lambda, workers={best}: the best of workers in {choices[0]}..{choices[-1]}", best),
        run("what-if: workers=1000, client with 32 S3 requests in flight (not implemented)", 1000, in_flight=32),
    ]
    laptop = {"scenario": f"laptop, {LAPTOP_CORES} cores: task time x {N_TASKS} / {LAPTOP_CORES}",
              "wall_s": m["task_s"] * N_TASKS / LAPTOP_CORES, "cost_usd": a["laptop_cost_usd"].value}
    laptop_busy = {"scenario": f"laptop, {LAPTOP_CORES} cores, task time measured with both cores busy",
                   "wall_s": m["task_s_two_at_once"] * N_TASKS / LAPTOP_CORES, "cost_usd": a["laptop_cost_usd"].value}
    return {"laptop": [laptop, laptop_busy], "lambda": scenarios}


def fmt_time(seconds: float) -> str:
    if seconds >= 3600:
        return f"{seconds / 3600:.2f} h"
    if seconds >= 120:
        return f"{seconds / 60:.1f} min"
    return f"{seconds:.1f} s"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=1, help="task runs per learner and data set (each ~20 s)")
    parser.add_argument("--s3-latency", type=float, default=0.05, help="assumed s per S3 request from the laptop")
    parser.add_argument("--invoke-latency", type=float, default=0.05, help="assumed s per Invoke from the laptop")
    parser.add_argument("--invoke-workers", type=int, default=N_TASKS,
                        help="the invoker's window when measuring (at least the 1,000 invocations, so that all go "
                             "out: the stand-in never finishes one)")
    parser.add_argument("--put-round-trips", type=int, default=1,
                        help="round trips per client S3 PUT (1 today; 2 with 'Expect: 100-continue', as before)")
    parser.add_argument("--replay", action="store_true",
                        help="no measuring: predict again from the measurements saved in --output (e.g. with other "
                             "latencies or round trips) and update its predictions")
    parser.add_argument("--output", type=Path, default=RESULTS)
    parser.add_argument("--one-task", nargs=3, metavar=("DATASET", "LEARNER", "REP"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    warnings.filterwarnings("ignore", category=FutureWarning)
    if args.invoke_workers < N_TASKS:
        parser.error(f"--invoke-workers must be at least {N_TASKS}: the invoker keeps at most that many invocations "
                     "outstanding, and the Lambda API stand-in never finishes one")
    if args.one_task:
        name, learner, rep = args.one_task
        print(json.dumps(one_task(name, learner, int(rep))))
        return
    if args.replay:
        replay(args)
        return

    load_before = os.getloadavg()
    print(f"measuring on {os.cpu_count()} CPUs (load average {load_before[0]:.1f}) ...", flush=True)
    tasks: dict[str, list[dict[str, float]]] = {"plr_dim20": [], "bonus_shaped": []}
    for name in tasks:
        for rep in range(args.repeats):
            for learner in LEARNERS:  # alone: one task, one core
                tasks[name] += run_tasks([(name, learner, rep)])
                print(f"  one task, {name}, {learner}: {tasks[name][-1]['seconds']:.1f} s", flush=True)
    both = {name: run_tasks([(name, learner, 0) for learner in LEARNERS]) for name in tasks}  # the laptop's case
    for name, runs in both.items():
        print(f"  two tasks at once ({name}): " + ", ".join(f"{t['seconds']:.1f} s" for t in runs), flush=True)
    imports = cold_import_seconds()
    print(f"  cold worker imports: {imports['imports_s']:.2f} s", flush=True)
    client_s = doubleml_client_seconds()
    print(f"  DoubleML on the client (n_rep={N_REP}): {client_s:.2f} s", flush=True)
    rates = client_rates(N_TASKS, args.invoke_workers)
    print(f"  client: {rates['invoke_calls_per_s']:.0f} Invoke calls/s, "
          f"{rates['submit_s_per_invocation'] * 1000:.1f} ms submission and "
          f"{rates['get_s_per_record'] * 1000:.1f} ms result read per invocation (SeaweedFS)", flush=True)

    measured = {
        "task_s": statistics.median(t["seconds"] for t in tasks["plr_dim20"]),
        "task_s_bonus_shaped": statistics.median(t["seconds"] for t in tasks["bonus_shaped"]),
        "task_s_two_at_once": statistics.median(t["seconds"] for t in both["plr_dim20"]),
        "task_s_two_at_once_bonus_shaped": statistics.median(t["seconds"] for t in both["bonus_shaped"]),
        "task_peak_rss_mb": max(t["peak_rss_mb"] for ts in tasks.values() for t in ts),
        "cold_imports_s": imports["interpreter_and_imports_s"],
        "doubleml_client_s": client_s,
        **{k: v for k, v in rates.items() if k not in ("invocations", "invoke_workers", "runs")},
    }
    a = assumptions(args.s3_latency, args.invoke_latency, args.put_round_trips)
    predicted, predicted_bonus = predict(measured, a)

    print("\nMeasured on this machine")
    print("| quantity | value | how |")
    print("|---|---|---|")
    rows = [
        ("one task (fit + predict), make_plr_CCDDHNR2018(n_obs=5099, dim_x=20)", f"{measured['task_s']:.2f} s",
         f"median of {len(tasks['plr_dim20'])} runs, one per process, alone on the machine's 2 cores"),
        ("one task, Bonus-shaped synthetic data (15 dummies)", f"{measured['task_s_bonus_shaped']:.2f} s",
         f"median of {len(tasks['bonus_shaped'])} runs"),
        ("one task with both cores busy (2 at once), dim_x=20", f"{measured['task_s_two_at_once']:.2f} s",
         "median of the two"),
        ("one task with both cores busy, Bonus-shaped", f"{measured['task_s_two_at_once_bonus_shaped']:.2f} s",
         "median of the two"),
        ("peak memory of a task process", f"{measured['task_peak_rss_mb']:.0f} MB", "ru_maxrss (fits in 1,769 MB)"),
        ("cold worker start: interpreter + imports", f"{measured['cold_imports_s']:.2f} s",
         "median of 3 fresh interpreters; warm page cache"),
        ("LambdaInvoker Invoke calls per second", f"{measured['invoke_calls_per_s']:.0f} /s",
         f"median of 3 jobs of {N_TASKS} Invokes, workers={args.invoke_workers}, a 202-only Lambda API in another "
         "process on the same 2 cores"),
        ("client CPU per Invoke call", f"{measured['client_cpu_s_per_invoke'] * 1000:.1f} ms",
         f"all client threads during the Invokes: at most {1 / measured['client_cpu_s_per_invoke']:.0f} Invokes/s "
         "per free core"),
        ("executor submission per invocation (S3 PUT + spec)", f"{measured['submit_s_per_invocation'] * 1000:.1f} ms",
         "sequential, SeaweedFS on 127.0.0.1"),
        ("collector read per result record (S3 GET)", f"{measured['get_s_per_record'] * 1000:.1f} ms",
         "sequential, 8 KB objects, SeaweedFS on 127.0.0.1"),
        ("DoubleML's part on the client (n_rep = 100)", f"{measured['doubleml_client_s']:.2f} s",
         "splits + model + fit(external_predictions)"),
    ]
    for row in rows:
        print(f"| {row[0]} | {row[1]} | {row[2]} |")

    print_predictions(measured, a, predicted, predicted_bonus)

    report = {
        "case": {"n_obs": N_OBS, "n_trees": N_TREES, "n_folds": N_FOLDS, "n_rep": N_REP, "fits": N_TASKS},
        "measured": measured, "task_runs": tasks, "two_at_once": both, "imports": imports, "client": rates,
        "assumptions": {k: asdict(v) for k, v in a.items()},
        "predicted": predicted, "predicted_bonus_shaped": predicted_bonus,
        "cpu_count": os.cpu_count(), "python": platform.python_version(), "lambdamap": lambdamap.__version__,
        "load_average_before": load_before, "load_average_after": os.getloadavg(),
    }
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(report, indent=2) + "\n")
    print(f"\nwrote {args.output}")


def predict(measured: dict[str, float], a: dict[str, Assumption]) -> tuple[dict[str, Any], dict[str, Any]]:
    """The model for both data sets' task times."""
    bonus = dict(measured, task_s=measured["task_s_bonus_shaped"],
                 task_s_two_at_once=measured["task_s_two_at_once_bonus_shaped"])
    return model(measured, a), model(bonus, a)


def replay(args: argparse.Namespace) -> None:
    """Predict again from the measurements saved in ``args.output``, with this run's assumptions."""
    report = json.loads(args.output.read_text())
    measured = report["measured"]
    a = assumptions(args.s3_latency, args.invoke_latency, args.put_round_trips)
    predicted, predicted_bonus = predict(measured, a)
    print(f"replaying the measurements of {args.output} (lambdamap {report.get('lambdamap')})")
    print_predictions(measured, a, predicted, predicted_bonus)
    report.update(assumptions={k: asdict(v) for k, v in a.items()}, predicted=predicted,
                  predicted_bonus_shaped=predicted_bonus, replayed_with=lambdamap.__version__)
    args.output.write_text(json.dumps(report, indent=2) + "\n")
    print(f"\nwrote {args.output}")


def print_predictions(measured: dict[str, float], a: dict[str, Assumption], predicted: dict[str, Any],
                      predicted_bonus: dict[str, Any]) -> None:
    print("\nAssumptions")
    print("| assumption | value | source |")
    print("|---|---|---|")
    for x in a.values():
        print(f"| {x.name} | {x.value:g} {x.unit} | {x.source} |")

    for title, pred, task_s in (("make_plr_CCDDHNR2018(n_obs=5099, dim_x=20)", predicted, measured["task_s"]),
                                ("Bonus-shaped synthetic data", predicted_bonus, measured["task_s_bonus_shaped"])):
        print(f"\nPredicted: PLR, n = {N_OBS}, RF({N_TREES} trees), {N_FOLDS} folds, n_rep = {N_REP} "
              f"({N_TASKS} fits of {task_s:.1f} s each), {title}")
        print("| set-up | invocations (fits each) | cold starts | results in | wall time | cost (USD) | "
              "faster than the laptop (first row) |")
        print("|---|---|---|---|---|---|---|")
        base = pred["laptop"][0]["wall_s"]
        for row in pred["laptop"]:
            print(f"| {row['scenario']} | - | - | - | {fmt_time(row['wall_s'])} | {row['cost_usd']:.2f} | "
                  f"{base / row['wall_s']:.2f}x |")
        for s in pred["lambda"]:
            print(f"| {s['scenario']} | {s['invocations']} ({s['fits_per_invocation']}) | {s['cold_starts']} | "
                  f"{fmt_time(s['results_s'])} (PUTs done at {s['submit_s']:.0f} s) | {fmt_time(s['wall_s'])} | "
                  f"{s['cost_usd']:.2f} | {base / s['wall_s']:.0f}x |")


if __name__ == "__main__":
    main()
