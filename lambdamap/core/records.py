"""Decoding result records on the client: each call's value or rebuilt exception, and what the record says about
its invocation. Pure functions of a record; the collector applies them to futures."""

from __future__ import annotations

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
    """The outcome of each of ``call_ids`` (calls of this record's invocation), in that order."""
    setup_error = rebuild_error(record.setup_error, record.setup_traceback, record.setup_error_type,
                                record.setup_error_message) if record.setup_error_type else None
    try:
        values = loads(record.values) if record.values is not None else []
        values_error = None
    except BaseException as exc:  # noqa: BLE001 - a __reduce__ raising SystemExit fails the calls, not the client
        values, values_error = [], exc
    times, ran = record.times, record.calls_run
    outcomes: list[Outcome] = []
    for call_id in call_ids:
        offset = call_id - record.call_start
        function_times = (times[2 * offset], times[2 * offset + 1]) if 0 <= offset < ran else None
        error = record.errors.get(call_id)
        if error is not None:
            outcomes.append((function_times, rebuild_error(error.error, error.traceback, error.error_type,
                                                           error.error_message), None))
        elif values_error is not None and offset < ran:
            outcomes.append((function_times, unpickle_error(call_id, values_error), None))
        elif 0 <= offset < len(values):
            outcomes.append((function_times, None, values[offset]))
        elif setup_error is not None:
            outcomes.append((function_times, setup_error, None))
        else:
            outcomes.append((function_times, WorkerLostError(
                f"call {call_id} of job {job_id}: the worker's record has no outcome for this call"), None))
    return outcomes


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
    err.__cause__ = exc
    return err
