"""The Dask backend: every invocation is one task on a ``distributed`` cluster, running :func:`run_task`.

::

    Executor ─▶ DaskInvoker.invoke(specs) ─▶ queue ─▶ client.submit(_run_on_dask, spec_json)   (at most
        max_in_flight tasks at once: a submitted invocation starts at once, so timeouts and cancel stay exact)
    worker thread: _run_on_dask ─▶ started-marker in storage ─▶ run_task(spec) ─▶ result record in storage
    dask done-callback ─▶ sink.finished(spec) | sink.lost(spec, WorkerLostError / ...)   ─▶ next queued spec

Results never travel through Dask: the task returns None and the collector reads the record from the shared storage,
as on every backend.

Retries belong to lambdamap, not to Dask. When a worker dies, Dask re-runs its tasks on another worker (up to
``distributed.scheduler.allowed-failures`` times), which would silently run a call again even with ``retries=0``. So
each run first writes a *started marker* for its (invocation, attempt) to storage; a run that finds the marker of its
own attempt knows an earlier run of it died, and fails at once with a :class:`WorkerLostError` (re-invoked by the
collector while ``retries`` allow). This works on any cluster without changing its configuration, and fails only
the invocations that really ran on the dead worker, not those merely queued there.

Timeouts: a running Dask task cannot be interrupted inside its worker thread. When an invocation passes
``spec.timeout`` its future fails with :class:`TaskTimeoutError`, the Dask task is cancelled and (by default) the
worker running it is restarted through its nanny, which frees the thread; other invocations running on that worker
at the time are reported lost (and retried if allowed). Without a nanny the code keeps running until it returns
and its late result is ignored.
"""

from __future__ import annotations

import logging
import os
import secrets
import shutil
import tempfile
import threading
import time
from collections import deque
from dataclasses import dataclass
from typing import Any

from lambdamap.backends.base import InvocationSink, Invoker
from lambdamap.core.task import TaskSpec, client_versions
from lambdamap.errors import (
    ConfigError,
    InvocationError,
    PreflightError,
    StorageError,
    TaskTimeoutError,
    WorkerLostError,
)

log = logging.getLogger("lambdamap")

#: Seconds between refreshes of the cluster's thread count (also the resolution of the no-worker check).
REFRESH_SECONDS = 2.0


class EarlierRunLost(Exception):
    """Raised on a Dask worker when Dask re-runs an invocation whose first run died with its worker."""


# -- worker side ---------------------------------------------------------------------------------------------------
def _marker_key(spec: TaskSpec) -> str:
    # Beside the invocation's args, inside the job's prefix: removed with the job's objects.
    return f"{spec.args_key}.started-{spec.attempt}"


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


# -- client side ---------------------------------------------------------------------------------------------------
@dataclass(eq=False)
class _Running:
    spec: TaskSpec
    future: Any  # distributed.Future
    deadline: float | None


