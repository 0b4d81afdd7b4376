"""The Dask backend's worker side: the task that runs one invocation, and the preflight probe.

Both run on Dask workers; they import nothing of the client side.
"""

from __future__ import annotations

import os
from typing import Any

from lambdamap.core import keys
from lambdamap.core.task import TaskSpec, client_versions


class EarlierRunLost(Exception):
    """Raised on a Dask worker when Dask re-runs an invocation whose first run died with its worker."""


def _marker_key(spec: TaskSpec) -> str:
    # Beside the invocation's args, inside the job's prefix: removed with the job's objects.
    return keys.attempt_marker_of(spec.args_key, spec.attempt)


def _worker_address() -> str:
    try:
        from distributed import get_worker

        return get_worker().address
    except (ImportError, ValueError):
        return f"pid {os.getpid()}"


def _run_on_dask(spec_json: str) -> None:
    """The Dask task of one invocation: refuse a re-run after a worker death, else :func:`run_task`."""
    from lambdamap.core.worker import run_task
    from lambdamap.storage.base import storage_from_location

    spec = TaskSpec.from_json(spec_json)
    storage = storage_from_location(spec.storage)
    marker = _marker_key(spec)
    address = _worker_address()
    if storage.exists(marker):
        if storage.exists(spec.result_key):
            return  # the earlier run finished after all; its record stands
        try:
            where = storage.get(marker).decode()
        except Exception:  # noqa: BLE001 - only for the message
            where = "another worker"
        raise EarlierRunLost(f"the Dask worker {where} died while running invocation {spec.invocation} "
                             f"(attempt {spec.attempt}); Dask re-scheduled it, lambdamap does not re-run it")
    storage.put(marker, address.encode())
    run_task(spec, storage=storage, platform="dask", extra={"dask_worker": address})


def _probe(location: dict[str, str], key: str) -> dict[str, Any]:
    """Preflight task: can this worker import lambdamap, with which versions, and can it read our storage?"""
    from pathlib import Path

    from lambdamap.core.serialize import digest
    from lambdamap.errors import ObjectNotFoundError
    from lambdamap.storage.base import storage_from_location

    facts: dict[str, Any] = {"versions": client_versions(), "worker": _worker_address(), "digest": None,
                             "storage_error": None}
    if location.get("kind") == "local" and not Path(location["root"]).is_dir():
        return facts  # do not create a stray folder on a machine that does not share ours
    try:
        facts["digest"] = digest(storage_from_location(location).get(key))
    except ObjectNotFoundError:
        pass
    except Exception as exc:  # noqa: BLE001 - e.g. no credentials for S3 on the worker: reported by the client
        facts["storage_error"] = f"{type(exc).__name__}: {exc}"
    return facts


