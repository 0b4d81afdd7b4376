"""Futures of lambdamap calls, and the PyWren-style ``wait`` / ``get_all_results`` helpers.

:class:`Future` is a real :class:`concurrent.futures.Future`: it is completed only through ``set_result`` /
``set_exception`` by the executor's collector, so ``concurrent.futures.wait``, ``as_completed`` and every tool
built on them work unchanged.
"""

from __future__ import annotations

import concurrent.futures as cf
import contextlib
import importlib.util
import sys
import threading
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

T = TypeVar("T")

ALL_COMPLETED = cf.ALL_COMPLETED
ANY_COMPLETED = cf.FIRST_COMPLETED
FIRST_COMPLETED = cf.FIRST_COMPLETED
ALWAYS = "ALWAYS"


@dataclass(slots=True)
class CallStats:
    """Timestamps (``time.time()`` seconds) and facts about one call."""

    submitted: float
    invocation: int = -1
    worker_start: float | None = None
    function_start: float | None = None
    function_end: float | None = None
    result_received: float | None = None
    worker_id: str | None = None
    warm: bool | None = None
    attempts: int = 1
    peak_memory_bytes: int | None = None
    platform: str | None = None

    @property
    def function_seconds(self) -> float | None:
        if self.function_start is None or self.function_end is None:
            return None
        return self.function_end - self.function_start


@dataclass(slots=True, frozen=True)
class InvocationReport:
    """What a result record says about its invocation; shared by the futures of its calls."""

    worker_start: float
    worker_id: str
    warm: bool
    peak_memory_bytes: int | None
    platform: str


#: The attributes ``concurrent.futures.Future.__init__`` sets. Ours makes the three costly ones lazily; on a Python
#: whose Future sets others, it falls back to the standard constructor (and completes futures the standard way).
_LAZY = frozenset({"_condition", "_waiters", "_done_callbacks"})
_LIGHT = set(cf.Future().__dict__) == _LAZY | {"_state", "_result", "_exception"}
_base: Any = cf._base
_PENDING, _RUNNING, _FINISHED = _base.PENDING, _base.RUNNING, _base.FINISHED
_CANCELLED = frozenset({_base.CANCELLED, _base.CANCELLED_AND_NOTIFIED})
_DONE = _CANCELLED | {_FINISHED}
_lazy_lock = threading.Lock()


class Future(cf.Future[T], Generic[T]):
    """The future of one call: ``result()``, ``exception()``, ``done()``, ``cancel()`` and ``stats``.

    Generic in the call's result type: ``pwex.map(fn, xs)`` with ``fn: Callable[..., int]`` gives
    ``list[Future[int]]``."""

    # Defaults every call shares, as class attributes: a map of 100,000 calls then sets four attributes per future.
    _attempts = 1
    _report: InvocationReport | None = None
    _function_times: tuple[float | None, float | None] = (None, None)
    _received: float | None = None
    _stats: CallStats | None = None
    _job: Any = None  # the collector's JobState: kept alive (for summaries) only while futures are held
    _output = ""
    _result: Any = None
    _exception: BaseException | None = None

    def __init__(self, job_id: str, call_id: int, submitted: float, invocation: int = -1) -> None:
        if not _LIGHT:
            super().__init__()
        self._state = _PENDING
        self.job_id = job_id
        self.call_id = call_id
        self._submitted = submitted
        self._invocation = invocation

    def __getattr__(self, name: str) -> Any:
        # The standard Future's condition, waiters and callbacks, made on first use (see _LIGHT): most futures of a
        # big map are completed and read without anyone waiting on them one by one.
        if name in _LAZY:
            with _lazy_lock:
                if "_condition" not in self.__dict__:
                    self.__dict__.update(_waiters=[], _done_callbacks=[])
                    self._condition = threading.Condition()
            return self.__dict__[name]
        raise AttributeError(f"{type(self).__name__!r} object has no attribute {name!r}")

    @property
    def output(self) -> str:
        """What the call printed (stdout, stderr) and logged on its worker, up to 64 KiB; "" until it is done."""
        return self._output

    def succeeded(self) -> bool:
        """Done without an exception (PyWren's name)."""
        return self.done() and not self.cancelled() and self.exception(timeout=0) is None

    def errored(self) -> bool:
        """Done with an exception or cancelled (PyWren's name)."""
        return self.done() and (self.cancelled() or self.exception(timeout=0) is not None)

    # A finished future never changes again, so reading it needs no lock (under the GIL, _result/_exception are
    # always written before _state): reading 100,000 results then never touches a condition.
    def done(self) -> bool:
        return self._state in _DONE

    def cancelled(self) -> bool:
        return self._state in _CANCELLED

    def result(self, timeout: float | None = None) -> T:
        if self._state is _FINISHED and self._exception is None:
            return self._result
        try:
            return super().result(timeout)
        except KeyboardInterrupt:
            interrupted([self])
            raise

    def exception(self, timeout: float | None = None) -> BaseException | None:
        if self._state is _FINISHED:
            return self._exception
        try:
            return super().exception(timeout)
        except KeyboardInterrupt:
            interrupted([self])
            raise

    @property
    def stats(self) -> CallStats:
        """Timestamps and facts about this call (built on demand; cheap for thousands of futures)."""
        if self._stats is not None:
            return self._stats
        stats = CallStats(submitted=self._submitted, invocation=self._invocation, attempts=self._attempts,
                          result_received=self._received)
        report = self._report
        if report is not None:
            stats.worker_start, stats.worker_id, stats.warm = report.worker_start, report.worker_id, report.warm
            stats.peak_memory_bytes, stats.platform = report.peak_memory_bytes, report.platform
            stats.function_start, stats.function_end = self._function_times
        if self.done():
            self._stats = stats  # final: cache it
        return stats

    @stats.setter
    def stats(self, value: CallStats) -> None:
        self._stats = value

    def __repr__(self) -> str:
        return f"<lambdamap.Future job={self.job_id} call={self.call_id} state={self._state}>"


