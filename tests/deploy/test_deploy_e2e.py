"""End to end on the Lambda emulator (MiniStack, which really runs handlers): `lambdamap deploy` creates the
bucket, role, layer and function through the S3, IAM and Lambda APIs, `lambdamap status` reads them back, and
`default_executor()` then maps through the deployed function, whose handler and lambdamap come from the layer
(MiniStack's interpreter has no lambdamap of its own).

MiniStack's Python runtime is its own interpreter (this client's Python version, without boto3), so the layer
deployed here is the minimal one plus boto3; the real Lambda runtime provides boto3.
"""

from __future__ import annotations

import concurrent.futures as cf
import os
import time

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


def _runs_then_crashes(path: str) -> None:
    with open(path, "a") as f:
        f.write("ran\n")
    os._exit(3)  # the worker dies: Lambda sees a function error


def _wait_for_lines(path, at_least: int, timeout: float) -> int:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and (not path.exists() or len(path.read_text().splitlines()) < at_least):
        time.sleep(0.2)
    return len(path.read_text().splitlines()) if path.exists() else 0


def test_deploy_status_then_map_through_the_deployed_function(emulator_layer, aws_env, monkeypatch, capsys, caplog,
                                                              tmp_path):
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
        api = boto3.client("lambda", region_name=lam.region, endpoint_url=url)
        async_config = api.get_function_event_invoke_config(FunctionName="lambdamap-runtime")
        assert (async_config["MaximumRetryAttempts"], async_config["MaximumEventAgeInSeconds"]) == (0, 21600)

        api.put_function_event_invoke_config(FunctionName="lambdamap-runtime", MaximumRetryAttempts=2)
        assert cli.main(["status", *where]) == 1
        assert "Lambda retries failed asynchronous invocations 2 time(s)" in capsys.readouterr().out
        assert cli.main(deploy) == 0  # idempotent, and repairs what differs
        assert ": unchanged" in capsys.readouterr().out
        assert api.get_function_event_invoke_config(FunctionName="lambdamap-runtime")["MaximumRetryAttempts"] == 0

        monkeypatch.delenv("AWS_ENDPOINT_URL")  # from here on the client works from the config file alone
        assert cli.main(["status"]) == 0, capsys.readouterr().err
        out = capsys.readouterr().out
        assert "Active" in out and "ok: the runtime matches this client" in out

        with caplog.at_level("WARNING", logger="lambdamap"), lambdamap.default_executor(progress=False) as pwex:
            assert "retries failed" not in caplog.text  # the client's preflight finds Lambda's retries off
            assert pwex.backend == "lambda"
            offset = 5
            futures = pwex.map(lambda x: x * x + offset, range(12), chunksize=3, keep=True)
            assert lambdamap.get_all_results(futures, timeout=240) == [x * x + offset for x in range(12)]
            assert {f.stats.platform for f in futures} == {"lambda"}
            with pytest.raises(Boom, match="no 7"):
                pwex.submit(_fail, 7).result(timeout=240)

        # A call that kills its worker runs once: MiniStack, like Lambda, would re-run it (after 1 s, then 2 s)
        # if the function's MaximumRetryAttempts were not 0. Its future is left to the shutdown below.
        runs = tmp_path / "runs.txt"
        crashing = lambdamap.default_executor(progress=False)
        crash = crashing.submit(_runs_then_crashes, str(runs))
        try:
            assert _wait_for_lines(runs, 1, timeout=120) == 1
            assert _wait_for_lines(runs, 2, timeout=10) == 1
        finally:
            # Its invocation would count as lost only after the function's timeout; stop waiting for it now, or the
            # interpreter's exit would wait for it after the servers have gone.
            crashing.cancel([crash])
            crashing.shutdown(wait=False, cancel_futures=True)
        assert crash.cancelled() or isinstance(crash.exception(timeout=0), cf.CancelledError)

        s3 = boto3.client("s3", region_name=lam.region, endpoint_url=url)
        kept = s3.list_objects_v2(Bucket=bucket, Prefix="lambdamap/jobs/").get("KeyCount", 0)
        assert kept >= 4  # 4 invocations: a result each (their small arguments travelled inside the Invoke payload)
        assert cli.main(["cleanup"]) == 0
        assert f"object(s) from s3://{bucket}" in capsys.readouterr().out
        assert s3.list_objects_v2(Bucket=bucket, Prefix="lambdamap/jobs/").get("KeyCount", 0) == 0

        monkeypatch.setenv("AWS_ENDPOINT_URL", url)
        assert cli.main(["destroy", "--delete-bucket", "--yes"]) == 0
        out = capsys.readouterr().out
        assert "deleted the function lambdamap-runtime" in out and "deleted the role" in out
        assert f"deleted the bucket {bucket}" in out
        with pytest.raises(api.exceptions.ResourceNotFoundException):  # the event invoke config went too
            api.get_function_event_invoke_config(FunctionName="lambdamap-runtime")
        assert cli.main(["status"]) == 1
        assert "does not exist" in capsys.readouterr().out
