"""A joblib parallel backend that sends joblib's batches to a lambdamap executor (any backend: local, Dask, Lambda).

scikit-learn, DoubleML and everything else built on :class:`joblib.Parallel` then run on lambdamap without code
changes::

    import joblib
    import lambdamap
    import lambdamap.integrations.joblib  # registers the "lambdamap" joblib backend

    with lambdamap.lambda_executor(bucket="my-bucket") as pwex:
        with joblib.parallel_config(backend="lambdamap", executor=pwex):
            GridSearchCV(model, grid, n_jobs=-1).fit(X, y)

Each joblib batch (joblib's ``BatchedCalls``, sized by joblib's auto-batching) is one lambdamap call; the batch's
outcome comes back through the lambdamap future, whose done-callback is joblib's completion callback, as in joblib's
own loky and Dask backends. An exception raised inside a batch reaches the caller as its own type with the worker's
traceback as ``__cause__`` (a :class:`lambdamap.RemoteTraceback`).

Work that asks for threads (``Parallel(prefer="threads")`` or ``require="sharedmem"``, e.g. the trees of a random
forest fitted or predicting on the client) runs on the client instead: each tree is far cheaper than an invocation,
and threads (or shared memory) are what its author asked for. Only the process-style work goes to the executor.
Tiny thread work runs inline, in the calling thread, one batch after the other, as long as each batch takes under
``INLINE_BATCH_SECONDS`` and the call's inline total stays under ``INLINE_TOTAL_SECONDS``; past that the rest goes
to a thread pool. joblib waits for pooled work in 10 ms sleeps, so a ``Parallel`` call of ten microsecond tasks
took 12.4 ms in threads and 0.69 ms inline (medians of 50); at most 20 ms of work per call is run inline where
threads might have shared it.

Threads asked for *inside* a batch (the trees of each forest a grid search fits on a worker) get the worker's share
of the CPUs: on the local backend, whose workers share this machine, ``cpu_count() // concurrent batches`` threads
(joblib's own rule for BLAS and OpenMP threads in loky workers, applied to joblib's nested thread pools). Two workers
that each start two tree threads on two cores only fight over them: every fit then costs more CPU time, and the
grid search ends later. Results do not change (joblib keeps the order; the work itself does not depend on how many
threads run it). ``inner_max_num_threads`` sets the cap explicitly, on any backend.

joblib's auto-batching is fed with what a batch really costs on the executor (measured on recent batches sent to a
free worker): batches grow until that cost is about 5 % of their duration (at most 2 s), so sub-millisecond calls
are grouped by the hundred, while 0.1 s fits on the local backend stay one per batch and keep both workers busy to
the end.

Backend options (``joblib.parallel_config(backend="lambdamap", ...)``): ``executor`` (default: one
:func:`lambdamap.default_executor` per process, made on first use and shut down at exit), ``retries`` (re-runs of a
batch whose worker was lost), ``batch_timeout`` (seconds one batch may run), ``extra_env`` and
``inner_max_num_threads`` (threads for joblib work nested in a batch; default as above; BLAS and OpenMP are left as
the backend sets them, one thread per local worker).
"""

from __future__ import annotations

import atexit
import math
import os
import threading
import time
import weakref
from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

from joblib import register_parallel_backend
from joblib.parallel import AutoBatchingMixin, ParallelBackendBase, SequentialBackend, ThreadingBackend, cpu_count

from lambdamap.core.executor import Executor
from lambdamap.errors import ConfigError

__all__ = ["LambdamapBackend", "register"]

_default: Executor | None = None
_default_lock = threading.Lock()


def _default_executor() -> Executor:
    """The executor used when none is passed: built from the configuration once per process."""
    global _default
    with _default_lock:
        if _default is None:
            import lambdamap

            _default = lambdamap.default_executor()
            atexit.register(_default.shutdown, wait=False, cancel_futures=True)
        return _default


