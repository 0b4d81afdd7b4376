"""Fault injection on S3: the S3 server (SeaweedFS) stops in the middle of Lambda jobs (MiniStack runs our handler).

Both sides see an outage. The client stores a job's inputs, and its collector lists and reads result records; the
workers load inputs and write their record. botocore retries connection errors on both sides, so a short outage
costs time, not results. A long one ends in a clear StorageError naming the endpoint: never a silent gap, never a
hang. A worker that cannot write its record is lost, found by its deadline, and re-run while ``retries`` allow.

The server under test is a SeaweedFS of this module's own (the session's stays up for the other tests), with the
identity MiniStack hands to handlers; it is stopped with SIGKILL (a crash) and restarted on the same ports and data.
"""

from __future__ import annotations

import os
import threading
import time
import uuid
from pathlib import Path

import pytest
from support.aws_servers import ACCOUNT, AwsStack, Endpoint, create_bucket, seaweedfs
from support.lambda_fixtures import COMPLETION_MARGIN, FUNCTION, SHORT_FUNCTION, SHORT_TIMEOUT
from support.marks import runs_per_input

import lambdamap
from lambdamap.aws.invoker import LambdaInvoker
from lambdamap.aws.s3 import S3Storage
from lambdamap.errors import StorageError, WorkerLostError

pytestmark = pytest.mark.timeout(120)

BUCKET = "lambdamap-faults"
#: A runtime function with time to spare: botocore's backoff (exponential, full jitter) may wait several seconds
#: past the end of an outage before a worker's next attempt, and the function's time limit must not end it first.
PATIENT_FUNCTION = "lambdamap-runtime-patient"
PATIENT_TIMEOUT = 40


@pytest.fixture(scope="module")
def s3_server(local_aws: AwsStack):
    with seaweedfs([(ACCOUNT, local_aws.lam.secret_key)]) as server:
        create_bucket(server, BUCKET)
        yield server


@pytest.fixture(scope="module")
def patient_function(local_aws: AwsStack) -> str:
    local_aws.create_function(PATIENT_FUNCTION, timeout=PATIENT_TIMEOUT)
    return PATIENT_FUNCTION


@pytest.fixture
def s3(s3_server: Endpoint):
    """The module's SeaweedFS, running before and after each test (a failed test may leave it stopped)."""
    if not s3_server.running():
        s3_server.restart()
    yield s3_server
    if not s3_server.running():
        s3_server.restart()


@pytest.fixture
def marks(tmp_path) -> Path:
    path = tmp_path / "marks"
    path.mkdir()
    return path


def executor_on(stack: AwsStack, server: Endpoint, function: str, *, max_attempts: int = 10,
                completion_margin: float = COMPLETION_MARGIN) -> lambdamap.Executor:
    """A Lambda executor with its data on ``server``; ``max_attempts`` bounds the client's S3 retries per request
    (the workers keep S3Storage's default)."""
    session = server.session()
    storage = S3Storage(BUCKET, region=stack.region, endpoint_url=server.endpoint_url, session=session,
                        max_attempts=max_attempts)
    invoker = LambdaInvoker(function, region=stack.region, endpoint_url=stack.lambda_endpoint_url, session=session,
                            workers=16, storage=storage, completion_margin=completion_margin)
    # These tests are about S3 going away: every invocation's arguments go through S3 here, as large ones always do
    # (small ones would travel inside the Invoke payload and never touch the server).
    invoker.inline_limit = 0
    return lambdamap.Executor(storage, invoker, progress=False, backend="lambda")


def gated(marks: Path, gate: Path, *, only_odd: bool = False):
    """A function that leaves one file per execution in ``marks`` (handlers run on this machine), then waits until
    the ``gate`` file exists (odd inputs only, with ``only_odd``) and returns ``2 * x``. The test opens the gate once
    the server is down, so those calls' records are written during the outage."""

    def run(x):
        (marks / f"{x}-{uuid.uuid4().hex}").touch()
        if x % 2 or not only_odd:
            give_up = time.monotonic() + 60  # the function's time limit comes first
            while not gate.exists() and time.monotonic() < give_up:
                time.sleep(0.05)
        return x * 2

    return run


