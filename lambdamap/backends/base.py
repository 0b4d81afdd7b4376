"""The Invoker interface: start invocations of the generic worker, and say what became of them.

An invoker only moves task specs to workers. Results never pass through it: the worker writes them to storage and
the executor's collector reads them there. An invoker that learns when a worker finished or died (the local pool,
Dask) tells the collector through the :class:`InvocationSink`; one that cannot (AWS Lambda's asynchronous invoke)
sets ``notifies_completion = False`` and the collector polls storage instead, failing invocations whose result has
not appeared by ``completion_deadline`` seconds after they started.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Protocol

from lambdamap.core.task import TaskSpec


class InvocationSink(Protocol):
    """What an invoker reports to; implemented by the executor's collector. All methods are thread-safe."""

    def started(self, spec: TaskSpec) -> bool:
        """Called just before an invocation is sent to a worker. False means every call of it was cancelled: skip it."""

    def finished(self, spec: TaskSpec) -> None:
        """The worker returned: its result record is in storage."""

    def lost(self, spec: TaskSpec, error: BaseException) -> None:
        """The invocation cannot finish (worker died, timed out, or the backend refused it); ``error`` says why."""


class Invoker(ABC):
    """Sends task specs to workers that run :func:`lambdamap.core.worker.run_task`."""

    #: True when :meth:`InvocationSink.finished` is called for every invocation that completes.
    notifies_completion: bool = True
    #: Seconds after ``started`` after which a missing result record means the invocation was lost (poll mode only).
    completion_deadline: float | None = None
    #: How many invocations can run at once (the executor's ``workers``); the automatic chunksize plans for it.
    workers: int = 1
    #: Pickled calls up to this many bytes travel inside the task spec instead of through storage (0: never). Worth
    #: it where a storage request costs a network round trip and the payload limit leaves room (Lambda).
    inline_limit: int = 0

    @abstractmethod
    def start(self, sink: InvocationSink) -> None:
        """Attach the sink; called once by the executor before the first :meth:`invoke`."""

    @abstractmethod
    def invoke(self, specs: list[TaskSpec]) -> None:
        """Queue these invocations; must not block on their completion."""

    def check_memory(self, memory_mb: int) -> None:  # noqa: B027 - optional hook, a no-op by default
        """Called before a map with ``memory=memory_mb`` stores or sends anything: raise
        :class:`~lambdamap.errors.ConfigError` if this backend cannot run it at that size. By default every size is
        accepted and only prices the job summary (as if on Lambda): local and Dask workers have the memory they have.
        """

    def settled(self, spec: TaskSpec) -> None:  # noqa: B027 - optional hook, a no-op by default
        """Called by the collector when an attempt of an invocation has ended (result applied, lost, cancelled).
        Invokers that keep a window of outstanding invocations (Lambda) send the next one here."""

    def cancel(self, specs: list[TaskSpec]) -> None:  # noqa: B027 - optional hook, a no-op by default
        """Stop these running invocations if the backend can (their calls are already cancelled on the client).
        Must not block: called when the user presses Ctrl-C."""

    @abstractmethod
    def close(self) -> None:
        """Stop all workers and threads; invocations still running are reported lost. Idempotent."""
