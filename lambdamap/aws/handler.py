"""The generic AWS Lambda runtime: ``lambda_handler(event, context)``, a thin adapter over
:func:`lambdamap.core.worker.run_task`.

Deploy it with the handler name ``lambdamap.aws.handler.lambda_handler``. The event is a task spec (JSON); the
handler records Lambda facts (cold or warm start, request id, memory limit, remaining time) in the result record and
lets ``run_task`` do the rest: version check, loading, running, and always writing the record.

It never raises the user's exception to Lambda (``run_task`` reports it as a result), so Lambda's automatic retries
of failed asynchronous invocations never re-run a call whose function raised; a repeated delivery finds the record
and does nothing. Calls past their ``timeout`` are stopped inside ``run_task``; a watchdog covers what that cannot
stop (code that never returns to the interpreter) and the function's own time limit: it reports
:class:`~lambdamap.errors.TaskTimeoutError` for the invocation's calls and ends this execution environment, instead of
Lambda killing the process silently and the client waiting for the completion deadline.

Deploy the function with ``MaximumRetryAttempts=0`` (its event invoke config): lambdamap re-runs lost invocations
itself when ``retries`` allows, and Lambda's own retries would re-run crashed calls behind its back.
"""

from __future__ import annotations

import json
import os
import sys
import threading
import time
from collections.abc import Iterable
from typing import Any

from lambdamap.core.serialize import dumps_exception
from lambdamap.core.task import CallError, ResultRecord, TaskSpec, client_versions
from lambdamap.core.worker import peak_memory_bytes, run_task, worker_id
from lambdamap.errors import TaskTimeoutError, VersionMismatchError
from lambdamap.storage.base import Storage, storage_from_location

_cold = True  # the first event of this execution environment
#: Seconds past a spec's timeout before the watchdog stops calls that the in-worker timeout could not interrupt.
HARD_TIMEOUT_GRACE = 2.0


def _safety_margin(remaining_s: float) -> float:
    """Seconds kept back from the Lambda time limit to write the timeout record (an S3 PUT)."""
    return min(5.0, max(0.5, 0.1 * remaining_s))


class _ResultGate(Storage):
    """Passes everything through to ``inner`` but lets exactly one writer store the result record: the calls'
    own record or the watchdog's timeout record, whichever comes first."""

    def __init__(self, inner: Storage, result_key: str) -> None:
        self.inner, self.result_key = inner, result_key
        self._lock = threading.Lock()
        self._written = False

    def claim(self, data: bytes) -> bool:
        with self._lock:
            if self._written:
                return False
            self.inner.put(self.result_key, data)
            self._written = True
            return True

    def put(self, key: str, data: bytes) -> None:
        if key == self.result_key:
            self.claim(data)
        else:
            self.inner.put(key, data)

    def get(self, key: str) -> bytes:
        return self.inner.get(key)

    def exists(self, key: str) -> bool:
        return self.inner.exists(key)

    def list(self, prefix: str) -> list[str]:
        return self.inner.list(prefix)

    def delete(self, keys: Iterable[str]) -> None:
        self.inner.delete(keys)

    def location(self) -> dict[str, str]:
        return self.inner.location()


def _context_facts(context: Any, cold: bool) -> dict[str, Any]:
    facts: dict[str, Any] = {
        "cold_start": cold,
        "request_id": getattr(context, "aws_request_id", None),
        "function_name": getattr(context, "function_name", None),
        "function_version": getattr(context, "function_version", None),
        "log_stream": getattr(context, "log_stream_name", None),
    }
    try:
        facts["memory_limit_mb"] = int(context.memory_limit_in_mb)
    except (AttributeError, TypeError, ValueError):
        facts["memory_limit_mb"] = None
    return facts


def _remaining_seconds(context: Any) -> float | None:
    try:
        return context.get_remaining_time_in_millis() / 1000.0
    except (AttributeError, TypeError):
        return None


def _failure_record(event: dict[str, Any], error: BaseException, facts: dict[str, Any], start: float,
                    call_ids: range | None = None) -> bytes:
    """A record failing the invocation with ``error``: per call when ``call_ids`` are given (so the collector
    treats a timeout like any call's timeout, retries included), else as the invocation's setup error."""
    record = ResultRecord(
        job_id=str(event.get("job_id")), invocation=int(event.get("invocation", -1)),
        attempt=int(event.get("attempt", 0)), worker_id=worker_id(), warm=not facts.get("cold_start", False),
        worker_start=start, worker_end=time.time(), peak_memory_bytes=peak_memory_bytes(),
        runtime_versions=client_versions(), platform="lambda", extra=facts,
    )
    data, tb = dumps_exception(error)
    if call_ids is None:
        record.setup_error, record.setup_traceback = data, tb
        record.setup_error_type, record.setup_error_message = type(error).__qualname__, str(error)
    else:
        record.call_start = call_ids.start
        record.errors = {i: CallError(error=data, traceback=tb, error_type=type(error).__qualname__,
                                      error_message=str(error)) for i in call_ids}
    return record.dumps()


