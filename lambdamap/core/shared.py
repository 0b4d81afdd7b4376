"""Objects stored once and shared by many calls: :meth:`Executor.put` returns an :class:`ObjectRef`.

A ref pickles as its storage key only, so task specs and call arguments stay small however big the object is. On a
worker, :meth:`ObjectRef.get` loads the object from the invocation's storage once per worker process and keeps it in a
small LRU cache, so warm workers do not load the same data set again for every call.
"""

from __future__ import annotations

import contextlib
import contextvars
import threading
from collections import OrderedDict
from collections.abc import Iterator
from typing import Any, Generic, TypeVar

from lambdamap.errors import LambdaMapError
from lambdamap.storage.base import Storage

T = TypeVar("T")

_current_storage: contextvars.ContextVar[Storage | None] = contextvars.ContextVar("lambdamap_storage", default=None)
_CACHE_ENTRIES = 16
_cache: OrderedDict[str, Any] = OrderedDict()
_cache_lock = threading.Lock()


class ObjectRef(Generic[T]):
    """A reference to an object in storage, created by :meth:`lambdamap.Executor.put`."""

    __slots__ = ("key", "size")

    def __init__(self, key: str, size: int) -> None:
        self.key = key
        self.size = size

    def __reduce__(self) -> tuple[Any, ...]:
        return (ObjectRef, (self.key, self.size))

    def __repr__(self) -> str:
        return f"ObjectRef({self.key!r}, size={self.size})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, ObjectRef) and other.key == self.key

    def __hash__(self) -> int:
        return hash(self.key)

    def get(self) -> T:
        """The referenced object (cached per process)."""
        with _cache_lock:
            if self.key in _cache:
                _cache.move_to_end(self.key)
                return _cache[self.key]
        storage = _current_storage.get()
        if storage is None:
            raise LambdaMapError(
                f"{self!r}.get() needs a storage: call it inside a function run by a lambdamap executor, "
                "or on the client after Executor.put()"
            )
        from lambdamap.core.serialize import loads

        value = loads(storage.get(self.key))
        remember(self.key, value)
        return value


def remember(key: str, value: Any) -> None:
    """Put ``value`` in the per-process cache (the client does this in ``put`` so ``get`` needs no download)."""
    with _cache_lock:
        _cache[key] = value
        _cache.move_to_end(key)
        while len(_cache) > _CACHE_ENTRIES:
            _cache.popitem(last=False)


@contextlib.contextmanager
def using_storage(storage: Storage) -> Iterator[None]:
    """Make ``storage`` the one :meth:`ObjectRef.get` reads from, for the duration of the block."""
    token = _current_storage.set(storage)
    try:
        yield
    finally:
        _current_storage.reset(token)
