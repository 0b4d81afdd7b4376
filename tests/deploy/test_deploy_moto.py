"""`lambdamap.aws.deploy` and `.manage` against moto's in-process AWS: the API calls and resources they leave behind.

moto cannot run a handler (no Docker here); the end-to-end run through a deployed function is in
test_deploy_e2e.py against MiniStack.
"""

from __future__ import annotations

import json
import os
import shutil
import zipfile
from pathlib import Path

import pytest

import lambdamap
from lambdamap.aws import clients, manage
from lambdamap.aws import deploy as d
from lambdamap.aws import iam as policies
from lambdamap.aws.layer import MANIFEST_NAME, MAX_DIRECT_UPLOAD_BYTES, LayerBuild, inspect_layer
from lambdamap.config import load_config, read_config_file
from lambdamap.core.task import client_versions
from lambdamap.errors import DeploymentError

pytestmark = pytest.mark.timeout(300)

REGION = "eu-central-1"
ACCOUNT = "123456789012"  # moto's default account
BUCKET = f"lambdamap-{ACCOUNT}-{REGION}"
MUTATING = {"CreateFunction", "UpdateFunctionCode", "UpdateFunctionConfiguration", "PublishLayerVersion",
            "CreateRole", "CreateBucket", "UpdateAssumeRolePolicy", "PutFunctionEventInvokeConfig"}


def _target(**kw) -> clients.Target:
    return clients.Target(region=REGION, **kw)


def _layer_version(lam, arn: str) -> dict:
    name, version = arn.split(":")[-2:]
    return lam.get_layer_version(LayerName=name, VersionNumber=int(version))


def _variant(layer: LayerBuild, path: Path, filler: bytes = b"", name: str = "python/variant.txt") -> LayerBuild:
    """A copy of ``layer`` with one more file (so another CodeSha256)."""
    shutil.copyfile(layer.path, path)
    with zipfile.ZipFile(path, "a", compression=zipfile.ZIP_STORED) as zf:
        zf.writestr(name, filler or b"variant")
    return inspect_layer(path)


def test_deploy_creates_bucket_role_layer_and_function_and_writes_the_config(session, minimal_layer, aws_env):
    result = d.deploy(_target(), minimal_layer, session=session)
    py = client_versions()["python"]
    assert result.bucket == BUCKET and result.region == REGION and result.config_path == aws_env
    assert not result.layer_reused and not result.layer_via_s3

    lam, iam, s3 = (session.client(s) for s in ("lambda", "iam", "s3"))
    fn = lam.get_function(FunctionName="lambdamap-runtime")
    conf, tags = fn["Configuration"], fn["Tags"]
    assert conf["Handler"] == d.HANDLER == "lambdamap.aws.handler.lambda_handler"
    assert conf["Runtime"] == f"python{py}" and conf["Architectures"] == ["x86_64"]
    assert (conf["MemorySize"], conf["Timeout"]) == (d.DEFAULT_MEMORY_MB, d.DEFAULT_TIMEOUT_S)
    assert [entry["Arn"] for entry in conf["Layers"]] == [result.layer_version_arn]
    assert conf["Role"] == result.role_arn == f"arn:aws:iam::{ACCOUNT}:role/lambdamap-runtime-role"
    assert conf["State"] == "Active"
    assert tags["lambdamap:managed"] == "true" and tags["lambdamap:bucket"] == BUCKET
    assert (tags["lambdamap:python"], tags["lambdamap:cloudpickle"], tags["lambdamap:version"]) == (
        py, client_versions()["cloudpickle"], lambdamap.__version__)
    async_config = lam.get_function_event_invoke_config(FunctionName="lambdamap-runtime")
    assert (async_config["MaximumRetryAttempts"], async_config["MaximumEventAgeInSeconds"]) == (0, 6 * 3600)
    assert any("not retried by Lambda" in step for step in result.steps)

    layer = _layer_version(lam, result.layer_version_arn)
    assert layer["Content"]["CodeSha256"] == minimal_layer.code_sha256
    assert layer["CompatibleRuntimes"] == [f"python{py}"] and layer["CompatibleArchitectures"] == ["x86_64"]

    role = iam.get_role(RoleName="lambdamap-runtime-role")["Role"]
    assert policies.decode_policy_document(role["AssumeRolePolicyDocument"]) == policies.trust_policy()
    attached = iam.list_attached_role_policies(RoleName="lambdamap-runtime-role")["AttachedPolicies"]
    assert [p["PolicyArn"] for p in attached] == [f"arn:aws:{policies.BASIC_EXECUTION_POLICY}"]
    inline = iam.get_role_policy(RoleName="lambdamap-runtime-role", PolicyName=policies.INLINE_POLICY_NAME)
    assert policies.decode_policy_document(inline["PolicyDocument"]) == policies.execution_policy(BUCKET)

    pab = s3.get_public_access_block(Bucket=BUCKET)["PublicAccessBlockConfiguration"]
    assert pab == {"BlockPublicAcls": True, "IgnorePublicAcls": True, "BlockPublicPolicy": True,
                   "RestrictPublicBuckets": True}
    (rule,) = s3.get_bucket_encryption(Bucket=BUCKET)["ServerSideEncryptionConfiguration"]["Rules"]
    assert rule["ApplyServerSideEncryptionByDefault"]["SSEAlgorithm"] == "AES256"
    (lifecycle,) = s3.get_bucket_lifecycle_configuration(Bucket=BUCKET)["Rules"]
    assert lifecycle["ID"] == d.LIFECYCLE_RULE_ID and lifecycle["Filter"] == {"Prefix": "lambdamap/jobs/"}
    assert lifecycle["Expiration"] == {"Days": 3}

    assert read_config_file(aws_env) == {"backend": "lambda", "function_name": "lambdamap-runtime",
                                         "bucket": BUCKET, "region": REGION}
    config = load_config()
    assert (config.backend, config.bucket, config.region) == ("lambda", BUCKET, REGION)
    with lambdamap.default_executor(progress=False) as pwex:  # preflight against moto passes
        assert pwex.backend == "lambda" and pwex.invoker.function_name == "lambdamap-runtime"
        assert pwex.storage.bucket == BUCKET


