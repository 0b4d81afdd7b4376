"""The collector: turns result records in storage into completed futures.

One background thread per executor. Invokers report ``finished`` / ``lost`` through the thread-safe
:class:`~lambdamap.backends.base.InvocationSink` methods, which only enqueue; the thread reads the result record from
storage and completes the invocation's futures. For invokers that cannot report completion (Lambda's asynchronous
invoke) the thread lists each pending job's results prefix at an adaptive interval and treats an invocation whose
record has not appeared by the invoker's ``completion_deadline`` as lost: a listing that began after the deadline
found no record. If the listing itself fails past the deadline (storage unreachable after its client's own retries),
the futures fail with :class:`~lambdamap.errors.StorageError` instead. Lost invocations are re-invoked while the
job's ``retries`` allow, else their futures fail. Nothing waits forever: every started invocation ends in a record,
a loss report, or a deadline.
"""

from __future__ import annotations

import concurrent.futures as cf
import contextlib
import logging
import queue
import threading
import time
import weakref
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from lambdamap.backends.base import Invoker
from lambdamap.core import keys, records
from lambdamap.core.future import Future, complete, start
from lambdamap.core.gcpause import paused_gc
from lambdamap.core.task import ResultRecord, TaskSpec
from lambdamap.errors import (
    ExecutorShutdownError,
    ObjectNotFoundError,
    StorageError,
    TaskTimeoutError,
    WorkerLostError,
)
from lambdamap.storage.base import Storage, get_all

log = logging.getLogger("lambdamap")

RETRYABLE = (WorkerLostError, TaskTimeoutError)
POLL_MIN, POLL_MAX = 0.02, 2.0


@dataclass(eq=False)
class Invocation:
    spec: TaskSpec
    futures: list[Future]
    job: JobState
    retries_left: int
    started_at: float | None = None
    done: bool = False
    reuploaded: bool = False  # the function blob was put back once after a worker found it missing


@dataclass(eq=False)
class JobState:
    job_id: str
    prefix: str
    keep: bool
    invocations: dict[int, Invocation] = field(default_factory=dict)
    pending: int = 0
    calls: int = 0
    submitted: float = field(default_factory=time.time)
    finished: float | None = None
    bytes_uploaded: int = 0
    bytes_downloaded: int = 0
    storage_requests: int = 0
    records: list[dict[str, Any]] = field(default_factory=list)  # per-invocation facts for summaries
    on_done: list[Callable[[JobState], None]] = field(default_factory=list)
    # Poll mode: when (time.monotonic()) the last complete listing of the results began, and the last failed one.
    listed_at: float | None = None
    list_failure: tuple[float, StorageError] | None = None
    #: ``cancel(job)`` cancels the job's unfinished calls and stops its running ones; returns how many. The
    #: collector's method, not a closure over the job: a job must not refer to itself, or only the cyclic GC frees it.
    cancel: Callable[[JobState], int] | None = None
    #: The pickled function and its key, kept while the job runs: a worker that finds the blob missing (deleted from
    #: outside, e.g. by `lambdamap cleanup --blobs`) gets it put back once. ``blob_missing`` tells the executor.
    func_key: str | None = None
    func_data: bytes | None = None
    blob_missing: Callable[[str], None] | None = None


