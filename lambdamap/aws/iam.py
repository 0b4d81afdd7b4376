"""The IAM policy documents of the runtime, as pure functions (the one place they are defined).

``deploy/template.yaml`` and ``deploy/deployer-policy.json`` are tested against them: the function's execution
policy, its trust policy, and the policy a deploying user needs.
"""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import unquote

from lambdamap.core import keys

#: Resources lambdamap creates are named with this prefix, which the deployer policy is scoped to.
NAME_PREFIX = "lambdamap"
INLINE_POLICY_NAME = "lambdamap-s3-jobs"
BASIC_EXECUTION_POLICY = "iam::aws:policy/service-role/AWSLambdaBasicExecutionRole"


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
                "lambda:GetFunctionEventInvokeConfig", "lambda:PutFunctionEventInvokeConfig",
                # --memory-sizes: a published version and an alias per size (qualified ARNs match the pattern too)
                "lambda:GetFunctionConfiguration", "lambda:ListAliases", "lambda:PublishVersion",
                "lambda:CreateAlias", "lambda:UpdateAlias", "lambda:DeleteAlias"])},
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


def decode_policy_document(doc: Any) -> Any:
    """IAM returns policy documents as URL-encoded JSON strings or already decoded."""
    if isinstance(doc, str):
        return json.loads(unquote(doc))
    return doc
