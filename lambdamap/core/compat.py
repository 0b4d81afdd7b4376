"""A ``concurrent.futures.Executor`` view of a lambdamap executor, for libraries that take one.

Why a view and not a subclass: PyWren's contract (and ours) is that ``map`` returns the list of futures, while
``concurrent.futures.Executor.map`` yields results and takes ``timeout=``. One class cannot honour both, so the
executor keeps PyWren's ``map`` and offers this view, whose ``map`` follows the standard library exactly.
"""

from __future__ import annotations

import concurrent.futures as cf
import time
from collections.abc import Callable, Iterable, Iterator
from typing import TYPE_CHECKING, Any, TypeVar

if TYPE_CHECKING:
    from lambdamap.core.executor import Executor

T = TypeVar("T")


class StandardExecutor(cf.Executor):
    """``submit``, ``map`` (results, in order; ``timeout`` bounds the wait), ``shutdown`` over a lambdamap executor."""

    def __init__(self, executor: Executor) -> None:
        self.executor = executor

    def submit(self, fn: Callable[..., T], /, *args: Any, **kwargs: Any) -> cf.Future[T]:
        return self.executor.submit(fn, *args, **kwargs)

    def map(self, fn: Callable[..., T], *iterables: Iterable[Any], timeout: float | None = None,
            chunksize: int = 1, buffersize: int | None = None, **options: Any) -> Iterator[T]:
        """Results of ``fn`` over the zipped ``iterables``, in order; ``timeout`` bounds the whole wait.

        ``options`` are :meth:`lambdamap.Executor.map`'s own (e.g. ``retries``, ``memory``, ``exclude_modules``).
        ``buffersize`` (Python 3.14's) is accepted; use :meth:`lambdamap.Executor.imap` for a bounded window."""
        deadline = None if timeout is None else time.monotonic() + timeout
        futures = self.executor.map(fn, *iterables, chunksize=chunksize if chunksize > 1 else None, **options)

        def results() -> Iterator[T]:
            try:
                for fut in futures:
                    left = None if deadline is None else deadline - time.monotonic()
                    if left is not None and left <= 0:
                        raise TimeoutError(f"map() results not ready after {timeout} s")
                    yield fut.result(timeout=left)
            finally:
                for fut in futures:
                    fut.cancel()

        return results()

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        self.executor.shutdown(wait=wait, cancel_futures=cancel_futures)
