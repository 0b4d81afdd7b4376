"""Decoding result records on the client: each call's value or rebuilt exception, and what the record says about
its invocation. Pure functions of a record; the collector applies them to futures."""

from __future__ import annotations

import contextlib
from collections.abc import Sequence
from typing import Any

from lambdamap.core.future import InvocationReport
from lambdamap.core.serialize import loads
from lambdamap.core.task import ResultRecord
from lambdamap.core.tracebacks import RemoteTrace
from lambdamap.errors import RemoteTraceback, SerializationError, TaskError, WorkerLostError

#: One call's outcome: its function (start, end) times if it ran, then an exception or None, then its value.
Outcome = tuple[tuple[float, float] | None, BaseException | None, Any]


def report(record: ResultRecord) -> InvocationReport:
    return InvocationReport(worker_start=record.worker_start, worker_id=record.worker_id, warm=record.warm,
                            peak_memory_bytes=record.peak_memory_bytes, platform=record.platform)


def decode(record: ResultRecord, call_ids: Sequence[int], job_id: str) -> list[Outcome]:
    """The outcome of each of ``call_ids`` (calls of this record's invocation), in that order. Each value is
    unpickled on its own, so one that cannot be fails only its call."""
    setup_error = rebuild_error(record.setup_error, record.setup_traceback, record.setup_error_type,
                                record.setup_error_message) if record.setup_error_type else None
    legacy: list[Any] | None = None
    legacy_error: BaseException | None = None
    if isinstance(record.values, bytes):  # a record of an earlier release: one pickled list
        try:
            legacy = loads(record.values)
        except BaseException as exc:  # noqa: BLE001 - a __reduce__ raising SystemExit fails the calls, not us
            legacy_error = exc
    times, ran = record.times, record.calls_run
    outputs = getattr(record, "outputs", None) or {}
    outcomes: list[Outcome] = []
    for call_id in call_ids:
        offset = call_id - record.call_start
        function_times = (times[2 * offset], times[2 * offset + 1]) if 0 <= offset < ran else None
        error = record.errors.get(call_id)
        if error is not None:
            error_exc = rebuild_error(error.error, error.traceback, error.error_type, error.error_message)
            _note(error_exc, call_id, job_id, getattr(error, "input_repr", None), outputs.get(call_id))
            outcomes.append((function_times, error_exc, None))
        elif 0 <= offset < ran:
            try:
                if legacy_error is not None:
                    raise legacy_error
                value = legacy[offset] if legacy is not None else record.value(offset)
            except BaseException as exc:  # noqa: BLE001 - contained: this call fails, the others do not
                outcomes.append((function_times, unpickle_error(call_id, exc), None))
            else:
                outcomes.append((function_times, None, value))
        elif setup_error is not None:
            outcomes.append((function_times, setup_error, None))
        else:
            outcomes.append((function_times, WorkerLostError(
                f"call {call_id} of job {job_id} did not run: its invocation ended before reaching it"), None))
    return outcomes


def _note(exc: BaseException, call_id: int, job_id: str, input_repr: str | None, output: str | None) -> None:
    """Name the failed call (and its input) on its exception, and show what it printed: a user finds the bad input
    without looping over every future."""
    with contextlib.suppress(Exception):
        where = f"lambdamap: raised by call {call_id} of job {job_id}"
        exc.add_note(where + (f", input ({input_repr})" if input_repr is not None else ""))
        if output:
            tail = output if len(output) <= 2000 else "...\n" + output[-2000:]
            exc.add_note("lambdamap: the call printed:\n" + tail.rstrip("\n"))


def summary_row(record: ResultRecord, nbytes: int) -> dict[str, Any]:
    """What job summaries keep of a record once its values are delivered."""
    return {
        "invocation": record.invocation, "attempt": record.attempt, "worker_id": record.worker_id,
        "warm": record.warm, "worker_start": record.worker_start, "worker_end": record.worker_end,
        "peak_memory_bytes": record.peak_memory_bytes, "platform": record.platform, "bytes": nbytes,
        "calls": record.calls_run, "extra": record.extra,
    }


def rebuild_error(data: bytes | None, tb: RemoteTrace | str | None, type_name: str | None,
                  message: str | None) -> BaseException:
    """The worker's exception as its own type where the client can rebuild it, with the remote traceback rendered
    here (with this client's source files) as ``__cause__``."""
    exc: Any
    try:
        exc = loads(data) if data is not None else TaskError(f"{type_name}: {message}", type_name or "Exception")
    except BaseException as load_exc:  # noqa: BLE001 - the class is unknown here, or its __reduce__ raised
        exc = TaskError(f"{type_name}: {message} (could not rebuild the remote exception: {load_exc})",
                        type_name or "Exception")
    if not isinstance(exc, BaseException):
        exc = TaskError(f"{type_name}: {message}", type_name or "Exception")
    if tb:
        exc.__cause__ = RemoteTraceback(str(tb))
    return exc


def unpickle_error(call_id: int, exc: BaseException) -> BaseException:
    err = SerializationError(f"the result of call {call_id} cannot be unpickled on the client: "
                             f"{type(exc).__name__}: {exc}. Install the packages the result needs here")
    if isinstance(exc, Exception):  # a SystemExit or KeyboardInterrupt is reported, never chained to be re-raised
        err.__cause__ = exc
    return err
