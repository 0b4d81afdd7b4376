"""The Storage interface and the registry that rebuilds a storage from its location on a worker."""

from __future__ import annotations

import importlib
from abc import ABC, abstractmethod
from collections.abc import Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor

from lambdamap.errors import ObjectNotFoundError, StorageError


class Storage(ABC):
    """A flat key/value object store (keys are ``/``-separated strings, values bytes).

    Implementations must make :meth:`put` atomic (a reader sees the old object, the new one, or none; never part of
    one) and safe to repeat, because workers may write the same result twice.
    """

    #: How many requests are worth keeping in flight at once: a remote store hides its round trips behind many
    #: (S3: dozens), a local folder gains nothing from threads. The client's bulk puts and gets follow it.
    concurrency: int = 1

    @abstractmethod
    def put(self, key: str, data: bytes) -> None:
        """Store ``data`` under ``key``, replacing any object there."""

    @abstractmethod
    def get(self, key: str) -> bytes:
        """Return the object under ``key``; raise :class:`ObjectNotFoundError` if there is none."""

    @abstractmethod
    def list(self, prefix: str) -> list[str]:
        """All keys that start with ``prefix``, sorted."""

    @abstractmethod
    def delete(self, keys: Iterable[str]) -> None:
        """Delete the given keys; missing keys are ignored."""

    def exists(self, key: str) -> bool:
        """Whether ``key`` holds an object."""
        try:
            self.get(key)
        except ObjectNotFoundError:
            return False
        return True

    def delete_prefix(self, prefix: str) -> None:
        """Delete every key under ``prefix``."""
        self.delete(self.list(prefix))

    @abstractmethod
    def location(self) -> dict[str, str]:
        """A small JSON-able description from which a worker rebuilds this storage (no credentials)."""


# kind -> (module, class, install hint). Imported lazily so `import lambdamap` needs no boto3.
_STORAGE_KINDS: dict[str, tuple[str, str, str | None]] = {
    "local": ("lambdamap.storage.local", "LocalStorage", None),
    "s3": ("lambdamap.aws.s3", "S3Storage", "pip install 'lambdamap[aws]'"),
}

_worker_storages: dict[tuple[tuple[str, str], ...], Storage] = {}


def register_storage(kind: str, module: str, cls: str, install_hint: str | None = None) -> None:
    """Register a storage kind so that workers can rebuild it from :meth:`Storage.location`."""
    _STORAGE_KINDS[kind] = (module, cls, install_hint)


def storage_from_location(location: dict[str, str]) -> Storage:
    """Rebuild (and cache, per process) the storage a task spec names."""
    cache_key = tuple(sorted(location.items()))
    cached = _worker_storages.get(cache_key)
    if cached is not None:
        return cached
    kind = location.get("kind")
    if kind not in _STORAGE_KINDS:
        raise StorageError(f"unknown storage kind {kind!r}; known kinds: {sorted(_STORAGE_KINDS)}")
    module_name, cls_name, hint = _STORAGE_KINDS[kind]
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise StorageError(f"storage kind {kind!r} needs an optional dependency ({exc}); {hint}") from exc
    cls = getattr(module, cls_name)
    storage = cls.from_location(location)
    _worker_storages[cache_key] = storage
    return storage


class CountingStorage(Storage):
    """Wraps a storage and counts requests and bytes (for job summaries and the load benchmark)."""

    def __init__(self, inner: Storage) -> None:
        self.inner = inner
        self.requests = 0
        self.bytes_read = 0
        self.bytes_written = 0

    def put(self, key: str, data: bytes) -> None:
        self.requests += 1
        self.bytes_written += len(data)
        self.inner.put(key, data)

    def get(self, key: str) -> bytes:
        self.requests += 1
        data = self.inner.get(key)
        self.bytes_read += len(data)
        return data

    def exists(self, key: str) -> bool:
        self.requests += 1
        return self.inner.exists(key)

    def list(self, prefix: str) -> list[str]:
        self.requests += 1
        return self.inner.list(prefix)

    def delete(self, keys: Iterable[str]) -> None:
        self.requests += 1
        self.inner.delete(keys)

    def delete_prefix(self, prefix: str) -> None:
        self.requests += 1
        self.inner.delete_prefix(prefix)

    def location(self) -> dict[str, str]:
        return self.inner.location()


def put_all(storage: Storage, items: Sequence[tuple[str, bytes]]) -> None:
    """Put every ``(key, data)``, up to ``storage.concurrency`` at once. If any put fails, the others still end
    (none is left half-sent), then the first error is raised."""
    if storage.concurrency <= 1 or len(items) <= 1:
        for key, data in items:
            storage.put(key, data)
        return
    with ThreadPoolExecutor(max_workers=min(storage.concurrency, len(items)),
                            thread_name_prefix="lambdamap-put") as pool:
        futures = [pool.submit(storage.put, key, data) for key, data in items]
    for fut in futures:
        fut.result()


def get_all(storage: Storage, keys: Sequence[str]) -> list[bytes | BaseException]:
    """Get every key, up to ``storage.concurrency`` at once; a key that fails gives its exception in place."""
    def get(key: str) -> bytes | BaseException:
        try:
            return storage.get(key)
        except Exception as exc:  # noqa: BLE001 - returned in place, judged by the caller
            return exc

    if storage.concurrency <= 1 or len(keys) <= 1:
        return [get(key) for key in keys]
    workers = min(storage.concurrency, len(keys))
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="lambdamap-get") as pool:
        return list(pool.map(get, keys))
