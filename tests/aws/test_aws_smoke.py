"""A quick end-to-end run on the Lambda backend (the contract suite covers the executor API in depth)."""

from __future__ import annotations

import pytest

import lambdamap
from lambdamap import RemoteTraceback

pytestmark = pytest.mark.timeout(180)


class Boom(Exception):
    pass


def test_map_with_closures_chunksize_and_remote_tracebacks(lambda_backend):
    pwex = lambda_backend.executor
    offset = 7
    futures = pwex.map(lambda x: x * x + offset, range(40), chunksize=4)
    assert lambdamap.get_all_results(futures, timeout=120) == [x * x + offset for x in range(40)]
    assert {f.stats.invocation for f in futures} == set(range(10))
    assert all(f.stats.platform == "lambda" for f in futures)

    def fail(x):
        if x == 2:
            raise Boom(f"bad input {x}")
        return x

    futures = pwex.map(fail, range(4))
    assert [f.result(timeout=120) for f in (futures[0], futures[1], futures[3])] == [0, 1, 3]
    with pytest.raises(Boom, match="bad input 2") as info:
        futures[2].result(timeout=120)
    assert isinstance(info.value.__cause__, RemoteTraceback)
    assert "in fail" in info.value.__cause__.tb and "Boom: bad input 2" in info.value.__cause__.tb


def test_shared_objects_and_lambda_facts_in_records(lambda_backend):
    pwex = lambda_backend.executor
    ref = pwex.put(list(range(1000)))
    futures = pwex.map(lambda i: ref.get()[i], [1, 500, 999])
    assert lambdamap.get_all_results(futures, timeout=120) == [1, 500, 999]
    job = pwex.jobs()[-1]
    extras = [r["extra"] for r in job.records]
    assert extras and all(e["request_id"] and e["memory_limit_mb"] == 512 for e in extras)
    assert all(isinstance(e["cold_start"], bool) for e in extras)
    assert all(r["worker_end"] >= r["worker_start"] and r["peak_memory_bytes"] > 0 for r in job.records)
