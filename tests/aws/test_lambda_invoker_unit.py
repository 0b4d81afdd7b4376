"""Unit tests of LambdaInvoker with botocore's Stubber (in-process API responses). The same paths run against a
real HTTP endpoint in test_lambda_backend.py."""

from __future__ import annotations

import threading
import time

import boto3
import pytest
from botocore.stub import Stubber

from lambdamap.aws.invoker import ASYNC_PAYLOAD_LIMIT, LambdaInvoker
from lambdamap.core.task import TaskSpec
from lambdamap.errors import InvocationError, PreflightError

pytestmark = pytest.mark.timeout(60)


class Sink:
    """Records what the invoker reports (the collector's role)."""

    def __init__(self) -> None:
        self.starts: list[int] = []
        self.losses: list[tuple[int, BaseException]] = []
        self.event = threading.Event()

    def started(self, spec):
        self.starts.append(spec.invocation)
        return True

    def finished(self, spec):
        raise AssertionError("the Lambda invoker cannot know when a worker finished")

    def lost(self, spec, error):
        self.losses.append((spec.invocation, error))
        self.event.set()


def wait_for(condition, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.01)


def spec(n: int = 0, **changes) -> TaskSpec:
    fields = dict(job_id="20240101T000000-abcd", invocation=n, storage={"kind": "s3", "bucket": "b"}, func_key="f",
                  args_key="a", result_key=f"r{n}", call_start=n, call_count=1)
    fields.update(changes)
    return TaskSpec(**fields)


def stubbed_invoker(**options) -> tuple[LambdaInvoker, Stubber]:
    session = boto3.Session(aws_access_key_id="a", aws_secret_access_key="b", region_name="eu-central-1")
    invoker = LambdaInvoker("fn", session=session, workers=2, **options)
    invoker.function_config = {"Timeout": 30}  # preflight is tested against the real endpoint
    invoker.completion_deadline = 30 + invoker.completion_margin
    return invoker, Stubber(invoker.client)


def throttle(stub: Stubber) -> None:
    stub.add_client_error("invoke", service_error_code="TooManyRequestsException", service_message="Rate Exceeded.",
                          http_status_code=429)


def test_throttling_is_retried_until_it_goes_through():
    invoker, stub = stubbed_invoker()
    for _ in range(3):
        throttle(stub)
    stub.add_response("invoke", {"StatusCode": 202},
                      {"FunctionName": "fn", "InvocationType": "Event", "Payload": spec().to_json().encode()})
    sink = Sink()
    with stub:
        invoker.start(sink)
        invoker.invoke([spec()])
        wait_for(lambda: len(sink.starts) == 4)
        invoker.close()
        stub.assert_no_pending_responses()
    assert sink.losses == [] and invoker.throttled == 3
    assert sink.starts == [0, 0, 0, 0]  # the completion clock restarts on every attempt


def test_other_errors_fail_the_invocation_with_the_aws_message():
    invoker, stub = stubbed_invoker()
    stub.add_client_error("invoke", service_error_code="KMSAccessDeniedException", http_status_code=502,
                          service_message="Lambda was unable to decrypt the environment variables")
    sink = Sink()
    with stub:
        invoker.start(sink)
        invoker.invoke([spec(4)])
        assert sink.event.wait(10)
        invoker.close()
    [(n, error)] = sink.losses
    assert n == 4 and isinstance(error, InvocationError)
    assert "KMSAccessDeniedException" in str(error) and "unable to decrypt" in str(error) and "'fn'" in str(error)


def test_throttling_past_the_bound_fails_clearly():
    invoker, stub = stubbed_invoker(throttle_timeout=0.2)
    for _ in range(10):
        throttle(stub)
    sink = Sink()
    with stub:
        invoker.start(sink)
        invoker.invoke([spec()])
        assert sink.event.wait(10)
        invoker.close()
    [(_, error)] = sink.losses
    assert isinstance(error, InvocationError) and "throttled" in str(error) and "workers" in str(error)


def test_an_oversized_payload_fails_the_whole_batch_before_any_call():
    invoker, stub = stubbed_invoker()
    big = spec(1, storage={"kind": "s3", "bucket": "b", "endpoint_url": "http://x/" + "p" * ASYNC_PAYLOAD_LIMIT})
    sink = Sink()
    with stub:  # no responses queued: any Invoke would fail the stubber
        invoker.start(sink)
        invoker.invoke([spec(0), big])
        invoker.close()
    assert sorted(n for n, _ in sink.losses) == [0, 1] and sink.starts == []
    assert all("byte limit for asynchronous invocations" in str(e) for _, e in sink.losses)


def test_cancelled_invocations_are_not_sent():
    invoker, stub = stubbed_invoker()

    class Cancelled(Sink):
        def started(self, spec):
            return False

    sink = Cancelled()
    with stub:
        invoker.start(sink)
        invoker.invoke([spec()])
        time.sleep(0.2)
        invoker.close()
        stub.assert_no_pending_responses()


def test_preflight_without_region_or_credentials_names_both(monkeypatch, tmp_path):
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE", "AWS_REGION",
                 "AWS_DEFAULT_REGION", "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI", "AWS_CONTAINER_CREDENTIALS_FULL_URI",
                 "AWS_WEB_IDENTITY_TOKEN_FILE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    invoker = LambdaInvoker("fn")
    started = time.monotonic()
    with pytest.raises(PreflightError) as info:
        invoker.start(Sink())
    message = str(info.value)
    assert "no AWS region" in message and "no AWS credentials" in message and "AWS_ACCESS_KEY_ID" in message
    assert time.monotonic() - started < 10


def test_workers_caps_invocations_in_flight():
    """A window of workers (2) invocations: the next is sent only when an earlier one has settled."""
    invoker, _ = stubbed_invoker()
    in_flight, peak, lock = [0], [0], threading.Lock()

    def slow_invoke(**kwargs):
        with lock:
            in_flight[0] += 1
            peak[0] = max(peak[0], in_flight[0])
        time.sleep(0.05)
        with lock:
            in_flight[0] -= 1
        return {"StatusCode": 202}

    invoker.client.invoke = slow_invoke
    sink = Sink()
    invoker.start(sink)
    specs = [spec(n) for n in range(10)]
    invoker.invoke(specs)
    wait_for(lambda: len(sink.starts) == 2 and in_flight[0] == 0)
    time.sleep(0.2)
    assert sorted(sink.starts) == [0, 1]  # nothing more until one settles
    for n in range(10):
        wait_for(lambda n=n: n in sink.starts and in_flight[0] == 0)
        invoker.settled(specs[n])
    wait_for(lambda: len(sink.starts) == 10)
    invoker.close()
    assert peak[0] <= 2 and sorted(sink.starts) == list(range(10)) and sink.losses == []
    assert not invoker._outstanding and not invoker._waiting


def test_payload_is_the_spec_json_only():
    invoker, stub = stubbed_invoker()
    sent = spec(2)
    stub.add_response("invoke", {"StatusCode": 202},
                      {"FunctionName": "fn", "InvocationType": "Event", "Payload": sent.to_json().encode()})
    with stub:
        sink = Sink()
        invoker.start(sink)
        invoker.invoke([sent])
        wait_for(lambda: sink.starts == [2])
        time.sleep(0.1)
        invoker.close()
        stub.assert_no_pending_responses()  # the expected params are exact: nothing but the spec JSON is sent
