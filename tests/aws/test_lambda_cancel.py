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


def sleep_and_mark(folder):
    def fn(i):
        import os as _os
        import time as _time

        open(_os.path.join(folder, str(i)), "w").close()
        _time.sleep(0.5)
        return i
    return fn


@pytest.mark.timeout(120)
def test_a_running_invocation_stops_between_calls_once_cancelled(local_aws, tmp_path):
    with lambda_executor_for(local_aws, workers=2) as pwex:
        futures = pwex.map(sleep_and_mark(str(tmp_path)), range(12), chunksize=12)
        deadline = time.monotonic() + 60
        while len(list(tmp_path.iterdir())) < 2 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert pwex.cancel(futures) == 12
        time.sleep(4)  # the worker looks for the marker once a second
        ran = len(list(tmp_path.iterdir()))
        assert 2 <= ran < 12, ran  # stopped between calls, well before the twelfth
        time.sleep(2)
        assert len(list(tmp_path.iterdir())) == ran
