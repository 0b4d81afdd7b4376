"""Deploy the generic lambdamap runtime to AWS with boto3: bucket, role, layer and function, idempotently.

::

    deploy(options) ─▶ identity (account, partition) ─▶ bucket: create or adopt; block public access, encryption,
        lifecycle rule for job objects ─▶ role: trust Lambda; AWSLambdaBasicExecutionRole + S3 on {prefix}/* only
        ─▶ layer: reuse the version with the same CodeSha256, else publish (through S3 when over 50 MB)
        ─▶ function: create or update code and configuration; wait until Active / Successful; versions as tags;
        async invocation config: Lambda never retries (lambdamap does), events kept at most 6 hours
        ─▶ client config file (backend = "lambda", function_name, bucket, region) for default_executor()

The IAM policy documents (the function's execution policy, its trust policy and the policy a deploying user needs)
are built here and nowhere else: ``deploy/template.yaml`` and ``deploy/deployer-policy.json`` are tested against them.
Resources this module creates carry the tag ``lambdamap:managed = true``; it refuses to take over a function or role
of the same name that lacks it.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import re
import time
import zipfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from lambdamap.aws.layer import (
    MAX_DIRECT_UPLOAD_BYTES,
    LayerBuild,
    check_target,
    code_sha256,
    inspect_layer,
)
from lambdamap.config import default_config_path, read_config_file
from lambdamap.core import keys
from lambdamap.core.task import client_versions
from lambdamap.errors import DeploymentError

HANDLER = "lambdamap.aws.handler.lambda_handler"
DEFAULT_FUNCTION = "lambdamap-runtime"
DEFAULT_MEMORY_MB = 2048
DEFAULT_TIMEOUT_S = 900
DEFAULT_EXPIRE_DAYS = 3
#: Resources lambdamap creates are named with this prefix, which the deployer policy is scoped to.
NAME_PREFIX = "lambdamap"
MANAGED_TAG = "lambdamap:managed"
INLINE_POLICY_NAME = "lambdamap-s3-jobs"
LIFECYCLE_RULE_ID = "lambdamap-expire-jobs"
BASIC_EXECUTION_POLICY = "iam::aws:policy/service-role/AWSLambdaBasicExecutionRole"
#: How long to wait for a function to become Active / finish an update, and for a new role to be assumable.
WAIT_SECONDS = 300
ROLE_PROPAGATION_SECONDS = 120
#: Lambda's own retries of a failed asynchronous invocation (AWS default 2). lambdamap re-runs lost invocations
#: itself, as ``retries=`` allows; Lambda's retries would re-run a call that crashed its worker behind its back.
ASYNC_RETRY_ATTEMPTS = 0
#: How long Lambda keeps an event it has not run yet (seconds): 6 hours, the longest AWS allows. Lambda queues events
#: while the function's concurrency is used up, and a map with more invocations than that relies on the queue;
#: events older than this are dropped. It is well inside the shortest object expiry (1 day), so an event that runs
#: late still finds its arguments.
MAX_EVENT_AGE_S = 21600
_NAME = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
_BUCKET = re.compile(r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$")


# -- policy documents (the one place they are defined) ----------------------------------------------------------------
def execution_policy(bucket: str, prefix: str = keys.DEFAULT_PREFIX, partition: str = "aws") -> dict[str, Any]:
    """The function's S3 permissions: objects under ``{prefix}/`` and listing of that prefix, nothing else.

    ``s3:ListBucket`` uses ``StringLikeIfExists``: a ListObjects request is allowed only with a prefix under
    ``{prefix}/``, while S3's implicit ListBucket check behind a HeadObject/GetObject of a *missing* key (which has
    no ``s3:prefix``) passes, so the worker gets 404 (not 403) when it checks whether a result already exists.
    """
    return {
        "Version": "2012-10-17",
        "Statement": [
            {"Sid": "LambdamapObjects", "Effect": "Allow",
             "Action": ["s3:GetObject", "s3:PutObject", "s3:DeleteObject"],
             "Resource": f"arn:{partition}:s3:::{bucket}/{prefix}/*"},
            {"Sid": "LambdamapList", "Effect": "Allow", "Action": "s3:ListBucket",
             "Resource": f"arn:{partition}:s3:::{bucket}",
             "Condition": {"StringLikeIfExists": {"s3:prefix": f"{prefix}/*"}}},
        ],
    }


def trust_policy() -> dict[str, Any]:
    """Only the Lambda service may assume the function's role."""
    return {"Version": "2012-10-17", "Statement": [
        {"Effect": "Allow", "Principal": {"Service": "lambda.amazonaws.com"}, "Action": "sts:AssumeRole"}]}


