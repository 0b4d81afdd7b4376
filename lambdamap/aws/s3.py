"""Storage on Amazon S3 or an S3-compatible store, through boto3.

* Credentials come from boto3's standard chain (environment, shared files, SSO, instance or function role); they are
  never part of :meth:`S3Storage.location`, so a worker uses its own.
* botocore's ``adaptive`` retry mode retries throttling (503 SlowDown) and 5xx with backoff and client-side rate
  limiting.
* A PUT of a small body (up to :data:`EXPECT_CONTINUE_ABOVE`) is one round trip: botocore would send
  ``Expect: 100-continue`` with every PUT body and wait for the server's ``100 Continue`` before sending it, a second
  round trip that is worth it only for large bodies (a refused request then does not upload them in vain).
* Every object is written with server-side encryption (``ServerSideEncryption="AES256"``). Objects above
  ``multipart_threshold`` go through boto3's transfer manager (parallel multipart upload). An S3 PUT, single or
  multipart, replaces the object atomically: readers see the old object, the new one, or none.
"""

from __future__ import annotations

import io
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from typing import Any
from urllib.parse import urlsplit

from lambdamap.errors import ConfigError, ObjectNotFoundError, StorageError
from lambdamap.storage.base import Storage

try:
    import boto3
    import boto3.exceptions
    import botocore.exceptions
    import botocore.utils
    from boto3.s3.transfer import TransferConfig
    from botocore.config import Config as BotoConfig
except ImportError as exc:  # pragma: no cover - exercised only without the extra
    raise ImportError(f"S3 storage needs boto3 ({exc}): pip install 'lambdamap[aws]'") from exc

SSE = "AES256"
_MISSING_KEY_CODES = {"NoSuchKey", "404", "NotFound"}
_DELETE_BATCH = 1000  # DeleteObjects takes at most 1000 keys
#: Bodies larger than this (bytes) are sent after the server's ``100 Continue``; smaller ones at once.
EXPECT_CONTINUE_ABOVE = 2**20


def _send_small_bodies_at_once(model: Any, params: dict[str, Any], **kwargs: Any) -> None:
    """botocore ``before-call.s3`` handler, run after botocore's own ``add_expect_header``: drop the
    ``Expect: 100-continue`` it adds to every file-like body (and a bytes body is turned into one) when the body is
    small, so the PUT costs one round trip instead of two."""
    headers = params.get("headers")
    if not headers or "Expect" not in headers:
        return
    size = botocore.utils.determine_content_length(params.get("body"))
    if size is not None and size <= EXPECT_CONTINUE_ABOVE:
        del headers["Expect"]


