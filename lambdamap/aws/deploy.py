"""Provision the generic lambdamap runtime on AWS with boto3: bucket, role, layer and function, idempotently.

::

    deploy(target, layer) ─▶ identity (account, partition) ─▶ bucket: create or adopt; block public access,
        encryption, lifecycle rule for job objects ─▶ role: trust Lambda; AWSLambdaBasicExecutionRole + S3 on
        {prefix}/* only ─▶ layer: reuse the version with the same CodeSha256, else publish (through S3 when over
        50 MB) ─▶ function: create or update code and configuration; wait until Active / Successful; versions as
        tags; async invocation config: Lambda never retries (lambdamap does), events kept at most 6 hours
        ─▶ client config file (backend = "lambda", function_name, bucket, region) for default_executor()

Neighbours: the policy documents are in :mod:`lambdamap.aws.iam`, boto3 access and error translation in
:mod:`lambdamap.aws.clients`, the config writer in :mod:`lambdamap.aws.deploy_config`, and status, cleanup and
destroy in :mod:`lambdamap.aws.manage`. Resources created here carry the tag ``lambdamap:managed = true``; it
refuses to take over a function or role of the same name that lacks it.
"""

from __future__ import annotations

import io
import json
import os
import time
import zipfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from lambdamap.aws.aliases import ensure_memory_aliases
from lambdamap.aws.clients import (
    MANAGED_TAG,
    Aws,
    Target,
    aws_errors,
    error_code,
    get_function,
    is_managed,
    unless_missing,
)
from lambdamap.aws.deploy_config import write_client_config
from lambdamap.aws.iam import (
    BASIC_EXECUTION_POLICY,
    INLINE_POLICY_NAME,
    decode_policy_document,
    execution_policy,
    trust_policy,
)
from lambdamap.aws.layer import (
    MAX_DIRECT_UPLOAD_BYTES,
    LayerBuild,
    check_target,
    code_sha256,
    inspect_layer,
)
from lambdamap.core import keys
from lambdamap.errors import DeploymentError

HANDLER = "lambdamap.aws.handler.lambda_handler"
DEFAULT_MEMORY_MB = 2048
DEFAULT_TIMEOUT_S = 900
DEFAULT_EXPIRE_DAYS = 3
LIFECYCLE_RULE_ID = "lambdamap-expire-jobs"
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


# -- settings and results --------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class FunctionSettings:
    memory_mb: int = DEFAULT_MEMORY_MB
    timeout_s: int = DEFAULT_TIMEOUT_S
    expire_days: int = DEFAULT_EXPIRE_DAYS
    #: Memory sizes (MB) that maps may ask for with ``memory=``: one published version and alias each (see
    #: :mod:`lambdamap.aws.aliases`). Exactly these: aliases of sizes left out are removed.
    memory_sizes: tuple[int, ...] = ()

    def __post_init__(self) -> None:
        if not 128 <= self.memory_mb <= 10240:
            raise DeploymentError(f"memory must be 128 to 10240 MB, got {self.memory_mb}")
        sizes = self.memory_sizes
        if not isinstance(sizes, tuple) or not all(
                isinstance(m, int) and not isinstance(m, bool) and 128 <= m <= 10240 for m in sizes):
            raise DeploymentError(f"memory sizes must be a tuple of integers from 128 to 10240 (MB), got {sizes!r}")
        if len(set(sizes)) != len(sizes):
            raise DeploymentError(f"memory sizes must not repeat, got {sizes!r}")
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


