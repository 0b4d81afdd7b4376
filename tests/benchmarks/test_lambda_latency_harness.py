"""The harness of ``benchmarks/lambda_latency.py`` works end to end, so that anyone can re-run it after changing the
client: SeaweedFS, the Lambda stand-in running the real handler, the proxies, and one measured map through them.
(What it measures is for the benchmark to report; nothing here is timed.)"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from support.aws_servers import REGION, Endpoint, create_bucket, seaweedfs

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))

import lambda_latency  # noqa: E402

pytestmark = pytest.mark.timeout(240)


@pytest.fixture(scope="module")
def harness(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Endpoint, Any]]:
    with seaweedfs() as s3:
        create_bucket(s3, lambda_latency.BUCKET)
        with lambda_latency.stand_in(s3, tmp_path_factory.mktemp("standin"), processes=1, handshake=True) as si:
            yield s3, si


def test_a_measured_map_runs_the_real_handler_through_the_proxies(harness: tuple[Endpoint, Any]) -> None:
    s3, si = harness
    si.set_delay(0.0)
    pwex = lambda_latency.make_executor(s3, si, workers=4)
    try:
        run = lambda_latency.run_once(pwex, si, 12, 1)  # checks the 12 results itself
    finally:
        pwex.shutdown(wait=False, cancel_futures=True)
    assert run["invocations"] == 12 and run["handler_errors"] == 0
    assert run["after_last_end_s"] >= 0 and run["first_handler_start_s"] >= 0
    # At most one connection per Invoke in flight (workers=4), reused after: not one per Invoke.
    assert run["lambda_connections"] <= 4


def test_a_synchronous_invoke_answers_with_the_handler_output(harness: tuple[Endpoint, Any]) -> None:
    s3, si = harness
    client = s3.session().client("lambda", region_name=REGION, endpoint_url=si.lambda_url)
    response = client.invoke(FunctionName=lambda_latency.FUNCTION, Payload=b'{"not": "a task spec"}')
    assert response["StatusCode"] == 200
    answer = json.loads(response["Payload"].read())
    assert answer["ok"] is False and "cannot read the event as a lambdamap task spec" in answer["error"]
    accepted = client.invoke(FunctionName=lambda_latency.FUNCTION, InvocationType="Event", Payload=b"{}")
    assert accepted["StatusCode"] == 202 and accepted["Payload"].read() == b""
