"""The Executor: validates, serializes, stores and invokes; it orchestrates and nothing more.

How data flows through lambdamap, one way, each step in its own module::

    user ─▶ core/executor.py   map(fn, iterable): check options, split into invocations (chunks)
         ─▶ core/serialize.py  cloudpickle fn once (content-addressed) and the calls of each chunk
         ─▶ storage/           Storage.put under core/keys.py's layout (local folder, aws/s3.py, ...)
         ─▶ backends/          Invoker.invoke(task specs from core/task.py): backends/local.py, backends/dask/,
                               aws/invoker.py — a spec is small JSON, never config or credentials
         ─▶ core/worker.py     run_task(spec) on the worker, the same on every backend (aws/handler.py and the
                               Dask task are thin adapters): load, run, always write a result record
         ─▶ storage/           the result record, under the job's prefix
         ─▶ core/collector.py  one thread: reads records (core/records.py decodes them) and completes
         ─▶ core/future.py     Future[T], real concurrent.futures futures, back to the user
    observe/ reads what the futures and records say (summaries, timelines, jobs); integrations/ puts the executor
    under other libraries' APIs (joblib).

Every check runs before anything is stored or invoked, so bad input never leaves a half-submitted job.
"""

from __future__ import annotations

import base64
import concurrent.futures as cf
import math
import os
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import TYPE_CHECKING, Any, TypeVar

from lambdamap.backends.base import Invoker
from lambdamap.core import keys, lifecycle
from lambdamap.core.calls import Call, guided_chunks, map_calls, starmap_calls
from lambdamap.core.collector import Collector, Invocation, JobState
from lambdamap.core.future import Future, get_all_results
from lambdamap.core.gcpause import paused_gc
from lambdamap.core.memory import check_memory
from lambdamap.core.serialize import check_module_names, digest, dumps_calls, dumps_function, dumps_value
from lambdamap.core.shared import ObjectRef, remember
from lambdamap.core.task import TaskSpec, client_versions
from lambdamap.errors import ConfigError, ExecutorShutdownError
from lambdamap.storage.base import Storage, put_all

if TYPE_CHECKING:
    from lambdamap.core.compat import StandardExecutor
    from lambdamap.observe.summary import JobSummary

T = TypeVar("T")

#: Invocations per unit of parallelism the automatic chunksize aims at (more = better balance, more overhead).
CHUNKS_PER_WORKER = 4


def _check_positive_number(name: str, value: Any) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value <= 0:
        raise ConfigError(f"{name} must be a positive number of seconds or None, got {value!r}")
    return float(value)


