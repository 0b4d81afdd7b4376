"""boto3 access for one deployment: the :class:`Target` (names, region, endpoints), :class:`Aws` (clients with
standard retries, the caller's account and partition), and the translation of botocore errors into
:class:`DeploymentError` that says what was being done.

boto3 is imported only when an :class:`Aws` is made, so describing a target needs no boto3.
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, TypeVar

from lambdamap.aws.iam import NAME_PREFIX
from lambdamap.core import keys
from lambdamap.errors import DeploymentError

T = TypeVar("T")

DEFAULT_FUNCTION = "lambdamap-runtime"
#: Resources lambdamap creates carry this tag (value "true"); it never changes or deletes one without it.
MANAGED_TAG = "lambdamap:managed"
_NAME = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
_BUCKET = re.compile(r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$")
_MISSING_BUCKET = ("404", "NoSuchBucket", "NotFound")

BOTO3_HINT = "pip install 'lambdamap[aws]'"


@dataclass(frozen=True)
class Target:
    """Where the runtime lives: names, region and endpoint overrides (S3-compatible store, Lambda emulator).

    IAM and STS endpoints follow boto3's own ``AWS_ENDPOINT_URL_IAM`` / ``AWS_ENDPOINT_URL`` variables.
    """

    function_name: str = DEFAULT_FUNCTION
    bucket: str | None = None  # default: lambdamap-{account}-{region}
    region: str | None = None
    prefix: str = keys.DEFAULT_PREFIX
    role_name: str | None = None  # default: {function_name}-role
    layer_name: str | None = None  # default: {function_name}-layer
    endpoint_url: str | None = None
    lambda_endpoint_url: str | None = None

    def __post_init__(self) -> None:
        for label, name in (("function name", self.function_name), ("role name", self.role_name),
                            ("layer name", self.layer_name)):
            if name is not None and not _NAME.match(name):
                raise DeploymentError(f"invalid {label} {name!r}: use 1-64 letters, digits, '-' or '_'")
        if self.bucket is not None and not _BUCKET.match(self.bucket):
            raise DeploymentError(f"invalid bucket name {self.bucket!r}: use 3-63 lower-case letters, digits, '.' "
                                  "or '-'")

    @property
    def role(self) -> str:
        return self.role_name or f"{self.function_name}-role"

    @property
    def layer(self) -> str:
        return self.layer_name or f"{self.function_name}-layer"


class Aws:
    """boto3 clients for one target, with botocore's standard retries, and the caller's account and partition.

    ``purpose`` names the command in the message when boto3 is missing (``"checking the deployment"``).
    """

    def __init__(self, target: Target, session: Any = None, *, purpose: str = "talking to AWS") -> None:
        try:
            import boto3
            from botocore.config import Config as BotoConfig
        except ImportError as exc:
            raise DeploymentError(f"{purpose} needs boto3 ({exc}): {BOTO3_HINT}") from None
        self.session = session or boto3.Session(region_name=target.region)
        region = target.region or self.session.region_name
        if not region:
            raise DeploymentError("no AWS region: pass --region (or set AWS_REGION, or `region` in ~/.aws/config or "
                                  "the lambdamap config file)")
        self.region: str = region
        if self.session.get_credentials() is None:
            raise DeploymentError("no AWS credentials found: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or "
                                  "AWS_PROFILE, or run `aws configure` / `aws sso login`")
        self._retry = BotoConfig(retries={"mode": "standard", "max_attempts": 10})
        self._s3_config = BotoConfig(retries={"mode": "standard", "max_attempts": 10},
                                     s3={"addressing_style": "path" if target.endpoint_url else "auto"})
        self.target = target
        self._clients: dict[str, Any] = {}
        self._identity: dict[str, str] | None = None

    def client(self, service: str) -> Any:
        if service not in self._clients:
            endpoint = {"s3": self.target.endpoint_url, "lambda": self.target.lambda_endpoint_url}.get(service)
            config = self._s3_config if service == "s3" else self._retry
            self._clients[service] = self.session.client(service, region_name=self.region, endpoint_url=endpoint,
                                                         config=config)
        return self._clients[service]

    @property
    def identity(self) -> dict[str, str]:
        if self._identity is None:
            with aws_errors("read the caller identity (sts:GetCallerIdentity)"):
                ident = self.client("sts").get_caller_identity()
            arn = ident.get("Arn") or "arn:aws:iam::000000000000:root"
            self._identity = {"account": ident["Account"], "partition": arn.split(":")[1] or "aws"}
        return self._identity

    @property
    def bucket(self) -> str:
        return self.target.bucket or f"{NAME_PREFIX}-{self.identity['account']}-{self.region}"

    def role_arn(self) -> str:
        return f"arn:{self.identity['partition']}:iam::{self.identity['account']}:role/{self.target.role}"

    def storage(self, bucket: str) -> Any:
        """lambdamap's S3 storage on ``bucket`` through this session."""
        from lambdamap.aws.s3 import S3Storage

        return S3Storage(bucket, region=self.region, endpoint_url=self.target.endpoint_url, session=self.session)


def error_code(exc: Exception) -> str:
    """The AWS error code of a botocore ClientError ("" for anything else)."""
    return str(getattr(exc, "response", {}).get("Error", {}).get("Code", ""))


@contextlib.contextmanager
def aws_errors(doing: str) -> Iterator[None]:
    """Turn botocore errors into a DeploymentError that says what was being done (and, if denied, what to grant)."""
    import botocore.exceptions

    try:
        yield
    except botocore.exceptions.ClientError as exc:
        error = exc.response.get("Error", {})
        hint = ""
        if error.get("Code") in ("AccessDenied", "AccessDeniedException", "UnauthorizedOperation"):
            hint = " (the deploying user needs the permissions in deploy/deployer-policy.json)"
        raise DeploymentError(f"could not {doing}: {error.get('Code')}: {error.get('Message')}{hint}") from exc
    except (botocore.exceptions.BotoCoreError, botocore.exceptions.WaiterError) as exc:
        raise DeploymentError(f"could not {doing}: {exc}") from exc


def unless_missing(call: Callable[[], T], doing: str, codes: tuple[str, ...] = ("ResourceNotFoundException",)
                   ) -> T | None:
    """``call()``, or None when AWS answers one of ``codes``; other errors as :func:`aws_errors` says."""
    try:
        return call()
    except Exception as exc:
        if error_code(exc) not in codes:
            with aws_errors(doing):
                raise
        return None


def get_function(lam: Any, name: str) -> dict[str, Any] | None:
    """The function's description (configuration and tags), or None if it does not exist."""
    found: dict[str, Any] | None = unless_missing(lambda: lam.get_function(FunctionName=name),
                                                  f"read the function {name}")
    return found


def bucket_exists(aws: Aws, bucket: str) -> bool:
    """Whether ``bucket`` exists (HeadBucket); access errors are raised, not taken for absence."""
    found = unless_missing(lambda: aws.client("s3").head_bucket(Bucket=bucket), f"check the bucket {bucket}",
                           codes=_MISSING_BUCKET)
    return found is not None


def is_managed(tags: dict[str, str]) -> bool:
    return tags.get(MANAGED_TAG) == "true"
