"""The storage contract (lambdamap.testing.storage_contract) on the local folder and on S3 (a real S3 server),
plus what is specific to each."""

from __future__ import annotations

import json

import pytest

from lambdamap.errors import ConfigError, StorageError
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


from lambdamap.testing.storage_contract import *  # noqa: E402, F403 - the contract, on every storage above


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