def _check_endpoint(endpoint_url: str | None) -> str | None:
    if endpoint_url is None:
        return None
    parts = urlsplit(endpoint_url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ConfigError(f"endpoint_url must be an http(s) URL such as 'http://127.0.0.1:8333', got {endpoint_url!r}")
    if parts.username or parts.password:
        # The URL travels in every task spec: it must never carry credentials.
        raise ConfigError("endpoint_url must not contain credentials (user:password@); use the standard AWS "
                          "credential chain (environment variables, ~/.aws/credentials or a role) instead")
    return endpoint_url


class S3Storage(Storage):
    """Objects in ``bucket`` (keys as given). ``region`` and ``endpoint_url`` (an S3-compatible store such as
    SeaweedFS or MinIO) travel to workers in :meth:`location`; credentials do not.

    ``session`` is a :class:`boto3.Session` for the client side (default: a new session with the standard
    credential chain). ``multipart_threshold`` / ``multipart_chunksize`` (bytes) and ``max_concurrency`` tune the
    transfer manager for large objects; ``max_attempts`` bounds botocore's retries per request.
    """

    def __init__(self, bucket: str, *, region: str | None = None, endpoint_url: str | None = None,
                 session: boto3.Session | None = None, multipart_threshold: int = 16 * 2**20,
                 multipart_chunksize: int = 16 * 2**20, max_concurrency: int = 8, max_attempts: int = 10,
                 max_pool_connections: int = 50) -> None:
        if not isinstance(bucket, str) or not bucket:
            raise ConfigError(f"bucket must be a non-empty bucket name, got {bucket!r}")
        self.bucket = bucket
        self.endpoint_url = _check_endpoint(endpoint_url)
        session = session or boto3.Session()
        self.region = region or session.region_name
        config = BotoConfig(
            retries={"mode": "adaptive", "max_attempts": max_attempts},
            max_pool_connections=max_pool_connections,
            # S3-compatible servers on an IP or a private host name do not resolve bucket.host names.
            s3={"addressing_style": "path" if self.endpoint_url else "auto"},
        )
        self.client = session.client("s3", region_name=self.region, endpoint_url=self.endpoint_url, config=config)
        # Last, so that it runs after botocore's add_expect_header (registered on the same event name).
        self.client.meta.events.register_last("before-call.s3", _send_small_bodies_at_once)
        # The client's bulk puts and gets (arguments, result records) keep this many requests in flight: each costs
        # a round trip, so 1,000 of them take ~1,000 / concurrency round trips, not 1,000.
        self.concurrency = max(1, min(64, max_pool_connections))
        self.transfer_config = TransferConfig(multipart_threshold=multipart_threshold,
                                              multipart_chunksize=multipart_chunksize,
                                              max_concurrency=max_concurrency)

    @classmethod
    def from_location(cls, location: dict[str, str]) -> S3Storage:
        """Rebuild on a worker from :meth:`location` (credentials from the worker's own environment or role)."""
        return cls(location["bucket"], region=location.get("region"), endpoint_url=location.get("endpoint_url"))

    def location(self) -> dict[str, str]:
        location = {"kind": "s3", "bucket": self.bucket}
        if self.region:
            location["region"] = self.region
        if self.endpoint_url:
            location["endpoint_url"] = self.endpoint_url
        return location

    def __repr__(self) -> str:
        where = f" at {self.endpoint_url}" if self.endpoint_url else ""
        return f"S3Storage(s3://{self.bucket}{where}, region={self.region!r})"

    # -- the Storage interface ---------------------------------------------------------------------------------
    def put(self, key: str, data: bytes) -> None:
        with self._errors("write", key):
            if len(data) < self.transfer_config.multipart_threshold:
                self.client.put_object(Bucket=self.bucket, Key=key, Body=data, ServerSideEncryption=SSE)
            else:
                self.client.upload_fileobj(io.BytesIO(data), self.bucket, key, ExtraArgs={"ServerSideEncryption": SSE},
                                           Config=self.transfer_config)

    def get(self, key: str) -> bytes:
        with self._errors("read", key):
            response = self.client.get_object(Bucket=self.bucket, Key=key)
            return response["Body"].read()

    def exists(self, key: str) -> bool:
        try:
            with self._errors("check", key):
                self.client.head_object(Bucket=self.bucket, Key=key)
        except ObjectNotFoundError:
            return False
        return True

    def list(self, prefix: str) -> list[str]:
        keys: list[str] = []
        with self._errors("list", prefix):
            for page in self.client.get_paginator("list_objects_v2").paginate(Bucket=self.bucket, Prefix=prefix):
                keys.extend(obj["Key"] for obj in page.get("Contents", ()))
        return sorted(keys)

    def delete(self, keys: Iterable[str]) -> None:
        batch = list(keys)
        for start in range(0, len(batch), _DELETE_BATCH):
            chunk = batch[start:start + _DELETE_BATCH]
            with self._errors("delete", chunk[0]):
                response = self.client.delete_objects(
                    Bucket=self.bucket, Delete={"Objects": [{"Key": k} for k in chunk], "Quiet": True})
            errors = [e for e in response.get("Errors", ()) if e.get("Code") not in _MISSING_KEY_CODES]
            if errors:
                first = errors[0]
                raise StorageError(f"could not delete {len(errors)} object(s) from s3://{self.bucket}, e.g. "
                                   f"{first.get('Key')!r}: {first.get('Code')}: {first.get('Message')}")

    # -- checks ------------------------------------------------------------------------------------------------
    def check_bucket(self) -> str | None:
        """None if the bucket is reachable with the current credentials, else a sentence saying what is wrong
        and how to fix it (used by the Lambda backend's preflight)."""
        try:
            self.client.head_bucket(Bucket=self.bucket)
        except botocore.exceptions.ClientError as exc:
            code = str(exc.response.get("Error", {}).get("Code"))
            if code in ("404", "NoSuchBucket", "NotFound"):
                return (f"the bucket {self.bucket!r} does not exist{self._where()}: create it (`aws s3 mb "
                        f"s3://{self.bucket}`) or pass an existing one (bucket=... or LAMBDAMAP_BUCKET)")
            if code in ("403", "AccessDenied", "Forbidden"):
                return (f"access to the bucket {self.bucket!r} is denied{self._where()}: the credentials need "
                        "s3:ListBucket, s3:GetObject, s3:PutObject and s3:DeleteObject on it")
            return f"cannot reach the bucket {self.bucket!r}{self._where()}: {_describe(exc)}"
        except botocore.exceptions.BotoCoreError as exc:
            return f"cannot reach the bucket {self.bucket!r}{self._where()}: {exc}"
        return None

    # -- internals ---------------------------------------------------------------------------------------------
    def _where(self) -> str:
        return f" at {self.endpoint_url}" if self.endpoint_url else (f" in region {self.region}" if self.region
                                                                     else "")

    @contextmanager
    def _errors(self, action: str, key: str) -> Iterator[None]:
        """Translate boto errors into lambdamap's, with what went wrong and how to fix it."""
        try:
            yield
        except botocore.exceptions.ClientError as exc:
            code = str(exc.response.get("Error", {}).get("Code"))
            if code in _MISSING_KEY_CODES:
                raise ObjectNotFoundError(f"no object at key {key!r} in s3://{self.bucket}") from None
            if code == "NoSuchBucket":
                raise StorageError(f"cannot {action} {key!r}: the bucket {self.bucket!r} does not exist"
                                   f"{self._where()}") from exc
            if code in ("403", "AccessDenied", "Forbidden"):
                raise StorageError(f"cannot {action} {key!r} in s3://{self.bucket}: access denied; the credentials "
                                   "need s3:GetObject, s3:PutObject, s3:ListBucket and s3:DeleteObject on the "
                                   "bucket") from exc
            raise StorageError(f"cannot {action} {key!r} in s3://{self.bucket}: {_describe(exc)}") from exc
        except botocore.exceptions.NoCredentialsError as exc:
            raise StorageError(f"cannot {action} {key!r} in s3://{self.bucket}: no AWS credentials found; set "
                               "AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, AWS_PROFILE or run on a role") from exc
        except (botocore.exceptions.BotoCoreError, boto3.exceptions.S3UploadFailedError) as exc:
            # The transfer manager wraps the ClientError of a failed multipart upload in S3UploadFailedError.
            raise StorageError(f"cannot {action} {key!r} in s3://{self.bucket}{self._where()}: {exc}") from exc


def _describe(exc: botocore.exceptions.ClientError) -> str:
    error: dict[str, Any] = exc.response.get("Error", {})
    return f"{error.get('Code', 'error')}: {error.get('Message') or exc}"
