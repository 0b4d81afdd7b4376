"""Job summaries and the AWS Lambda cost model.

:func:`summarize` turns a list of futures (one job or several, e.g. both stages of a dml fit) into a
:class:`JobSummary`: calls, invocations, wall time, summed function time, cold starts, peak memory, bytes moved through
storage, storage requests and, for Lambda, an estimated cost.

The cost model is Lambda's published one: every invocation is billed for its duration rounded up to the millisecond,
at the configured memory (GB-seconds), plus a price per request. The prices are configuration
(:class:`LambdaPricing`), defaulting to the published on-demand prices of US East (N. Virginia), first volume tier,
from https://aws.amazon.com/lambda/pricing/. Other regions: pass your own ``LambdaPricing``.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass
from typing import Any

from lambdamap.core.future import Future


@dataclass(frozen=True)
class LambdaPricing:
    """USD prices of AWS Lambda on-demand use (defaults: us-east-1, first tier, as published)."""

    gb_second_x86_64: float = 0.0000166667
    gb_second_arm64: float = 0.0000133334
    per_request: float = 0.20 / 1_000_000

    def gb_second(self, architecture: str) -> float:
        if architecture not in ("x86_64", "arm64"):
            raise ValueError(f"architecture must be 'x86_64' or 'arm64', got {architecture!r}")
        return self.gb_second_arm64 if architecture == "arm64" else self.gb_second_x86_64


DEFAULT_PRICING = LambdaPricing()


def lambda_cost(invocation_seconds: Iterable[float], memory_mb: int, *, architecture: str = "x86_64",
                pricing: LambdaPricing = DEFAULT_PRICING) -> float:
    """Estimated USD cost of invocations lasting ``invocation_seconds`` each, at ``memory_mb``."""
    if not 128 <= memory_mb <= 10_240:
        raise ValueError(f"Lambda memory must be 128 to 10240 MB, got {memory_mb}")
    durations = list(invocation_seconds)
    billed_ms = sum(math.ceil(max(0.0, d) * 1000) for d in durations)
    gb_seconds = memory_mb / 1024 * billed_ms / 1000
    return gb_seconds * pricing.gb_second(architecture) + len(durations) * pricing.per_request


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
    memory_mb: int | None = None
    cost_usd: float | None = None

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
            lines.append(f"estimated AWS Lambda cost at {self.memory_mb} MB: ${self.cost_usd:.6f}")
        return "\n".join(lines)


def summarize(futures: Sequence[Future], jobs: Iterable[Any] = (), *, memory_mb: int | None = None,
              architecture: str = "x86_64", pricing: LambdaPricing = DEFAULT_PRICING) -> JobSummary:
    """Summarize finished ``futures``; ``jobs`` (the executor's job states) add storage traffic and records.

    ``memory_mb`` turns on the Lambda cost estimate (the executor passes its function's memory on Lambda; pass it
    yourself to price a local run as if it ran on Lambda).
    """
    futures = list(futures)
    job_ids = {f.job_id for f in futures}
    states = [j for j in jobs if j.job_id in job_ids]
    stats = [f.stats for f in futures]
    records = [r for j in states for r in j.records]
    starts = [s.submitted for s in stats]
    ends = [s.result_received for s in stats if s.result_received is not None]
    function_seconds = sum(s.function_seconds or 0.0 for s in stats)
    invocation_seconds = [r["worker_end"] - r["worker_start"] for r in records
                          if r.get("worker_end") is not None]
    memory = [s.peak_memory_bytes / 2**20 for s in stats if s.peak_memory_bytes]
    invocations = {(f.job_id, s.invocation) for f, s in zip(futures, stats, strict=True)}
    failed = sum(1 for f in futures if f.done() and not f.cancelled() and f.exception() is not None)
    platforms = {s.platform for s in stats if s.platform}
    cost = None
    if memory_mb is not None and invocation_seconds:
        cost = lambda_cost(invocation_seconds, memory_mb, architecture=architecture, pricing=pricing)
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
        memory_mb=memory_mb, cost_usd=cost,
    )
