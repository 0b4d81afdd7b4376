"""Pickling with cloudpickle: functions, call arguments, results and exceptions.

Modules that are not installed (a user's own ``mymodule.py`` beside their script) are pickled *by value*, so that a
worker on another machine (Lambda, a Dask cluster) does not need the user's source tree. Installed packages are
pickled by reference as usual.
"""

from __future__ import annotations

import functools
import hashlib
import io
import pickle
import site
import sys
import sysconfig
import threading
import types
from collections.abc import Callable, Sequence
from pathlib import Path
from types import ModuleType
from typing import Any

import cloudpickle

from lambdamap.core import tracebacks
from lambdamap.distribution import own_packages
from lambdamap.errors import SerializationError, TaskError

# Our own packages are always present on workers (the runtime layer ships them).
_ALWAYS_BY_REFERENCE = set(own_packages())
_by_value_lock = threading.Lock()


def digest(data: bytes) -> str:
    """Content hash used for blob keys."""
    return hashlib.sha256(data).hexdigest()


def _installed_roots() -> list[Path]:
    paths = sysconfig.get_paths()
    roots = {paths[name] for name in ("stdlib", "platstdlib", "purelib", "platlib") if name in paths}
    roots.update(site.getsitepackages())
    roots.add(site.getusersitepackages())
    return [Path(p).resolve() for p in roots]


_INSTALLED_ROOTS = _installed_roots()
_local_cache: tuple[int, list[ModuleType]] = (-1, [])


@functools.cache
def _is_install_folder(entry: str) -> bool:
    """Whether a sys.path folder is where packages get installed (site-packages, a Lambda layer's /opt/python, a
    ``pip --target`` folder): it holds distribution metadata, which a user's project folder does not."""
    try:
        return any(p.suffix in (".dist-info", ".egg-info") for p in Path(entry).iterdir())
    except OSError:
        return False


def _is_local(module: ModuleType) -> bool:
    name = module.__name__
    if name == "__main__" or name in _ALWAYS_BY_REFERENCE or name in sys.builtin_module_names:
        return False  # cloudpickle already pickles __main__ by value
    file = getattr(module, "__file__", None)
    if not file:
        return False
    path = Path(file).resolve()
    if any(path.is_relative_to(root) for root in _INSTALLED_ROOTS):
        return False
    # Judge by the deepest sys.path folder holding the module: a project root with an editable install's
    # *.egg-info must not make the user's test or script folders below it look installed.
    holders = [entry for entry in sys.path if entry and path.is_relative_to(_resolved(entry))]
    if not holders:
        return True
    return not _is_install_folder(max(holders, key=lambda e: len(_resolved(e).parts)))


@functools.cache
def _resolved(entry: str) -> Path:
    return Path(entry).resolve()


def local_packages() -> list[ModuleType]:
    """Loaded top-level modules that are the user's own files, not installed packages (recomputed when
    ``sys.modules`` grows)."""
    global _local_cache
    count = len(sys.modules)
    if _local_cache[0] != count:
        tops = {name.split(".", 1)[0] for name in list(sys.modules)}
        _local_cache = (count, [m for name in sorted(tops) if (m := sys.modules.get(name)) is not None
                                and _is_local(m)])
    return _local_cache[1]


class _Pickler(cloudpickle.Pickler):
    """cloudpickle's pickler, noting where each function's code lives so that remote tracebacks can name it."""

    def reducer_override(self, obj: Any) -> Any:
        if isinstance(obj, types.FunctionType):
            tracebacks.remember(obj)
        return super().reducer_override(obj)


def _dumps(obj: Any) -> bytes:
    with io.BytesIO() as file:
        _Pickler(file, protocol=pickle.HIGHEST_PROTOCOL).dump(obj)
        return file.getvalue()


def _pickle(obj: Any) -> bytes:
    """cloudpickle ``obj`` with every local module pickled by value, so remote workers need none of its files."""
    with _by_value_lock:
        # One module can be loaded under two names (a spawned process's ``__main__`` is also ``__mp_main__``):
        # register each name once, and unregister exactly what was registered here, so the finally never raises.
        registered = cloudpickle.list_registry_pickle_by_value()
        added = {m.__name__: m for m in local_packages() if m.__name__ not in registered}
        for module in added.values():
            cloudpickle.register_pickle_by_value(module)
        try:
            return _dumps(obj)
        finally:
            for name, module in added.items():
                if name in cloudpickle.list_registry_pickle_by_value():
                    cloudpickle.unregister_pickle_by_value(module)


def dumps_function(fn: Callable[..., Any]) -> bytes:
    """Pickle the user's function (with its closure) or raise a :class:`SerializationError` naming it."""
    name = getattr(fn, "__qualname__", None) or repr(fn)
    try:
        return _pickle(fn)
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
        return _pickle({"calls": list(calls), "env": extra_env})
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
    """Pickle a value (shared objects, results), local modules by value."""
    return _pickle(value)


def loads(data: bytes) -> Any:
    return pickle.loads(data)


def dumps_exception(exc: BaseException) -> tuple[bytes, tracebacks.RemoteTrace]:
    """Pickle an exception for transport, with its traceback as plain data (rendered by the client).

    Exceptions that cannot be pickled (or not unpickled again, e.g. custom ``__init__`` signatures) are replaced by a
    :class:`TaskError` carrying the original type name and message.
    """
    tb = tracebacks.capture(exc)
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
