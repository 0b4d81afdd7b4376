"""Ctrl-C's path on Lambda (emulated): queued invocations are never sent, and every future ends at once."""

from __future__ import annotations

import json
import time

import pytest
from support.lambda_fixtures import lambda_executor_for

import lambdamap


@pytest.mark.timeout(120)
def test_cancel_sends_no_queued_invocation(local_aws):
    with lambda_executor_for(local_aws, workers=2) as pwex:
        futures = pwex.map(time.sleep, [4] * 6, chunksize=1)
        job = futures[0].job_id
        deadline = time.monotonic() + 60
        while sum(f.running() for f in futures) < 2 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert pwex.cancel(futures) == 6
        assert all(f.done() for f in futures) and sum(f.cancelled() for f in futures) == 4
        time.sleep(5)  # long enough for the running two to end and free the window
        sent = [r for r in local_aws.proxy.invokes() if json.loads(r.body).get("job_id") == job]
        assert len(sent) == 2  # the four queued invocations were never sent
        assert lambdamap.get_all_results(pwex.map(abs, [-1]), timeout=60) == [1]
