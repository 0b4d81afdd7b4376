"""The Lambda backend against real components: SeaweedFS for S3, MiniStack running our handler for Lambda, and a
recording (optionally throttling) HTTP proxy in front of MiniStack that sees every payload the client sends."""

from __future__ import annotations

import json
import os
import time
import uuid
from dataclasses import fields
from pathlib import Path

import pytest
from support.aws_servers import LambdaProxy
from support.lambda_fixtures import COMPLETION_MARGIN, FUNCTION, SHORT_FUNCTION, SHORT_TIMEOUT, lambda_executor_for
from support.marks import runs_per_input

import lambdamap
from lambdamap.aws.invoker import LambdaInvoker
from lambdamap.core.task import ResultRecord, TaskSpec
from lambdamap.errors import PreflightError, TaskTimeoutError, VersionMismatchError, WorkerLostError

pytestmark = pytest.mark.timeout(180)


def marking(marks: Path):
    """A function that leaves one file per execution in ``marks`` (handlers run on this machine), to count runs."""

    def run(x):
        (marks / f"{x}-{uuid.uuid4().hex}").touch()
        return x * 2

    return run


def settle(marks: Path, quiet: float = 1.5, timeout: float = 30.0) -> None:
    """Wait until no new execution marks appear for ``quiet`` seconds (bounded by ``timeout``)."""
    deadline = time.monotonic() + timeout
    count, since = -1, time.monotonic()
    while time.monotonic() < deadline:
        now_count = len(list(marks.iterdir()))
        if now_count != count:
            count, since = now_count, time.monotonic()
        elif time.monotonic() - since >= quiet:
            return
        time.sleep(0.1)


@pytest.fixture
def marks(tmp_path) -> Path:
    path = tmp_path / "marks"
    path.mkdir()
    return path


@pytest.fixture
def env_credentials(local_aws, monkeypatch):
    """The standard credential chain, as a user has it: environment variables."""
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", local_aws.s3.access_key)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", local_aws.s3.secret_key)
    monkeypatch.delenv("AWS_PROFILE", raising=False)


def test_lambda_executor_from_config_and_payloads_never_contain_secrets(local_aws, env_credentials, monkeypatch):
    secret = "lm-secret-" + uuid.uuid4().hex
    monkeypatch.setenv("LAMBDAMAP_TEST_SECRET", secret)
    with LambdaProxy(local_aws.lam.endpoint_url) as proxy:
        with lambdamap.lambda_executor(function_name=FUNCTION, bucket=local_aws.bucket, region=local_aws.region,
                                       endpoint_url=local_aws.s3.endpoint_url, lambda_endpoint_url=proxy.endpoint_url,
                                       workers=8, progress=False) as pwex:
            assert pwex.backend == "lambda"
            captured = secret  # a closure and extra_env travel through S3, never in the payload
            futures = pwex.map(lambda x: (x, os.environ["API_TOKEN"] == captured), range(12), chunksize=2,
                               extra_env={"API_TOKEN": secret})
            assert lambdamap.get_all_results(futures, timeout=120) == [(x, True) for x in range(12)]
        invokes = proxy.invokes()
    assert len(invokes) == 6  # one per invocation, nothing else
    spec_fields = {f.name for f in fields(TaskSpec)}
    for request in invokes:
        for needle in (secret, local_aws.s3.secret_key, "API_TOKEN"):
            assert needle.encode() not in request.body
        assert request.headers.get("X-Amz-Invocation-Type") == "Event"
        payload = json.loads(request.body)
        assert set(payload) == spec_fields
        assert set(payload["storage"]) <= {"kind", "bucket", "region", "endpoint_url"}
        assert len(request.body) < 2000


def test_throttling_is_retried_and_every_result_arrives_exactly_once(local_aws, marks):
    # At most 3 Invoke calls per second get through; the rest get AWS's 429 TooManyRequestsException.
    with LambdaProxy(local_aws.lam.endpoint_url, throttle_rate=3.0, throttle_burst=2) as proxy:
        with lambda_executor_for(local_aws, endpoint_url=proxy.endpoint_url, workers=8) as pwex:
            futures = pwex.map(marking(marks), range(20), chunksize=1)
            assert lambdamap.get_all_results(futures, timeout=150) == [x * 2 for x in range(20)]
        invokes = proxy.invokes()
    throttled = [r for r in invokes if r.throttled]
    delivered = [r for r in invokes if not r.throttled]
    assert throttled, "the proxy did not throttle: the test proves nothing"
    # botocore's adaptive mode slows the client down after the first 429s; what was refused went again later.
    assert len(delivered) == 20
    assert sorted(json.loads(r.body)["invocation"] for r in delivered) == list(range(20))
    assert runs_per_input(marks) == {x: 1 for x in range(20)}


