"""Pickling with cloudpickle: functions, call arguments, results and exceptions.

Modules that are not installed (a user's own ``mymodule.py`` beside their script) are pickled *by value*, so that a
worker on another machine (Lambda, a Dask cluster) does not need the user's source tree. Installed packages are
pickled by reference as usual.
"""

from __future__ import annotations

import hashlib
import pickle
import sys
import sysconfig
import threading
import traceback
from collections.abc import Callable, Sequence
from pathlib import Path
from types import ModuleType
from typing import Any

import cloudpickle

from lambdamap.errors import SerializationError, TaskError

# Our own packages are always present on workers (the runtime layer ships them).
_ALWAYS_BY_REFERENCE = {"lambdamap", "dml"}
_by_value_lock = threading.Lock()


def digest(data: bytes) -> str:
    """Content hash used for blob keys."""
    return hashlib.sha256(data).hexdigest()


def _installed_roots() -> list[Path]:
    paths = sysconfig.get_paths()
    roots = {paths[name] for name in ("stdlib", "platstdlib", "purelib", "platlib") if name in paths}
    return [Path(p).resolve() for p in roots]


_INSTALLED_ROOTS = _installed_roots()


def _local_package(obj: Any) -> ModuleType | None:
    """The top-level package of ``obj``'s module if it is a user's local (not installed) module."""
    module_name = getattr(obj, "__module__", None)
    if not module_name or module_name == "__main__":
        return None  # cloudpickle already pickles __main__ by value
    top = module_name.split(".", 1)[0]
    if top in _ALWAYS_BY_REFERENCE or top in sys.builtin_module_names:
        return None
    module = sys.modules.get(top)
    file = getattr(module, "__file__", None)
    if module is None or file is None:
        return None
    path = Path(file).resolve()
    if any(path.is_relative_to(root) for root in _INSTALLED_ROOTS):
        return None
    return module


def dumps_function(fn: Callable[..., Any]) -> bytes:
    """Pickle the user's function (with its closure) or raise a :class:`SerializationError` naming it."""
    name = getattr(fn, "__qualname__", None) or repr(fn)
    package = _local_package(fn) or _local_package(getattr(fn, "func", None))  # functools.partial too
    try:
        if package is None:
            return cloudpickle.dumps(fn, protocol=pickle.HIGHEST_PROTOCOL)
        with _by_value_lock:
            already = package.__name__ in cloudpickle.list_registry_pickle_by_value()
            if not already:
                cloudpickle.register_pickle_by_value(package)
            try:
                return cloudpickle.dumps(fn, protocol=pickle.HIGHEST_PROTOCOL)
            finally:
                if not already:
                    cloudpickle.unregister_pickle_by_value(package)
    except Exception as exc:
        raise SerializationError(
            f"function {name!r} cannot be pickled: {type(exc).__name__}: {exc}. "
            "Functions, their closures and globals must be picklable by cloudpickle; create objects such as locks, "
            "open files, sockets or database clients inside the function instead of capturing them"
        ) from exc


def dumps_calls(calls: Sequence[tuple[tuple[Any, ...], dict[str, Any]]], first_call_id: int,
                extra_env: dict[str, str] | None = None) -> bytes:
    """Pickle one invocation's payload: the (args, kwargs) of its calls and the extra environment.

    On failure, name the first call and argument that cannot be pickled.
    """
    try:
        return cloudpickle.dumps({"calls": list(calls), "env": extra_env}, protocol=pickle.HIGHEST_PROTOCOL)
    except Exception as batch_exc:
        for offset, (args, kwargs) in enumerate(calls):
            for label, value in [*((f"positional argument {i}", a) for i, a in enumerate(args)),
                                 *((f"keyword argument {k!r}", v) for k, v in kwargs.items())]:
                try:
                    cloudpickle.dumps(value)
                except Exception as exc:
                    raise SerializationError(
                        f"argument of call {first_call_id + offset} ({label}, type {type(value).__name__}) cannot be "
                        f"pickled: {type(exc).__name__}: {exc}. Pass plain data (numbers, strings, numpy arrays, "
                        "pandas frames, picklable objects) and create resources inside the function"
                    ) from exc
        raise SerializationError(f"the call arguments cannot be pickled: {batch_exc}") from batch_exc


def dumps_value(value: Any) -> bytes:
    return cloudpickle.dumps(value, protocol=pickle.HIGHEST_PROTOCOL)


def loads(data: bytes) -> Any:
    return pickle.loads(data)


def dumps_exception(exc: BaseException) -> tuple[bytes, str]:
    """Pickle an exception for transport, with its formatted traceback.

    Exceptions that cannot be pickled (or not unpickled again, e.g. custom ``__init__`` signatures) are replaced by a
    :class:`TaskError` carrying the original type name and message.
    """
    tb = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))
    cause, context, trace = exc.__cause__, exc.__context__, exc.__traceback__
    try:
        # Tracebacks and chained exceptions do not pickle; the formatted traceback carries them.
        exc.__cause__ = exc.__context__ = None
        exc.__traceback__ = None
        data = cloudpickle.dumps(exc, protocol=pickle.HIGHEST_PROTOCOL)
        pickle.loads(data)  # some exceptions pickle but cannot be rebuilt
    except Exception:
        data = cloudpickle.dumps(TaskError(f"{type(exc).__name__}: {exc}", remote_type=type(exc).__qualname__))
    finally:
        exc.__cause__, exc.__context__, exc.__traceback__ = cause, context, trace
    return data, tb