class DaskInvoker(Invoker):
    """Runs invocations as tasks of a ``distributed.Client``.

    ``max_in_flight`` caps the tasks handed to the scheduler at once (default: the cluster's total worker threads,
    followed as workers come and go). ``restart_timed_out_workers`` restarts the worker of an invocation that ran
    past its timeout (needs a nanny). ``no_workers_timeout`` fails invocations in flight when the cluster has had
    no worker for that many seconds. ``submit_options`` go to ``client.submit`` (e.g. ``resources``).
    """

    notifies_completion = True

    def __init__(self, client: Any, *, max_in_flight: int | None = None, restart_timed_out_workers: bool = True,
                 no_workers_timeout: float = 120.0, submit_options: dict[str, Any] | None = None) -> None:
        if max_in_flight is not None and (isinstance(max_in_flight, bool) or not isinstance(max_in_flight, int)
                                          or max_in_flight < 1):
            raise ConfigError(f"max_in_flight must be a positive integer or None, got {max_in_flight!r}")
        reserved = {"key", "pure", "retries"} & set(submit_options or {})
        if reserved:
            raise ConfigError(f"submit_options may not set {sorted(reserved)}: lambdamap sets task keys and handles "
                              "retries itself (use the map's retries=)")
        self.client = client
        self.max_in_flight = max_in_flight
        self.restart_timed_out_workers = restart_timed_out_workers
        self.no_workers_timeout = no_workers_timeout
        self.submit_options = dict(submit_options or {})
        self._sink: InvocationSink | None = None
        self._lock = threading.Lock()
        self._queue: deque[TaskSpec] = deque()
        self._running: dict[str, _Running] = {}
        self._reserved = 0  # slots taken by specs between the queue and _running
        self._closed = False
        self._wake = threading.Event()
        self._thread: threading.Thread | None = None
        self._nthreads = self._count_threads() or 0
        self._no_workers_since: float | None = None if self._nthreads else time.monotonic()

    # -- Invoker API --------------------------------------------------------------------------------------------
    @property
    def parallelism(self) -> int:  # type: ignore[override]
        """Total worker threads of the cluster (at least 1), as last seen."""
        return max(1, self._nthreads)

    def start(self, sink: InvocationSink) -> None:
        self._sink = sink
        self._thread = threading.Thread(target=self._watch, name="lambdamap-dask-watch", daemon=True)
        self._thread.start()

    def invoke(self, specs: list[TaskSpec]) -> None:
        with self._lock:
            if self._closed:
                return  # the collector fails what is left when the executor shuts down
            self._queue.extend(specs)
        self._dispatch()

    def close(self) -> None:
        with self._lock:
            if self._closed:
                return
            self._closed = True
            running = list(self._running.values())
            self._running.clear()
            self._queue.clear()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout=30)
        if running:
            try:
                self.client.cancel([r.future for r in running], force=True)
            except Exception:  # noqa: BLE001 - the client may already be gone
                log.debug("could not cancel Dask tasks at shutdown", exc_info=True)

    # -- dispatch -----------------------------------------------------------------------------------------------
    def _limit(self) -> int:
        return self.max_in_flight or self.parallelism

    def _dispatch(self) -> None:
        """Hand queued specs to the scheduler while slots are free (called from any thread)."""
        assert self._sink is not None
        while True:
            with self._lock:
                if self._closed or not self._queue or len(self._running) + self._reserved >= self._limit():
                    return
                spec = self._queue.popleft()
                self._reserved += 1
            try:
                live = self._sink.started(spec)  # False: every call of it was cancelled
                if live:
                    key = f"lambdamap-{spec.job_id}-{spec.invocation:06d}-a{spec.attempt}"
                    future = self.client.submit(_run_on_dask, spec.to_json(), key=key, pure=False, retries=0,
                                                **self.submit_options)
            except Exception as exc:  # noqa: BLE001 - e.g. the client is closed: the invocation cannot start
                with self._lock:
                    self._reserved -= 1
                self._sink.lost(spec, InvocationError(f"Dask refused invocation {spec.invocation}: "
                                                      f"{type(exc).__name__}: {exc}"))
                continue
            deadline = None if spec.timeout is None else time.monotonic() + spec.timeout
            with self._lock:
                self._reserved -= 1
                if not live:
                    continue
                if self._closed:
                    future.cancel()
                    return
                self._running[future.key] = _Running(spec, future, deadline)
            if deadline is not None:
                self._wake.set()
            future.add_done_callback(self._on_done)

    def _on_done(self, future: Any) -> None:
        """Dask's callback thread: report the outcome, then start queued invocations."""
        assert self._sink is not None
        with self._lock:
            running = self._running.pop(future.key, None)
        if running is None:
            return  # timed out, or shut down, already reported
        spec = running.spec
        status = future.status
        if status == "finished":
            self._sink.finished(spec)
        elif status == "error":
            try:
                exc = future.exception(timeout=30)
            except Exception as fetch_exc:  # noqa: BLE001
                exc = fetch_exc
            self._sink.lost(spec, _classify(exc, spec))
        else:
            self._sink.lost(spec, WorkerLostError(
                f"the Dask task of invocation {spec.invocation} ended as {status!r} (the scheduler restarted, "
                "the client lost its connection, or someone cancelled it)"))
        del future, running
        self._dispatch()

    # -- watchdog: timeouts, cluster size, no workers -------------------------------------------------------------
    def _watch(self) -> None:
        next_refresh = time.monotonic() + REFRESH_SECONDS
        while True:
            with self._lock:
                if self._closed:
                    return
                deadlines = [r.deadline for r in self._running.values() if r.deadline is not None]
            now = time.monotonic()
            wait = min([next_refresh - now, *(d - now for d in deadlines)])
            if wait > 0:
                self._wake.wait(wait)
            self._wake.clear()
            now = time.monotonic()
            with self._lock:
                if self._closed:
                    return
                expired = [r for r in self._running.values() if r.deadline is not None and r.deadline <= now]
            for running in expired:
                self._time_out(running)
            if now >= next_refresh:
                next_refresh = now + REFRESH_SECONDS
                self._refresh()
            self._dispatch()

    def _count_threads(self) -> int | None:
        try:
            return sum(self.client.nthreads().values())
        except Exception:  # noqa: BLE001 - scheduler unreachable right now; keep the last value
            log.debug("could not read the Dask cluster's thread count", exc_info=True)
            return None

    def _refresh(self) -> None:
        count = self._count_threads()
        if count is None:
            return
        self._nthreads = count
        now = time.monotonic()
        if count:
            self._no_workers_since = None
            return
        if self._no_workers_since is None:
            self._no_workers_since = now
        if now - self._no_workers_since < self.no_workers_timeout:
            return
        with self._lock:
            stranded = list(self._running.values())
            self._running.clear()
        for running in stranded:
            running.future.cancel()
            self._sink.lost(running.spec, WorkerLostError(  # type: ignore[union-attr]
                f"the Dask cluster has had no workers for {self.no_workers_timeout:g} s"))

    def _time_out(self, running: _Running) -> None:
        assert self._sink is not None
        with self._lock:
            if self._running.pop(running.future.key, None) is None:
                return  # finished meanwhile
        spec = running.spec
        worker = self._worker_of(running.future.key) if self.restart_timed_out_workers else None
        running.future.cancel()
        note = f"its Dask worker {worker} is being restarted" if worker else \
            "the Dask task was cancelled but its code may run on until it returns (no restartable worker)"
        self._sink.lost(spec, TaskTimeoutError(
            f"timed out after {spec.timeout:g} s (invocation {spec.invocation}, {spec.call_count} call(s)); {note}"))
        if worker:
            threading.Thread(target=self._restart, args=(worker,), name="lambdamap-dask-restart", daemon=True).start()

    def _worker_of(self, key: str) -> str | None:
        try:
            for worker, keys in self.client.processing().items():
                if key in keys:
                    return worker
        except Exception:  # noqa: BLE001
            log.debug("could not ask the Dask scheduler where %s runs", key, exc_info=True)
        return None

    def _restart(self, worker: str) -> None:
        try:
            self.client.restart_workers([worker], timeout=60, raise_for_error=False)
        except Exception:  # noqa: BLE001 - e.g. no nanny: the task runs on, its result is ignored
            log.warning("could not restart Dask worker %s after a timeout", worker, exc_info=True)