class BatchCost:
    """What one batch costs beyond its own work (client pickling and storing, invocation, result record, callback),
    measured on this executor's batches sent while a worker was free (a queued batch would count its wait): the
    minimum of the last ``WINDOW``, as another user of the executor may have kept a worker busy all the same."""

    WINDOW = 16

    def __init__(self) -> None:
        self._samples: deque[float] = deque(maxlen=self.WINDOW)
        self._lock = threading.Lock()

    def add(self, started: float, future: Any) -> None:
        stats = getattr(future, "stats", None)
        if stats is None or stats.result_received is None or stats.function_seconds is None:
            return
        with self._lock:
            self._samples.append(max(0.0, stats.result_received - started - stats.function_seconds))

    @property
    def seconds(self) -> float | None:
        with self._lock:
            return min(self._samples) if self._samples else None


_costs: weakref.WeakKeyDictionary[Executor, BatchCost] = weakref.WeakKeyDictionary()
_costs_lock = threading.Lock()


def _cost_of(executor: Executor) -> BatchCost:
    with _costs_lock:
        cost = _costs.get(executor)
        if cost is None:
            cost = _costs[executor] = BatchCost()
        return cost


def _run_batch(batch: Any) -> list[Any]:
    """The lambdamap call of one joblib batch (runs on the worker)."""
    return batch()


class NestedThreads(ThreadingBackend):
    """joblib's thread backend for ``Parallel`` calls nested in a batch, running at most ``max_threads`` threads
    (``None``: as many as asked for). It travels to the worker inside the batch."""

    def __init__(self, max_threads: int | None = None, nesting_level: int | None = None, **kwargs: Any) -> None:
        super().__init__(nesting_level=nesting_level, **kwargs)
        self.max_threads = max_threads

    def effective_n_jobs(self, n_jobs: int | None) -> int:
        n = super().effective_n_jobs(n_jobs)
        return n if self.max_threads is None else max(1, min(n, self.max_threads))