def wait_for(condition, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(0.05)


def test_a_short_outage_in_the_middle_of_a_job_loses_nothing(local_aws, s3, patient_function, marks, tmp_path,
                                                             caplog):
    n, gate = 8, tmp_path / "gate"
    # Two attempts per client request: the collector's listing fails during the outage and must carry on.
    with caplog.at_level("WARNING", logger="lambdamap"), \
            executor_on(local_aws, s3, patient_function, max_attempts=2) as pwex:
        futures = pwex.map(gated(marks, gate, only_odd=True), range(n), chunksize=1)
        even, odd = futures[::2], futures[1::2]
        lambdamap.get_all_results(even, timeout=60)  # the collector works before the outage...
        down_at = time.time()
        s3.halt()
        gate.touch()  # ...and the odd calls finish while the server is down: their workers retry the record's write
        assert not any(f.done() for f in odd)
        time.sleep(2.0)
        s3.restart()
        up_at = time.time()
        results = lambdamap.get_all_results(futures, timeout=90)
        assert pwex._collector._thread.is_alive()
        assert pwex.submit(abs, -7).result(timeout=60) == 7  # the executor is still usable
    assert results == [x * 2 for x in range(n)]
    assert runs_per_input(marks) == {x: 1 for x in range(n)}  # no call was lost and re-run
    ended_in_outage = [f.call_id for f in odd if down_at < f.stats.function_end < up_at]
    assert ended_in_outage, "no call finished during the outage: the test proves nothing"
    # The client saw the outage too: its listing of results failed, and the collector carried on.
    assert "cannot list" in caplog.text and s3.endpoint_url in caplog.text


def test_a_job_submitted_during_a_short_outage_waits_for_the_server(local_aws, s3):
    outage = 2.0
    submitted: dict[str, object] = {}

    def submit() -> None:  # storing the job's inputs: botocore retries until the server is back
        started = time.monotonic()
        try:
            submitted["futures"] = pwex.map(abs, [-x for x in range(6)], chunksize=1)
        except BaseException as exc:
            submitted["error"] = exc
        submitted["seconds"] = time.monotonic() - started

    with executor_on(local_aws, s3, FUNCTION) as pwex:
        s3.halt()
        submitter = threading.Thread(target=submit)
        submitter.start()
        time.sleep(outage)
        s3.restart()  # from this thread: a server started by a thread that ends would get its parent-death signal
        submitter.join(timeout=90)
        assert not submitter.is_alive() and "error" not in submitted, submitted
        assert submitted["seconds"] >= outage
        assert lambdamap.get_all_results(submitted["futures"], timeout=60) == list(range(6))


def test_a_long_outage_fails_the_job_with_a_clear_storage_error(local_aws, s3):
    with executor_on(local_aws, s3, SHORT_FUNCTION, max_attempts=2) as pwex:
        futures = pwex.map(abs, [-x for x in range(4)], chunksize=1)
        s3.halt()  # and it stays down: no worker can load its inputs, the client cannot list results
        started = time.monotonic()
        done, not_done = lambdamap.wait(futures, timeout=60)
        elapsed = time.monotonic() - started
        assert not not_done
        for fut in futures:
            error = fut.exception()
            assert isinstance(error, StorageError), repr(error)
            message = str(error)
            assert f"call {fut.call_id} of job {fut.job_id}" in message
            assert s3.endpoint_url in message and "cannot be read" in message
        assert elapsed < SHORT_TIMEOUT + COMPLETION_MARGIN + 15
        # A job submitted while the server is down fails at once with the same clear error, and invokes nothing.
        invokes = len(local_aws.proxy.invokes())
        with pytest.raises(StorageError, match=f"at {s3.endpoint_url}"):
            pwex.map(abs, [1, 2])
        assert len(local_aws.proxy.invokes()) == invokes
        s3.restart()
        assert pwex.submit(abs, -5).result(timeout=60) == 5  # the executor works again once the server is back


def test_workers_that_cannot_write_their_record_are_rerun_when_retries_allow(local_aws, s3, tmp_path):
    n, gate = 3, tmp_path / "gate"
    margin = 10.0  # the server is back before the deadline (function timeout + margin), so the re-runs can succeed
    retried_marks, unretried_marks = tmp_path / "retried", tmp_path / "unretried"
    retried_marks.mkdir()
    unretried_marks.mkdir()
    with executor_on(local_aws, s3, SHORT_FUNCTION, completion_margin=margin) as pwex:
        started = time.monotonic()
        retried = pwex.map(gated(retried_marks, gate), range(n), chunksize=1, retries=1)
        unretried = pwex.map(gated(unretried_marks, gate), range(n), chunksize=1)
        # Every call has run when the server goes; the workers' final write fails until the function's time limit
        # (SHORT_TIMEOUT after the call started, at most) ends them, and only then does the server come back.
        wait_for(lambda: len(os.listdir(retried_marks)) + len(os.listdir(unretried_marks)) == 2 * n, 60,
                 "every call to start")
        s3.halt()
        gate.touch()
        time.sleep(SHORT_TIMEOUT + 0.5)
        s3.restart()
        assert time.monotonic() - started < SHORT_TIMEOUT + margin, "the server came back after the deadline"
        assert lambdamap.get_all_results(retried, timeout=90) == [x * 2 for x in range(n)]
        done, not_done = lambdamap.wait(unretried, timeout=30)
        assert not not_done
    assert [f.stats.attempts for f in retried] == [2] * n
    assert runs_per_input(retried_marks) == {x: 2 for x in range(n)}  # the first run's record never landed
    assert runs_per_input(unretried_marks) == {x: 1 for x in range(n)}
    for fut in unretried:
        error = fut.exception()
        assert isinstance(error, WorkerLostError), repr(error)
        assert f"call {fut.call_id} of job {fut.job_id}" in str(error) and "no result after" in str(error)