def _no_invokes(proxy: LambdaProxy) -> None:
    assert proxy.invokes() == [], "an invocation was sent before the preflight error"


def test_preflight_missing_bucket(local_aws, env_credentials):
    with LambdaProxy(local_aws.lam.endpoint_url) as proxy, pytest.raises(PreflightError) as info:
        lambdamap.lambda_executor(function_name=FUNCTION, bucket="no-such-bucket-lm", region=local_aws.region,
                                  endpoint_url=local_aws.s3.endpoint_url, lambda_endpoint_url=proxy.endpoint_url)
    assert "'no-such-bucket-lm' does not exist" in str(info.value) and "aws s3 mb" in str(info.value)
    _no_invokes(proxy)


def test_preflight_missing_function(local_aws, env_credentials):
    with LambdaProxy(local_aws.lam.endpoint_url) as proxy, pytest.raises(PreflightError) as info:
        lambdamap.lambda_executor(function_name="not-deployed", bucket=local_aws.bucket, region=local_aws.region,
                                  endpoint_url=local_aws.s3.endpoint_url, lambda_endpoint_url=proxy.endpoint_url)
    message = str(info.value)
    assert "'not-deployed' does not exist" in message and "lambdamap deploy" in message
    assert "bucket" not in message  # the bucket is fine: only what is wrong is listed
    _no_invokes(proxy)


def test_preflight_missing_credentials(local_aws, monkeypatch, tmp_path):
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE",
                 "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI", "AWS_CONTAINER_CREDENTIALS_FULL_URI",
                 "AWS_WEB_IDENTITY_TOKEN_FILE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    with LambdaProxy(local_aws.lam.endpoint_url) as proxy, pytest.raises(PreflightError, match="no AWS credentials"):
        lambdamap.lambda_executor(function_name=FUNCTION, bucket=local_aws.bucket, region=local_aws.region,
                                  endpoint_url=local_aws.s3.endpoint_url, lambda_endpoint_url=proxy.endpoint_url)
    assert proxy.requests == []  # nothing at all was sent without credentials


def test_preflight_missing_bucket_setting():
    with pytest.raises(PreflightError, match="no S3 bucket is configured.*LAMBDAMAP_BUCKET"):
        lambdamap.lambda_executor(function_name=FUNCTION, bucket=None, region="eu-central-1")


def test_repeated_deliveries_do_not_rerun_or_change_results(local_aws, marks):
    with LambdaProxy(local_aws.lam.endpoint_url) as proxy:
        with lambda_executor_for(local_aws, endpoint_url=proxy.endpoint_url) as pwex:
            futures = pwex.map(marking(marks), range(4), chunksize=1, keep=True)
            assert lambdamap.get_all_results(futures, timeout=120) == [0, 2, 4, 6]
            payloads = [r.body for r in proxy.invokes()]
            specs = [TaskSpec.from_json(p) for p in payloads]
            before = {s.result_key: pwex.storage.get(s.result_key) for s in specs}
            # Lambda may deliver an event again: replay every recorded payload, twice.
            client = local_aws.lam.client("lambda")
            for payload in payloads * 2:
                response = client.invoke(FunctionName=FUNCTION, InvocationType="RequestResponse", Payload=payload)
                assert "FunctionError" not in response, response["Payload"].read()
            after = {s.result_key: pwex.storage.get(s.result_key) for s in specs}
            pwex.cleanup()
    assert after == before
    assert runs_per_input(marks) == {x: 1 for x in range(4)}


class TwiceInvoker(LambdaInvoker):
    """Delivers every event twice at once, as Lambda occasionally does."""

    def invoke(self, specs):
        super().invoke(specs)
        super().invoke(specs)


