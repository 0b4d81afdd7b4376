"""The generic worker runtime: :func:`run_task` is the one entry point every backend calls.

It loads the function and the invocation's calls from storage, runs them, and *always* writes a result record (values,
or exceptions with formatted tracebacks, plus timings and memory) in a ``finally``. It never raises the user's
exceptions to the platform, so a platform that retries failed invocations (Lambda's asynchronous invoke) does not
re-run a call whose function raised. Platform handlers (the local pool, Lambda, Dask) are a few lines over it.
"""

from __future__ import annotations

import concurrent.futures as cf
import contextlib
import os
import platform as _platform
import random
import reprlib
import resource
import signal
import socket
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterator
from typing import Any

from lambdamap.core import keys, threads
from lambdamap.core.output import OUTPUT_LIMIT, Capture
from lambdamap.core.parallel_calls import available_cpus, run_in_processes
from lambdamap.core.serialize import Frames, describe_pickle_failure, dumps_each, dumps_exception, loads
from lambdamap.core.shared import using_storage
from lambdamap.core.task import CallError, ResultRecord, TaskSpec, client_versions
from lambdamap.errors import SerializationError, TaskTimeoutError, VersionMismatchError
from lambdamap.storage.base import CountingStorage, Storage, storage_from_location

_invocations_served = 0
_served_lock = threading.Lock()
_functions: OrderedDict[str, Any] = OrderedDict()  # func_key -> function; warm workers skip the download
_FUNCTION_CACHE = 32
CANCEL_CHECK_SECONDS = 1.0  # how often a running invocation asks storage whether its job was cancelled
_REPR = reprlib.Repr()
_REPR.maxstring, _REPR.maxother, _REPR.maxlist = 40, 40, 4


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
        with threads.limited(threads.requested(extra_env)):  # the variables alone miss libraries already loaded
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


def _run_calls(fn: Any, spec: TaskSpec, calls: Frames, options: dict[str, Any], record: ResultRecord,
               cancelled: Callable[[], bool] | None = None, on_call: Callable[[int], None] | None = None) -> None:
    """Run the invocation's calls in order, filling the record's columns. Each call's arguments are unpickled, and
    its value pickled, on their own: one bad value fails only its own call."""
    per_call = None if spec.timeout is None else spec.timeout / max(1, spec.call_count)
    retry_on: tuple[type[BaseException], ...] = tuple(options.get("retry_on") or ())
    retries, backoff = int(options.get("retries") or 0), float(options.get("backoff") or 0.0)
    capture = Capture(int(options.get("output_limit") or OUTPUT_LIMIT)) if options.get("capture_output", True) \
        else None
    values: list[Any] = []
    with capture.installed() if capture is not None else contextlib.nullcontext():
        _run_each(fn, spec, calls, record, values, per_call, retry_on, retries, backoff, capture, cancelled,
                  on_call)
    frames, failures = dumps_each(values)
    for offset, failure in failures.items():
        call_id = spec.call_start + offset
        record.errors[call_id] = _call_error(SerializationError(
            f"the return value of call {call_id} (type {type(values[offset]).__name__}) cannot be pickled: "
            f"{describe_pickle_failure(failure)}. Return plain data (numbers, arrays, frames) instead of live "
            "resources"), None)
    record.values = frames


def _run_each(fn: Any, spec: TaskSpec, calls: Frames, record: ResultRecord, values: list[Any],
              per_call: float | None, retry_on: tuple[type[BaseException], ...], retries: int, backoff: float,
              capture: Capture | None, cancelled: Callable[[], bool] | None,
              on_call: Callable[[int], None] | None = None) -> None:
    times = record.times
    for offset, call_id in enumerate(spec.call_ids[:len(calls)]):
        if on_call is not None:
            on_call(call_id)
        if offset and cancelled is not None and cancelled():  # the client cancelled the job: run no more calls
            for later in spec.call_ids[offset:len(calls)]:
                now = time.time()
                times.extend((now, now))
                record.errors[later] = _call_error(cf.CancelledError(
                    f"call {later} was cancelled by the client before it started"), None)
                values.append(None)
            return
        times.append(time.time())
        try:
            args, kwargs = calls.load(offset)
        except BaseException as exc:  # noqa: BLE001 - e.g. a class missing here, or a __reduce__ that raises
            times.append(time.time())
            record.errors[call_id] = _call_error(SerializationError(
                f"the arguments of call {call_id} cannot be unpickled on the worker: {type(exc).__name__}: {exc}. "
                "Install the packages they need in the worker runtime, or pass plain data"), None)
            values.append(None)
            continue
        attempt = 0
        while True:
            try:
                if per_call is None:
                    value = fn(*args, **kwargs)
                else:
                    with _soft_timeout(per_call, call_id):
                        value = fn(*args, **kwargs)
            except BaseException as exc:  # noqa: BLE001 - SystemExit/KeyboardInterrupt in user code are results
                if retry_on and isinstance(exc, retry_on) and attempt < retries:
                    attempt += 1
                    time.sleep(backoff * 2 ** (attempt - 1) * random.uniform(0.5, 1.5))  # exponential, jittered
                    continue
                times.append(time.time())
                record.errors[call_id] = _call_error(exc, args, kwargs)
                values.append(None)
                break
            times.append(time.time())
            values.append(value)
            break
        if capture is not None and (text := capture.take()):
            record.outputs[call_id] = text
        if attempt:
            record.extra.setdefault("call_attempts", {})[call_id] = attempt + 1