# -- steps ------------------------------------------------------------------------------------------------------------
def ensure_bucket(aws: Aws, expire_days: int = DEFAULT_EXPIRE_DAYS) -> str:
    """Create the bucket if needed; then (again, idempotently) block public access, encrypt by default and expire
    job objects after ``expire_days``. Other lifecycle rules on an existing bucket are kept."""
    s3, bucket, region = aws.client("s3"), aws.bucket, aws.region
    created = False
    try:
        s3.head_bucket(Bucket=bucket)
    except Exception as exc:
        if error_code(exc) in ("404", "NoSuchBucket", "NotFound"):
            with aws_errors(f"create the bucket {bucket}"):
                extra = {} if region == "us-east-1" else {"CreateBucketConfiguration": {"LocationConstraint": region}}
                s3.create_bucket(Bucket=bucket, **extra)
            created = True
        elif error_code(exc) in ("403", "AccessDenied", "Forbidden"):
            raise DeploymentError(f"the bucket {bucket} exists but this account cannot use it (it may belong to "
                                  "another account: bucket names are global); pass another --bucket") from exc
        else:
            with aws_errors(f"check the bucket {bucket}"):
                raise exc
    if not created:
        with aws_errors(f"read the region of the bucket {bucket}"):
            location = s3.get_bucket_location(Bucket=bucket).get("LocationConstraint") or "us-east-1"
        location = {"EU": "eu-west-1"}.get(location, location)
        if location != region:
            raise DeploymentError(f"the bucket {bucket} is in {location}, but the function would be in {region}: "
                                  f"deploy with --region {location} or choose another --bucket")
    with aws_errors(f"configure the bucket {bucket}"):
        s3.put_public_access_block(Bucket=bucket, PublicAccessBlockConfiguration={
            "BlockPublicAcls": True, "IgnorePublicAcls": True, "BlockPublicPolicy": True,
            "RestrictPublicBuckets": True})
        s3.put_bucket_encryption(Bucket=bucket, ServerSideEncryptionConfiguration={"Rules": [
            {"ApplyServerSideEncryptionByDefault": {"SSEAlgorithm": "AES256"}}]})
        try:
            rules = s3.get_bucket_lifecycle_configuration(Bucket=bucket).get("Rules", [])
        except Exception as exc:
            if error_code(exc) != "NoSuchLifecycleConfiguration":
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
        if error_code(exc) != "NoSuchEntity":
            with aws_errors(f"read the role {name}"):
                raise exc
        with aws_errors(f"create the role {name}"):
            role = iam.create_role(RoleName=name, AssumeRolePolicyDocument=json.dumps(trust_policy()),
                                   Description="lambdamap runtime: basic execution and its S3 job prefix",
                                   Tags=[{"Key": MANAGED_TAG, "Value": "true"}])["Role"]
        created = True
    else:
        if not is_managed({t["Key"]: t["Value"] for t in role.get("Tags", [])}):
            raise DeploymentError(f"a role named {name} exists and was not created by lambdamap; pass another "
                                  "--role-name (lambdamap never changes roles it does not manage)")
        if decode_policy_document(role.get("AssumeRolePolicyDocument")) != trust_policy():
            with aws_errors(f"update the trust policy of {name}"):
                iam.update_assume_role_policy(RoleName=name, PolicyDocument=json.dumps(trust_policy()))
    with aws_errors(f"set the permissions of the role {name}"):
        iam.attach_role_policy(RoleName=name, PolicyArn=f"arn:{partition}:{BASIC_EXECUTION_POLICY}")
        iam.put_role_policy(RoleName=name, PolicyName=INLINE_POLICY_NAME, PolicyDocument=json.dumps(
            execution_policy(aws.bucket, aws.target.prefix, partition)))
    return role["Arn"], created