def test_a_second_deploy_changes_nothing(session, minimal_layer):
    d.deploy(_target(), minimal_layer, session=session)
    session.recorder.clear()
    again = d.deploy(_target(), minimal_layer, session=session)
    assert again.layer_reused
    ops = set(session.recorder.operations())
    assert "GetFunctionEventInvokeConfig" in ops  # checked, and found as it should be
    assert not MUTATING & ops
    versions = session.client("lambda").list_layer_versions(LayerName="lambdamap-runtime-layer")["LayerVersions"]
    assert len(versions) == 1


def _rebuilt(layer: LayerBuild, path: Path, **manifest_changes: str) -> LayerBuild:
    """A copy of ``layer`` whose manifest says something else (e.g. another architecture)."""
    with zipfile.ZipFile(layer.path) as src, zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as dst:
        for info in src.infolist():
            data = src.read(info)
            if info.filename == MANIFEST_NAME:
                data = json.dumps({**json.loads(data), **manifest_changes}).encode()
            dst.writestr(info, data)
    return inspect_layer(path)


def test_a_new_layer_and_settings_update_the_function(session, minimal_layer, tmp_path):
    first = d.deploy(_target(), minimal_layer, session=session)
    newer = _variant(minimal_layer, tmp_path / "newer.zip")
    session.recorder.clear()
    second = d.deploy(_target(), newer, d.FunctionSettings(memory_mb=4096, timeout_s=120, expire_days=7),
                      session=session)
    ops = session.recorder.operations()
    assert "PublishLayerVersion" in ops and "UpdateFunctionConfiguration" in ops and "CreateFunction" not in ops
    assert second.layer_version_arn != first.layer_version_arn
    conf = session.client("lambda").get_function_configuration(FunctionName="lambdamap-runtime")
    assert (conf["MemorySize"], conf["Timeout"]) == (4096, 120)
    assert [entry["Arn"] for entry in conf["Layers"]] == [second.layer_version_arn]
    (rule,) = session.client("s3").get_bucket_lifecycle_configuration(Bucket=BUCKET)["Rules"]
    assert rule["Expiration"] == {"Days": 7}


