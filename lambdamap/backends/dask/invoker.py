"""The Dask backend's client side: :class:`DaskInvoker` hands invocations to the scheduler and watches them.

See :mod:`lambdamap.backends.dask` for the data flow, retries and timeouts.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from dataclasses import dataclass
from typing import Any

from lambdamap.backends.base import InvocationSink, Invoker
from lambdamap.backends.dask.worker import EarlierRunLost, _run_on_dask
from lambdamap.core.task import TaskSpec
from lambdamap.errors import ConfigError, InvocationError, StorageError, TaskTimeoutError, WorkerLostError

log = logging.getLogger("lambdamap")

#: Seconds between refreshes of the cluster's thread count (also the resolution of the no-worker check).
REFRESH_SECONDS = 2.0


@dataclass(eq=False)
class _Running:
    spec: TaskSpec
    future: Any  # distributed.Future
    deadline: float | None


class DaskInvoker(Invoker):
    """Runs invocations as tasks of a ``distributed.Client``.

    ``workers`` caps the tasks handed to the scheduler at once (default: the cluster's total worker threads,
    followed as workers come and go). ``restart_timed_out_workers`` restarts the worker of an invocation that ran
    past its timeout (needs a nanny). ``no_workers_timeout`` fails invocations in flight when the cluster has had
    no worker for that many seconds. ``submit_options`` go to ``client.submit`` (e.g. ``resources``).
    """

    notifies_completion = True

    def __init__(self, client: Any, *, workers: int | None = None, restart_timed_out_workers: bool = True,
                 no_workers_timeout: float = 120.0, submit_options: dict[str, Any] | None = None) -> None:
        if workers is not None and (isinstance(workers, bool) or not isinstance(workers, int) or workers < 1):
            raise ConfigError(f"workers must be a positive integer or None, got {workers!r}")
        reserved = {"key", "pure", "retries"} & set(submit_options or {})
        if reserved:
            raise ConfigError(f"submit_options may not set {sorted(reserved)}: lambdamap sets task keys and handles "
                              "retries itself (use the map's retries=)")
        self.client = client
        self._workers_cap = workers
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
    def workers(self) -> int:  # type: ignore[override]
        """Tasks handed to the scheduler at once: the ``workers`` given, else the cluster's worker threads (at least
        1) as last seen."""
        return self._workers_cap or max(1, self._nthreads)

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

    def cancel(self, specs: list[TaskSpec]) -> None:
        """Cancel these invocations' Dask tasks, in the background (never blocks Ctrl-C). A call already running in
        a worker thread runs on until it returns and its result is ignored: restarting the worker would also kill
        whatever it runs next, another job's calls included."""
        wanted = {(spec.job_id, spec.invocation) for spec in specs}
        with self._lock:
            hits = [r.future for r in self._running.values() if (r.spec.job_id, r.spec.invocation) in wanted]
        if hits:
            threading.Thread(target=self._cancel_futures, args=(hits,), name="lambdamap-dask-cancel",
                             daemon=True).start()

    def _cancel_futures(self, futures: list[Any]) -> None:
        try:
            self.client.cancel(futures, force=True)
        except Exception:  # noqa: BLE001 - the calls are already cancelled on the client
            log.debug("could not cancel Dask tasks", exc_info=True)

    # -- dispatch -----------------------------------------------------------------------------------------------
    def _limit(self) -> int:
        return self.workers

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