def _unreadable_spec(event: Any, exc: Exception, facts: dict[str, Any], start: float) -> dict[str, Any]:
    """An event this runtime cannot parse: if it still names where its result goes (a client of another lambdamap
    version), report a version mismatch there, so the client fails fast instead of waiting for its deadline."""
    message = f"this Lambda runtime cannot read the event as a lambdamap task spec: {exc}"
    if isinstance(event, dict) and isinstance(event.get("storage"), dict) and event.get("result_key"):
        from lambdamap import __version__

        error = VersionMismatchError(
            f"{message}. The client sent task spec version {event.get('spec_version')!r} (lambdamap "
            f"{(event.get('versions') or {}).get('lambdamap')!r}); this runtime runs lambdamap {__version__}. Deploy "
            "the runtime of the client's lambdamap version (`lambdamap deploy`) or install lambdamap=="
            f"{__version__} on the client")
        try:
            storage = storage_from_location(event["storage"])
            if not storage.exists(event["result_key"]):
                storage.put(event["result_key"], _failure_record(event, error, facts, start))
        except Exception as write_exc:  # nothing more we can do: log it for the function's logs
            print(f"lambdamap: could not report the unreadable event: {write_exc}", file=sys.stderr)
    print(f"lambdamap: {message}", file=sys.stderr)
    return {"ok": False, "error": message}


def lambda_handler(event: Any, context: Any) -> dict[str, Any]:
    """Run one lambdamap invocation (the event is its task spec) and write its result record."""
    global _cold
    start = time.time()
    cold, _cold = _cold, False
    facts = _context_facts(context, cold)
    try:
        spec = TaskSpec.from_json(event) if isinstance(event, (str, bytes)) else TaskSpec.from_dict(event)
    except (TypeError, ValueError) as exc:
        return _unreadable_spec(event, exc, facts, start)
    remaining = _remaining_seconds(context)
    facts["remaining_ms_at_start"] = None if remaining is None else int(remaining * 1000)

    gate = _ResultGate(storage_from_location(spec.storage), spec.result_key)
    watchdog = None
    limits = []
    if spec.timeout is not None:
        limits.append((spec.timeout + HARD_TIMEOUT_GRACE, f"its timeout of {spec.timeout:g} s"))
    if remaining is not None:
        limits.append((remaining - _safety_margin(remaining),
                       f"the Lambda function's time limit ({remaining:.0f} s were left when it started)"))
    if limits:
        seconds, reason = min(limits)
        watchdog = threading.Timer(max(0.0, seconds), _time_out, args=(gate, spec, seconds, reason, facts, start))
        watchdog.daemon = True
        watchdog.start()
    try:
        record = run_task(spec, storage=gate, platform="lambda", extra=facts)
    finally:
        if watchdog is not None:
            watchdog.cancel()
    failed = spec.call_count if record.setup_error_type else len(record.errors)
    summary = {"ok": True, "job_id": spec.job_id, "invocation": spec.invocation, "attempt": spec.attempt,
               "calls": spec.call_count, "failed_calls": failed, "cold_start": cold,
               "seconds": round(time.time() - start, 3)}
    print("lambdamap: " + json.dumps(summary), flush=True)  # one line per invocation in the function's logs
    return summary


def _time_out(gate: _ResultGate, spec: TaskSpec, seconds: float, reason: str, facts: dict[str, Any],
              start: float) -> None:
    """Watchdog: report the invocation timed out, then end this execution environment (the only way to stop a
    running call); Lambda starts a fresh one for the next event, and retries of this one find the record."""
    error = TaskTimeoutError(
        f"invocation {spec.invocation} of job {spec.job_id} ({spec.call_count} call(s)) timed out after "
        f"{seconds:.1f} s ({reason}); the Lambda execution environment was stopped. Raise the timeout, use a "
        "smaller chunksize, or give the function a longer time limit")
    try:
        claimed = gate.claim(_failure_record(spec.to_dict(), error, {**facts, "timed_out": True}, start,
                                             spec.call_ids))
    except Exception as exc:
        print(f"lambdamap: could not write the timeout record: {exc}", file=sys.stderr, flush=True)
        claimed = True  # stop anyway: Lambda would kill us at its limit
    if claimed:
        print(f"lambdamap: {error}", file=sys.stderr, flush=True)
        sys.stdout.flush()
        os._exit(1)