def deployer_policy(name_prefix: str = NAME_PREFIX) -> dict[str, Any]:
    """What a user needs to run ``lambdamap deploy``, ``status``, ``cleanup`` and ``destroy`` for resources named
    ``{name_prefix}-*`` (function, layer, role and bucket). Saved as ``deploy/deployer-policy.json``."""
    fn = f"arn:aws:lambda:*:*:function:{name_prefix}-*"
    layer = f"arn:aws:lambda:*:*:layer:{name_prefix}-*"
    role = f"arn:aws:iam::*:role/{name_prefix}-*"
    bucket = f"arn:aws:s3:::{name_prefix}-*"
    return {
        "Version": "2012-10-17",
        "Statement": [
            {"Sid": "Bucket", "Effect": "Allow", "Resource": bucket, "Action": sorted([
                "s3:CreateBucket", "s3:DeleteBucket", "s3:GetBucketLocation", "s3:ListBucket",
                "s3:PutBucketPublicAccessBlock", "s3:PutEncryptionConfiguration", "s3:GetLifecycleConfiguration",
                "s3:PutLifecycleConfiguration"])},
            {"Sid": "BucketObjects", "Effect": "Allow", "Resource": f"{bucket}/*",
             "Action": ["s3:DeleteObject", "s3:GetObject", "s3:PutObject"]},
            {"Sid": "Function", "Effect": "Allow", "Resource": fn, "Action": sorted([
                "lambda:CreateFunction", "lambda:DeleteFunction", "lambda:GetFunction", "lambda:TagResource",
                "lambda:UpdateFunctionCode", "lambda:UpdateFunctionConfiguration",
                "lambda:GetFunctionEventInvokeConfig", "lambda:PutFunctionEventInvokeConfig"])},
            {"Sid": "Layer", "Effect": "Allow", "Resource": [layer, f"{layer}:*"],
             "Action": ["lambda:DeleteLayerVersion", "lambda:GetLayerVersion", "lambda:PublishLayerVersion"]},
            {"Sid": "ListLayerVersions", "Effect": "Allow", "Resource": "*", "Action": "lambda:ListLayerVersions"},
            {"Sid": "Role", "Effect": "Allow", "Resource": role, "Action": sorted([
                "iam:CreateRole", "iam:DeleteRole", "iam:DeleteRolePolicy", "iam:GetRole",
                "iam:ListAttachedRolePolicies", "iam:ListRolePolicies", "iam:PutRolePolicy", "iam:TagRole",
                "iam:UpdateAssumeRolePolicy"])},
            # Only the one managed policy the runtime needs can be attached (or detached again).
            {"Sid": "RoleManagedPolicy", "Effect": "Allow", "Resource": role,
             "Action": ["iam:AttachRolePolicy", "iam:DetachRolePolicy"],
             "Condition": {"ArnEquals": {"iam:PolicyARN": f"arn:aws:{BASIC_EXECUTION_POLICY}"}}},
            {"Sid": "PassRoleToLambda", "Effect": "Allow", "Resource": role, "Action": "iam:PassRole",
             "Condition": {"StringEquals": {"iam:PassedToService": "lambda.amazonaws.com"}}},
        ],
    }


# -- options and results ----------------------------------------------------------------------------------------------
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


@dataclass(frozen=True)
class FunctionSettings:
    memory_mb: int = DEFAULT_MEMORY_MB
    timeout_s: int = DEFAULT_TIMEOUT_S
    expire_days: int = DEFAULT_EXPIRE_DAYS

    def __post_init__(self) -> None:
        if not 128 <= self.memory_mb <= 10240:
            raise DeploymentError(f"memory must be 128 to 10240 MB, got {self.memory_mb}")
        if not 1 <= self.timeout_s <= 900:
            raise DeploymentError(f"timeout must be 1 to 900 seconds, got {self.timeout_s}")
        if not 1 <= self.expire_days <= 3650:
            raise DeploymentError(f"job objects must expire after 1 to 3650 days, got {self.expire_days}")


@dataclass
class DeployResult:
    function_arn: str
    layer_version_arn: str
    role_arn: str
    bucket: str
    region: str
    versions: dict[str, str]
    layer_reused: bool
    layer_via_s3: bool
    config_path: Path | None
    steps: list[str] = field(default_factory=list)

    def summary(self) -> str:
        lines = [f"function {self.function_arn}", f"layer    {self.layer_version_arn}",
                 f"role     {self.role_arn}", f"bucket   s3://{self.bucket} ({self.region})",
                 "runtime  " + ", ".join(f"{k} {v}" for k, v in self.versions.items())]
        if self.config_path:
            lines.append(f"wrote {self.config_path}: lambdamap.default_executor() now runs on this function")
        return "\n".join(lines)


