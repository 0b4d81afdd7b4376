"""End to end on the Lambda emulator (MiniStack, which really runs handlers): `lambdamap deploy` creates the
bucket, role, layer and function through the S3, IAM and Lambda APIs, `lambdamap status` reads them back, and
`default_executor()` then maps through the deployed function, whose handler and lambdamap come from the layer
(MiniStack's interpreter has no lambdamap of its own).

MiniStack's Python runtime is its own interpreter (this client's Python version, without boto3), so the layer
deployed here is the minimal one plus boto3; the real Lambda runtime provides boto3.
"""

from __future__ import annotations

import boto3
import pytest
from support.aws_servers import ministack

import lambdamap
from lambdamap import cli
from lambdamap.config import read_config_file

pytestmark = pytest.mark.timeout(600)


class Boom(Exception):
    pass


def _fail(x):
    raise Boom(f"no {x}")


def test_deploy_status_then_map_through_the_deployed_function(emulator_layer, aws_env, monkeypatch, capsys):
    with ministack() as lam:
        url = lam.endpoint_url
        monkeypatch.setenv("AWS_ACCESS_KEY_ID", lam.access_key)
        monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", lam.secret_key)
        monkeypatch.setenv("AWS_ENDPOINT_URL", url)  # IAM and STS: boto3's own variable
        where = ["--region", lam.region, "--endpoint-url", url, "--lambda-endpoint-url", url]
        deploy = ["deploy", "--layer-zip", str(emulator_layer.path), "--timeout", "60", "--memory", "512", *where]
        assert cli.main(deploy) == 0, capsys.readouterr().err
        out = capsys.readouterr().out
        assert "role lambdamap-runtime-role: created" in out and "function lambdamap-runtime: active" in out
        bucket = f"lambdamap-{lam.access_key}-{lam.region}"
        assert read_config_file(aws_env) == {"backend": "lambda", "function_name": "lambdamap-runtime",
                                             "bucket": bucket, "region": lam.region, "endpoint_url": url,
                                             "lambda_endpoint_url": url}
        iam = boto3.client("iam", region_name=lam.region, endpoint_url=url)
        assert iam.get_role(RoleName="lambdamap-runtime-role")["Role"]["RoleName"] == "lambdamap-runtime-role"

        assert cli.main(deploy) == 0  # idempotent
        assert ": unchanged" in capsys.readouterr().out

        monkeypatch.delenv("AWS_ENDPOINT_URL")  # from here on the client works from the config file alone
        assert cli.main(["status"]) == 0, capsys.readouterr().err
        out = capsys.readouterr().out
        assert "Active" in out and "ok: the runtime matches this client" in out

        with lambdamap.default_executor(progress=False) as pwex:
            assert pwex.backend == "lambda"
            offset = 5
            futures = pwex.map(lambda x: x * x + offset, range(12), chunksize=3, keep=True)
            assert lambdamap.get_all_results(futures, timeout=240) == [x * x + offset for x in range(12)]
            assert {f.stats.platform for f in futures} == {"lambda"}
            with pytest.raises(Boom, match="no 7"):
                pwex.submit(_fail, 7).result(timeout=240)

        s3 = boto3.client("s3", region_name=lam.region, endpoint_url=url)
        kept = s3.list_objects_v2(Bucket=bucket, Prefix="lambdamap/jobs/").get("KeyCount", 0)
        assert kept >= 8  # 4 invocations: args + result each
        assert cli.main(["cleanup"]) == 0
        assert f"object(s) from s3://{bucket}" in capsys.readouterr().out
        assert s3.list_objects_v2(Bucket=bucket, Prefix="lambdamap/jobs/").get("KeyCount", 0) == 0

        monkeypatch.setenv("AWS_ENDPOINT_URL", url)
        assert cli.main(["destroy", "--delete-bucket"]) == 0
        out = capsys.readouterr().out
        assert "deleted the function lambdamap-runtime" in out and "deleted the role" in out
        assert f"deleted the bucket {bucket}" in out
        assert cli.main(["status"]) == 1
        assert "does not exist" in capsys.readouterr().out