def _check_count(name: str, value: Any, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ConfigError(f"{name} must be an integer >= {minimum}, got {value!r}")
    return value


def _warm_worker(modules: list[str]) -> str:
    import importlib
    import socket

    for name in modules:
        importlib.import_module(name)
    time.sleep(0.05)  # hold this worker a moment, so the other warm-up calls reach the other workers
    return f"{socket.gethostname()}:{os.getpid()}"


def _check_retry_on(retry_on: Any, retries: int) -> tuple[type[BaseException], ...]:
    if isinstance(retry_on, type):
        retry_on = (retry_on,)
    if not isinstance(retry_on, (tuple, list)) or not all(
            isinstance(t, type) and issubclass(t, BaseException) for t in retry_on):
        raise ConfigError(f"retry_on must be a tuple of exception types, e.g. (ConnectionError, TimeoutError), got "
                          f"{retry_on!r}")
    if retry_on and retries == 0:
        raise ConfigError("retry_on needs retries >= 1: how many times a call may be re-run")
    return tuple(retry_on)


def _check_env(extra_env: Any) -> dict[str, str] | None:
    if extra_env is None:
        return None
    if not isinstance(extra_env, dict) or not all(isinstance(k, str) and isinstance(v, str)
                                                  for k, v in extra_env.items()):
        raise ConfigError("extra_env must be a dict of str to str, e.g. {'OMP_NUM_THREADS': '1'}")
    return dict(extra_env)


class Executor:
    """Runs Python functions on workers of one backend. Build one with :func:`lambdamap.default_executor`,
    :func:`lambdamap.local_executor`, :func:`lambdamap.lambda_executor` or :func:`lambdamap.dask_executor`.

    Use it as a context manager, or call :meth:`shutdown` when done. An executor that is dropped, or still open
    when the interpreter exits, shuts down by itself (see :mod:`lambdamap.core.lifecycle`).
    """

    def __init__(self, storage: Storage, invoker: Invoker, *, prefix: str = keys.DEFAULT_PREFIX,
                 progress: bool | None = None, on_shutdown: Callable[[], None] | None = None,
                 backend: str = "custom") -> None:
        self.storage = storage
        self.invoker = invoker
        self.prefix = prefix
        self.progress = progress
        self.backend = backend
        self._on_shutdown = on_shutdown
        self._blobs: set[str] = set()  # blob keys known to be in storage
        self._lock = threading.Lock()
        self._shutdown = False
        self._versions = client_versions()
        self._collector = Collector(storage, invoker)
        try:
            invoker.start(self._collector)
        except BaseException:
            self._collector.close()  # or its thread would outlive the failed executor
            raise
        self._resources = lifecycle.Resources(self._collector, invoker, on_shutdown)
        self._finalizer = lifecycle.finalizer(self, self._resources)

    @property
    def usable(self) -> bool:
        """False once shut down, or in a forked child of the process that made it."""
        return not (self._shutdown or self._resources.released or self._resources.foreign)

    @property
    def workers(self) -> int:
        """How many invocations can run at once on this executor's backend."""
        return self.invoker.workers

    # -- public API ---------------------------------------------------------------------------------------------
    def map(self, fn: Callable[..., T], *iterables: Iterable[Any], chunksize: int | None = None,
            timeout: float | None = None, retries: int = 0, retry_on: Sequence[type[BaseException]] = (),
            backoff: float = 1.0, extra_env: dict[str, str] | None = None, capture_output: bool = True,
            cores: int | None = None, keep: bool = False, memory: int | None = None,
            exclude_modules: Sequence[str] = ()) -> list[Future[T]]:
        """Call ``fn(x)`` for every ``x`` in ``iterable`` on the workers (``fn(x, y)`` for ``map(fn, xs, ys)``, which
        zips equal-length iterables); return one future per call, in order.

        ``chunksize`` calls run in one invocation (default: enough invocations to keep every worker busy a few
        times over, the first ones small so results start arriving at once; 1 when ``timeout`` is set).
        ``timeout`` is the seconds one call may run before it fails with :class:`TaskTimeoutError` (an invocation
        of k calls gets k times that). ``retries`` re-runs invocations whose worker was lost or timed out, and with
        ``retry_on=(ExceptionType, ...)`` also calls whose function raised one of those types, after ``backoff``
        seconds doubling each time (with jitter); never other exceptions. ``extra_env`` sets environment variables
        on the worker while the calls run. ``capture_output`` keeps what each call prints (``future.output``).
        ``cores`` runs up to that many calls of one invocation at once, in processes forked on the worker (default:
        every CPU of a Lambda function, 1 elsewhere). ``keep=True`` keeps the job's objects in storage.
        ``memory`` (MB, 128-10240) runs this map on the Lambda function version deployed at that size
        (``lambdamap deploy --memory-sizes``), and so with its vCPUs; elsewhere it only prices the job summary.
        ``exclude_modules`` (PyWren's option) names local modules the workers can import themselves (a Lambda layer,
        the Dask workers' path): they and their submodules are pickled by reference, not shipped by value; names of
        modules not loaded here, or not local, change nothing.
        """
        calls = map_calls(fn, iterables) if callable(fn) else []
        return self._submit_job(fn, calls, chunksize=chunksize, timeout=timeout, retries=retries,
                                retry_on=retry_on, backoff=backoff, extra_env=extra_env,
                                capture_output=capture_output, cores=cores, keep=keep, memory=memory,
                                exclude_modules=exclude_modules)

    def starmap(self, fn: Callable[..., T], iterable: Iterable[Any], **options: Any) -> list[Future[T]]:
        """``fn(*item)`` for each tuple item, ``fn(**item)`` for each dict item; options as :meth:`map`."""
        return self._submit_job(fn, starmap_calls(iterable), **options)

    def imap(self, fn: Callable[..., T], *iterables: Iterable[Any], ordered: bool = True,
             return_exceptions: bool = False, window: int | None = None, **options: Any) -> Iterator[T]:
        """Results as an iterator, submitted lazily: at most ``window`` calls (default: 64 per worker) are
        outstanding, so an endless generator maps in bounded memory. ``ordered=False`` yields in completion order.
        A failed call raises when reached (or is yielded as its exception with ``return_exceptions=True``)."""
        from lambdamap.core.streaming import imap

        return imap(self, fn, iterables, ordered=ordered, return_exceptions=return_exceptions,
                    window=window, options=options)

    def warm(self, imports: Sequence[str] = (), *, timeout: float | None = None) -> int:
        """Start the workers and import ``imports`` (e.g. ``["sklearn.ensemble"]``) on them now, so the first real
        calls do not each pay for it; returns how many workers answered. Best effort: one small call per worker
        (``self.workers`` of them), each landing on whichever worker is free."""
        names = list(imports)
        if not all(isinstance(n, str) and n for n in names):
            raise ConfigError(f"imports must be module names such as 'sklearn.ensemble', got {imports!r}")
        futures = self.map(_warm_worker, [names] * max(1, self.workers), chunksize=1)
        return len(set(get_all_results(futures, timeout=timeout, progress=False)))

    def as_standard_executor(self) -> StandardExecutor:
        """This executor as a :class:`concurrent.futures.Executor` (``map`` yields results, ``timeout`` bounds the
        wait), for libraries that take one."""
        from lambdamap.core.compat import StandardExecutor

        return StandardExecutor(self)

    def call_async(self, fn: Callable[[Any], T], arg: Any, **options: Any) -> Future[T]:
        """PyWren style: run ``fn(arg)`` on a worker and return its future."""
        return self._submit_job(fn, [((arg,), {})], **options)[0]

    def submit(self, fn: Callable[..., T], /, *args: Any, **kwargs: Any) -> Future[T]:
        """``concurrent.futures`` style: run ``fn(*args, **kwargs)`` on a worker and return its future."""
        return self._submit_job(fn, [(args, kwargs)])[0]

    def map_reduce(self, map_fn: Callable[[Any], Any], iterable: Iterable[Any],
                   reduce_fn: Callable[[list[Any]], T], **options: Any) -> Future[T]:
        """Map ``map_fn`` over ``iterable``, then run ``reduce_fn(list_of_results)`` on a worker (see
        :meth:`reduce`); ``options`` as :meth:`map`."""
        exclude = check_module_names("exclude_modules", options.get("exclude_modules", ()))
        dumps_function(reduce_fn, exclude)  # check before any map call runs
        return self.reduce(reduce_fn, self.map(map_fn, iterable, **options), exclude_modules=exclude)

    def reduce(self, reduce_fn: Callable[[list[Any]], T], futures: Sequence[cf.Future[Any]],
               **options: Any) -> Future[T]:
        """PyWren's ``reduce``: once every future is done, run ``reduce_fn(list_of_their_results)`` on a worker.

        Returns one future for the reduce at once; it fails with the first failure among ``futures`` (in input
        order) if any failed, without running ``reduce_fn``. ``options`` as :meth:`map` (e.g. ``retries``)."""
        futures = list(futures)
        exclude = check_module_names("exclude_modules", options.get("exclude_modules", ()))
        dumps_function(reduce_fn, exclude)  # a function that cannot be sent fails now, not in a callback
        outer: Future[T] = Future("reduce", 0, time.time())
        outer.set_running_or_notify_cancel()
        remaining = [len(futures)]
        lock = threading.Lock()

        def _chain(inner: cf.Future[T]) -> None:
            if inner.cancelled():
                outer.set_exception(cf.CancelledError("the reduce call was cancelled"))
            elif inner.exception() is not None:
                outer.set_exception(inner.exception())
            else:
                if isinstance(inner, Future):
                    outer.stats = inner.stats
                outer.set_result(inner.result())

        def _run() -> None:
            try:
                results = [f.result() for f in futures]
                self.call_async(reduce_fn, results, **options).add_done_callback(_chain)
            except BaseException as exc:  # noqa: BLE001 - the first failure is the reduce's failure
                outer.set_exception(exc)

        def _one_done(_: Any) -> None:
            with lock:
                remaining[0] -= 1
                if remaining[0]:
                    return
            _run()

        if not futures:
            _run()
        for fut in futures:
            fut.add_done_callback(_one_done)
        return outer

    def put(self, obj: Any) -> ObjectRef[Any]:
        """Store ``obj`` once (content-addressed) and return a small reference to pass to calls.

        ``ref.get()`` inside a call loads it (once per warm worker). Putting the same object again stores nothing.
        """
        self._check_open()
        data = dumps_value(obj)
        key = self._put_blob(data)
        remember(key, obj)
        return ObjectRef(key, len(data))

    def cleanup(self) -> None:
        """Remove every object this executor's prefix holds in storage: jobs and cached blobs."""
        self.storage.delete_prefix(keys.jobs_prefix(self.prefix))
        self.storage.delete_prefix(keys.blobs_prefix(self.prefix))
        with self._lock:
            self._blobs.clear()

    def jobs(self) -> list[JobState]:
        """The jobs this executor ran or is running (for summaries)."""
        return self._collector.jobs()

    def job_summary(self, futures: Sequence[Future[Any]], *, memory_mb: int | None = None) -> JobSummary:
        """Calls, invocations, times, cold starts, memory, storage traffic and (on Lambda) cost of ``futures``.

        Each invocation is priced at its map's ``memory=``, else (on Lambda) the function's memory size; pass
        ``memory_mb`` to price every invocation at that size, e.g. a run elsewhere as if it ran on Lambda.
        """
        from lambdamap.observe.summary import summarize  # observe/ sits above the core: imported when asked

        return summarize(futures, self._collector.jobs(), memory_mb=memory_mb,
                         default_memory_mb=getattr(self.invoker, "memory_mb", None),
                         architecture=getattr(self.invoker, "architecture", "x86_64"))

    def cancel(self, futures: Iterable[cf.Future[Any]]) -> int:
        """Cancel the jobs of ``futures``: calls not started never run, running ones are stopped (local workers are
        killed, Dask tasks cancelled; on Lambda no queued invocation is sent any more). Returns how many calls."""
        from lambdamap.core.future import interrupted

        return interrupted(futures)

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        """Stop the executor, as :meth:`concurrent.futures.Executor.shutdown` does.

        No new work is accepted. ``cancel_futures`` cancels the calls not started yet. ``wait=True`` waits for the
        calls still running, then stops the workers and removes temporary storage; ``wait=False`` returns at once and
        does that in the background when the last running call ends. From a done-callback (the thread that
        completes futures) it never blocks: it behaves as ``wait=False``.
        """
        with self._lock:
            if self._shutdown:
                return
            self._shutdown = True
        if self._resources.foreign:
            return  # a forked child: the workers, threads and folders are the parent's
        if cancel_futures:
            for fut in self._collector.running_futures():
                fut.cancel()
        if threading.current_thread() is self._collector.thread:
            wait = False  # waiting here would wait on the thread that must complete what we wait for
        if not wait:
            self._resources.release_when_idle()
            return
        # Cancelled futures may never reach a worker; waiting on them could block for ever.
        pending = [f for f in self._collector.running_futures() if not f.cancelled()]
        try:
            cf.wait(pending)
        except KeyboardInterrupt:
            from lambdamap.core.future import interrupted

            interrupted(pending)
            self._resources.release()
            raise
        self._resources.release()
        self._finalizer.detach()

    def __enter__(self) -> Executor:
        return self

    def __exit__(self, *exc: object) -> None:
        if exc[0] is None:
            self.shutdown()
            return
        # The block failed (Ctrl-C included): nobody will collect these results, so stop the work at once.
        with self._lock:
            self._shutdown = True
        if not self._resources.foreign:
            self.cancel(self._collector.running_futures())
            self._resources.release()
            self._finalizer.detach()

    def __repr__(self) -> str:
        return f"<lambdamap.Executor backend={self.backend} storage={self.storage.location()}>"

    # -- internals ----------------------------------------------------------------------------------------------
    def _check_open(self) -> None:
        if self._resources.foreign:
            raise ExecutorShutdownError(
                f"this executor was created in process {self._resources.pid}; this is a forked child "
                f"({os.getpid()}), which must not use the parent's workers: create a new executor in the child")
        if self._shutdown or self._resources.released:
            raise ExecutorShutdownError("this executor has been shut down; create a new one")

    def _put_blob(self, data: bytes) -> str:
        key = keys.blob_key(self.prefix, digest(data))
        with self._lock:
            known = key in self._blobs
        if not known:
            if not self.storage.exists(key):
                self.storage.put(key, data)
            with self._lock:
                self._blobs.add(key)
        return key

    def _chunksize(self, n: int, chunksize: int | None, timeout: float | None) -> int:
        if chunksize is not None:
            return _check_count("chunksize", chunksize, 1)
        if timeout is not None:
            return 1
        return max(1, math.ceil(n / (max(1, self.invoker.workers) * CHUNKS_PER_WORKER)))

    def _submit_job(self, fn: Callable[..., Any], calls: Sequence[Call], *, chunksize: int | None = None,
                    timeout: float | None = None, retries: int = 0, retry_on: Sequence[type[BaseException]] = (),
                    backoff: float = 1.0, extra_env: dict[str, str] | None = None, capture_output: bool = True,
                    cores: int | None = None, keep: bool = False, memory: int | None = None,
                    exclude_modules: Sequence[str] = ()) -> list[Future[T]]:
        self._check_open()
        if not callable(fn):
            raise ConfigError(f"fn must be callable, got {type(fn).__name__} {fn!r}")
        timeout = _check_positive_number("timeout", timeout)
        retries = _check_count("retries", retries, 0)
        retry_on = _check_retry_on(retry_on, retries)
        if isinstance(backoff, bool) or not isinstance(backoff, (int, float)) or not 0 <= backoff < math.inf:
            raise ConfigError(f"backoff must be a number of seconds >= 0, got {backoff!r}")
        extra_env = _check_env(extra_env)
        exclude = check_module_names("exclude_modules", exclude_modules)
        for name, flag in (("keep", keep), ("capture_output", capture_output)):
            if not isinstance(flag, bool):
                raise ConfigError(f"{name} must be True or False, got {flag!r}")
        size = self._chunksize(len(calls), chunksize, timeout)
        sizes = guided_chunks(len(calls), size) if chunksize is None else [size] * math.ceil(len(calls) / size)
        if cores is not None:
            cores = _check_count("cores", cores, 1)
        memory = check_memory(memory)
        if memory is not None:
            self.invoker.check_memory(memory)  # e.g. the Lambda alias for it exists, before anything is stored
        options = {"retry_on": retry_on, "retries": retries, "backoff": float(backoff),
                   "capture_output": capture_output, "cores": cores} if retry_on or not capture_output or cores \
            else {}

        # Serialize everything before storing anything.
        func_data = dumps_function(fn, exclude)
        chunks, starts, start = [], [], 0
        for n in sizes:
            chunks.append(calls[start:start + n])
            starts.append(start)
            start += n
        payloads = [dumps_calls(chunk, first, extra_env, options, exclude)
                    for chunk, first in zip(chunks, starts, strict=True)]

        with paused_gc():  # building many futures would make the cyclic GC rescan the heap over and over
            return self._store_and_invoke(func_data, chunks, starts, payloads, timeout, retries, keep, memory)

    def _store_and_invoke(self, func_data: bytes, chunks: list[Sequence[Call]], starts: list[int],
                          payloads: list[bytes], timeout: float | None, retries: int, keep: bool,
                          memory: int | None = None) -> list[Future[T]]:
        job_id = keys.new_job_id()
        func_key = self._put_blob(func_data)
        job = JobState(job_id=job_id, prefix=self.prefix, keep=keep, func_key=func_key, func_data=func_data,
                       blob_missing=self._blobs.discard)  # not a method of self: jobs must not keep us alive
        submitted = time.time()
        invocations = []
        arg_keys = [keys.args_key(self.prefix, job_id, n) for n in range(len(payloads))]
        limit = self.invoker.inline_limit
        inline = [base64.b64encode(p).decode() if len(p) <= limit else None for p in payloads]
        items = [(key, p) for key, p, i in zip(arg_keys, payloads, inline, strict=True) if i is None]
        try:
            put_all(self.storage, items)  # many at once on remote storage: one round trip's wait, not thousands
        except BaseException:
            self._remove_quietly([key for key, _ in items])  # a map that fails half-way leaves nothing behind
            raise
        job.bytes_uploaded += sum(len(p) for _, p in items)
        job.storage_requests += len(items)
        location = self.storage.location()
        for n, chunk in enumerate(chunks):
            spec = TaskSpec(
                job_id=job_id, invocation=n, storage=location, func_key=func_key,
                args_key=arg_keys[n], result_key=keys.result_key(self.prefix, job_id, n), call_start=starts[n],
                call_count=len(chunk), versions=self._versions,
                timeout=None if timeout is None else timeout * len(chunk), inline_args=inline[n], memory_mb=memory,
            )
            futures: list[Future[Any]] = [Future(job_id, starts[n] + i, submitted, n) for i in range(len(chunk))]
            invocations.append(Invocation(spec=spec, futures=futures, job=job, retries_left=retries))
        futures_out = [fut for inv in invocations for fut in inv.futures]  # before a fast job's end clears them
        self._collector.register(job, invocations)
        self.invoker.invoke([inv.spec for inv in invocations])
        return futures_out

    def _remove_quietly(self, stored: list[str]) -> None:
        try:
            self.storage.delete(stored)
        except Exception:  # noqa: BLE001 - the original error is the one to report
            pass

    def get_all_results(self, futures: Sequence[Future[T]], timeout: float | None = None) -> list[T]:
        """:func:`lambdamap.get_all_results` with this executor's progress setting."""
        return get_all_results(futures, timeout=timeout, progress=self.progress)