# -- AWS access -------------------------------------------------------------------------------------------------------
class Aws:
    """boto3 clients for one target, with botocore's standard retries, and the caller's account and partition."""

    def __init__(self, target: Target, session: Any = None) -> None:
        try:
            import boto3
            from botocore.config import Config as BotoConfig
        except ImportError as exc:
            raise DeploymentError(f"deploying needs boto3 ({exc}): pip install 'lambdamap[aws]'") from None
        self.session = session or boto3.Session(region_name=target.region)
        self.region = target.region or self.session.region_name
        if not self.region:
            raise DeploymentError("no AWS region: pass --region (or set AWS_REGION, or `region` in ~/.aws/config or "
                                  "the lambdamap config file)")
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
            with _aws_errors("read the caller identity (sts:GetCallerIdentity)"):
                ident = self.client("sts").get_caller_identity()
            arn = ident.get("Arn") or "arn:aws:iam::000000000000:root"
            self._identity = {"account": ident["Account"], "partition": arn.split(":")[1] or "aws"}
        return self._identity

    @property
    def bucket(self) -> str:
        return self.target.bucket or f"{NAME_PREFIX}-{self.identity['account']}-{self.region}"

    def role_arn(self) -> str:
        return f"arn:{self.identity['partition']}:iam::{self.identity['account']}:role/{self.target.role}"


def _code(exc: Exception) -> str:
    return str(getattr(exc, "response", {}).get("Error", {}).get("Code", ""))


@contextlib.contextmanager
def _aws_errors(doing: str) -> Iterator[None]:
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

def _unless_missing(call: Any, doing: str) -> Any:
    """``call()``, or None when AWS answers ResourceNotFoundException; other errors as :func:`_aws_errors` says."""
    try:
        return call()
    except Exception as exc:
        if _code(exc) != "ResourceNotFoundException":
            with _aws_errors(doing):
                raise exc
        return None


def _get_function(lam: Any, name: str) -> dict[str, Any] | None:
    """The function's description, or None if it does not exist."""
    return _unless_missing(lambda: lam.get_function(FunctionName=name), f"read the function {name}")



# -- steps ------------------------------------------------------------------------------------------------------------
def ensure_bucket(aws: Aws, expire_days: int = DEFAULT_EXPIRE_DAYS) -> str:
    """Create the bucket if needed; then (again, idempotently) block public access, encrypt by default and expire
    job objects after ``expire_days``. Other lifecycle rules on an existing bucket are kept."""
    s3, bucket, region = aws.client("s3"), aws.bucket, aws.region
    created = False
    try:
        s3.head_bucket(Bucket=bucket)
    except Exception as exc:
        if _code(exc) in ("404", "NoSuchBucket", "NotFound"):
            with _aws_errors(f"create the bucket {bucket}"):
                extra = {} if region == "us-east-1" else {"CreateBucketConfiguration": {"LocationConstraint": region}}
                s3.create_bucket(Bucket=bucket, **extra)
            created = True
        elif _code(exc) in ("403", "AccessDenied", "Forbidden"):
            raise DeploymentError(f"the bucket {bucket} exists but this account cannot use it (it may belong to "
                                  "another account: bucket names are global); pass another --bucket") from exc
        else:
            with _aws_errors(f"check the bucket {bucket}"):
                raise exc
    if not created:
        with _aws_errors(f"read the region of the bucket {bucket}"):
            location = s3.get_bucket_location(Bucket=bucket).get("LocationConstraint") or "us-east-1"
        location = {"EU": "eu-west-1"}.get(location, location)
        if location != region:
            raise DeploymentError(f"the bucket {bucket} is in {location}, but the function would be in {region}: "
                                  f"deploy with --region {location} or choose another --bucket")
    with _aws_errors(f"configure the bucket {bucket}"):
        s3.put_public_access_block(Bucket=bucket, PublicAccessBlockConfiguration={
            "BlockPublicAcls": True, "IgnorePublicAcls": True, "BlockPublicPolicy": True,
            "RestrictPublicBuckets": True})
        s3.put_bucket_encryption(Bucket=bucket, ServerSideEncryptionConfiguration={"Rules": [
            {"ApplyServerSideEncryptionByDefault": {"SSEAlgorithm": "AES256"}}]})
        try:
            rules = s3.get_bucket_lifecycle_configuration(Bucket=bucket).get("Rules", [])
        except Exception as exc:
            if _code(exc) != "NoSuchLifecycleConfiguration":
                raise
            rules = []
        rules = [r for r in rules if r.get("ID") != LIFECYCLE_RULE_ID] + [
            lifecycle_rule(aws.target.prefix, expire_days)]
        s3.put_bucket_lifecycle_configuration(Bucket=bucket, LifecycleConfiguration={"Rules": rules})
    return bucket


def lifecycle_rule(prefix: str = keys.DEFAULT_PREFIX, expire_days: int = DEFAULT_EXPIRE_DAYS) -> dict[str, Any]:
    """Expire job objects (arguments and results) after ``expire_days``; abort stale multipart uploads."""
    return {"ID": LIFECYCLE_RULE_ID, "Status": "Enabled", "Filter": {"Prefix": keys.jobs_prefix(prefix)},
            "Expiration": {"Days": expire_days}, "AbortIncompleteMultipartUpload": {"DaysAfterInitiation": 1}}