def test_a_layer_over_50_mb_goes_through_s3(session, minimal_layer, tmp_path):
    big = _variant(minimal_layer, tmp_path / "big.zip", filler=os.urandom(MAX_DIRECT_UPLOAD_BYTES + 1_000_000))
    assert big.needs_s3_upload
    result = d.deploy(_target(), big, session=session)
    assert result.layer_via_s3
    ops = session.recorder.operations("s3")
    assert "CreateMultipartUpload" in ops or "PutObject" in ops
    layer = _layer_version(session.client("lambda"), result.layer_version_arn)
    assert layer["Content"]["CodeSha256"] == big.code_sha256
    staged = session.client("s3").list_objects_v2(Bucket=BUCKET, Prefix="lambdamap/runtime/")
    assert staged.get("KeyCount", 0) == 0  # deleted once Lambda has its copy


def test_a_new_role_that_lambda_cannot_assume_yet_is_retried(session, minimal_layer, monkeypatch):
    monkeypatch.setattr(d.time, "sleep", lambda _s: None)
    refusals = []

    class _Http:
        status_code = 400
        headers: dict[str, str] = {}

    def refuse_twice(model, **_):
        if model.name == "CreateFunction" and len(refusals) < 2:
            refusals.append(1)
            return _Http(), {"Error": {"Code": "InvalidParameterValueException",
                                       "Message": "The role defined for the function cannot be assumed by Lambda."},
                             "ResponseMetadata": {"HTTPStatusCode": 400}}
        return None

    session.events.register("before-call.lambda.CreateFunction", refuse_twice)
    d.deploy(_target(), minimal_layer, session=session)
    assert len(refusals) == 2  # refused twice (the refusals short-circuit before the recorder), then created
    conf = session.client("lambda").get_function_configuration(FunctionName="lambdamap-runtime")
    assert conf["State"] == "Active"


def test_other_peoples_function_role_and_buckets_are_left_alone(session, minimal_layer):
    iam, lam, s3 = (session.client(s) for s in ("iam", "lambda", "s3"))
    iam.create_role(RoleName="lambdamap-theirs-role", AssumeRolePolicyDocument=json.dumps(policies.trust_policy()))
    with pytest.raises(DeploymentError, match="role named lambdamap-theirs-role exists and was not created by"):
        d.deploy(_target(function_name="lambdamap-theirs"), minimal_layer, session=session)

    role = iam.create_role(RoleName="other", AssumeRolePolicyDocument=json.dumps(policies.trust_policy()))["Role"]
    py = client_versions()["python"]
    lam.create_function(FunctionName="lambdamap-other", Runtime=f"python{py}", Role=role["Arn"], Handler="x.y",
                        Code={"ZipFile": d.function_code_zip()})
    with pytest.raises(DeploymentError, match="function named lambdamap-other exists and was not deployed"):
        d.deploy(_target(function_name="lambdamap-other"), minimal_layer, session=session)
    with pytest.raises(DeploymentError, match="lambdamap-other was not deployed by `lambdamap deploy`"):
        manage.destroy(_target(function_name="lambdamap-other"), session=session)
    assert lam.get_function(FunctionName="lambdamap-other")["Configuration"]["Handler"] == "x.y"
    report = manage.status(_target(function_name="lambdamap-other"), session=session)
    (problem,) = report.problems  # without an event invoke config Lambda retries failed events twice
    assert "retries failed asynchronous invocations 2 time(s)" in problem
    assert "put-function-event-invoke-config --function-name lambdamap-other --maximum-retry-attempts 0" in problem
    lam.put_function_event_invoke_config(FunctionName="lambdamap-other", **d.async_config())  # as template.yaml
    report = manage.status(_target(function_name="lambdamap-other"), session=session)  # e.g. deployed with SAM
    assert report.ok, report.problems
    assert report.runtime_versions == {"python": py, "cloudpickle": "unknown", "lambdamap": "unknown"}
    assert any("does not record its cloudpickle and lambdamap" in n for n in report.notes)

    session.client("s3", region_name="us-west-2").create_bucket(
        Bucket="lambdamap-far", CreateBucketConfiguration={"LocationConstraint": "us-west-2"})
    with pytest.raises(DeploymentError, match="lambdamap-far is in us-west-2.*--region us-west-2"):
        d.deploy(_target(bucket="lambdamap-far"), minimal_layer, session=session)


