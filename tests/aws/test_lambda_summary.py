"""On Lambda, job summaries price the job at the function's configured memory."""

from __future__ import annotations

import pytest

import lambdamap
from lambdamap.observe.summary import lambda_cost


@pytest.mark.timeout(300)
def test_summary_on_lambda_has_a_cost_at_the_function_memory(lambda_backend):
    pwex = lambda_backend.executor
    futures = pwex.map(lambda x: x + 1, range(6), chunksize=2)
    assert lambdamap.get_all_results(futures, timeout=120) == [1, 2, 3, 4, 5, 6]
    summary = pwex.job_summary(futures)
    configured = pwex.invoker.function_config["MemorySize"]
    assert summary.memory_mb == configured
    assert summary.platform == "lambda" and summary.invocations == 3
    records = [r for j in pwex.jobs() if j.job_id == futures[0].job_id for r in j.records]
    assert summary.cost_usd == pytest.approx(lambda_cost([r["worker_end"] - r["worker_start"] for r in records],
                                                         configured))
    assert summary.cost_usd > 3 * 0.20 / 1e6  # at least the request price
