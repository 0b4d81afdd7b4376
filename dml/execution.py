"""Running nuisance tasks on a lambdamap executor: the shared default executor, batching, waiting, and the stats.

``executor=None`` in every dml fit means :func:`shared_executor`: one
``lambdamap.default_executor()`` created on first use, cached for the process (so repeated fits reuse warm workers
and the data they already loaded) and shut down at interpreter exit.
"""

from __future__ import annotations

import atexit
import concurrent.futures as cf
import functools
import heapq
import math
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import lambdamap
from dml.tasks import NuisanceTask, TaskInputs, run
from lambdamap.core.future import interrupted

#: Invocations per unit of the backend's parallelism a stage aims at: several, so that a slow invocation does not
#: leave the other workers idle at the end, yet each invocation fits several learners (one data load, one start-up).
INVOCATIONS_PER_WORKER = 4
#: A batch size may leave the busiest worker this much more work than the best-balanced size (fewer invocations).
BALANCE_SLACK = 1.05
#: Lost or timed-out invocations are re-run this often; tasks are pure, so re-running one is always safe.
RETRIES = 2
#: How long to wait for the collector to file a job's last result record after its futures completed.
RECORDS_GRACE_SECONDS = 2.0

_shared: lambdamap.Executor | None = None
_shared_lock = threading.Lock()


def shared_executor() -> lambdamap.Executor:
    """The process-wide default executor (``lambdamap.default_executor()``), created on first use."""
    global _shared
    with _shared_lock:
        if _shared is None:
            _shared = lambdamap.default_executor()
            atexit.register(_shutdown_shared)
        return _shared


def _shutdown_shared() -> None:
    global _shared
    with _shared_lock:
        executor, _shared = _shared, None
    if executor is not None:
        executor.shutdown(wait=False, cancel_futures=True)


def _makespan(n_tasks: int, size: int, parallelism: int) -> int:
    """Fits the busiest worker runs when ``n_tasks`` equal fits go out in invocations of ``size``, first come first
    served on ``parallelism`` workers."""
    full, rest = divmod(n_tasks, size)
    loads = [0] * parallelism
    for batch in [size] * full + ([rest] if rest else []):
        heapq.heapreplace(loads, loads[0] + batch)
    return max(loads)


def chunksize(n_tasks: int, parallelism: int) -> int:
    """Tasks per invocation: at most enough for :data:`INVOCATIONS_PER_WORKER` invocations per worker, and among
    those sizes the largest whose invocations spread evenly over the workers (within :data:`BALANCE_SLACK`).

    E.g. 40 fits on 2 workers: 8 invocations of 5; 10 fits on 2 workers: 10 invocations of 1 (5 of 2 would keep one
    worker busy for 3 of them while the other idles).
    """
    parallelism = max(1, parallelism)
    largest = max(1, math.ceil(n_tasks / (parallelism * INVOCATIONS_PER_WORKER)))
    spans = {size: _makespan(n_tasks, size, parallelism) for size in range(1, largest + 1)}
    best = min(spans.values())
    return max(size for size, span in spans.items() if span <= best * BALANCE_SLACK)


def batches(n_tasks: int, parallelism: int) -> list[tuple[int, int]]:
    """How a stage's tasks go out: ``(tasks, chunksize)`` segments, in order, one map each.

    Most tasks go in invocations of :func:`chunksize`; the last ones in rounds of invocations of half, a quarter ...
    down to one task (guided scheduling), so that a worker that was slowed down, or a slow invocation, does not leave
    the others idle at the end while it works through a full batch.
    E.g. 40 tasks on 2 workers: 34 in invocations of 5, then 2 invocations of 2, then 2 of 1.
    """
    size = chunksize(n_tasks, parallelism)
    if parallelism <= 1:
        return [(n_tasks, size)]  # one worker: nothing to balance
    tail = []
    smaller = size // 2
    while smaller >= 1:
        tail.append(smaller)
        smaller //= 2
    tail_tasks = sum(parallelism * s for s in tail)
    if not tail or tail_tasks > n_tasks / 2:
        return [(n_tasks, size)]
    return [(n_tasks - tail_tasks, size), *((parallelism * s, s) for s in tail)]