def test_an_existing_bucket_keeps_its_other_lifecycle_rules_and_a_custom_prefix(session, minimal_layer, aws_env):
    s3 = session.client("s3")
    s3.create_bucket(Bucket="lambdamap-mine", CreateBucketConfiguration={"LocationConstraint": REGION})
    mine = {"ID": "keep-logs", "Status": "Enabled", "Filter": {"Prefix": "logs/"}, "Expiration": {"Days": 30}}
    s3.put_bucket_lifecycle_configuration(Bucket="lambdamap-mine", LifecycleConfiguration={"Rules": [mine]})
    aws_env.write_text('workers = 50\nendpoint_url = "http://127.0.0.1:9/"\n')
    d.deploy(_target(bucket="lambdamap-mine", prefix="team/a"), minimal_layer, session=session)
    rules = {r["ID"]: r for r in s3.get_bucket_lifecycle_configuration(Bucket="lambdamap-mine")["Rules"]}
    assert set(rules) == {"keep-logs", d.LIFECYCLE_RULE_ID}
    assert rules[d.LIFECYCLE_RULE_ID]["Filter"] == {"Prefix": "team/a/jobs/"}
    inline = session.client("iam").get_role_policy(RoleName="lambdamap-runtime-role",
                                                    PolicyName=policies.INLINE_POLICY_NAME)
    wanted = policies.execution_policy("lambdamap-mine", "team/a")
    assert policies.decode_policy_document(inline["PolicyDocument"]) == wanted
    # The user's own keys stay; a stale endpoint from an earlier deployment goes.
    assert read_config_file(aws_env) == {"workers": 50, "backend": "lambda", "function_name": "lambdamap-runtime",
                                         "bucket": "lambdamap-mine", "region": REGION, "prefix": "team/a"}


def test_status_reports_versions_and_mismatches(session, minimal_layer):
    missing = manage.status(_target(bucket=BUCKET), session=session)
    assert not missing.ok and missing.function is None
    assert any("does not exist" in p and "lambdamap deploy" in p for p in missing.problems)
    assert any(f"bucket {BUCKET} does not exist" in p for p in missing.problems)

    d.deploy(_target(), minimal_layer, session=session)
    report = manage.status(_target(), session=session)
    assert report.ok, report.problems
    assert report.runtime_versions == client_versions() and report.bucket == BUCKET and report.bucket_exists
    assert "ok: the runtime matches this client" in report.render()

    lam = session.client("lambda")
    arn = lam.get_function(FunctionName="lambdamap-runtime")["Configuration"]["FunctionArn"]
    lam.tag_resource(Resource=arn, Tags={"lambdamap:cloudpickle": "0.0.1"})
    report = manage.status(_target(), session=session)
    assert not report.ok
    (problem,) = report.problems
    assert "cloudpickle differs: runtime 0.0.1" in problem and "lambdamap deploy --python" in problem


def test_lambdas_own_retries_are_reported_and_turned_off_keeping_destinations(session, minimal_layer):
    d.deploy(_target(), minimal_layer, session=session)
    lam = session.client("lambda")
    # moto's PutFunctionEventInvokeConfig appends where AWS replaces (GET answers the first), so the state is
    # changed by deleting first, and what deploy sends is checked on the request.
    lam.delete_function_event_invoke_config(FunctionName="lambdamap-runtime")
    report = manage.status(_target(), session=session)
    (problem,) = report.problems
    assert "retries failed asynchronous invocations 2 time(s)" in problem and "run `lambdamap deploy`" in problem
    assert "(AWS defaults: no event invoke config)" in report.render()

    session.recorder.clear()
    d.deploy(_target(), minimal_layer, session=session)
    assert "PutFunctionEventInvokeConfig" in session.recorder.operations()
    report = manage.status(_target(), session=session)
    assert report.ok, report.problems
    assert "async invocations: retried by Lambda 0 time(s), events kept up to 21600 s" in report.render()

    lam.delete_function_event_invoke_config(FunctionName="lambdamap-runtime")
    dlq = f"arn:aws:sqs:{REGION}:{ACCOUNT}:lambdamap-failed"
    lam.put_function_event_invoke_config(FunctionName="lambdamap-runtime", MaximumRetryAttempts=1,
                                         DestinationConfig={"OnFailure": {"Destination": dlq}})
    assert "1 time(s)" in manage.status(_target(), session=session).problems[0]
    sent = []
    session.events.register("provide-client-params.lambda.PutFunctionEventInvokeConfig",
                            lambda params, **_: sent.append(dict(params)))
    d.deploy(_target(), minimal_layer, session=session)
    assert sent == [{"FunctionName": "lambdamap-runtime", "MaximumRetryAttempts": 0,
                     "MaximumEventAgeInSeconds": d.MAX_EVENT_AGE_S,
                     "DestinationConfig": {"OnFailure": {"Destination": dlq}}}]