def start(futures: Sequence[Future[Any]]) -> bool:
    """Mark ``futures`` running as their invocation starts (``set_running_or_notify_cancel`` for each); return
    whether any of them is still wanted (not cancelled). Futures without a condition cannot have been cancelled
    and are switched together under one lock."""
    live = False
    slow = []
    with _lazy_lock:
        for fut in futures:
            if _LIGHT and "_condition" not in fut.__dict__ and fut._state is _PENDING:
                fut._state = _RUNNING
                live = True
            else:
                slow.append(fut)
    for fut in slow:
        # PENDING -> RUNNING (True); CANCELLED -> CANCELLED_AND_NOTIFIED, which alone wakes cf.wait and
        # as_completed waiters (False); already RUNNING (a retry) or done: RuntimeError.
        try:
            if fut.set_running_or_notify_cancel():
                live = True
        except RuntimeError:
            live = live or fut.running()
    return live


def complete(futures: Sequence[Future[Any]], outcomes: Iterable[tuple[BaseException | None, Any]]) -> None:
    """Complete each of ``futures`` with its (exception or None, value), skipping those already done (cancelled).

    Futures nobody has waited on or added a callback to (they have no condition yet) are completed together under
    one lock, as plain assignments; the others the standard way, waking their waiters and running callbacks."""
    slow: list[tuple[Future[Any], BaseException | None, Any]] = []
    with _lazy_lock:  # no condition can be made meanwhile, so nobody can start waiting on these
        for fut, (error, value) in zip(futures, outcomes, strict=True):
            if not _LIGHT or "_condition" in fut.__dict__:
                slow.append((fut, error, value))
            elif fut._state is _RUNNING or fut._state is _PENDING:
                if error is None:
                    fut._result = value
                else:
                    fut._exception = error
                fut._state = _FINISHED
    for fut, error, value in slow:
        with contextlib.suppress(cf.InvalidStateError):  # cancelled meanwhile
            if error is None:
                fut.set_result(value)
            else:
                fut.set_exception(error)


def interrupted(futures: Iterable[cf.Future[Any]]) -> int:
    """Ctrl-C (or a Jupyter interrupt) arrived while waiting on ``futures``: cancel their jobs' unfinished calls,
    stop the ones running, say so in one line per job, and return how many calls were cancelled. The caller
    re-raises the KeyboardInterrupt."""
    jobs = {id(job): job for f in futures if (job := getattr(f, "_job", None)) is not None}
    total = 0
    for job in jobs.values():
        cancel = getattr(job, "cancel", None)
        count = cancel(job) if cancel is not None else 0
        total += count
        if count:
            print(f"lambdamap: cancelled {count} calls of job {job.job_id}", file=sys.stderr, flush=True)
    return total


def _in_notebook() -> bool:
    """Whether this process is a Jupyter kernel (where tqdm.auto draws a widget and stderr is no terminal)."""
    shell = sys.modules.get("IPython")
    get = getattr(shell, "get_ipython", None)
    return get is not None and get() is not None and "IPKernelApp" in getattr(get(), "config", {})


def _wait_one(fut: cf.Future[Any], timeout: float | None) -> bool:
    """Wait until ``fut`` is done (True) or ``timeout`` runs out (False), without installing a waiter."""
    if timeout is not None and timeout <= 0:
        return fut.done()
    # The standard Future's own condition, as its result() uses.
    condition: threading.Condition = fut._condition
    with condition:
        return condition.wait_for(fut.done, timeout)


