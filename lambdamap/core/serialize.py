"""Pickling with cloudpickle: functions, call arguments, results and exceptions.

Modules that are not installed (a user's own ``mymodule.py`` beside their script) are pickled *by value*, so that a
worker on another machine (Lambda, a Dask cluster) does not need the user's source tree. Installed packages are
pickled by reference as usual. ``exclude_modules`` (PyWren's option) names local modules the workers already have:
those are pickled by reference too.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import io
import pickle
import site
import sys
import sysconfig
import threading
import types
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

import cloudpickle

from lambdamap.core import tracebacks
from lambdamap.distribution import own_packages
from lambdamap.errors import ConfigError, SerializationError, TaskError

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


def check_module_names(option: str, names: Any) -> tuple[str, ...]:
    """``names`` as a tuple of dotted module names, or a :class:`ConfigError` saying what to pass instead."""
    example = "['helper', 'mypkg.models']"
    if isinstance(names, str):
        raise ConfigError(f"{option} must be a list of module names, got the string {names!r}: wrap it, [{names!r}]")
    if not isinstance(names, (list, tuple)):
        raise ConfigError(f"{option} must be a list of module names such as {example}, got {names!r}")
    for name in names:
        if isinstance(name, str) and (name.endswith(".py") or "/" in name):
            raise ConfigError(f"{option} takes module names, got {name!r}: the module's name, {Path(name).stem!r}, "
                              "not its file")
        if not isinstance(name, str) or not all(part.isidentifier() for part in name.split(".")):
            raise ConfigError(f"{option} must be a list of module names such as {example}, got {name!r}")
    return tuple(names)


def _under(name: str, names: tuple[str, ...]) -> bool:
    return any(name == n or name.startswith(n + ".") for n in names)


def _by_value_list(exclude: tuple[str, ...]) -> list[ModuleType]:
    """The modules to register for pickling by value: the local top-level modules, less ``exclude`` and its
    submodules. Names that are not loaded, or not local, change nothing (PyWren ignored them too)."""
    tops = local_packages()
    exclude = tuple(name for name in exclude if name in sys.modules)
    if not exclude:
        return tops
    chosen = []
    for top in tops:
        name = top.__name__
        if _under(name, exclude):
            continue
        if not any(n.startswith(name + ".") for n in exclude):
            chosen.append(top)
            continue
        # A local package holding an excluded module: cloudpickle's registry covers a package's whole tree, so
        # register its other modules one by one. The packages above the excluded one stay by reference: a worker
        # that can import ``pkg.sub`` has imported ``pkg`` on the way.
        chosen.extend(module for sub, module in sorted(sys.modules.items())
                      if sub.startswith(name + ".") and isinstance(module, ModuleType) and not _under(sub, exclude)
                      and not any(n.startswith(sub + ".") for n in exclude))
    return chosen


@contextlib.contextmanager
def _by_value_modules(exclude: tuple[str, ...] = ()) -> Iterator[None]:
    """Register every local module (less ``exclude``) for pickling by value while pickling, and unregister exactly
    those after."""
    with _by_value_lock:
        # One module can be loaded under two names (a spawned process's ``__main__`` is also ``__mp_main__``):
        # register each name once, and unregister exactly what was registered here, so the finally never raises.
        registered = cloudpickle.list_registry_pickle_by_value()
        added = {m.__name__: m for m in _by_value_list(exclude) if m.__name__ not in registered}
        for module in added.values():
            cloudpickle.register_pickle_by_value(module)
        try:
            yield
        finally:
            for name, module in added.items():
                if name in cloudpickle.list_registry_pickle_by_value():
                    cloudpickle.unregister_pickle_by_value(module)


def _pickle(obj: Any, exclude: tuple[str, ...] = ()) -> bytes:
    """cloudpickle ``obj`` with every local module (less ``exclude``) pickled by value, so remote workers need none
    of their files."""
    with _by_value_modules(exclude):
        return _dumps(obj)


def dumps_function(fn: Callable[..., Any], exclude_modules: tuple[str, ...] = ()) -> bytes:
    """Pickle the user's function (with its closure) or raise a :class:`SerializationError` naming it. Local modules
    in ``exclude_modules`` (and their submodules) are pickled by reference: the workers must be able to import them."""
    name = getattr(fn, "__qualname__", None) or repr(fn)
    try:
        return _pickle(fn, exclude_modules)
    except Exception as exc:
        raise SerializationError(
            f"function {name!r} cannot be pickled: {type(exc).__name__}: {exc}. "
            "Functions, their closures and globals must be picklable by cloudpickle; create objects such as locks, "
            "open files, sockets or database clients inside the function instead of capturing them"
        ) from exc


@dataclass(frozen=True)
class Frames:
    """Items pickled one by one into one buffer: ``blob[ends[i-1]:ends[i]]`` is item ``i``. Unpickling them one at a
    time means one bad item fails alone, while the whole list still costs one buffer and one pickler."""

    blob: bytes
    ends: tuple[int, ...]

    def __len__(self) -> int:
        return len(self.ends)

    def load(self, index: int) -> Any:
        start = self.ends[index - 1] if index else 0
        return pickle.loads(memoryview(self.blob)[start:self.ends[index]])


def dumps_each(items: Sequence[Any], exclude_modules: tuple[str, ...] = ()) -> tuple[Frames, dict[int, BaseException]]:
    """Pickle each item on its own (local modules by value, less ``exclude_modules``); return the frames and, per
    index, why an item could not be pickled (that item's frame is empty). A ``__reduce__`` that raises ``SystemExit``
    fails only its item."""
    failures: dict[int, BaseException] = {}
    ends: list[int] = []
    with _by_value_modules(exclude_modules), io.BytesIO() as file:
        pickler = _Pickler(file, protocol=pickle.HIGHEST_PROTOCOL)
        for index, item in enumerate(items):
            start = file.tell()
            try:
                pickler.dump(item)
            except BaseException as exc:  # noqa: BLE001 - reported per item, never raised from here
                failures[index] = exc
                file.seek(start)
                file.truncate()
                pickler = _Pickler(file, protocol=pickle.HIGHEST_PROTOCOL)  # its state is unknown after a failure
            else:
                pickler.clear_memo()  # each item stands alone
            ends.append(file.tell())
        return Frames(file.getvalue(), tuple(ends)), failures


def describe_pickle_failure(exc: BaseException) -> str:
    """Why pickling failed, in words that point at the fix."""
    if isinstance(exc, MemoryError):
        return "memory ran out while pickling it (MemoryError): return or pass less data per call"
    if isinstance(exc, RecursionError):
        return f"it is nested too deeply to pickle ({exc})"
    return f"{type(exc).__name__}: {exc}"


def dumps_calls(calls: Sequence[tuple[tuple[Any, ...], dict[str, Any]]], first_call_id: int,
                extra_env: dict[str, str] | None = None, options: dict[str, Any] | None = None,
                exclude_modules: tuple[str, ...] = ()) -> bytes:
    """Pickle one invocation's payload: each call's (args, kwargs) on its own (so one argument the worker cannot
    unpickle fails only its call), the extra environment and per-call options (e.g. ``retry_on``). Arguments follow
    ``exclude_modules`` as the function does: an instance of an excluded module's class refers to it by name.

    An argument that cannot be pickled here is bad input: raise a :class:`SerializationError` naming the call and
    the argument, before anything is sent.
    """
    frames, failures = dumps_each(calls, exclude_modules)
    if failures:
        offset, batch_exc = min(failures.items())
        args, kwargs = calls[offset]
        for label, value in [*((f"positional argument {i}", a) for i, a in enumerate(args)),
                             *((f"keyword argument {k!r}", v) for k, v in kwargs.items())]:
            _, value_failures = dumps_each([value], exclude_modules)
            if value_failures:
                exc = value_failures[0]
                raise SerializationError(
                    f"argument of call {first_call_id + offset} ({label}, type {type(value).__name__}) cannot be "
                    f"pickled: {describe_pickle_failure(exc)}. Pass plain data (numbers, strings, numpy arrays, "
                    "pandas frames, picklable objects) and create resources inside the function"
                ) from (exc if isinstance(exc, Exception) else None)
        raise SerializationError(f"the arguments of call {first_call_id + offset} cannot be pickled: "
                                 f"{describe_pickle_failure(batch_exc)}") from None
    try:
        return _pickle({"calls": frames, "env": extra_env, "options": options or {}}, exclude_modules)
    except Exception as exc:
        raise SerializationError(f"the invocation's options cannot be pickled: {describe_pickle_failure(exc)}"
                                 ) from exc


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
