"""The Lambda invoker keeps at most ``workers`` invocations outstanding (sent, not yet finished)."""

from __future__ import annotations

import time

import pytest
from support.lambda_fixtures import lambda_executor_for

import lambdamap


@pytest.mark.timeout(300)
def test_at_most_workers_invocations_run_at_once(local_aws):
    with lambda_executor_for(local_aws, workers=2) as pwex:
        futures = pwex.map(lambda x: (time.sleep(1.0), x)[1], range(6), chunksize=1)
        assert lambdamap.get_all_results(futures, timeout=200) == list(range(6))
        records = [r for j in pwex.jobs() if j.job_id == futures[0].job_id for r in j.records]
        assert len(records) == 6
        spans = [(r["worker_start"], r["worker_end"]) for r in records]
        # At every start, count the invocations running then: never more than the window.
        overlap = max(sum(1 for s, e in spans if s <= t < e) for t, _ in spans)
        assert overlap <= 2
        assert max(e for _, e in spans) - min(s for s, _ in spans) >= 2.9  # 6 one-second calls, 2 at a time
        assert not pwex.invoker._outstanding and not pwex.invoker._waiting