def test_cleanup_deletes_job_objects_only(session, minimal_layer):
    d.deploy(_target(), minimal_layer, session=session)
    s3 = session.client("s3")
    for key in ("lambdamap/jobs/j1/args/000000.pkl", "lambdamap/jobs/j1/results/000000.pkl",
                "lambdamap/jobs/j2/args/000000.pkl", "lambdamap/blobs/abc.pkl", "notes/keep.txt"):
        s3.put_object(Bucket=BUCKET, Key=key, Body=b"x")
    assert manage.cleanup(_target(), session=session) == (BUCKET, 3)
    left = [o["Key"] for o in s3.list_objects_v2(Bucket=BUCKET)["Contents"]]
    assert sorted(left) == ["lambdamap/blobs/abc.pkl", "notes/keep.txt"]
    assert manage.cleanup(_target(), blobs=True, session=session) == (BUCKET, 1)
    assert [o["Key"] for o in s3.list_objects_v2(Bucket=BUCKET)["Contents"]] == ["notes/keep.txt"]


def test_destroy_removes_function_layers_and_role_and_the_bucket_only_when_asked(session, minimal_layer, tmp_path):
    d.deploy(_target(), minimal_layer, session=session)
    d.deploy(_target(), _variant(minimal_layer, tmp_path / "v2.zip"), session=session)  # two layer versions
    lam, iam, s3 = (session.client(s) for s in ("lambda", "iam", "s3"))
    s3.put_object(Bucket=BUCKET, Key="notes/keep.txt", Body=b"x")
    s3.put_object(Bucket=BUCKET, Key="lambdamap/jobs/j/args/000000.pkl", Body=b"x")

    done = manage.destroy(_target(), session=session)
    assert "deleted the function lambdamap-runtime" in done
    assert "deleted 2 version(s) of the layer lambdamap-runtime-layer" in done
    assert "deleted the role lambdamap-runtime-role" in done and any("kept the bucket" in m for m in done)
    with pytest.raises(lam.exceptions.ResourceNotFoundException):
        lam.get_function(FunctionName="lambdamap-runtime")
    assert lam.list_layer_versions(LayerName="lambdamap-runtime-layer")["LayerVersions"] == []
    with pytest.raises(iam.exceptions.NoSuchEntityException):
        iam.get_role(RoleName="lambdamap-runtime-role")
    with pytest.raises(lam.exceptions.ResourceNotFoundException):  # its event invoke config went with it
        lam.get_function_event_invoke_config(FunctionName="lambdamap-runtime")

    done = manage.destroy(_target(bucket=BUCKET), delete_bucket=True, session=session)  # re-runnable
    assert any("kept the bucket" in m and "notes/keep.txt" in m for m in done)
    assert [o["Key"] for o in s3.list_objects_v2(Bucket=BUCKET)["Contents"]] == ["notes/keep.txt"]
    s3.delete_object(Bucket=BUCKET, Key="notes/keep.txt")
    done = manage.destroy(_target(bucket=BUCKET), delete_bucket=True, session=session)
    assert done == [f"deleted the bucket {BUCKET}"]
    assert BUCKET not in [b["Name"] for b in s3.list_buckets()["Buckets"]]


def test_bad_names_and_settings_are_refused_before_any_call():
    with pytest.raises(DeploymentError, match="invalid function name"):
        clients.Target(function_name="has space")
    with pytest.raises(DeploymentError, match="invalid bucket name 'Upper'"):
        clients.Target(bucket="Upper")
    with pytest.raises(DeploymentError, match="memory must be 128 to 10240 MB"):
        d.FunctionSettings(memory_mb=64)
    with pytest.raises(DeploymentError, match="timeout must be 1 to 900 seconds"):
        d.FunctionSettings(timeout_s=901)


