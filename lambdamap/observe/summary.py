"""Job summaries and the AWS Lambda cost model.

:func:`summarize` turns a list of futures (one job or several, e.g. both stages of a dml fit) into a
:class:`JobSummary`: calls, invocations, wall time, summed function time, cold starts, peak memory, bytes moved through
storage, storage requests and, for Lambda, an estimated cost.

The cost model (:class:`LambdaPricing`, :func:`lambda_cost`) lives in :mod:`lambdamap.aws.pricing`; both are
re-exported here.
"""

from __future__ import annotations

import statistics
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass
from typing import Any

from lambdamap.aws.pricing import DEFAULT_PRICING, LambdaPricing, lambda_cost
from lambdamap.core.future import Future

#: Re-exported: ``lambdamap.LambdaPricing`` and ``lambdamap.lambda_cost`` are imported from here.
__all__ = ["DEFAULT_PRICING", "JobSummary", "LambdaPricing", "lambda_cost", "summarize"]


@dataclass(frozen=True)
class JobSummary:
    """What a job (or several) did; ``cost_usd`` is set when a Lambda memory size is known."""

    jobs: int
    calls: int
    failed_calls: int
    invocations: int
    retried_invocations: int
    wall_seconds: float
    function_seconds: float
    invocation_seconds: float
    cold_starts: int
    workers: int
    peak_memory_mb_max: float | None
    peak_memory_mb_median: float | None
    bytes_uploaded: int
    bytes_downloaded: int
    storage_requests: int
    platform: str | None
    memory_mb: int | None = None  # the one memory size priced (None when several were: see memory_sizes_mb)
    cost_usd: float | None = None
    memory_sizes_mb: tuple[int, ...] = ()  # every memory size priced (maps with different ``memory=``)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    def __str__(self) -> str:
        lines = [
            f"calls {self.calls} ({self.failed_calls} failed) in {self.invocations} invocations "
            f"({self.retried_invocations} retried) on {self.workers} worker(s), platform {self.platform}",
            f"wall {self.wall_seconds:.3f} s; function time {self.function_seconds:.3f} s; "
            f"invocation time {self.invocation_seconds:.3f} s; cold starts {self.cold_starts}",
            f"storage: {self.bytes_uploaded:,} B up, {self.bytes_downloaded:,} B down, "
            f"{self.storage_requests} requests",
        ]
        if self.peak_memory_mb_max is not None:
            lines.append(f"peak worker memory: median {self.peak_memory_mb_median:.0f} MB, "
                         f"max {self.peak_memory_mb_max:.0f} MB")
        if self.cost_usd is not None:
            sizes = "/".join(str(m) for m in self.memory_sizes_mb) or str(self.memory_mb)
            lines.append(f"estimated AWS Lambda cost at {sizes} MB: ${self.cost_usd:.6f}")
        return "\n".join(lines)


def _record_memory(record: dict[str, Any], default: int | None) -> int | None:
    """The memory an invocation is priced at: what Lambda gave it, else what its map asked for (``memory=``, on
    any backend), else ``default``."""
    extra = record.get("extra") or {}
    return extra.get("memory_limit_mb") or extra.get("memory_mb") or default


def summarize(futures: Sequence[Future], jobs: Iterable[Any] = (), *, memory_mb: int | None = None,
              architecture: str = "x86_64", pricing: LambdaPricing = DEFAULT_PRICING,
              default_memory_mb: int | None = None) -> JobSummary:
    """Summarize finished ``futures``; ``jobs`` (the executor's job states) add storage traffic and records.

    The Lambda cost estimate prices every invocation at ``memory_mb`` when given (to price a run elsewhere as if it
    ran on Lambda); otherwise each at the memory its record reports (Lambda's, or the map's ``memory=``), else
    ``default_memory_mb`` (the executor passes its function's memory on Lambda). Without a memory for every
    invocation there is no estimate.
    """
    futures = list(futures)
    job_ids = {f.job_id for f in futures}
    states = [j for j in jobs if j.job_id in job_ids]
    stats = [f.stats for f in futures]
    records = [r for j in states for r in j.records]
    starts = [s.submitted for s in stats]
    ends = [s.result_received for s in stats if s.result_received is not None]
    function_seconds = sum(s.function_seconds or 0.0 for s in stats)
    finished = [r for r in records if r.get("worker_end") is not None]
    invocation_seconds = [r["worker_end"] - r["worker_start"] for r in finished]
    by_memory: dict[int | None, list[float]] = {}
    for r, seconds in zip(finished, invocation_seconds, strict=True):
        by_memory.setdefault(memory_mb or _record_memory(r, default_memory_mb), []).append(seconds)
    memory = [s.peak_memory_bytes / 2**20 for s in stats if s.peak_memory_bytes]
    invocations = {(f.job_id, s.invocation) for f, s in zip(futures, stats, strict=True)}
    failed = sum(1 for f in futures if f.done() and not f.cancelled() and f.exception() is not None)
    platforms = {s.platform for s in stats if s.platform}
    cost = None
    sizes = sorted(m for m in by_memory if m is not None)
    if by_memory and None not in by_memory:
        cost = sum(lambda_cost(seconds, m, architecture=architecture, pricing=pricing)
                   for m, seconds in by_memory.items() if m is not None)
    if not by_memory:
        sizes = [m for m in (memory_mb or default_memory_mb,) if m is not None]
    return JobSummary(
        jobs=len(job_ids), calls=len(futures), failed_calls=failed, invocations=len(invocations),
        retried_invocations=len({(f.job_id, s.invocation) for f, s in zip(futures, stats, strict=True)
                                 if s.attempts > 1}),
        wall_seconds=(max(ends) - min(starts)) if ends else 0.0, function_seconds=function_seconds,
        invocation_seconds=sum(invocation_seconds), cold_starts=sum(1 for r in records if not r["warm"]),
        workers=len({s.worker_id for s in stats if s.worker_id}),
        peak_memory_mb_max=max(memory) if memory else None,
        peak_memory_mb_median=statistics.median(memory) if memory else None,
        bytes_uploaded=sum(j.bytes_uploaded for j in states), bytes_downloaded=sum(j.bytes_downloaded for j in states),
        storage_requests=sum(j.storage_requests for j in states)
        + sum(r.get("extra", {}).get("storage", {}).get("requests", 0) for r in records),
        platform=platforms.pop() if len(platforms) == 1 else (", ".join(sorted(platforms)) or None),
        memory_mb=sizes[0] if len(sizes) == 1 else None, cost_usd=cost, memory_sizes_mb=tuple(sizes),
    )