def _classify(exc: BaseException | None, spec: TaskSpec) -> BaseException:
    """The lambdamap error for a Dask task that erred (``run_task`` itself never raises the user's errors)."""
    from distributed.comm.core import CommClosedError
    from distributed.scheduler import KilledWorker

    where = f"invocation {spec.invocation}"
    if isinstance(exc, EarlierRunLost):
        return WorkerLostError(str(exc))
    if isinstance(exc, KilledWorker):
        return WorkerLostError(f"the Dask workers running {where} died: {exc}")
    if isinstance(exc, (CommClosedError, ConnectionError, TimeoutError)):
        return WorkerLostError(f"lost contact with the Dask task of {where}: {type(exc).__name__}: {exc}")
    if isinstance(exc, ImportError):
        return InvocationError(f"the Dask worker cannot run {where}: {type(exc).__name__}: {exc}. Install the same "
                               "lambdamap, cloudpickle and Python minor version on every worker as on the client")
    if isinstance(exc, (StorageError, OSError)):
        return StorageError(f"the Dask worker could not write the result of {where}: {type(exc).__name__}: {exc}")
    return InvocationError(f"the Dask task of {where} failed: {type(exc).__name__}: {exc}")


# -- factories -----------------------------------------------------------------------------------------------------
def _connect(client_or_address: Any, connect_timeout: float) -> tuple[Any, bool]:
    """A ``distributed.Client`` and whether we created it (then we close it at shutdown)."""
    import distributed

    if isinstance(client_or_address, distributed.Client):
        return client_or_address, False
    if client_or_address is None:
        try:
            return distributed.default_client(), False
        except ValueError:
            raise ConfigError(
                "dask_executor() needs a cluster: pass a distributed.Client or a scheduler address "
                "('tcp://host:8786'), set LAMBDAMAP_DASK_ADDRESS / dask_address, or create a Client first "
                "(e.g. distributed.Client(distributed.LocalCluster()))") from None
    if isinstance(client_or_address, str):
        if not client_or_address.strip():
            raise ConfigError("the Dask scheduler address is empty: pass e.g. 'tcp://127.0.0.1:8786'")
        try:
            client = distributed.Client(client_or_address, timeout=connect_timeout, set_as_default=False)
        except (OSError, TimeoutError) as exc:
            raise PreflightError(f"cannot connect to the Dask scheduler at {client_or_address!r} within "
                                 f"{connect_timeout:g} s: {exc}. Is the scheduler running and reachable?") from exc
        return client, True
    if hasattr(client_or_address, "scheduler_address"):  # a cluster object (LocalCluster, ...)
        return distributed.Client(client_or_address, set_as_default=False), True
    raise ConfigError(f"dask_executor() takes a distributed.Client, a cluster or a scheduler address string, "
                      f"got {type(client_or_address).__name__}")