def submit_stage(executor: lambdamap.Executor, tasks: Sequence[NuisanceTask],
                 inputs: TaskInputs) -> list[lambdamap.Future]:
    """Start the maps of one stage (see :func:`batches`); the function carries only the refs in ``inputs``."""
    return submit(executor, functools.partial(run, inputs=inputs), tasks)


def submit(executor: lambdamap.Executor, fn: Callable[[Any], Any], tasks: Sequence[Any]) -> list[lambdamap.Future]:
    """Start ``fn`` over ``tasks`` as the maps :func:`batches` plans, with :data:`RETRIES`."""
    futures: list[lambdamap.Future] = []
    start = 0
    for count, size in batches(len(tasks), executor.workers):
        futures += executor.map(fn, list(tasks[start:start + count]), chunksize=size, retries=RETRIES)
        start += count
    return futures


class Described(Protocol):
    def describe(self) -> str: ...


def gather(tasks: Sequence[Described], futures: Sequence[lambdamap.Future]) -> list[Any]:
    """Wait for every task; on the first failure cancel the rest and raise it, naming the task.

    The wait ends: the executor completes every started invocation with a result, a lost-worker error or a timeout.
    """
    try:
        done, not_done = cf.wait(futures, return_when=cf.FIRST_EXCEPTION)
    except KeyboardInterrupt:  # Ctrl-C: cancel the queued fits and stop the running ones, as lambdamap.wait does
        interrupted(futures)
        raise
    except BaseException:
        for fut in futures:
            fut.cancel()
        raise
    for task, fut in zip(tasks, futures, strict=True):
        if fut in done and not fut.cancelled() and fut.exception() is not None:
            for other in not_done:
                other.cancel()
            exc = fut.exception()
            assert exc is not None
            exc.add_note(f"dml: raised while fitting {task.describe()}")
            raise exc
    return [fut.result() for fut in futures]


@dataclass(frozen=True)
class FitStats:
    """What the fit's maps did.

    ``tasks``: nuisance fits; ``invocations``: worker invocations they were batched into; ``stages``: maps run one
    after the other (2 for IV-type); ``workers``: distinct worker processes used; ``wall_seconds``: the whole fit on
    the client; ``task_seconds``: the summed time of the fits on the workers; ``cost_usd``: the estimated AWS Lambda
    cost, exactly what ``executor.job_summary(futures).cost_usd`` reports (lambdamap's cost model: billed
    milliseconds, the function's memory and architecture; None on other backends); ``job_ids``: the lambdamap jobs
    of the fit (for ``executor.jobs()`` / ``executor.job_summary``).
    """

    backend: str
    tasks: int
    invocations: int
    stages: int
    workers: int
    wall_seconds: float
    task_seconds: float
    cost_usd: float | None = None
    job_ids: tuple[str, ...] = ()


def _cost(executor: lambdamap.Executor, futures: Sequence[lambdamap.Future]) -> float | None:
    """lambdamap's own cost estimate of the fit's futures (None where it has none, e.g. the local backend)."""
    job_ids = {f.job_id for f in futures}
    jobs = [job for job in executor.jobs() if job.job_id in job_ids]
    deadline = time.monotonic() + RECORDS_GRACE_SECONDS  # the collector files a job's last record just after
    while any(job.finished is None for job in jobs) and time.monotonic() < deadline:  # its futures complete
        time.sleep(0.01)
    return executor.job_summary(futures).cost_usd


def fit_stats(executor: lambdamap.Executor, futures: Sequence[lambdamap.Future], stages: int,
              wall_seconds: float) -> FitStats:
    stats = [f.stats for f in futures]
    return FitStats(
        backend=executor.backend,
        tasks=len(futures),
        invocations=len({(f.job_id, s.invocation) for f, s in zip(futures, stats, strict=True)}),
        stages=stages,
        workers=len({s.worker_id for s in stats if s.worker_id is not None}),
        wall_seconds=wall_seconds,
        task_seconds=float(sum(s.function_seconds or 0.0 for s in stats)),
        cost_usd=_cost(executor, futures),
        job_ids=tuple(dict.fromkeys(f.job_id for f in futures)),
    )