def test_missing_region_or_credentials_are_clear_errors(aws_env, minimal_layer, monkeypatch):
    with pytest.raises(DeploymentError, match="no AWS region: pass --region"):
        d.deploy(clients.Target(), minimal_layer)
    monkeypatch.delenv("AWS_ACCESS_KEY_ID")
    monkeypatch.delenv("AWS_SECRET_ACCESS_KEY")
    with pytest.raises(DeploymentError, match="no AWS credentials found"):
        d.deploy(_target(), minimal_layer)


def test_a_zip_that_is_not_a_lambdamap_layer_is_refused(tmp_path, aws_env):
    path = tmp_path / "other.zip"
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("python/x.py", "")
    with pytest.raises(DeploymentError, match=f"not a lambdamap layer .*{MANIFEST_NAME}"):
        d.deploy(_target(), path)


# -- the deployer's IAM policy lists exactly the actions deploy.py calls ----------------------------------------------
#: botocore operation -> IAM action, where the name differs from "service:Operation".
_IAM_ACTION = {
    ("s3", "HeadBucket"): "s3:ListBucket", ("s3", "ListObjectsV2"): "s3:ListBucket",
    ("s3", "DeleteObjects"): "s3:DeleteObject", ("s3", "HeadObject"): "s3:GetObject",
    ("s3", "PutPublicAccessBlock"): "s3:PutBucketPublicAccessBlock",
    ("s3", "PutBucketEncryption"): "s3:PutEncryptionConfiguration",
    ("s3", "PutBucketLifecycleConfiguration"): "s3:PutLifecycleConfiguration",
    ("s3", "GetBucketLifecycleConfiguration"): "s3:GetLifecycleConfiguration",
    ("s3", "CreateMultipartUpload"): "s3:PutObject", ("s3", "UploadPart"): "s3:PutObject",
    ("s3", "CompleteMultipartUpload"): "s3:PutObject",
    ("sts", "GetCallerIdentity"): None,  # needs no permission
}
#: Needed although no API call of that name is made, with the reason.
_IMPLIED = {
    "iam:PassRole": "CreateFunction/UpdateFunctionConfiguration pass the role to Lambda",
    "iam:TagRole": "CreateRole with Tags",
    "s3:GetObject": "PublishLayerVersion reads the staged layer zip from S3 with the caller's permissions",
}


def _actions(statement: dict) -> list[str]:
    return [statement["Action"]] if isinstance(statement["Action"], str) else statement["Action"]


def test_the_deployer_policy_lists_exactly_the_actions_deploy_calls(session, minimal_layer, tmp_path):
    big = _variant(minimal_layer, tmp_path / "big.zip", filler=os.urandom(MAX_DIRECT_UPLOAD_BYTES + 1_000_000))
    d.deploy(_target(), big, d.FunctionSettings(memory_sizes=(1769, 3538)), session=session)  # layer through S3
    iam = session.client("iam")
    iam.update_assume_role_policy(RoleName="lambdamap-runtime-role", PolicyDocument=json.dumps(
        {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Principal": {"Service": "ec2.amazonaws.com"},
                                                 "Action": "sts:AssumeRole"}]}))
    arm = _rebuilt(minimal_layer, tmp_path / "arm.zip", arch="arm64")
    before = len(session.recorder.calls)
    # Adopts the bucket, repairs the trust policy, changes architecture, moves one memory alias and removes one.
    d.deploy(_target(), arm, d.FunctionSettings(memory_sizes=(1769,)), session=session)
    # (moto ignores Architectures in UpdateFunctionCode, so check the call rather than the result)
    assert ("lambda", "UpdateFunctionCode") in session.recorder.calls[before:]
    manage.status(_target(), session=session)
    session.client("s3").put_object(Bucket=BUCKET, Key="lambdamap/jobs/j/args/000000.pkl", Body=b"x")
    manage.cleanup(_target(), session=session)
    manage.destroy(_target(), delete_bucket=True, session=session)

    called = {_IAM_ACTION.get((svc, op), f"{svc}:{op}") for svc, op in session.recorder.calls} - {None}
    granted = {a for s in policies.deployer_policy()["Statement"] for a in _actions(s)}
    assert called - granted == set(), "deploy calls actions the deployer policy does not grant"
    assert granted - called - set(_IMPLIED) == set(), "the deployer policy grants actions deploy never calls"
