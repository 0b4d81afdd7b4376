"""The generic worker runtime: :func:`run_task` is the one entry point every backend calls.

It loads the function and the invocation's calls from storage, runs them, and *always* writes a result record (values,
or exceptions with formatted tracebacks, plus timings and memory) in a ``finally``. It never raises the user's
exceptions to the platform, so a platform that retries failed invocations (Lambda's asynchronous invoke) does not
re-run a call whose function raised. Platform handlers (the local pool, Lambda, Dask) are a few lines over it.
"""

from __future__ import annotations

import contextlib
import os
import platform as _platform
import resource
import signal
import socket
import threading
import time
from collections import OrderedDict
from collections.abc import Iterator
from typing import Any

from lambdamap.core.serialize import dumps_exception, dumps_value, loads
from lambdamap.core.shared import using_storage
from lambdamap.core.task import CallError, ResultRecord, TaskSpec, client_versions
from lambdamap.errors import SerializationError, TaskTimeoutError, VersionMismatchError
from lambdamap.storage.base import CountingStorage, Storage, storage_from_location

_invocations_served = 0
_served_lock = threading.Lock()
_functions: OrderedDict[str, Any] = OrderedDict()  # func_key -> function; warm workers skip the download
_FUNCTION_CACHE = 32


def worker_id() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


def peak_memory_bytes() -> int:
    """Peak resident memory of this process so far (ru_maxrss is KiB on Linux, bytes on macOS)."""
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return rss if _platform.system() == "Darwin" else rss * 1024


def check_versions(spec: TaskSpec, runtime: dict[str, str]) -> None:
    """Refuse to run a spec from a client with another Python minor, cloudpickle or lambdamap version: pickles only
    load reliably with the first two, and the spec, record and storage layout belong to the third."""
    problems = [
        f"{name}: client {spec.versions.get(name)!r}, runtime {runtime[name]!r}"
        for name in ("python", "cloudpickle", "lambdamap")
        if spec.versions.get(name) != runtime[name]
    ]
    if problems:
        raise VersionMismatchError(
            "the worker runtime does not match the client (" + "; ".join(problems) + "). Client and workers need the "
            "same Python minor version and the same cloudpickle and lambdamap versions: rebuild the runtime for the "
            f"client (`lambdamap runtime build --python {spec.versions.get('python')}` and `lambdamap deploy`), or "
            f"install cloudpickle=={runtime['cloudpickle']} and lambdamap=={runtime['lambdamap']} on the client and "
            f"use Python {runtime['python']}"
        )


def _load_function(storage: Storage, key: str) -> Any:
    fn = _functions.get(key)
    if fn is None:
        fn = loads(storage.get(key))
        _functions[key] = fn
        while len(_functions) > _FUNCTION_CACHE:
            _functions.popitem(last=False)
    return fn


@contextlib.contextmanager
def _environment(extra_env: dict[str, str] | None) -> Iterator[None]:
    if not extra_env:
        yield
        return
    saved = {k: os.environ.get(k) for k in extra_env}
    os.environ.update(extra_env)
    try:
        yield
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


@contextlib.contextmanager
def _soft_timeout(seconds: float | None, call_id: int) -> Iterator[None]:
    """Raise TaskTimeoutError inside the call after ``seconds`` (main thread only; invokers that can also kill the
    worker do so a little later, for code that never returns to the interpreter)."""
    if not seconds or threading.current_thread() is not threading.main_thread():
        yield
        return

    def _expired(signum: int, frame: Any) -> None:
        raise TaskTimeoutError(f"call {call_id} timed out after {seconds:g} s")

    previous = signal.signal(signal.SIGALRM, _expired)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def _run_calls(fn: Any, spec: TaskSpec, calls: list[Any], record: ResultRecord) -> None:
    """Run the invocation's calls in order, filling the record's columns."""
    per_call = None if spec.timeout is None else spec.timeout / max(1, spec.call_count)
    values: list[Any] = []
    times = record.times
    for call_id, (args, kwargs) in zip(spec.call_ids, calls, strict=False):
        times.append(time.time())
        try:
            with _soft_timeout(per_call, call_id):
                value = fn(*args, **kwargs)
        except BaseException as exc:  # noqa: BLE001 - SystemExit/KeyboardInterrupt in user code are results too
            times.append(time.time())
            record.errors[call_id] = _call_error(exc)
            values.append(None)
            continue
        times.append(time.time())
        values.append(value)
    try:
        record.values = dumps_value(values)
    except Exception:
        record.values = dumps_value(_drop_unpicklable(values, spec.call_start, record))


def _call_error(exc: BaseException) -> CallError:
    data, tb = dumps_exception(exc)
    return CallError(error=data, traceback=tb, error_type=type(exc).__qualname__, error_message=str(exc))


def _drop_unpicklable(values: list[Any], call_start: int, record: ResultRecord) -> list[Any]:
    """Replace each return value that cannot be pickled by None and an error naming its call."""
    kept = []
    for offset, value in enumerate(values):
        try:
            dumps_value(value)
        except Exception as exc:
            call_id = call_start + offset
            record.errors[call_id] = _call_error(SerializationError(
                f"the return value of call {call_id} (type {type(value).__name__}) cannot be pickled: "
                f"{type(exc).__name__}: {exc}. Return plain data instead of live resources"))
            value = None
        kept.append(value)
    return kept


def run_task(
    spec: TaskSpec | dict[str, Any] | str,
    *,
    storage: Storage | None = None,
    platform: str = "local",
    extra: dict[str, Any] | None = None,
) -> ResultRecord:
    """Run one invocation and write its result record to storage; return the record.

    ``spec`` may be a :class:`TaskSpec`, its dict or its JSON. ``storage`` defaults to the one the spec names.
    ``extra`` lands in ``record.extra`` (platform facts such as the Lambda request id or cold start).
    If the same result already exists (a repeated delivery), the calls are not run again.
    """
    global _invocations_served
    if not isinstance(spec, TaskSpec):
        spec = TaskSpec.from_json(spec) if isinstance(spec, (str, bytes)) else TaskSpec.from_dict(spec)
    with _served_lock:
        warm = _invocations_served > 0
        _invocations_served += 1
    runtime = client_versions()
    record = ResultRecord(
        job_id=spec.job_id, invocation=spec.invocation, attempt=spec.attempt, worker_id=worker_id(), warm=warm,
        worker_start=time.time(), call_start=spec.call_start, runtime_versions=runtime, platform=platform,
        extra=dict(extra or {}),
    )
    storage = CountingStorage(storage or storage_from_location(spec.storage))
    duplicate = None
    try:
        if storage.exists(spec.result_key):  # a repeated delivery: the first one's record stands
            duplicate = ResultRecord.loads(storage.get(spec.result_key))
            return duplicate
        check_versions(spec, runtime)
        fn = _load_function(storage, spec.func_key)
        payload = loads(storage.get(spec.args_key))
        calls, extra_env = payload["calls"], payload.get("env")
        with using_storage(storage), _environment(extra_env):
            _run_calls(fn, spec, calls, record)
    except BaseException as exc:  # noqa: BLE001 - reported to the client, never to the platform
        record.setup_error, record.setup_traceback = dumps_exception(exc)
        record.setup_error_type, record.setup_error_message = type(exc).__qualname__, str(exc)
    finally:
        if duplicate is None:
            record.worker_end = time.time()
            record.peak_memory_bytes = peak_memory_bytes()
            # The record's own write is counted in advance (its size is known only after pickling).
            record.extra["storage"] = {"requests": storage.requests + 1, "bytes_read": storage.bytes_read}
            storage.put(spec.result_key, record.dumps())
    return record