def ensure_role(aws: Aws) -> tuple[str, bool]:
    """Create or update the execution role; returns its ARN and whether it was just created."""
    iam, name = aws.client("iam"), aws.target.role
    partition = aws.identity["partition"]
    created = False
    try:
        role = iam.get_role(RoleName=name)["Role"]
    except Exception as exc:
        if _code(exc) != "NoSuchEntity":
            with _aws_errors(f"read the role {name}"):
                raise exc
        with _aws_errors(f"create the role {name}"):
            role = iam.create_role(RoleName=name, AssumeRolePolicyDocument=json.dumps(trust_policy()),
                                   Description="lambdamap runtime: basic execution and its S3 job prefix",
                                   Tags=[{"Key": MANAGED_TAG, "Value": "true"}])["Role"]
        created = True
    else:
        if {t["Key"]: t["Value"] for t in role.get("Tags", [])}.get(MANAGED_TAG) != "true":
            raise DeploymentError(f"a role named {name} exists and was not created by lambdamap; pass another "
                                  "--role-name (lambdamap never changes roles it does not manage)")
        if _document(role.get("AssumeRolePolicyDocument")) != trust_policy():
            with _aws_errors(f"update the trust policy of {name}"):
                iam.update_assume_role_policy(RoleName=name, PolicyDocument=json.dumps(trust_policy()))
    with _aws_errors(f"set the permissions of the role {name}"):
        iam.attach_role_policy(RoleName=name, PolicyArn=f"arn:{partition}:{BASIC_EXECUTION_POLICY}")
        iam.put_role_policy(RoleName=name, PolicyName=INLINE_POLICY_NAME, PolicyDocument=json.dumps(
            execution_policy(aws.bucket, aws.target.prefix, partition)))
    return role["Arn"], created


def _document(doc: Any) -> Any:
    """IAM returns policy documents URL-encoded JSON strings or already decoded."""
    if isinstance(doc, str):
        from urllib.parse import unquote

        return json.loads(unquote(doc))
    return doc


def ensure_layer(aws: Aws, layer: LayerBuild) -> tuple[str, bool, bool]:
    """The ARN of a layer version with exactly this zip: an existing one (same CodeSha256) or a new one.

    Returns (layer version ARN, reused, uploaded through S3).
    """
    lam, name = aws.client("lambda"), aws.target.layer
    with _aws_errors(f"list the versions of the layer {name}"):
        versions = lam.list_layer_versions(LayerName=name).get("LayerVersions", [])
        for version in versions[:10]:  # newest first
            content = lam.get_layer_version(LayerName=name, VersionNumber=version["Version"]).get("Content", {})
            if content.get("CodeSha256") == layer.code_sha256:
                return version["LayerVersionArn"], True, False
    data = layer.path.read_bytes()
    via_s3 = len(data) > MAX_DIRECT_UPLOAD_BYTES
    description = (f"lambdamap {layer.versions.get('lambdamap')} runtime, python{layer.python} {layer.arch}, "
                   f"cloudpickle {layer.versions.get('cloudpickle')}")[:256]
    staged_key = f"{aws.target.prefix}/runtime/{name}-{layer.code_sha256[:16].replace('/', '_')}.zip"
    try:
        if via_s3:
            with _aws_errors(f"upload the layer zip to s3://{aws.bucket}/{staged_key}"):
                aws.client("s3").upload_file(str(layer.path), aws.bucket, staged_key,
                                             ExtraArgs={"ServerSideEncryption": "AES256"})
            content = {"S3Bucket": aws.bucket, "S3Key": staged_key}
        else:
            content = {"ZipFile": data}
        with _aws_errors(f"publish the layer {name}"):
            published = lam.publish_layer_version(
                LayerName=name, Description=description, Content=content,
                CompatibleRuntimes=[f"python{layer.python}"], CompatibleArchitectures=[layer.arch])
    finally:
        if via_s3:  # Lambda keeps its own copy of a published layer
            with _aws_errors(f"delete the staged layer zip s3://{aws.bucket}/{staged_key}"):
                aws.client("s3").delete_object(Bucket=aws.bucket, Key=staged_key)
    return published["LayerVersionArn"], False, via_s3


def function_code_zip() -> bytes:
    """The function's own (tiny, deterministic) code zip: the handler lives in the layer."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        info = zipfile.ZipInfo("README.txt", date_time=(1980, 1, 1, 0, 0, 0))
        info.external_attr = 0o100644 << 16
        zf.writestr(info, f"The lambdamap runtime is in this function's layer; the handler is {HANDLER}.\n")
    return buf.getvalue()


def runtime_tags(layer: LayerBuild, bucket: str, prefix: str) -> dict[str, str]:
    """The function's tags: what runs in it (checked by ``lambdamap status``) and where its data lives."""
    return {MANAGED_TAG: "true", "lambdamap:version": layer.versions.get("lambdamap", "unknown"),
            "lambdamap:python": layer.python, "lambdamap:cloudpickle": layer.versions.get("cloudpickle", "unknown"),
            "lambdamap:arch": layer.arch, "lambdamap:bucket": bucket, "lambdamap:prefix": prefix}