def _short_repr(args: tuple[Any, ...], kwargs: dict[str, Any]) -> str:
    """A short, safe description of a call's input for error notes on the client."""
    try:
        parts = [_REPR.repr(a) for a in args] + [f"{k}={_REPR.repr(v)}" for k, v in kwargs.items()]
    except BaseException:  # noqa: BLE001 - a __repr__ that fails must not hide the call's own error
        return "<input whose repr failed>"
    text = ", ".join(parts)
    return text if len(text) <= 120 else text[:117] + "..."


def _call_error(exc: BaseException, args: tuple[Any, ...] | None = None,
                kwargs: dict[str, Any] | None = None) -> CallError:
    data, tb = dumps_exception(exc)
    return CallError(error=data, traceback=tb, error_type=type(exc).__qualname__, error_message=str(exc),
                     input_repr=None if args is None else _short_repr(args, kwargs or {}))


def _cancel_check(storage: Storage, spec: TaskSpec) -> Callable[[], bool]:
    """Whether the client has cancelled the job, asked of storage at most once a second (one cheap request)."""
    key, state = keys.cancel_key_of(spec.result_key), {"next": time.monotonic() + CANCEL_CHECK_SECONDS,
                                                       "cancelled": False}

    def cancelled() -> bool:
        now = time.monotonic()
        if not state["cancelled"] and now >= state["next"]:
            state["next"] = now + CANCEL_CHECK_SECONDS
            try:
                state["cancelled"] = storage.exists(key)
            except Exception:  # noqa: BLE001 - cannot tell: keep running
                pass
        return bool(state["cancelled"])

    return cancelled


def _default_cores(platform: str) -> int:
    """Lambda gives one vCPU per 1,769 MB (up to six), whatever /proc shows: use them all. Elsewhere one process,
    unless the map asks for ``cores``."""
    if platform != "lambda":
        return 1
    memory = int(os.environ.get("AWS_LAMBDA_FUNCTION_MEMORY_SIZE") or 0)
    return max(1, min(available_cpus(), memory // 1769))


def run_task(
    spec: TaskSpec | dict[str, Any] | str,
    *,
    storage: Storage | None = None,
    platform: str = "local",
    extra: dict[str, Any] | None = None,
    on_call: Callable[[int], None] | None = None,
) -> ResultRecord:
    """Run one invocation and write its result record to storage; return the record.

    ``spec`` may be a :class:`TaskSpec`, its dict or its JSON. ``storage`` defaults to the one the spec names.
    ``extra`` lands in ``record.extra`` (platform facts such as the Lambda request id or cold start). ``on_call``
    is told each call's id as it starts (the local pool uses it to name a call that hangs past its timeout).
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
    if spec.memory_mb is not None:  # what the map asked for: job summaries price the invocation at it
        record.extra["memory_mb"] = spec.memory_mb
    storage = CountingStorage(storage or storage_from_location(spec.storage))
    duplicate = None
    try:
        if storage.exists(spec.result_key):  # a repeated delivery: the first one's record stands
            duplicate = ResultRecord.loads(storage.get(spec.result_key))
            return duplicate
        check_versions(spec, runtime)
        fn = _load_function(storage, spec.func_key)
        payload = loads(spec.load_args(storage))
        calls, extra_env, options = payload["calls"], payload.get("env"), payload.get("options") or {}
        cores = options.get("cores") or _default_cores(platform)
        with using_storage(storage), _environment(extra_env):
            if cores > 1 and len(calls) > 1 and hasattr(os, "fork"):
                run_in_processes(lambda sub_spec, sub_calls, sub_record: _run_calls(
                    fn, sub_spec, sub_calls, options, sub_record), spec, calls, record, min(cores, len(calls)),
                    threads.requested(extra_env) or 1)
            else:
                _run_calls(fn, spec, calls, options, record, _cancel_check(storage, spec), on_call)
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
