"""deploy/template.yaml passes cfn-lint and grants exactly what lambdamap/aws/iam.py grants; the deployer policy
file is the one lambdamap/aws/iam.py defines."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from cfnlint.api import ManualArgs, lint_file
from cfnlint.decode import decode_str

from lambdamap.aws import deploy as d
from lambdamap.aws import iam

REPO = Path(__file__).resolve().parents[2]
TEMPLATE = REPO / "deploy" / "template.yaml"
DEPLOYER_POLICY = REPO / "deploy" / "deployer-policy.json"
REGIONS = ["us-east-1", "eu-central-1", "ap-southeast-2"]


def _lint(path: Path) -> list[str]:
    return [f"{m.rule.id} line {m.linenumber}: {m.message}" for m in lint_file(path, ManualArgs(regions=REGIONS))]


def test_the_sam_template_passes_cfn_lint():
    assert _lint(TEMPLATE) == []


def test_cfn_lint_would_catch_a_broken_template(tmp_path):
    broken = TEMPLATE.read_text().replace("SSEAlgorithm: AES256", "SSEAlgorithm: AES128").replace(
        "MemorySize: !Ref MemorySize", "MemorySize: !Ref MemorySize\n      Bogus: 1")
    path = tmp_path / "template.yaml"
    path.write_text(broken)
    problems = _lint(path)
    assert any("AES128" in p for p in problems) and any("Bogus" in p for p in problems)


@pytest.fixture(scope="module")
def template() -> dict:
    decoded, matches = decode_str(TEMPLATE.read_text())
    assert not matches
    return decoded


def _render(node, params: dict[str, object]):
    """Resolve the intrinsics the template uses (Sub, Ref) against test values."""
    if isinstance(node, list):
        return [_render(n, params) for n in node]
    if isinstance(node, dict):
        if set(node) == {"Fn::Sub"}:
            return re.sub(r"\$\{([^}]+)\}", lambda m: str(params[m.group(1)]), node["Fn::Sub"])
        if set(node) == {"Ref"}:
            return params[node["Ref"]]
        return {k: _render(v, params) for k, v in node.items()}
    return node


@pytest.fixture(scope="module")
def rendered(template) -> dict:
    params = {name: p.get("Default") for name, p in template["Parameters"].items()}
    params.update({"AWS::Partition": "aws", "Bucket": "BUCKET", "AWS::Region": "eu-central-1",
                   "RuntimeLayer": "LAYER"})
    return _render(template["Resources"], params)


def test_the_templates_role_grants_what_deploy_grants(rendered):
    role = rendered["Role"]["Properties"]
    assert role["AssumeRolePolicyDocument"] == iam.trust_policy()
    assert role["ManagedPolicyArns"] == [f"arn:aws:{iam.BASIC_EXECUTION_POLICY}"]
    (policy,) = role["Policies"]
    assert policy["PolicyName"] == iam.INLINE_POLICY_NAME
    assert policy["PolicyDocument"] == iam.execution_policy("BUCKET", "lambdamap", "aws")


def test_the_execution_policy_is_least_privilege():
    policy = iam.execution_policy("my-bucket", "pfx", "aws-cn")
    objects, listing = policy["Statement"]
    assert objects["Action"] == ["s3:GetObject", "s3:PutObject", "s3:DeleteObject"]
    assert objects["Resource"] == "arn:aws-cn:s3:::my-bucket/pfx/*"
    assert listing["Action"] == "s3:ListBucket" and listing["Resource"] == "arn:aws-cn:s3:::my-bucket"
    assert listing["Condition"] == {"StringLikeIfExists": {"s3:prefix": "pfx/*"}}
    assert "*" not in json.dumps(policy).replace("pfx/*", "")


def test_the_templates_bucket_function_and_layer(rendered, template):
    bucket = rendered["Bucket"]["Properties"]
    assert set(bucket["PublicAccessBlockConfiguration"].values()) == {True}
    assert len(bucket["PublicAccessBlockConfiguration"]) == 4
    (sse,) = bucket["BucketEncryption"]["ServerSideEncryptionConfiguration"]
    assert sse["ServerSideEncryptionByDefault"] == {"SSEAlgorithm": "AES256"}
    (rule,) = bucket["LifecycleConfiguration"]["Rules"]
    expected = d.lifecycle_rule("lambdamap", d.DEFAULT_EXPIRE_DAYS)  # the S3 API shape; CloudFormation's differs
    assert rule["Id"] == expected["ID"] and rule["Status"] == "Enabled"
    assert rule["Prefix"] == expected["Filter"]["Prefix"] == "lambdamap/jobs/"
    assert rule["ExpirationInDays"] == expected["Expiration"]["Days"]
    fn = rendered["Function"]["Properties"]
    assert fn["Handler"] == d.HANDLER and fn["Layers"] == ["LAYER"]
    assert fn["Runtime"] == "python3.12" and fn["Architectures"] == ["x86_64"]
    assert fn["MemorySize"] == d.DEFAULT_MEMORY_MB and fn["Timeout"] == d.DEFAULT_TIMEOUT_S
    # Lambda must not retry crashed calls itself (lambdamap does, as retries= allows): both ways deploy say so.
    assert fn["EventInvokeConfig"] == d.async_config()
    assert fn["EventInvokeConfig"]["MaximumRetryAttempts"] == d.async_config()["MaximumRetryAttempts"] == 0
    params = template["Parameters"]
    assert {"MemorySize", "Timeout", "Architecture", "PythonVersion"} <= set(params)
    assert params["Architecture"]["AllowedValues"] == ["x86_64", "arm64"]
    layer = rendered["RuntimeLayer"]["Properties"]
    assert layer["CompatibleRuntimes"] == ["python3.12"] and layer["CompatibleArchitectures"] == ["x86_64"]


def test_the_deployer_policy_file_is_the_one_deploy_defines():
    on_disk = json.loads(DEPLOYER_POLICY.read_text())  # valid JSON
    assert on_disk == iam.deployer_policy()
    actions = [a for s in on_disk["Statement"] for a in ([s["Action"]] if isinstance(s["Action"], str)
                                                         else s["Action"])]
    assert len(actions) == len(set(actions)) or all(  # an action may repeat only under another condition
        a in ("iam:AttachRolePolicy", "iam:DetachRolePolicy") for a in actions if actions.count(a) > 1)
    assert all(s["Resource"] != "*" for s in on_disk["Statement"] if s["Sid"] != "ListLayerVersions")