class LambdamapBackend(AutoBatchingMixin, ParallelBackendBase):
    """joblib backend running each batch as one call on a lambdamap :class:`~lambdamap.Executor`."""

    supports_retrieve_callback = True
    supports_inner_max_num_threads = True
    supports_sharedmem = True  # require="sharedmem" runs on the client (inline or in threads), where memory is shared
    uses_threads = False
    default_n_jobs = -1  # like joblib's Dask backend: n_jobs=None means every worker of the executor
    # Invocations cost milliseconds (local, Dask) to ~100 ms (Lambda): joblib's auto-batching aims for batches that
    # last COST_FACTOR times the cost measured on this executor (these class values until a batch has been measured).
    MIN_IDEAL_BATCH_DURATION = 0.5
    MAX_IDEAL_BATCH_DURATION = 5.0
    COST_FACTOR = 20  # the cost is at most 5 % of a batch
    # Thread work runs inline while each batch takes less than this and the call's inline total stays below the
    # second: below joblib's own cost of waiting for pooled work (10 ms sleeps), threads cannot win.
    INLINE_BATCH_SECONDS = 0.002
    INLINE_TOTAL_SECONDS = 0.020

    def __init__(self, executor: Executor | None = None, *, retries: int = 0, batch_timeout: float | None = None,
                 extra_env: dict[str, str] | None = None, nesting_level: int | None = None,
                 inner_max_num_threads: int | None = None, **kwargs: Any) -> None:
        super().__init__(nesting_level=nesting_level, inner_max_num_threads=inner_max_num_threads, **kwargs)
        if executor is not None and not isinstance(executor, Executor):
            raise ConfigError(f"executor must be a lambdamap Executor (e.g. lambdamap.local_executor()), got "
                              f"{type(executor).__name__}")
        if isinstance(retries, bool) or not isinstance(retries, int) or retries < 0:
            raise ConfigError(f"retries must be an integer >= 0, got {retries!r}")
        if batch_timeout is not None and (isinstance(batch_timeout, bool) or not isinstance(batch_timeout, (int, float))
                                          or not math.isfinite(batch_timeout) or batch_timeout <= 0):
            raise ConfigError(f"batch_timeout must be a positive number of seconds or None, got {batch_timeout!r}")
        self._executor = executor
        self.options: dict[str, Any] = {"retries": retries, "timeout": batch_timeout, "extra_env": extra_env}
        self._futures: set[Any] = set()
        self._futures_lock = threading.Lock()
        self._thread_work = False  # set by configure() for prefer="threads" / require="sharedmem"
        self._threads: ThreadPoolExecutor | None = None  # made when thread work outgrows running inline
        self._thread_count = 1
        self._inline = _Inline()
        self._concurrency = 1  # batches that may run at once in this Parallel call (set by configure())

    @property
    def executor(self) -> Executor:
        if self._executor is None:
            self._executor = _default_executor()
        return self._executor

    def __reduce__(self) -> tuple[Any, ...]:
        # The executor (threads, connections) stays on the client; a copy shipped to a worker runs sequentially.
        return (SequentialBackend, ())

    # -- joblib's backend API -----------------------------------------------------------------------------------
    def effective_n_jobs(self, n_jobs: int | None) -> int:
        if n_jobs == 0:
            raise ValueError("n_jobs == 0 in Parallel has no meaning")
        workers = max(1, self.executor.workers)
        if n_jobs is None or n_jobs < 0:
            return max(workers + 1 + (n_jobs if n_jobs is not None else -1), 1)
        return n_jobs

    def configure(self, n_jobs: int | None = 1, parallel: Any = None, prefer: Any = None, require: Any = None,
                  **backend_kwargs: Any) -> int:
        self.parallel = parallel
        if prefer == "threads" or require == "sharedmem":
            n = n_jobs if n_jobs is not None and n_jobs > 0 else max(1, (os.cpu_count() or 1) + 1 + (n_jobs or -1))
            self._thread_work, self._thread_count, self._inline = True, n, _Inline()
            return n
        self._concurrency = min(self.effective_n_jobs(n_jobs), max(1, self.executor.workers))
        self.nested_max_threads()  # a bad inner_max_num_threads fails here, before any batch is sent
        return self.effective_n_jobs(n_jobs)

    def get_nested_backend(self) -> tuple[ParallelBackendBase, int | None]:
        nesting_level = (self.nesting_level or 0) + 1
        if nesting_level > 1:
            return SequentialBackend(nesting_level=nesting_level), None
        return NestedThreads(self.nested_max_threads(), nesting_level=nesting_level), None

    def nested_max_threads(self) -> int | None:
        """Threads a batch may use for its own nested ``Parallel`` calls: the explicit ``inner_max_num_threads``,
        else on the local backend this machine's CPUs shared among the batches running at once, else no cap
        (a Lambda or Dask worker's CPUs are its own, and unknown here)."""
        limit = self.inner_max_num_threads  # joblib sets it after __init__: checked here, when a Parallel starts
        if limit is not None:
            if isinstance(limit, bool) or not isinstance(limit, int) or limit < 1:
                raise ConfigError(f"inner_max_num_threads must be an integer >= 1 or None, got {limit!r}")
            return limit
        if self.executor.backend == "local":
            return max(1, cpu_count() // self._concurrency)
        return None

    def compute_batch_size(self) -> int:
        if self._thread_work:
            return 1  # a thread costs microseconds per batch: like joblib's own thread backend
        cost = _cost_of(self.executor).seconds
        if cost is not None:
            # A fixed target long enough for Lambda (0.5 s) groups a grid search's 0.1 s fits four to a batch on the
            # local backend, whose batches cost a few ms: one worker then idles while the other ends the last batch.
            # At most 2 s (joblib's own upper target): past that, bigger Lambda batches save little and straggle.
            self.MIN_IDEAL_BATCH_DURATION = min(max(self.COST_FACTOR * cost, 0.01), 2.0)
            self.MAX_IDEAL_BATCH_DURATION = max(10 * self.MIN_IDEAL_BATCH_DURATION, 2.0)
        return int(super().compute_batch_size())

    def submit(self, func: Any, callback: Any = None) -> Any:
        if self._thread_work:
            return self._submit_thread_work(func, callback)
        started, cost = time.time(), _cost_of(self.executor)
        with self._futures_lock:
            worker_free = len(self._futures) < self.executor.workers
        future = self.executor.call_async(_run_batch, func, **self.options)
        with self._futures_lock:
            self._futures.add(future)
        future.add_done_callback(self._forget)
        if worker_free:
            future.add_done_callback(lambda done: cost.add(started, done))  # before joblib's, which sizes the next
        if callback is not None:
            future.add_done_callback(callback)
        return future

    apply_async = submit  # the name joblib < 1.5 calls

    def retrieve_result_callback(self, future: Any) -> Any:
        return future.result()  # the batch's list of results, or its exception with the remote traceback

    def abort_everything(self, ensure_ready: bool = True) -> None:
        """An earlier batch failed: cancel the batches no worker has started (running ones finish, ignored)."""
        with self._futures_lock:
            pending = list(self._futures)
        for future in pending:
            future.cancel()

    def terminate(self) -> None:
        with self._futures_lock:
            self._futures.clear()
        if self._threads is not None:
            self._threads.shutdown(wait=True)
            self._threads = None
        self._thread_work = False
        self.reset_batch_stats()

    # -- thread work on the client ------------------------------------------------------------------------------
    def _submit_thread_work(self, func: Any, callback: Any) -> Any:
        inline = self._inline
        future: Future[Any] = Future()
        with inline.lock:
            queued = inline.active
            if queued:
                inline.queue.append((func, callback, future))
                # One thread drains the queue; batches that joblib's callbacks submit meanwhile queue up behind it
                # instead of recursing.
                drain = not inline.draining
                inline.draining = True
        if not queued:
            if self._threads is None:
                self._threads = ThreadPoolExecutor(max_workers=self._thread_count,
                                                   thread_name_prefix="lambdamap-joblib-threads")
            pooled = self._threads.submit(func)
            if callback is not None:
                pooled.add_done_callback(callback)
            return pooled
        if drain:
            self._drain(inline)
        return future

    def _drain(self, inline: _Inline) -> None:
        """Run queued thread batches one after the other in this thread, timing each: the first batch too long, or
        the call's inline total too large, sends later batches to the thread pool."""
        while True:
            with inline.lock:
                if not inline.queue:
                    inline.draining = False
                    return
                func, callback, future = inline.queue.popleft()
            start = time.perf_counter()
            try:
                future.set_result(func())
            except BaseException as exc:  # noqa: BLE001 - joblib re-raises it from the future, in its own thread
                future.set_exception(exc)
            took = time.perf_counter() - start
            with inline.lock:
                inline.seconds += took
                if took >= self.INLINE_BATCH_SECONDS or inline.seconds >= self.INLINE_TOTAL_SECONDS:
                    inline.active = False
            if callback is not None:
                callback(future)

    def _forget(self, future: Any) -> None:
        with self._futures_lock:
            self._futures.discard(future)


class _Inline:
    """One Parallel call's thread work run inline: whether it still is, its batches waiting, whether a thread is
    running them, and the seconds they took."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.active = True
        self.queue: deque[tuple[Any, Any, Future[Any]]] = deque()
        self.draining = False
        self.seconds = 0.0


def register() -> None:
    """Register ``"lambdamap"`` with joblib (done on import of this module; calling it again is harmless)."""
    register_parallel_backend("lambdamap", LambdamapBackend)


register()
