"""The Lambda backend for the contract suite: SeaweedFS (S3) + MiniStack (Lambda API running our handler)."""

from __future__ import annotations

import contextlib

import pytest

import lambdamap
from support.aws_servers import AwsStack, aws_stack
from support.harness import BackendUnderTest

#: The runtime function every Lambda test uses, and a short-lived one for timeout and lost-worker tests.
FUNCTION = "lambdamap-runtime"
FUNCTION_TIMEOUT = 15
SHORT_FUNCTION = "lambdamap-runtime-short"
SHORT_TIMEOUT = 5
#: Seconds after the function's timeout before a missing result counts as lost (AWS default: 60).
COMPLETION_MARGIN = 3.0
#: MiniStack runs a process per concurrent invocation: keep one job's invocations at or below this.
MAX_INVOCATIONS = 30


@pytest.fixture(scope="session")
def local_aws() -> AwsStack:
    """The running stack, with both runtime functions deployed."""
    with aws_stack() as stack:
        stack.create_function(FUNCTION, timeout=FUNCTION_TIMEOUT)
        stack.create_function(SHORT_FUNCTION, timeout=SHORT_TIMEOUT)
        yield stack


def lambda_executor_for(stack: AwsStack, function_name: str = FUNCTION, *, endpoint_url: str | None = None,
                        workers: int = 16, **invoker_options) -> lambdamap.Executor:
    """An executor on ``stack`` (S3Storage on SeaweedFS, LambdaInvoker through the recording proxy)."""
    from lambdamap.aws.invoker import LambdaInvoker
    from lambdamap.aws.s3 import S3Storage

    session = stack.session()
    storage = S3Storage(stack.bucket, region=stack.region, endpoint_url=stack.s3.endpoint_url, session=session)
    invoker_options.setdefault("completion_margin", COMPLETION_MARGIN)
    invoker = LambdaInvoker(function_name, region=stack.region, endpoint_url=endpoint_url or stack.lambda_endpoint_url,
                            session=session, workers=workers, storage=storage, **invoker_options)
    return lambdamap.Executor(storage, invoker, progress=False, backend="lambda")


@pytest.fixture(scope="session")
def lambda_backend(local_aws: AwsStack):
    pwex = lambda_executor_for(local_aws)
    # The emulator starts a process per concurrent invocation; on a loaded 2-core machine the first 16 cold starts
    # together can outlast the 18 s loss deadline of the first test that happens to run. Pay them here, once.
    with contextlib.suppress(Exception):
        pwex.warm(timeout=120)
    try:
        yield BackendUnderTest(name="lambda", executor=pwex, max_invocations=MAX_INVOCATIONS,
                               lost_worker_seconds=FUNCTION_TIMEOUT + COMPLETION_MARGIN + 20)
    finally:
        pwex.shutdown(wait=False, cancel_futures=True)  # the tests waited for what they needed; never hang here
    # Every payload the whole session sent went through the recording proxy: none may carry the secret key.
    leaked = [r.path for r in local_aws.proxy.invokes() if local_aws.s3.secret_key.encode() in r.body]
    assert not leaked, f"{len(leaked)} Lambda payload(s) contained the AWS secret key"
