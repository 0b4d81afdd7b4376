"""Results as they come: :func:`as_completed` over futures, and :func:`imap`, which also feeds the inputs lazily
with a bounded number of calls outstanding, so a generator of any length maps in bounded memory."""

from __future__ import annotations

import concurrent.futures as cf
import itertools
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import TYPE_CHECKING, Any, TypeVar

from lambdamap.core.future import _wait_one, interrupted
from lambdamap.errors import ConfigError

if TYPE_CHECKING:
    from lambdamap.core.executor import Executor

T = TypeVar("T")

#: Calls per worker that :func:`imap` keeps outstanding by default.
WINDOW_PER_WORKER = 64


def as_completed(futures: Iterable[cf.Future[T]], *, with_results: bool = False,
                 timeout: float | None = None) -> Iterator[Any]:
    """Yield futures as they finish (``concurrent.futures.as_completed``), or ``(future, result_or_exception)``
    pairs with ``with_results=True`` (as Dask's). Ctrl-C while waiting cancels their jobs."""
    futures = list(futures)
    try:
        for fut in cf.as_completed(futures, timeout=timeout):
            if with_results:
                yield fut, (fut.exception() if fut.exception() is not None else fut.result())
            else:
                yield fut
    except KeyboardInterrupt:
        interrupted(futures)
        raise


def imap(executor: Executor, fn: Callable[..., T], iterables: Sequence[Iterable[Any]], *, ordered: bool,
         return_exceptions: bool, window: int | None, options: dict[str, Any]) -> Iterator[Any]:
    if not iterables:
        raise ConfigError("imap() needs at least one iterable of inputs")
    if window is None:
        window = WINDOW_PER_WORKER * max(1, executor.workers)
    if isinstance(window, bool) or not isinstance(window, int) or window < 1:
        raise ConfigError(f"window must be a positive number of calls, got {window!r}")
    for it in iterables:
        if isinstance(it, (str, bytes)):
            raise ConfigError("imap() got a string as iterable: pass a list of inputs (wrap it: [text])")
    rows = zip(*iterables, strict=True) if len(iterables) > 1 else ((x,) for x in iterables[0])
    batch = max(1, window // 4)  # submit in quarter windows: enough calls per job to batch invocations
    pending: deque[cf.Future[Any]] = deque()
    outstanding: set[cf.Future[Any]] = set()

    def top_up() -> None:
        # Refill a batch at a time, once a batch's worth has been consumed: one job per batch, not one per result.
        while window - len(outstanding) >= min(batch, window):
            chunk = list(itertools.islice(rows, batch))
            if not chunk:
                return
            futures = executor.starmap(fn, chunk, **options)
            pending.extend(futures)
            outstanding.update(futures)

    def result(fut: cf.Future[Any]) -> Any:
        try:
            return fut.result(timeout=0)  # done already: never waits
        except BaseException as exc:  # noqa: BLE001 - the call's own exception (or CancelledError)
            if return_exceptions:
                return exc
            raise

    try:
        top_up()
        while pending:
            if ordered:
                fut = pending.popleft()
                if not fut.done():
                    _wait_one(fut, None)
            else:
                done, _ = cf.wait(outstanding, return_when=cf.FIRST_COMPLETED)
                fut = done.pop()
                pending.remove(fut)
            outstanding.discard(fut)
            top_up()
            yield result(fut)
    except (KeyboardInterrupt, GeneratorExit):
        interrupted(list(outstanding))  # nobody will read these: stop them
        raise
