"""LambdaInvoker's window when a result is known before its Invoke call has returned (a fast function behind a slow
network): the place it held must go to the next waiting invocation at once. botocore's Stubber stands in for the
Lambda API."""

from __future__ import annotations

import threading
import time

import boto3
import pytest
from botocore.stub import Stubber

from lambdamap.aws.invoker import LambdaInvoker
from lambdamap.core.task import TaskSpec

pytestmark = pytest.mark.timeout(60)


def spec(n: int) -> TaskSpec:
    return TaskSpec(job_id="20240101T000000-abcd", invocation=n, storage={"kind": "s3", "bucket": "b"}, func_key="f",
                    args_key="a", result_key=f"r{n}", call_start=n, call_count=1)


class SettlesAtOnce:
    """A collector whose results land while the Invoke call is still on its way back."""

    def __init__(self, invoker: LambdaInvoker) -> None:
        self.invoker = invoker
        self.starts: list[int] = []
        self.lock = threading.Lock()

    def started(self, task: TaskSpec) -> bool:
        with self.lock:
            self.starts.append(task.invocation)
        self.invoker.settled(task)
        return True

    def finished(self, task: TaskSpec) -> None:
        raise AssertionError("the Lambda invoker cannot know when a worker finished")

    def lost(self, task: TaskSpec, error: BaseException) -> None:
        raise AssertionError(f"invocation {task.invocation} lost: {error}")


def test_a_result_known_before_its_invoke_returned_frees_the_window_for_the_next() -> None:
    session = boto3.Session(aws_access_key_id="a", aws_secret_access_key="b", region_name="eu-central-1")
    invoker = LambdaInvoker("fn", session=session, workers=1)
    invoker.function_config = {"Timeout": 30}  # no preflight: the Stubber answers Invoke only
    invoker.completion_deadline = 30 + invoker.completion_margin
    stub = Stubber(invoker.client)
    for _ in range(3):
        stub.add_response("invoke", {"StatusCode": 202})
    sink = SettlesAtOnce(invoker)
    with stub:
        invoker.start(sink)
        invoker.invoke([spec(0), spec(1), spec(2)])
        deadline = time.monotonic() + 20
        while len(sink.starts) < 3 and time.monotonic() < deadline:
            time.sleep(0.01)
        invoker.close()
    assert sink.starts == [0, 1, 2], "the window stayed full after its only invocation had settled"
