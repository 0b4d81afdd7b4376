"""The storage contract: every Storage (local filesystem, S3 on a real S3 server) behaves the same."""

from __future__ import annotations

import json
import threading
import uuid

import pytest

from lambdamap.errors import ConfigError, ObjectNotFoundError, StorageError
from lambdamap.storage.base import Storage, storage_from_location
from lambdamap.storage.local import LocalStorage

pytestmark = pytest.mark.timeout(120)


@pytest.fixture(params=["local", "s3"])
def storage(request, tmp_path) -> Storage:
    if request.param == "local":
        return LocalStorage(tmp_path / "store")
    from lambdamap.aws.s3 import S3Storage

    stack = request.getfixturevalue("local_aws")
    # A small multipart threshold so the large-object test really goes through multipart upload.
    return S3Storage(stack.bucket, region=stack.region, endpoint_url=stack.s3.endpoint_url, session=stack.session(),
                     multipart_threshold=5 * 2**20, multipart_chunksize=5 * 2**20)


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


def test_location_rebuilds_the_same_storage_without_credentials(storage, prefix, request, monkeypatch):
    storage.put(prefix + "loc", b"here")
    if "local_aws" in request.fixturenames:  # a worker has credentials of its own, from its environment
        stack = request.getfixturevalue("local_aws")
        monkeypatch.setenv("AWS_ACCESS_KEY_ID", stack.s3.access_key)
        monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", stack.s3.secret_key)
    location = storage.location()
    assert json.loads(json.dumps(location)) == location
    assert all(isinstance(v, str) for v in location.values())
    rebuilt = type(storage).from_location(location)
    assert rebuilt.get(prefix + "loc") == b"here"
    assert storage_from_location(location).get(prefix + "loc") == b"here"


# -- S3 specifics ------------------------------------------------------------------------------------------------
@pytest.fixture
def s3(local_aws):
    from lambdamap.aws.s3 import S3Storage

    return S3Storage(local_aws.bucket, region=local_aws.region, endpoint_url=local_aws.s3.endpoint_url,
                     session=local_aws.session(), multipart_threshold=5 * 2**20, multipart_chunksize=5 * 2**20)


def test_s3_location_has_no_credentials(s3, local_aws):
    location = s3.location()
    assert location == {"kind": "s3", "bucket": local_aws.bucket, "region": local_aws.region,
                        "endpoint_url": local_aws.s3.endpoint_url}
    text = json.dumps(location)
    assert local_aws.s3.secret_key not in text


def test_s3_every_put_is_encrypted_and_large_ones_are_multipart(s3, prefix):
    s3.put(prefix + "small", b"abc")
    s3.put(prefix + "big", b"z" * (11 * 2**20))
    small = s3.client.head_object(Bucket=s3.bucket, Key=prefix + "small")
    big = s3.client.head_object(Bucket=s3.bucket, Key=prefix + "big")
    assert small["ServerSideEncryption"] == "AES256" and big["ServerSideEncryption"] == "AES256"
    assert "-" not in small["ETag"]
    assert big["ETag"].strip('"').endswith("-3"), big["ETag"]  # 11 MiB in 5 MiB parts


def test_s3_missing_bucket_and_bad_credentials_are_clear_errors(local_aws):
    import boto3

    from lambdamap.aws.s3 import S3Storage

    missing = S3Storage("no-such-bucket-lm", region=local_aws.region, endpoint_url=local_aws.s3.endpoint_url,
                        session=local_aws.session())
    with pytest.raises(StorageError, match="no-such-bucket-lm.*does not exist"):
        missing.get("k")
    assert "does not exist" in missing.check_bucket()
    wrong = boto3.Session(aws_access_key_id=local_aws.s3.access_key, aws_secret_access_key="wrong-secret",
                          region_name=local_aws.region)
    bad = S3Storage(local_aws.bucket, region=local_aws.region, endpoint_url=local_aws.s3.endpoint_url,
                    session=wrong, max_attempts=1)
    with pytest.raises(StorageError, match=f"s3://{local_aws.bucket}"):
        bad.put("k", b"x")


def test_s3_unreachable_endpoint_is_a_storage_error():
    import boto3
    from support.aws_servers import free_ports

    from lambdamap.aws.s3 import S3Storage

    (port,) = free_ports(1)
    session = boto3.Session(aws_access_key_id="a", aws_secret_access_key="b", region_name="us-east-1")
    store = S3Storage("bucket-x", endpoint_url=f"http://127.0.0.1:{port}", session=session, max_attempts=1)
    with pytest.raises(StorageError, match="cannot read 'k' in s3://bucket-x"):
        store.get("k")


def test_s3_rejects_bad_names_and_credentials_in_the_endpoint():
    from lambdamap.aws.s3 import S3Storage

    with pytest.raises(ConfigError, match="bucket"):
        S3Storage("")
    with pytest.raises(ConfigError, match="must not contain credentials"):
        S3Storage("b", endpoint_url="http://user:secret@127.0.0.1:9000")
    with pytest.raises(ConfigError, match="http"):
        S3Storage("b", endpoint_url="127.0.0.1:9000")
