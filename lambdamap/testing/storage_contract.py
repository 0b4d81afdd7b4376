"""The storage contract: every Storage (local folder, S3, a third party's) must pass these same tests.

Import the tests into a test module and provide a ``storage`` fixture yielding a fresh
:class:`~lambdamap.storage.base.Storage`::

    from lambdamap.testing.storage_contract import *  # noqa: F403

    @pytest.fixture
    def storage(tmp_path):
        return MyStorage(...)
"""

from __future__ import annotations

import threading
import uuid

import pytest

from lambdamap.errors import ObjectNotFoundError, StorageError


@pytest.fixture
def prefix() -> str:
    return f"contract-{uuid.uuid4().hex[:8]}/"


def test_put_get_roundtrip_and_overwrite(storage, prefix):
    key = prefix + "a/b c=1.pkl"  # spaces and '=' are valid key characters
    storage.put(key, b"first")
    assert storage.get(key) == b"first"
    storage.put(key, b"second, longer")
    assert storage.get(key) == b"second, longer"
    storage.put(key, b"")
    assert storage.get(key) == b""


def test_missing_key_raises_object_not_found(storage, prefix):
    with pytest.raises(ObjectNotFoundError, match="nope") as info:
        storage.get(prefix + "nope")
    assert isinstance(info.value, KeyError) and isinstance(info.value, StorageError)
    assert not storage.exists(prefix + "nope")


def test_exists_list_and_delete(storage, prefix):
    keys = [prefix + k for k in ("x/2.pkl", "x/1.pkl", "x/sub/3.pkl", "y/4.pkl")]
    for i, key in enumerate(keys):
        storage.put(key, bytes([i]))
    assert all(storage.exists(k) for k in keys)
    assert storage.list(prefix + "x/") == sorted(keys[:3])
    assert storage.list(prefix) == sorted(keys)
    assert storage.list(prefix + "x/1") == [prefix + "x/1.pkl"]
    assert storage.list(prefix + "none/") == []
    storage.delete([keys[0], prefix + "never-existed"])  # missing keys are ignored
    assert not storage.exists(keys[0]) and storage.exists(keys[1])
    storage.delete_prefix(prefix + "x/")
    assert storage.list(prefix) == [keys[3]]
    storage.delete([])


def test_delete_many_keys(storage, prefix):
    keys = [f"{prefix}many/{i:05d}" for i in range(1100)]  # more than one S3 DeleteObjects batch (1000)
    for key in keys[:1000:50] + keys[1000:]:
        storage.put(key, b"x")
    present = keys[:1000:50] + keys[1000:]
    assert storage.list(prefix + "many/") == present
    storage.delete(keys)
    assert storage.list(prefix + "many/") == []


def test_large_object(storage, prefix):
    data = bytes(range(256)) * (4 * 12 * 1024)  # 12 MiB: several multipart parts on S3
    storage.put(prefix + "large.bin", data)
    assert storage.get(prefix + "large.bin") == data


def test_put_is_atomic_for_concurrent_readers(storage, prefix):
    key = prefix + "atomic"
    size = 3 * 2**20
    versions = [bytes([v]) * size for v in range(4)]
    storage.put(key, versions[0])
    seen, stop = [], threading.Event()

    def read():
        while not stop.is_set():
            data = storage.get(key)
            seen.append(data in versions)

    readers = [threading.Thread(target=read) for _ in range(2)]
    for t in readers:
        t.start()
    try:
        for v in versions[1:] * 2:
            storage.put(key, v)
    finally:
        stop.set()
        for t in readers:
            t.join(timeout=60)
    assert seen and all(seen), "a reader saw a partial or mixed object"
