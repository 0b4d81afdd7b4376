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

Work that asks for threads (``Parallel(prefer="threads")``, e.g. the trees of a random forest fitted on the
client) runs in a local thread pool instead: each tree is far cheaper than an invocation, and threads are what its
author asked for. Only the process-style work goes to the executor.

Backend options (``joblib.parallel_config(backend="lambdamap", ...)``): ``executor`` (default: one
:func:`lambdamap.default_executor` per process, made on first use and shut down at exit), ``retries`` (re-runs of a
batch whose worker was lost), ``batch_timeout`` (seconds one batch may run) and ``extra_env``.
"""

from __future__ import annotations

import atexit
import math
import os
import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from joblib import register_parallel_backend
from joblib.parallel import AutoBatchingMixin, ParallelBackendBase, SequentialBackend

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


def _run_batch(batch: Any) -> list[Any]:
    """The lambdamap call of one joblib batch (runs on the worker)."""
    return batch()


class LambdamapBackend(AutoBatchingMixin, ParallelBackendBase):
    """joblib backend running each batch as one call on a lambdamap :class:`~lambdamap.Executor`."""

    supports_retrieve_callback = True
    supports_sharedmem = False
    uses_threads = False
    default_n_jobs = -1  # like joblib's Dask backend: n_jobs=None means every worker of the executor
    # Invocations cost milliseconds (local, Dask) to ~100 ms (Lambda): aim for batches long enough to hide that.
    MIN_IDEAL_BATCH_DURATION = 0.5
    MAX_IDEAL_BATCH_DURATION = 5.0

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
        self._threads: ThreadPoolExecutor | None = None  # set by configure() for prefer="threads"

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
        # joblib itself refuses require="sharedmem" for this backend (supports_sharedmem = False).
        self.parallel = parallel
        if prefer == "threads":
            n = n_jobs if n_jobs is not None and n_jobs > 0 else max(1, (os.cpu_count() or 1) + 1 + (n_jobs or -1))
            self._threads = ThreadPoolExecutor(max_workers=n, thread_name_prefix="lambdamap-joblib-threads")
            return n
        return self.effective_n_jobs(n_jobs)

    def submit(self, func: Any, callback: Any = None) -> Any:
        if self._threads is not None:
            local = self._threads.submit(func)
            if callback is not None:
                local.add_done_callback(callback)
            return local
        future = self.executor.call_async(_run_batch, func, **self.options)
        with self._futures_lock:
            self._futures.add(future)
        future.add_done_callback(self._forget)
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
        self.reset_batch_stats()

    def _forget(self, future: Any) -> None:
        with self._futures_lock:
            self._futures.discard(future)


def register() -> None:
    """Register ``"lambdamap"`` with joblib (done on import of this module; calling it again is harmless)."""
    register_parallel_backend("lambdamap", LambdamapBackend)


register()