def _progress_bar(total: int, progress: bool | None, desc: str) -> Any:
    """A tqdm bar on a terminal or in a notebook (after one second), or None."""
    if progress is False or total == 0:
        return None
    notebook = _in_notebook()
    if progress is None and not (hasattr(sys.stderr, "isatty") and sys.stderr.isatty()) and not notebook:
        return None
    if notebook and importlib.util.find_spec("ipywidgets") is not None:
        from tqdm.notebook import tqdm  # the widget; without ipywidgets tqdm would only warn and print text
    else:
        from tqdm.std import tqdm

    return tqdm(total=total, desc=desc, unit="call", delay=0 if progress else 1.0, leave=False)


def wait(
    futures: Iterable[cf.Future[T]],
    return_when: str = ALL_COMPLETED,
    timeout: float | None = None,
    progress: bool | None = None,
    *,
    THREADPOOL_SIZE: int | None = None,  # noqa: N803 - PyWren's spelling, so ported code runs unchanged
    WAIT_DUR_SEC: float | None = None,  # noqa: N803
) -> tuple[list[cf.Future[T]], list[cf.Future[T]]]:
    """Wait for ``futures``; return ``(done, not_done)``, two lists in input order (as PyWren's ``wait``; the
    standard library's returns sets).

    ``return_when`` is ``ALL_COMPLETED``, ``ANY_COMPLETED`` or ``ALWAYS`` (return the current state at once).
    ``timeout`` bounds the wait (then ``not_done`` holds what is left). ``progress`` shows a tqdm bar (default: only
    when stderr is a terminal or a notebook, and the wait lasts over a second). PyWren's ``THREADPOOL_SIZE`` and
    ``WAIT_DUR_SEC`` (its polling pool and interval) are accepted and change nothing: futures here are completed
    as results arrive, not polled one by one.
    """
    for name, value in (("THREADPOOL_SIZE", THREADPOOL_SIZE), ("WAIT_DUR_SEC", WAIT_DUR_SEC)):
        if value is not None and (isinstance(value, bool) or not isinstance(value, (int, float)) or value <= 0):
            raise ValueError(f"{name} must be a positive number (it only exists for PyWren code), got {value!r}")
    futures = list(futures)
    if return_when not in (ALL_COMPLETED, ANY_COMPLETED, ALWAYS):
        raise ValueError(f"return_when must be ALL_COMPLETED, ANY_COMPLETED or ALWAYS, got {return_when!r}")
    try:
        _wait(futures, return_when, timeout, progress)
    except KeyboardInterrupt:
        interrupted(futures)
        raise
    done = [f for f in futures if f.done()]
    return done, [f for f in futures if not f.done()]


def _wait(futures: list[cf.Future[T]], return_when: str, timeout: float | None, progress: bool | None) -> None:
    if return_when == ALWAYS:
        return
    if return_when == ANY_COMPLETED:
        cf.wait(futures, timeout=timeout, return_when=cf.FIRST_COMPLETED)
        return
    bar = _progress_bar(len(futures), progress, "lambdamap")
    if bar is None:
        # In order, one future at a time, without a waiter on every future: completing 100,000 futures then costs
        # far less (see complete()).
        deadline = None if timeout is None else time.monotonic() + timeout
        for f in futures:
            if not f.done() and not _wait_one(f, None if deadline is None else deadline - time.monotonic()):
                return
        return
    try:
        for _ in cf.as_completed(futures, timeout=timeout):
            bar.update(1)
    except cf.TimeoutError:
        pass
    finally:
        bar.close()


def get_all_results(
    futures: Sequence[cf.Future[T]], timeout: float | None = None, progress: bool | None = None, *,
    return_exceptions: bool = False,
) -> list[Any]:
    """Wait for every future and return their results in input order.

    A failed call's exception is raised: the first failure in input order, with a note naming its call and input
    and counting the other failures (the remote traceback is its ``__cause__``). ``return_exceptions=True`` returns
    each failed call's exception in its place instead. ``timeout`` bounds the whole wait and raises
    :class:`TimeoutError` when it runs out.
    """
    futures = list(futures)
    _, not_done = wait(futures, ALL_COMPLETED, timeout=timeout, progress=progress)
    missing = len(not_done)
    if missing:
        raise TimeoutError(f"{missing} of {len(futures)} calls not done after {timeout} s")
    results: list[Any] = []
    failed: list[int] = []
    for i, f in enumerate(futures):
        try:
            results.append(f.result(timeout=0))  # all are done: this never waits
        except BaseException as exc:  # noqa: BLE001 - the call's own exception (or CancelledError), kept in place
            failed.append(i)
            results.append(exc)
    if failed and not return_exceptions:
        first: BaseException = results[failed[0]]
        note = (f"lambdamap: {len(failed) - 1} other call(s) of these {len(futures)} failed too (first indexes: "
                f"{failed[1:6]}); get_all_results(futures, return_exceptions=True) returns each exception in place")
        if len(failed) > 1 and note not in getattr(first, "__notes__", ()):
            first.add_note(note)
        raise first
    return results
