"""Storage on a local (or shared network) filesystem, with atomic writes."""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterable
from pathlib import Path

from lambdamap.errors import ObjectNotFoundError, StorageError
from lambdamap.storage.base import Storage


class LocalStorage(Storage):
    """Objects are files under ``root``; keys map to relative paths.

    Writes go to a temporary file in the target folder and are moved into place with :func:`os.replace`, which is
    atomic on POSIX and Windows: readers never see a partial object, and a repeated write simply replaces the first.
    """

    def __init__(self, root: str | os.PathLike[str]) -> None:
        self.root = Path(root).resolve()
        try:
            self.root.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise StorageError(f"cannot create the storage folder {self.root}: {exc.strerror or exc}. Choose a "
                               "writable folder (storage_dir=...)") from exc

    @classmethod
    def from_location(cls, location: dict[str, str]) -> LocalStorage:
        return cls(location["root"])

    def location(self) -> dict[str, str]:
        return {"kind": "local", "root": str(self.root)}

    def _path(self, key: str) -> Path:
        if not key or key.startswith("/") or ".." in key.split("/"):
            raise StorageError(f"invalid storage key {key!r}: use a relative '/'-separated key without '..'")
        return self.root / key

    def put(self, key: str, data: bytes) -> None:
        path = self._path(key)
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-", suffix=".part")
        except OSError as exc:
            raise StorageError(f"cannot write {key!r} under {self.root}: {exc.strerror or exc}") from exc
        try:
            with os.fdopen(fd, "wb") as fh:
                fh.write(data)
            os.replace(tmp, path)
        except BaseException as exc:
            try:
                os.unlink(tmp)
            except FileNotFoundError:
                pass
            if isinstance(exc, OSError):  # disk full (Errno 28), read-only (30), ...
                raise StorageError(f"cannot write {key!r} ({len(data)} bytes) under {self.root}: "
                                   f"{exc.strerror or exc}") from exc
            raise

    def get(self, key: str) -> bytes:
        try:
            return self._path(key).read_bytes()
        except (FileNotFoundError, IsADirectoryError, NotADirectoryError):
            raise ObjectNotFoundError(f"no object at key {key!r} in {self.root}") from None

    def exists(self, key: str) -> bool:
        return self._path(key).is_file()

    def list(self, prefix: str) -> list[str]:
        # Walk only the deepest folder the prefix names, not the whole root.
        folder = prefix.rsplit("/", 1)[0] if "/" in prefix else ""
        base = self.root / folder if folder else self.root
        if not base.is_dir():
            return []
        keys = []
        for dirpath, _dirs, files in os.walk(base):
            rel = os.path.relpath(dirpath, self.root)
            for name in files:
                if name.startswith(".tmp-"):
                    continue
                key = name if rel == "." else f"{rel.replace(os.sep, '/')}/{name}"
                if key.startswith(prefix):
                    keys.append(key)
        return sorted(keys)

    def delete(self, keys: Iterable[str]) -> None:
        for key in keys:
            try:
                self._path(key).unlink()
            except FileNotFoundError:
                pass

    def delete_prefix(self, prefix: str) -> None:
        # A prefix that names a whole folder is removed in one go.
        if prefix.endswith("/"):
            shutil.rmtree(self._path(prefix.rstrip("/")), ignore_errors=True)
        else:
            super().delete_prefix(prefix)
