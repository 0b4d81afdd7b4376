"""What is in storage: the jobs under a prefix and, for one job, its invocations (for ``lambdamap jobs``/``job``);
and removing them (``lambdamap cleanup``).

Works on any storage the client can reach, while a job runs (pending invocations have arguments but no result
record yet) or after it finished with ``keep=True``. Finished jobs without ``keep`` are removed from storage once
their results are collected, so they are not listed.
"""

from __future__ import annotations

from dataclasses import dataclass

from lambdamap.core import keys
from lambdamap.core.task import ResultRecord
from lambdamap.storage.base import Storage


@dataclass(frozen=True)
class JobListing:
    job_id: str
    invocations: int
    results: int

    @property
    def state(self) -> str:
        return "finished" if self.results >= self.invocations else "running"


@dataclass(frozen=True)
class InvocationView:
    invocation: int
    calls: int
    failed_calls: int
    seconds: float | None
    worker_id: str
    warm: bool
    platform: str
    peak_memory_mb: float | None
    setup_error: str | None


def list_jobs(storage: Storage, prefix: str = keys.DEFAULT_PREFIX) -> list[JobListing]:
    """Jobs under ``prefix``, newest first (job ids start with their UTC submission time)."""
    invocations: dict[str, set[int]] = {}
    results: dict[str, set[int]] = {}
    for key in storage.list(keys.jobs_prefix(prefix)):
        parsed = keys.parse_job_key(key)  # None for other objects a backend keeps under a job (attempt markers)
        if parsed is None:
            continue
        job_id, kind, invocation = parsed
        invocations.setdefault(job_id, set())
        results.setdefault(job_id, set())
        (invocations if kind == "args" else results)[job_id].add(invocation)
    # An invocation is known by its args or its result (a backend may remove the args of a finished one).
    return [JobListing(job_id, len(invocations[job_id] | results[job_id]), len(results[job_id]))
            for job_id in sorted(invocations, reverse=True)]


def describe_job(storage: Storage, job_id: str, prefix: str = keys.DEFAULT_PREFIX) -> list[InvocationView]:
    """One view per result record of ``job_id`` (pending invocations have none yet)."""
    views = []
    for key in storage.list(keys.results_prefix(prefix, job_id)):
        if keys.parse_job_key(key) is None:
            continue
        record = ResultRecord.loads(storage.get(key))
        views.append(InvocationView(
            invocation=record.invocation, calls=record.calls_run, failed_calls=len(record.errors),
            seconds=None if record.worker_end is None else record.worker_end - record.worker_start,
            worker_id=record.worker_id, warm=record.warm, platform=record.platform,
            peak_memory_mb=None if record.peak_memory_bytes is None else record.peak_memory_bytes / 2**20,
            setup_error=None if record.setup_error_type is None
            else f"{record.setup_error_type}: {record.setup_error_message}",
        ))
    return views


def delete_jobs(storage: Storage, prefix: str = keys.DEFAULT_PREFIX, *, blobs: bool = False) -> int:
    """Delete every job's objects under ``prefix`` (and cached functions and shared objects with ``blobs``); return
    how many objects went. Running jobs lose their arguments and results: do not run it while jobs run."""
    deleted = 0
    for where in [keys.jobs_prefix(prefix)] + ([keys.blobs_prefix(prefix)] if blobs else []):
        found = storage.list(where)
        storage.delete(found)
        deleted += len(found)
    return deleted