def test_concurrent_duplicate_deliveries_complete_each_future_once(local_aws, marks):
    from lambdamap.aws.s3 import S3Storage

    session = local_aws.session()
    storage = S3Storage(local_aws.bucket, region=local_aws.region, endpoint_url=local_aws.s3.endpoint_url,
                        session=session)
    invoker = TwiceInvoker(FUNCTION, region=local_aws.region, endpoint_url=local_aws.lambda_endpoint_url,
                           session=session, workers=8, storage=storage, completion_margin=COMPLETION_MARGIN)
    with lambdamap.Executor(storage, invoker, progress=False, backend="lambda") as pwex:
        futures = pwex.map(marking(marks), range(6), chunksize=1, keep=True)
        assert lambdamap.get_all_results(futures, timeout=120) == [x * 2 for x in range(6)]
        job = pwex.jobs()[-1]
        settle(marks)  # let the second deliveries finish too
        # Every record in storage is whole and belongs to its invocation, whichever delivery wrote it last.
        for n in range(6):
            record = ResultRecord.loads(pwex.storage.get(f"{job.prefix}/jobs/{job.job_id}/results/{n:06d}.pkl"))
            assert record.invocation == n and record.outcomes[0].call_id == n
        pwex.cleanup()
    assert set(runs_per_input(marks)) == set(range(6))
    assert all(1 <= c <= 2 for c in runs_per_input(marks).values())


def test_version_mismatch_is_reported_with_both_versions_and_the_fix(local_aws, monkeypatch):
    import lambdamap.core.executor
    from lambdamap.core.task import client_versions

    ours = client_versions()
    monkeypatch.setattr(lambdamap.core.executor, "client_versions", lambda: {**ours, "cloudpickle": "2.0.0"})
    with lambda_executor_for(local_aws) as pwex:
        future = pwex.submit(lambda: 1)
        error = future.exception(timeout=120)
    assert isinstance(error, VersionMismatchError)
    message = str(error)
    assert "client '2.0.0'" in message and f"runtime {ours['cloudpickle']!r}" in message
    assert "lambdamap deploy" in message and f"cloudpickle=={ours['cloudpickle']}" in message


def ignore_alarms(seconds):
    """A call the in-worker timeout cannot interrupt (like a long C extension call)."""
    import signal
    import time

    signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGALRM})
    time.sleep(seconds)
    return "finished"


def test_a_call_that_cannot_be_interrupted_is_stopped_by_the_watchdog(lambda_backend):
    pwex = lambda_backend.executor
    started = time.monotonic()
    future = pwex.map(ignore_alarms, [60], timeout=2)[0]
    with pytest.raises(TaskTimeoutError, match="its timeout of 2 s.*execution environment was stopped"):
        future.result(timeout=60)
    assert time.monotonic() - started < 15
    assert pwex.submit(lambda: "alive").result(timeout=60) == "alive"


def test_lambda_time_limit_is_reported_as_a_timeout(local_aws):
    with lambda_executor_for(local_aws, SHORT_FUNCTION) as pwex:
        started = time.monotonic()
        with pytest.raises(TaskTimeoutError, match="Lambda function's time limit"):
            pwex.submit(time.sleep, 60).result(timeout=60)
        assert time.monotonic() - started < SHORT_TIMEOUT + 5


def test_a_dead_worker_is_reported_lost_after_the_deadline(local_aws):
    with lambda_executor_for(local_aws, SHORT_FUNCTION) as pwex:
        assert pwex.invoker.completion_deadline == SHORT_TIMEOUT + COMPLETION_MARGIN
        started = time.monotonic()
        with pytest.raises(WorkerLostError, match="no result after"):
            pwex.submit(os._exit, 3).result(timeout=60)
        elapsed = time.monotonic() - started
        assert SHORT_TIMEOUT + COMPLETION_MARGIN <= elapsed < SHORT_TIMEOUT + COMPLETION_MARGIN + 10


def test_preflight_warns_when_lambda_would_retry_crashed_calls_itself(local_aws, caplog):
    local_aws.create_function("lambdamap-runtime-retrying", timeout=10, max_retry_attempts=2)
    with caplog.at_level("WARNING", logger="lambdamap"), lambda_executor_for(local_aws, "lambdamap-runtime-retrying"):
        pass
    assert "retries failed asynchronous invocations 2 time(s)" in caplog.text
    assert "--maximum-retry-attempts 0" in caplog.text
    caplog.clear()
    with caplog.at_level("WARNING", logger="lambdamap"), lambda_executor_for(local_aws):
        pass
    assert "retries failed" not in caplog.text