def preflight(client: Any, storage: Any, prefix: str, timeout: float) -> dict[str, Any]:
    """Run one probe task: the workers must import lambdamap with our versions and read our storage."""
    from lambdamap.core import keys
    from lambdamap.core.serialize import digest

    data = secrets.token_bytes(16)
    key = keys.job_prefix(prefix, keys.new_job_id()) + "preflight.bin"
    storage.put(key, data)
    try:
        future = client.submit(_probe, storage.location(), key, pure=False)
        try:
            facts = future.result(timeout=timeout)
        except TimeoutError as exc:
            raise PreflightError(f"no Dask worker ran lambdamap's probe task within {timeout:g} s: does the cluster "
                                 "have workers? (raise connect_timeout= for clusters that scale up slowly)") from exc
        except Exception as exc:
            raise PreflightError(
                f"the Dask workers cannot run lambdamap's probe task: {type(exc).__name__}: {exc}. Install "
                f"lambdamap (same version as here) on every worker: pip install 'lambdamap[dask]'") from exc
    finally:
        storage.delete_prefix(key.rsplit("/", 1)[0] + "/")
    ours = client_versions()
    mismatch = [f"{name}: client {ours[name]}, worker {facts['versions'].get(name)}"
                for name in ("python", "cloudpickle", "lambdamap") if facts["versions"].get(name) != ours[name]]
    if mismatch:
        raise PreflightError(f"the Dask worker {facts['worker']} runs other versions than this client ("
                             + "; ".join(mismatch) + "): install the same versions on the workers")
    if facts["digest"] != digest(data):
        location = storage.location()
        if facts.get("storage_error"):
            hint = (f"{facts['storage_error']}. Give the workers credentials for it (environment variables, "
                    "a profile or an instance role) and make sure they reach its endpoint")
        elif location.get("kind") == "local":
            hint = (f"the folder {location.get('root')} is not shared with the workers (they run on another "
                    "machine?): pass storage_dir= a folder mounted at the same path on every worker, or "
                    "storage=S3Storage(...)")
        else:
            hint = "the probe object is not there for the workers: do they use another endpoint or bucket?"
        raise PreflightError(f"the Dask worker {facts['worker']} cannot read this executor's storage {location}: "
                             f"{hint}")
    return facts


