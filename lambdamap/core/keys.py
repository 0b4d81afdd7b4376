"""The storage key layout, as pure functions.

Everything lambdamap stores lives under one prefix (default ``lambdamap``), so that an IAM policy or a lifecycle
rule can be scoped to it::

    {prefix}/blobs/{sha256}.pkl                 content-addressed: functions and shared objects (reused by jobs)
    {prefix}/jobs/{job_id}/args/{inv:06d}.pkl   the pickled calls of one invocation
    {prefix}/jobs/{job_id}/results/{inv:06d}.pkl  the result record of one invocation
"""

from __future__ import annotations

import re
import secrets
import time

DEFAULT_PREFIX = "lambdamap"
_JOB_ID = re.compile(r"^[A-Za-z0-9_.-]{1,64}$")


def new_job_id() -> str:
    """A unique, sortable job id: UTC time plus random hex."""
    return time.strftime("%Y%m%dT%H%M%S", time.gmtime()) + "-" + secrets.token_hex(4)


def _check_job_id(job_id: str) -> str:
    if not _JOB_ID.match(job_id):
        raise ValueError(f"invalid job id {job_id!r}: use 1-64 letters, digits, '_', '.' or '-'")
    return job_id


def blob_key(prefix: str, digest: str) -> str:
    return f"{prefix}/blobs/{digest}.pkl"


def blobs_prefix(prefix: str) -> str:
    return f"{prefix}/blobs/"


def jobs_prefix(prefix: str) -> str:
    return f"{prefix}/jobs/"


def job_prefix(prefix: str, job_id: str) -> str:
    return f"{prefix}/jobs/{_check_job_id(job_id)}/"


def cancel_key(prefix: str, job_id: str) -> str:
    """The marker a client writes when it cancels a job: workers check it between calls and stop."""
    return f"{job_prefix(prefix, job_id)}cancelled"


def cancel_key_of(result_key: str) -> str:
    """:func:`cancel_key` from one of the job's result keys (what a worker's task spec carries)."""
    head, sep, _ = result_key.rpartition("/results/")
    if not sep:
        raise ValueError(f"not a result key: {result_key!r}")
    return f"{head}/cancelled"


def args_key(prefix: str, job_id: str, invocation: int) -> str:
    return f"{job_prefix(prefix, job_id)}args/{invocation:06d}.pkl"


def results_prefix(prefix: str, job_id: str) -> str:
    return f"{job_prefix(prefix, job_id)}results/"


def result_key(prefix: str, job_id: str, invocation: int) -> str:
    return f"{results_prefix(prefix, job_id)}{invocation:06d}.pkl"


def invocation_from_result_key(key: str) -> int:
    """Inverse of :func:`result_key` for the invocation number."""
    name = key.rsplit("/", 1)[-1]
    if not name.endswith(".pkl"):
        raise ValueError(f"not a result key: {key!r}")
    return int(name[: -len(".pkl")])


def job_id_from_key(key: str) -> str | None:
    """The job id a key under ``{prefix}/jobs/`` belongs to, else None."""
    parts = key.split("/")
    for i, part in enumerate(parts[:-1]):
        if part == "jobs" and i + 1 < len(parts) - 1:
            return parts[i + 1]
    return None


def root_prefix(prefix: str) -> str:
    """Everything lambdamap stores under ``prefix``: blobs, jobs and staged runtime zips."""
    return f"{prefix}/"


def staged_layer_key(prefix: str, layer_name: str, code_sha256: str) -> str:
    """Where ``lambdamap deploy`` stages a layer zip too big to upload directly (deleted once it is published)."""
    return f"{prefix}/runtime/{layer_name}-{code_sha256[:16].replace('/', '_')}.zip"


def attempt_marker_key(prefix: str, job_id: str, invocation: int, attempt: int) -> str:
    """A backend's marker that an attempt of an invocation started: beside its args, so it goes with the job.

    Not an args key: :func:`parse_job_key` does not count it as an invocation.
    """
    return attempt_marker_of(args_key(prefix, job_id, invocation), attempt)


def attempt_marker_of(args_key: str, attempt: int) -> str:
    """:func:`attempt_marker_key` from the invocation's args key (what a worker's task spec carries)."""
    return f"{args_key}.started-{attempt}"


def preflight_key(prefix: str) -> str:
    """A throwaway object a backend's preflight writes to check that its workers read the same storage."""
    return job_prefix(prefix, new_job_id()) + "preflight.bin"


_JOB_OBJECT = re.compile(r"(?:^|/)jobs/([A-Za-z0-9_.-]{1,64})/(args|results)/([0-9]+)\.pkl$")


def parse_job_key(key: str) -> tuple[str, str, int] | None:
    """Inverse of :func:`args_key` and :func:`result_key`: ``(job_id, "args" | "results", invocation)``.

    None for any other key, including other objects a backend keeps under a job (such as attempt markers).
    """
    match = _JOB_OBJECT.search(key)
    if match is None:
        return None
    return match.group(1), match.group(2), int(match.group(3))