def ensure_layer(aws: Aws, layer: LayerBuild) -> tuple[str, bool, bool]:
    """The ARN of a layer version with exactly this zip: an existing one (same CodeSha256) or a new one.

    Returns (layer version ARN, reused, uploaded through S3).
    """
    lam, name = aws.client("lambda"), aws.target.layer
    with aws_errors(f"list the versions of the layer {name}"):
        versions = lam.list_layer_versions(LayerName=name).get("LayerVersions", [])
        for version in versions[:10]:  # newest first
            content = lam.get_layer_version(LayerName=name, VersionNumber=version["Version"]).get("Content", {})
            if content.get("CodeSha256") == layer.code_sha256:
                return version["LayerVersionArn"], True, False
    data = layer.path.read_bytes()
    via_s3 = len(data) > MAX_DIRECT_UPLOAD_BYTES
    description = (f"lambdamap {layer.versions.get('lambdamap')} runtime, python{layer.python} {layer.arch}, "
                   f"cloudpickle {layer.versions.get('cloudpickle')}")[:256]
    staged_key = keys.staged_layer_key(aws.target.prefix, name, layer.code_sha256)
    try:
        if via_s3:
            with aws_errors(f"upload the layer zip to s3://{aws.bucket}/{staged_key}"):
                aws.client("s3").upload_file(str(layer.path), aws.bucket, staged_key,
                                             ExtraArgs={"ServerSideEncryption": "AES256"})
            content = {"S3Bucket": aws.bucket, "S3Key": staged_key}
        else:
            content = {"ZipFile": data}
        with aws_errors(f"publish the layer {name}"):
            published = lam.publish_layer_version(
                LayerName=name, Description=description, Content=content,
                CompatibleRuntimes=[f"python{layer.python}"], CompatibleArchitectures=[layer.arch])
    finally:
        if via_s3:  # Lambda keeps its own copy of a published layer
            with aws_errors(f"delete the staged layer zip s3://{aws.bucket}/{staged_key}"):
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
    existing = get_function(lam, name)
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
                if error_code(exc) == "InvalidParameterValueException" and "assume" in str(exc) \
                        and time.monotonic() < deadline:
                    time.sleep(delay)
                    delay = min(delay * 1.5, 10.0)
                    continue
                with aws_errors(f"create the function {name}"):
                    raise exc
        arn = created["FunctionArn"]
        _wait(lam, "function_active_v2", name)
        ensure_async_config(aws)
        return arn
    current = existing["Configuration"]
    if not is_managed(existing.get("Tags") or {}):
        raise DeploymentError(f"a Lambda function named {name} exists and was not deployed by lambdamap; pass "
                              "another --function-name (lambdamap never changes functions it does not manage)")
    arn = current["FunctionArn"]
    _wait(lam, "function_updated_v2", name)  # an update still in progress would refuse ours
    current_layers = [entry["Arn"] for entry in current.get("Layers", [])]
    if any(current.get(k) != v for k, v in config.items() if k != "Layers") or current_layers != [layer_arn]:
        with aws_errors(f"update the configuration of the function {name}"):
            lam.update_function_configuration(FunctionName=name, **config)
        _wait(lam, "function_updated_v2", name)
    if current.get("Architectures", ["x86_64"]) != [layer.arch] or current.get("CodeSha256") != code_sha256(code):
        with aws_errors(f"update the code of the function {name}"):
            lam.update_function_code(FunctionName=name, ZipFile=code, Architectures=[layer.arch])
        _wait(lam, "function_updated_v2", name)
    with aws_errors(f"tag the function {name}"):
        lam.tag_resource(Resource=arn, Tags=tags)
    ensure_async_config(aws)
    return arn


def async_config() -> dict[str, int]:
    """The function's asynchronous invocation settings (also in ``deploy/template.yaml``)."""
    return {"MaximumRetryAttempts": ASYNC_RETRY_ATTEMPTS, "MaximumEventAgeInSeconds": MAX_EVENT_AGE_S}


def read_async_config(aws: Aws) -> dict[str, Any] | None:
    """The function's event invoke config, or None if it has none (Lambda then retries failed events twice)."""
    name = aws.target.function_name
    return unless_missing(lambda: aws.client("lambda").get_function_event_invoke_config(FunctionName=name),
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
    with aws_errors(f"set the asynchronous invocation config of the function {name}"):
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


# -- the command ------------------------------------------------------------------------------------------------------
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
    aws = Aws(target, session, purpose="deploying")
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
    for line in ensure_memory_aliases(aws, settings.memory_sizes, settings.memory_mb, _wait,
                                      f"lambdamap {layer.versions.get('lambdamap')} generic runtime"):
        step(line)
    if settings.memory_sizes:
        step("memory sizes for map(..., memory=MB): " + ", ".join(str(m) for m in settings.memory_sizes))
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