def ensure_function(aws: Aws, layer: LayerBuild, layer_arn: str, role_arn: str, settings: FunctionSettings,
                    role_is_new: bool) -> str:
    """Create the function, or bring an existing one to this code, layer and configuration; wait until ready."""
    lam, name = aws.client("lambda"), aws.target.function_name
    tags = runtime_tags(layer, aws.bucket, aws.target.prefix)
    code = function_code_zip()
    config = {"Runtime": f"python{layer.python}", "Role": role_arn, "Handler": HANDLER, "Layers": [layer_arn],
              "MemorySize": settings.memory_mb, "Timeout": settings.timeout_s,
              "Description": f"lambdamap {layer.versions.get('lambdamap')} generic runtime"}
    existing = _get_function(lam, name)
    if existing is None:
        # A role created seconds ago may not be assumable by Lambda yet (IAM is eventually consistent).
        deadline = time.monotonic() + (ROLE_PROPAGATION_SECONDS if role_is_new else 0)
        delay = 2.0
        while True:
            try:
                created = lam.create_function(FunctionName=name, Code={"ZipFile": code}, Architectures=[layer.arch],
                                              Tags=tags, Publish=False, **config)
                break
            except Exception as exc:
                if _code(exc) == "InvalidParameterValueException" and "assume" in str(exc) \
                        and time.monotonic() < deadline:
                    time.sleep(delay)
                    delay = min(delay * 1.5, 10.0)
                    continue
                with _aws_errors(f"create the function {name}"):
                    raise exc
        arn = created["FunctionArn"]
        _wait(lam, "function_active_v2", name)
        ensure_async_config(aws)
        return arn
    current = existing["Configuration"]
    if (existing.get("Tags") or {}).get(MANAGED_TAG) != "true":
        raise DeploymentError(f"a Lambda function named {name} exists and was not deployed by lambdamap; pass "
                              "another --function-name (lambdamap never changes functions it does not manage)")
    arn = current["FunctionArn"]
    _wait(lam, "function_updated_v2", name)  # an update still in progress would refuse ours
    current_layers = [entry["Arn"] for entry in current.get("Layers", [])]
    if any(current.get(k) != v for k, v in config.items() if k != "Layers") or current_layers != [layer_arn]:
        with _aws_errors(f"update the configuration of the function {name}"):
            lam.update_function_configuration(FunctionName=name, **config)
        _wait(lam, "function_updated_v2", name)
    if current.get("Architectures", ["x86_64"]) != [layer.arch] or current.get("CodeSha256") != code_sha256(code):
        with _aws_errors(f"update the code of the function {name}"):
            lam.update_function_code(FunctionName=name, ZipFile=code, Architectures=[layer.arch])
        _wait(lam, "function_updated_v2", name)
    with _aws_errors(f"tag the function {name}"):
        lam.tag_resource(Resource=arn, Tags=tags)
    ensure_async_config(aws)
    return arn


def async_config() -> dict[str, int]:
    """The function's asynchronous invocation settings (also in ``deploy/template.yaml``)."""
    return {"MaximumRetryAttempts": ASYNC_RETRY_ATTEMPTS, "MaximumEventAgeInSeconds": MAX_EVENT_AGE_S}


def read_async_config(aws: Aws) -> dict[str, Any] | None:
    """The function's event invoke config, or None if it has none (Lambda then retries failed events twice)."""
    name = aws.target.function_name
    return _unless_missing(lambda: aws.client("lambda").get_function_event_invoke_config(FunctionName=name),
                           f"read the asynchronous invocation config of the function {name}")


def ensure_async_config(aws: Aws) -> bool:
    """Set :func:`async_config` on the function unless it is already so; returns whether it changed anything.

    PutFunctionEventInvokeConfig replaces the whole config, so destinations someone added are passed on unchanged.
    """
    name, wanted = aws.target.function_name, async_config()
    current = read_async_config(aws) or {}
    if all(current.get(k) == v for k, v in wanted.items()):
        return False
    destinations = {k: v for k, v in (current.get("DestinationConfig") or {}).items() if v}
    extra = {"DestinationConfig": destinations} if destinations else {}
    with _aws_errors(f"set the asynchronous invocation config of the function {name}"):
        aws.client("lambda").put_function_event_invoke_config(FunctionName=name, **wanted, **extra)
    return True


