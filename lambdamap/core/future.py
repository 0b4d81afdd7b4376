"""Futures of lambdamap calls, and the PyWren-style ``wait`` / ``get_all_results`` helpers.

:class:`Future` is a real :class:`concurrent.futures.Future`: it is completed only through ``set_result`` /
``set_exception`` by the executor's collector, so ``concurrent.futures.wait``, ``as_completed`` and every tool
built on them work unchanged.
"""

from __future__ import annotations

import concurrent.futures as cf
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


class Future(cf.Future[T], Generic[T]):
    """The future of one call: ``result()``, ``exception()``, ``done()``, ``cancel()`` and ``stats``.

    Generic in the call's result type: ``pwex.map(fn, xs)`` with ``fn: Callable[..., int]`` gives
    ``list[Future[int]]``."""

    def __init__(self, job_id: str, call_id: int, submitted: float, invocation: int = -1) -> None:
        super().__init__()
        self.job_id = job_id
        self.call_id = call_id
        self._submitted = submitted
        self._invocation = invocation
        self._attempts = 1
        self._report: InvocationReport | None = None
        self._function_times: tuple[float | None, float | None] = (None, None)
        self._received: float | None = None
        self._stats: CallStats | None = None
        self._job: Any = None  # the collector's JobState: kept alive (for summaries) only while futures are held
        self._output = ""

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

    def result(self, timeout: float | None = None) -> T:
        try:
            return super().result(timeout)
        except KeyboardInterrupt:
            interrupted([self])
            raise

    def exception(self, timeout: float | None = None) -> BaseException | None:
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


def _progress_wanted(total: int, progress: bool | None) -> bool:
    if progress is False or total == 0:
        return False
    return bool(progress) or (hasattr(sys.stderr, "isatty") and sys.stderr.isatty()) or _in_notebook()


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
) -> tuple[set[cf.Future[T]], set[cf.Future[T]]]:
    """Wait for ``futures``; return ``(done, not_done)`` like :func:`concurrent.futures.wait`.

    ``return_when`` is ``ALL_COMPLETED``, ``ANY_COMPLETED`` or ``ALWAYS`` (return the current state at once).
    ``progress`` shows a tqdm bar (default: only when stderr is a terminal and the wait lasts over a second).
    """
    futures = list(futures)
    try:
        return _wait(futures, return_when, timeout, progress)
    except KeyboardInterrupt:
        interrupted(futures)
        raise


def _wait(futures: list[cf.Future[T]], return_when: str, timeout: float | None,
          progress: bool | None) -> tuple[set[cf.Future[T]], set[cf.Future[T]]]:
    if return_when == ALWAYS:
        done = {f for f in futures if f.done()}
        return done, set(futures) - done
    if return_when not in (ALL_COMPLETED, ANY_COMPLETED):
        raise ValueError(f"return_when must be ALL_COMPLETED, ANY_COMPLETED or ALWAYS, got {return_when!r}")
    if return_when == ANY_COMPLETED:
        done, not_done = cf.wait(futures, timeout=timeout, return_when=cf.FIRST_COMPLETED)
        return set(done), set(not_done)
    bar = _progress_bar(len(futures), progress, "lambdamap")
    if bar is None:
        done, not_done = cf.wait(futures, timeout=timeout)
        return set(done), set(not_done)
    try:
        for _ in cf.as_completed(futures, timeout=timeout):
            bar.update(1)
    except cf.TimeoutError:
        pass
    finally:
        bar.close()
    done = {f for f in futures if f.done()}
    return done, set(futures) - done


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
    not_done: Iterable[cf.Future[T]]
    if _progress_wanted(len(futures), progress):
        _, not_done = wait(futures, ALL_COMPLETED, timeout=timeout, progress=progress)
    else:  # in order, without a waiter on every future: completing 100,000 futures then costs far less
        deadline = None if timeout is None else time.monotonic() + timeout
        try:
            for f in futures:
                if not f.done() and not _wait_one(f, None if deadline is None else deadline - time.monotonic()):
                    break
        except KeyboardInterrupt:
            interrupted(futures)
            raise
        not_done = [f for f in futures if not f.done()]
    missing = len(list(not_done))
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