def make_dask_executor(client_or_address: Any = None, *, storage: Any = None, storage_dir: str | None = None,
                       prefix: str = "lambdamap", progress: bool | None = None, max_in_flight: int | None = None,
                       restart_timed_out_workers: bool = True, no_workers_timeout: float = 120.0,
                       connect_timeout: float = 60.0, submit_options: dict[str, Any] | None = None) -> Any:
    """An :class:`~lambdamap.Executor` on a Dask ``distributed`` cluster.

    ``client_or_address``: a ``distributed.Client`` (left open at shutdown), a cluster object or a scheduler
    address (we connect, and close the connection at shutdown), or None for the current default client.

    Storage: ``storage`` (any :class:`~lambdamap.storage.base.Storage`, e.g. S3 for a remote cluster), else
    ``storage_dir`` (a folder every worker sees at the same path), else a temporary folder on this machine (removed
    at shutdown), which suits clusters running on this machine. A probe task checks before any work is sent that
    the workers import lambdamap with the client's versions and can read the storage.
    """
    from lambdamap.core.executor import Executor
    from lambdamap.storage.base import Storage
    from lambdamap.storage.local import LocalStorage

    if storage is not None and storage_dir is not None:
        raise ConfigError("pass either storage= or storage_dir=, not both")
    if storage is not None and not isinstance(storage, Storage):
        raise ConfigError(f"storage must be a lambdamap Storage (LocalStorage, S3Storage, ...), got "
                          f"{type(storage).__name__}")
    for name, value in (("connect_timeout", connect_timeout), ("no_workers_timeout", no_workers_timeout)):
        if isinstance(value, bool) or not isinstance(value, (int, float)) or value <= 0:
            raise ConfigError(f"{name} must be a positive number of seconds, got {value!r}")
    client, owns_client = _connect(client_or_address, connect_timeout)
    owned_dir = None
    try:
        if storage is None:
            owned_dir = tempfile.mkdtemp(prefix="lambdamap-dask-") if storage_dir is None else None
            storage = LocalStorage(owned_dir or storage_dir)  # type: ignore[arg-type]
        preflight(client, storage, prefix, connect_timeout)
        invoker = DaskInvoker(client, max_in_flight=max_in_flight, restart_timed_out_workers=restart_timed_out_workers,
                              no_workers_timeout=no_workers_timeout, submit_options=submit_options)
    except BaseException:
        _release(client if owns_client else None, owned_dir)
        raise

    def _on_shutdown() -> None:
        _release(client if owns_client else None, owned_dir)

    return Executor(storage, invoker, prefix=prefix, progress=progress, on_shutdown=_on_shutdown, backend="dask")


def _release(client: Any, folder: str | None) -> None:
    if client is not None:
        try:
            client.close()
        except Exception:  # noqa: BLE001
            log.debug("could not close the Dask client", exc_info=True)
    if folder is not None:
        shutil.rmtree(folder, ignore_errors=True)


def make_executor(config: Any) -> Any:
    """Build the Dask executor from a :class:`~lambdamap.config.Config`: ``dask_address``; storage in
    ``storage_dir`` if set, else in S3 ``bucket`` (with ``region``, ``endpoint_url``) if set, else a temporary
    folder; ``workers`` = invocations in flight; ``prefix``; ``progress``."""
    storage = None
    if config.storage_dir is None and config.bucket is not None:
        from lambdamap.aws.s3 import S3Storage

        storage = S3Storage(config.bucket, region=config.region, endpoint_url=config.endpoint_url)
    return make_dask_executor(config.dask_address, storage=storage, storage_dir=config.storage_dir,
                              prefix=config.prefix, progress=config.progress, max_in_flight=config.workers)