class Collector:
    """Completes futures from result records; implements the invokers' sink."""

    def __init__(self, storage: Storage, invoker: Invoker) -> None:
        self.storage = storage
        self.invoker = invoker
        self._lock = threading.Lock()
        self._events: queue.SimpleQueue[tuple[Any, ...]] = queue.SimpleQueue()
        # Running jobs are held here; finished ones only as long as the caller holds their futures (each future
        # holds its job), so a long-lived executor does not keep every result it ever delivered.
        self._jobs: dict[str, JobState] = {}
        self._finished: weakref.WeakValueDictionary[str, JobState] = weakref.WeakValueDictionary()
        self._idle_callbacks: list[Callable[[], None]] = []
        self._closed = False
        self._died: str | None = None
        self.registered = 0  # jobs registered over the collector's life (for diagnostics and tests)
        self._thread = threading.Thread(target=self._run_guarded, name="lambdamap-collector", daemon=True)
        self._thread.start()

    @property
    def thread(self) -> threading.Thread:
        return self._thread

    # -- registration (client thread) -------------------------------------------------------------------------
    def register(self, job: JobState, invocations: list[Invocation]) -> None:
        with self._lock:
            if self._died is not None:
                raise ExecutorShutdownError(f"the executor's collector thread died ({self._died}); create a new "
                                            "executor")
            if self._closed:
                raise ExecutorShutdownError("the executor has been shut down; create a new one")
            for inv in invocations:
                job.invocations[inv.spec.invocation] = inv
                for fut in inv.futures:
                    fut._job = job
            job.pending = len(invocations)
            job.calls = sum(len(inv.futures) for inv in invocations)
            job.cancel = self.cancel_job
            self._jobs[job.job_id] = job
            self.registered += 1
        # Wake the thread now: in poll mode it would otherwise notice the job only after its idle timeout.
        self._events.put(("job-empty", job) if not invocations else ("wake",))

    def jobs(self) -> list[JobState]:
        """Running jobs, then finished jobs whose futures someone still holds."""
        with self._lock:
            return [*self._jobs.values(), *(j for j in self._finished.values() if j.job_id not in self._jobs)]

    def _running_jobs(self) -> list[JobState]:
        with self._lock:
            return list(self._jobs.values())

    def running_futures(self) -> list[Future[Any]]:
        """Futures of unfinished jobs (what shutdown waits for)."""
        with self._lock:
            return [f for job in self._jobs.values() for inv in job.invocations.values() for f in inv.futures]

    def when_idle(self, callback: Callable[[], None]) -> None:
        """Call ``callback`` (once) when no job is running: now, or from the thread when the last one ends."""
        with self._lock:
            if self._jobs and self._died is None:
                self._idle_callbacks.append(callback)
                return
        callback()

    def cancel_job(self, job: JobState) -> int:
        """Cancel every unfinished call of ``job``: pending ones never run, running ones fail with
        :class:`concurrent.futures.CancelledError` and their workers are stopped. Returns how many calls."""
        with self._lock:
            live = [inv for inv in job.invocations.values() if not inv.done]
            for inv in live:
                inv.retries_left = 0  # a stopped worker's loss report must not start the call again
            running_specs = [inv.spec for inv in live if inv.started_at is not None]
        count = 0
        for inv in live:
            for fut in inv.futures:
                if fut.cancel():
                    count += 1
                elif not fut.done():
                    with contextlib.suppress(cf.InvalidStateError):
                        fut.set_exception(cf.CancelledError(f"call {fut.call_id} of job {job.job_id} was cancelled "
                                                            "while running"))
                        count += 1
        if running_specs and not self.invoker.notifies_completion:
            # Workers that cannot be killed from here (Lambda) look for this marker between calls and stop.
            try:
                self.storage.put(keys.cancel_key(job.prefix, job.job_id), b"")
            except Exception:  # noqa: BLE001 - best effort: the calls are cancelled on the client already
                log.warning("could not write the cancel marker of job %s", job.job_id, exc_info=True)
        if running_specs:
            try:
                self.invoker.cancel(running_specs)
            except Exception:  # noqa: BLE001 - the calls are already cancelled; stopping workers is best effort
                log.warning("could not stop the running invocations of job %s", job.job_id, exc_info=True)
        # Invocations not yet sent complete through started(); the ones running through their loss or record.
        for inv in live:
            if inv.started_at is None:
                self._events.put(("all-cancelled", inv.spec))
        return count

    # -- sink (invoker threads) -------------------------------------------------------------------------------
    def started(self, spec: TaskSpec) -> bool:
        with self._lock:
            inv = self._lookup(spec)
            if inv is None:
                return False
            if not start(inv.futures):
                self._events.put(("all-cancelled", spec))
                return False
            inv.started_at = time.monotonic()
            return True

    def finished(self, spec: TaskSpec) -> None:
        self._events.put(("finished", spec))

    def lost(self, spec: TaskSpec, error: BaseException) -> None:
        self._events.put(("lost", spec, error))

    def _lookup(self, spec: TaskSpec) -> Invocation | None:
        job = self._jobs.get(spec.job_id)
        inv = job.invocations.get(spec.invocation) if job else None
        if inv is None or inv.done or spec.attempt < inv.spec.attempt:
            return None  # stale report of an earlier attempt, or already complete
        return inv

    # -- the collector thread ---------------------------------------------------------------------------------
    def _run_guarded(self) -> None:
        """The thread: :meth:`_run`; if that ever ends other than by close(), fail everything (never a hang)."""
        reason = "it stopped unexpectedly"
        try:
            self._run()
            return
        except BaseException as exc:  # noqa: BLE001 - reported to every waiting caller below
            reason = f"{type(exc).__name__}: {exc}"
            log.error("lambdamap collector thread died: %s", reason)
        with self._lock:
            self._died = reason
            jobs = list(self._jobs.values())
        for job in jobs:
            for inv in job.invocations.values():
                for fut in inv.futures:
                    if not fut.done():
                        with contextlib.suppress(cf.InvalidStateError):
                            fut.set_exception(ExecutorShutdownError(
                                f"call {fut.call_id} of job {job.job_id} cannot complete: the executor's collector "
                                f"thread died ({reason})"))
        self._fire_idle()

    def _run(self) -> None:
        interval = POLL_MIN
        while True:
            polling = not self.invoker.notifies_completion and self._has_started_work()
            try:
                event = self._events.get(timeout=interval if polling else 1.0)
            except queue.Empty:
                event = None
            if event is not None and event[0] == "stop":
                return
            # Separate guards: a failing poll must not stop the deadline checks, or a storage outage would make
            # every future wait for as long as it lasts.
            try:
                if event is not None:
                    self._handle(event)
                    interval = POLL_MIN
                if polling and event is None:
                    progressed = self._poll_storage()
                    interval = POLL_MIN if progressed else min(POLL_MAX, interval * 1.5)
            except BaseException:  # noqa: BLE001 - even a SystemExit from a result must not end the thread
                log.exception("lambdamap collector error")
            try:
                self._check_deadlines()
            except BaseException:  # noqa: BLE001
                log.exception("lambdamap collector error")

    def _has_started_work(self) -> bool:
        with self._lock:
            return any(job.pending for job in self._jobs.values())

    def _handle(self, event: tuple[Any, ...]) -> None:
        kind = event[0]
        if kind == "finished":
            self._on_finished(event[1])
        elif kind == "lost":
            self._on_lost(event[1], event[2])
        elif kind == "all-cancelled":
            with self._lock:
                inv = self._lookup(event[1])
            if inv is not None:
                self._complete_invocation(inv)
        elif kind == "job-empty":
            self._job_done(event[1])

    def _on_finished(self, spec: TaskSpec) -> None:
        with self._lock:
            inv = self._lookup(spec)
        if inv is None:
            return
        try:
            data = self.storage.get(spec.result_key)
        except ObjectNotFoundError:
            self._on_lost(spec, WorkerLostError(f"the worker finished invocation {spec.invocation} of job "
                                                f"{spec.job_id} but its result record is missing"))
            return
        except StorageError as exc:  # dropping the event would leave the futures waiting for ever
            self._on_lost(spec, StorageError(f"the worker finished invocation {spec.invocation} of job "
                                             f"{spec.job_id} but its result record cannot be read: {exc}"))
            return
        self._apply_data(inv, data)

    def _apply_data(self, inv: Invocation, data: bytes) -> bool:
        """Decode a result record and complete its invocation; a record that cannot be read fails its calls."""
        try:
            record = ResultRecord.loads(data)
        except BaseException as exc:  # noqa: BLE001 - a corrupt record fails its calls, never the thread
            self._fail_invocation(inv, WorkerLostError(
                f"the result record of invocation {inv.spec.invocation} of job {inv.job.job_id} cannot be read: "
                f"{type(exc).__name__}: {exc}"))
            return False
        with paused_gc():
            self._apply_record(inv, record, len(data))
        return True

    def _fail_invocation(self, inv: Invocation, error: BaseException) -> None:
        for fut in inv.futures:
            if not fut.done():
                with contextlib.suppress(cf.InvalidStateError):
                    fut.set_exception(error)
        self._complete_invocation(inv)

    def _poll_storage(self) -> bool:
        """List each job with started, unfinished invocations once; apply the records found."""
        progressed = False
        for job in self._running_jobs():
            with self._lock:
                waiting = {n: inv for n, inv in job.invocations.items() if not inv.done and inv.started_at}
            if not waiting:
                continue
            began = time.monotonic()
            try:
                progressed |= self._poll_job(job, waiting)
            except StorageError as exc:  # botocore already retried; the deadline check decides what it means
                job.list_failure = (began, exc)
                log.warning("cannot read the results of job %s: %s", job.job_id, exc)
            else:
                job.listed_at = began
        return progressed

    def _poll_job(self, job: JobState, waiting: dict[int, Invocation]) -> bool:
        job.storage_requests += 1
        found = []
        for key in self.storage.list(keys.results_prefix(job.prefix, job.job_id)):
            inv = waiting.get(keys.invocation_from_result_key(key))
            if inv is not None and not inv.done:
                found.append((key, inv))
        # Every new record at once (remote storage: one round trip's wait, not one per record), applied in order.
        progressed = False
        for (_, inv), data in zip(found, get_all(self.storage, [key for key, _ in found]), strict=True):
            if isinstance(data, ObjectNotFoundError):
                continue
            if isinstance(data, BaseException):
                raise data
            job.storage_requests += 1
            progressed |= self._apply_data(inv, data)
        return progressed

    def _check_deadlines(self) -> None:
        deadline = self.invoker.completion_deadline
        if self.invoker.notifies_completion or deadline is None:
            return
        for job in self._running_jobs():
            # Only a listing that began after an invocation's deadline and found no record shows it was lost. When
            # the latest listing failed instead, the results cannot be seen: that is the error to report.
            listed = job.listed_at
            failure = job.list_failure
            if failure is not None and listed is not None and failure[0] < listed:
                failure = None
            with self._lock:
                pending = [inv for inv in job.invocations.values() if not inv.done and inv.started_at is not None]
            for inv in pending:
                started, limit = inv.started_at, deadline + (inv.spec.timeout or 0)
                if started is None:
                    continue  # re-invoked meanwhile
                if listed is not None and listed - started > limit:
                    self._on_lost(inv.spec, WorkerLostError(
                        f"no result after {limit:.0f} s: the invocation was lost (the worker may have run out of "
                        "memory or time, or the event was dropped); see the function's logs"))
                elif failure is not None and failure[0] - started > limit:
                    error = StorageError(f"no result after {limit:.0f} s, and the job's results cannot be read from "
                                         f"storage: {failure[1]}")
                    error.__cause__ = failure[1]
                    self._on_lost(inv.spec, error)

    def _on_lost(self, spec: TaskSpec, error: BaseException) -> None:
        with self._lock:
            inv = self._lookup(spec)
            retry = inv is not None and inv.retries_left > 0 and isinstance(error, RETRYABLE)
            if retry and inv is not None:
                inv.retries_left -= 1
                inv.spec = spec.retry()
                inv.started_at = None
                for fut in inv.futures:
                    fut._attempts += 1
        if inv is None:
            return
        if retry:
            log.info("retrying invocation %s of job %s after: %s", spec.invocation, spec.job_id, error)
            self.invoker.settled(spec)  # the failed attempt no longer occupies the invoker's window
            self.invoker.invoke([inv.spec])
            return
        per_call: dict[int, BaseException] = getattr(error, "call_errors", None) or {}
        for fut in inv.futures:
            if not fut.done():
                exc = per_call.get(fut.call_id, error)
                if exc is error and isinstance(error, (*RETRYABLE, StorageError)):  # name the call in its error
                    exc = type(error)(f"call {fut.call_id} of job {spec.job_id}: {error}")
                    exc.__cause__ = error.__cause__
                fut._received = time.time()
                fut.set_exception(exc)
        self._complete_invocation(inv)

    def _apply_record(self, inv: Invocation, record: ResultRecord, nbytes: int) -> None:
        if self._function_blob_missing(inv, record):
            return
        timed_out = [e for e in record.errors.values() if e.error_type == TaskTimeoutError.__qualname__]
        if timed_out and inv.retries_left > 0:
            # A call hit its timeout inside the worker: re-run the invocation like a lost one. The record goes
            # first, or the retry would find it and skip the work.
            self.storage.delete([inv.spec.result_key])
            self._on_lost(inv.spec, TaskTimeoutError(timed_out[0].error_message))
            return
        received = time.time()
        inv.job.bytes_downloaded += nbytes
        inv.job.storage_requests += 1
        report = records.report(record)
        outcomes = records.decode(record, [fut.call_id for fut in inv.futures], inv.job.job_id)
        outputs = getattr(record, "outputs", None) or {}
        for fut, (function_times, _, _) in zip(inv.futures, outcomes, strict=True):
            fut._report, fut._received = report, received
            if outputs:
                fut._output = outputs.get(fut.call_id, "")
            if function_times is not None:
                fut._function_times = function_times
        complete(inv.futures, [(error, value) for _, error, value in outcomes])
        inv.job.records.append(records.summary_row(record, nbytes))
        self._complete_invocation(inv)

    def _function_blob_missing(self, inv: Invocation, record: ResultRecord) -> bool:
        """If the worker could not find the job's function, put it back and re-run the invocation (once)."""
        job = inv.job
        if (record.setup_error_type != "ObjectNotFoundError" or inv.reuploaded or job.func_data is None
                or job.func_key is None or job.func_key not in (record.setup_error_message or "")):
            return False
        inv.reuploaded = True
        try:
            self.storage.put(job.func_key, job.func_data)
            self.storage.delete([inv.spec.result_key])
        except StorageError:
            return False  # the record's own error is reported
        if job.blob_missing is not None:
            job.blob_missing(job.func_key)
        spec = inv.spec
        with self._lock:
            inv.spec = spec.retry()
            inv.started_at = None
        log.info("re-uploaded the missing function of job %s for invocation %s", job.job_id, spec.invocation)
        self.invoker.settled(spec)
        self.invoker.invoke([inv.spec])
        return True

    def _complete_invocation(self, inv: Invocation) -> None:
        with self._lock:
            if inv.done:
                return
            inv.done = True
            inv.job.pending -= 1
            job_done = inv.job.pending == 0
        self.invoker.settled(inv.spec)
        if job_done:
            self._job_done(inv.job)

    def _job_done(self, job: JobState) -> None:
        job.finished = time.time()
        with self._lock:
            self._jobs.pop(job.job_id, None)
            self._finished[job.job_id] = job
            # The futures hold the job, not the other way round, and a job holds no cycle (invocations point back
            # at it): dropping the futures frees the job and its records at once, without waiting for the cyclic GC.
            job.invocations = {}
            job.func_data = None
        if not job.keep:
            try:
                self.storage.delete_prefix(keys.job_prefix(job.prefix, job.job_id))
            except Exception:
                log.warning("could not remove the objects of job %s", job.job_id, exc_info=True)
        for callback in job.on_done:
            try:
                callback(job)
            except Exception:
                log.exception("job completion callback failed")
        self._fire_idle()

    def _fire_idle(self) -> None:
        with self._lock:
            if self._jobs and self._died is None:
                return
            callbacks, self._idle_callbacks = self._idle_callbacks, []
        for callback in callbacks:
            try:
                callback()
            except Exception:
                log.exception("lambdamap idle callback failed")

    def close(self) -> None:
        """Stop the thread; every future not yet done fails with :class:`ExecutorShutdownError`."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
        self._events.put(("stop",))
        if threading.current_thread() is not self._thread:
            self._thread.join(timeout=10)
        with self._lock:
            jobs = list(self._jobs.values())
        for job in jobs:
            for inv in job.invocations.values():
                for fut in inv.futures:
                    if not fut.done() and not fut.cancel():
                        fut.set_exception(ExecutorShutdownError(
                            f"call {fut.call_id} of job {job.job_id} did not finish before the executor shut down"))