def _wait(lam: Any, waiter: str, name: str) -> None:
    """A boto3 waiter with a bound; on failure, say what state the function is in."""
    import botocore.exceptions

    try:
        lam.get_waiter(waiter).wait(FunctionName=name, WaiterConfig={"Delay": 2, "MaxAttempts": WAIT_SECONDS // 2})
    except botocore.exceptions.WaiterError as exc:
        last = getattr(exc, "last_response", None) or {}
        conf = last.get("Configuration", {})
        raise DeploymentError(
            f"the function {name} did not become ready within {WAIT_SECONDS} s: state {conf.get('State')!r} "
            f"({conf.get('StateReason') or ''}), last update {conf.get('LastUpdateStatus')!r} "
            f"({conf.get('LastUpdateStatusReason') or ''})") from exc


# -- client config ----------------------------------------------------------------------------------------------------
def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    return json.dumps(str(value))  # a JSON string is a valid TOML basic string


def write_client_config(values: dict[str, Any], path: str | os.PathLike[str] | None = None,
                        remove: tuple[str, ...] = ()) -> Path:
    """Merge ``values`` into the lambdamap config file (``$LAMBDAMAP_CONFIG`` or ~/.config/lambdamap/config.toml),
    dropping the keys in ``remove``; other keys the user set stay. Written atomically."""
    target = Path(path) if path is not None else default_config_path()
    merged = {k: v for k, v in read_config_file(target).items() if k not in remove}
    merged.update({k: v for k, v in values.items() if v is not None})
    text = "# lambdamap client configuration (written by `lambdamap deploy`; edit freely)\n" + "".join(
        f"{k} = {_toml_value(v)}\n" for k, v in merged.items())
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(target.name + ".tmp")
    tmp.write_text(text)
    os.replace(tmp, target)
    return target


# -- commands ---------------------------------------------------------------------------------------------------------
def deploy(target: Target, layer: LayerBuild | str | os.PathLike[str], settings: FunctionSettings | None = None, *,
           write_config: bool = True, config_path: str | os.PathLike[str] | None = None, session: Any = None,
           log: Callable[[str], None] | None = None) -> DeployResult:
    """Create or update everything the Lambda backend needs, then write the client config (``write_config``).

    ``layer`` is a :class:`LayerBuild` or the path of a layer zip from :func:`lambdamap.aws.layer.build_layer`.
    Running it again with the same inputs changes nothing (the layer version is reused when its zip is identical).
    """
    settings = settings or FunctionSettings()
    layer = layer if isinstance(layer, LayerBuild) else inspect_layer(layer)
    check_target(layer.python, layer.arch)
    say = log or (lambda _msg: None)
    aws = Aws(target, session)
    steps: list[str] = []

    def step(msg: str) -> None:
        steps.append(msg)
        say(msg)

    bucket = ensure_bucket(aws, settings.expire_days)
    step(f"bucket s3://{bucket}: private, encrypted, job objects expire after {settings.expire_days} day(s)")
    role_arn, role_is_new = ensure_role(aws)
    step(f"role {aws.target.role}: {'created' if role_is_new else 'up to date'}")
    layer_arn, reused, via_s3 = ensure_layer(aws, layer)
    step(f"layer {layer_arn}: " + ("unchanged" if reused else "published" + (" through S3" if via_s3 else "")))
    function_arn = ensure_function(aws, layer, layer_arn, role_arn, settings, role_is_new)
    step(f"function {target.function_name}: active; failed asynchronous invocations are not retried by Lambda "
         f"(lambdamap retries them), events are kept up to {MAX_EVENT_AGE_S // 3600} h")
    path = None
    if write_config:
        values = {"backend": "lambda", "function_name": target.function_name, "bucket": bucket, "region": aws.region,
                  "prefix": target.prefix if target.prefix != keys.DEFAULT_PREFIX else None,
                  "endpoint_url": target.endpoint_url, "lambda_endpoint_url": target.lambda_endpoint_url}
        stale = tuple(k for k in ("endpoint_url", "lambda_endpoint_url", "prefix") if values[k] is None)
        path = write_client_config(values, config_path, remove=stale)
    return DeployResult(function_arn=function_arn, layer_version_arn=layer_arn, role_arn=role_arn, bucket=bucket,
                        region=aws.region, versions=layer.runtime_versions, layer_reused=reused, layer_via_s3=via_s3,
                        config_path=path, steps=steps)


@dataclass
class DeploymentStatus:
    """What ``lambdamap status`` reports."""

    function_name: str
    region: str
    function: dict[str, Any] | None
    runtime_versions: dict[str, str]
    client_versions: dict[str, str]
    bucket: str | None
    bucket_exists: bool | None
    problems: list[str]
    notes: list[str] = field(default_factory=list)
    #: The function's event invoke config (None: it has none, or the function does not exist).
    async_config: dict[str, Any] | None = None

    @property
    def ok(self) -> bool:
        return not self.problems

    def render(self) -> str:
        lines = [f"function {self.function_name} ({self.region}): "
                 + ("not deployed" if self.function is None else
                    f"{self.function.get('State')}, last update {self.function.get('LastUpdateStatus')}")]
        if self.function is not None:
            f = self.function
            lines += [f"  runtime {f.get('Runtime')} {','.join(f.get('Architectures', []))}, "
                      f"{f.get('MemorySize')} MB, timeout {f.get('Timeout')} s",
                      *(f"  layer {entry['Arn']} ({entry.get('CodeSize', 0) / 1e6:.1f} MB zipped)"
                        for entry in f.get("Layers", []))]
            a = self.async_config or {}
            lines.append(f"  async invocations: retried by Lambda {a.get('MaximumRetryAttempts', 2)} time(s), "
                         f"events kept up to {a.get('MaximumEventAgeInSeconds', MAX_EVENT_AGE_S)} s"
                         + ("" if self.async_config else " (AWS defaults: no event invoke config)"))
        names = ("python", "cloudpickle", "lambdamap")
        lines.append("versions  " + "  ".join(
            f"{n}: runtime {self.runtime_versions.get(n, '?')} / client {self.client_versions.get(n)}" for n in names))
        if self.bucket:
            lines.append(f"bucket s3://{self.bucket}: " + {True: "exists", False: "MISSING", None: "unknown"}[
                self.bucket_exists])
        lines += [f"note: {n}" for n in self.notes]
        lines += [f"problem: {p}" for p in self.problems] or ["ok: the runtime matches this client"]
        return "\n".join(lines)


def status(target: Target, *, session: Any = None) -> DeploymentStatus:
    """What is deployed under ``target`` and whether its runtime matches this client's versions."""
    aws = Aws(target, session)
    lam, name = aws.client("lambda"), target.function_name
    mine = client_versions()
    problems: list[str] = []
    notes: list[str] = []
    found = _get_function(lam, name)
    function, runtime, bucket, async_conf = None, {}, target.bucket, None
    if found is None:
        problems.append(f"the function {name} does not exist in {aws.region}: run `lambdamap deploy`")
    else:
        function, tags = found["Configuration"], found.get("Tags") or {}
        runtime = {"python": tags.get("lambdamap:python") or function.get("Runtime", "").removeprefix("python"),
                   "cloudpickle": tags.get("lambdamap:cloudpickle", "unknown"),
                   "lambdamap": tags.get("lambdamap:version", "unknown")}
        bucket = bucket or tags.get("lambdamap:bucket")
        if function.get("State") != "Active" or function.get("LastUpdateStatus") not in (None, "Successful"):
            problems.append(f"the function is {function.get('State')} (last update "
                            f"{function.get('LastUpdateStatus')}): {function.get('StateReason') or ''}".strip())
        unknown = [key for key, value in runtime.items() if value == "unknown"]
        if unknown:
            notes.append(f"the function does not record its {' and '.join(unknown)} version(s) (it was not deployed "
                         "by `lambdamap deploy`); its handler still checks them on every invocation")
        for key in ("python", "cloudpickle", "lambdamap"):
            if runtime[key] != mine[key] and key not in unknown:
                problems.append(f"{key} differs: runtime {runtime[key]}, client {mine[key]}. Redeploy for this client "
                                f"(`lambdamap deploy --python {mine['python']}`) or install the runtime's version here")
        async_conf = read_async_config(aws)
        retries = (async_conf or {}).get("MaximumRetryAttempts", 2)  # no config: AWS retries twice
        if retries != ASYNC_RETRY_ATTEMPTS:
            fix = ("run `lambdamap deploy`" if tags.get(MANAGED_TAG) == "true" else
                   f"set it to 0 (`aws lambda put-function-event-invoke-config --function-name {name} "
                   "--maximum-retry-attempts 0`, or EventInvokeConfig in deploy/template.yaml)")
            problems.append(f"Lambda retries failed asynchronous invocations {retries} time(s), so a call that crashes "
                            f"its worker runs again behind lambdamap's back (which retries lost calls itself as "
                            f"`retries=` allows): {fix}")
    exists = None
    if bucket:
        try:
            aws.client("s3").head_bucket(Bucket=bucket)
            exists = True
        except Exception as exc:
            if _code(exc) not in ("404", "NoSuchBucket", "NotFound"):
                with _aws_errors(f"check the bucket {bucket}"):
                    raise exc
            exists = False
            problems.append(f"the bucket {bucket} does not exist: run `lambdamap deploy`")
    return DeploymentStatus(function_name=name, region=aws.region, function=function, runtime_versions=runtime,
                            client_versions=mine, bucket=bucket, bucket_exists=exists, problems=problems,
                            notes=notes, async_config=async_conf)


def _bucket_from_function(aws: Aws) -> str | None:
    found = _get_function(aws.client("lambda"), aws.target.function_name)
    return None if found is None else (found.get("Tags") or {}).get("lambdamap:bucket")


def _storage(aws: Aws, bucket: str) -> Any:
    from lambdamap.aws.s3 import S3Storage

    return S3Storage(bucket, region=aws.region, endpoint_url=aws.target.endpoint_url, session=aws.session)


def cleanup(target: Target, *, blobs: bool = False, session: Any = None) -> tuple[str, int]:
    """Delete every job's objects under ``{prefix}/jobs/`` (and cached functions and shared objects under
    ``{prefix}/blobs/`` with ``blobs=True``). Returns the bucket and the number of objects deleted.

    Do not run it while jobs are running: their arguments and results would go.
    """
    aws = Aws(target, session)
    bucket = target.bucket or _bucket_from_function(aws) or aws.bucket
    storage = _storage(aws, bucket)
    prefixes = [keys.jobs_prefix(target.prefix)] + ([keys.blobs_prefix(target.prefix)] if blobs else [])
    deleted = 0
    for prefix in prefixes:
        found = storage.list(prefix)
        storage.delete(found)
        deleted += len(found)
    return bucket, deleted


def _iter_layer_versions(lam: Any, name: str) -> Iterator[int]:
    marker = None
    while True:
        page = lam.list_layer_versions(LayerName=name, **({"Marker": marker} if marker else {}))
        yield from (v["Version"] for v in page.get("LayerVersions", []))
        marker = page.get("NextMarker")
        if not marker:
            return


def destroy(target: Target, *, delete_bucket: bool = False, session: Any = None,
            log: Callable[[str], None] | None = None) -> list[str]:
    """Remove the function, every version of its layer and its role; the bucket only with ``delete_bucket``
    (after deleting lambdamap's objects in it; a bucket that holds other objects is left alone). Returns what
    was done. Missing pieces are skipped, so it can be re-run after a partial failure."""
    aws = Aws(target, session)
    lam, iam = aws.client("lambda"), aws.client("iam")
    done: list[str] = []

    def note(msg: str) -> None:
        done.append(msg)
        if log:
            log(msg)

    found = _get_function(lam, target.function_name)
    tags = (found or {}).get("Tags") or {}
    if found is not None and tags.get(MANAGED_TAG) != "true":
        raise DeploymentError(f"the function {target.function_name} was not deployed by `lambdamap deploy`; remove "
                              "it with the tool that created it (e.g. `sam delete`), lambdamap leaves it alone")
    bucket = target.bucket or tags.get("lambdamap:bucket")
    if found is not None:
        with _aws_errors(f"delete the function {target.function_name}"):
            lam.delete_function(FunctionName=target.function_name)
        note(f"deleted the function {target.function_name}")
    with _aws_errors(f"delete the layer {target.layer}"):
        versions = list(_iter_layer_versions(lam, target.layer))
        for version in versions:
            lam.delete_layer_version(LayerName=target.layer, VersionNumber=version)
        if versions:
            note(f"deleted {len(versions)} version(s) of the layer {target.layer}")
    try:
        role = iam.get_role(RoleName=target.role)["Role"]
    except Exception as exc:
        if _code(exc) != "NoSuchEntity":
            with _aws_errors(f"read the role {target.role}"):
                raise exc
        role = None
    if role is not None:
        if {t["Key"]: t["Value"] for t in role.get("Tags", [])}.get(MANAGED_TAG) != "true":
            note(f"kept the role {target.role}: lambdamap did not create it")
        else:
            with _aws_errors(f"delete the role {target.role}"):
                for policy in iam.list_attached_role_policies(RoleName=target.role).get("AttachedPolicies", []):
                    iam.detach_role_policy(RoleName=target.role, PolicyArn=policy["PolicyArn"])
                for policy_name in iam.list_role_policies(RoleName=target.role).get("PolicyNames", []):
                    iam.delete_role_policy(RoleName=target.role, PolicyName=policy_name)
                iam.delete_role(RoleName=target.role)
            note(f"deleted the role {target.role}")
    if delete_bucket:
        bucket = bucket or aws.bucket
        storage = _storage(aws, bucket)
        try:
            aws.client("s3").head_bucket(Bucket=bucket)
        except Exception as exc:
            if _code(exc) not in ("404", "NoSuchBucket", "NotFound"):
                with _aws_errors(f"check the bucket {bucket}"):
                    raise exc
            return done
        storage.delete_prefix(f"{target.prefix}/")
        others = storage.list("")
        if others:
            note(f"kept the bucket {bucket}: it holds {len(others)} object(s) outside {target.prefix}/ "
                 f"(e.g. {others[0]})")
        else:
            with _aws_errors(f"delete the bucket {bucket}"):
                aws.client("s3").delete_bucket(Bucket=bucket)
            note(f"deleted the bucket {bucket}")
    elif bucket:
        note(f"kept the bucket {bucket} (pass --delete-bucket to delete it)")
    return done
