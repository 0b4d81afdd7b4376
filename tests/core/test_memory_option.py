"""`map(..., memory=MB)` off Lambda: validated the same way everywhere, carried on the task spec, and used only to price
the job summary as if it ran on Lambda at that size (local workers have the memory they have). The Lambda side is in
tests/aws/test_lambda_memory.py (emulator) and tests/deploy/test_deploy_memory_sizes.py (moto)."""

from __future__ import annotations

import os

import pytest

import lambdamap
from lambdamap.core.task import TaskSpec
from lambdamap.errors import ConfigError
from lambdamap.observe.summary import lambda_cost, summarize

pytestmark = pytest.mark.timeout(120)


def _pid(_x: int) -> int:
    return os.getpid()


@pytest.fixture(scope="module")
def pwex(tmp_path_factory):
    with lambdamap.local_executor(workers=2, storage_dir=str(tmp_path_factory.mktemp("store")),
                                  progress=False) as executor:
        yield executor


@pytest.mark.parametrize("bad", [0, 127, 10241, 3538.0, "3538", True])
def test_a_bad_memory_is_a_config_error_before_anything_is_stored(pwex, bad):
    before = pwex.storage.list("")
    with pytest.raises(ConfigError, match=r"memory must be a Lambda memory size in MB, an integer from 128 to 10240"):
        pwex.map(abs, [1, 2], memory=bad)
    assert pwex.storage.list("") == before


def test_memory_prices_a_local_job_as_if_on_lambda_and_changes_nothing_else(pwex):
    futures = pwex.map(_pid, range(4), chunksize=4, memory=3538)
    assert len(set(lambdamap.get_all_results(futures, timeout=60))) == 1  # no extra cores off Lambda
    records = [r for j in pwex.jobs() if j.job_id == futures[0].job_id for r in j.records]
    seconds = [r["worker_end"] - r["worker_start"] for r in records]
    summary = pwex.job_summary(futures)
    assert summary.memory_mb == 3538 and summary.memory_sizes_mb == (3538,)
    assert summary.cost_usd == pytest.approx(lambda_cost(seconds, 3538))
    assert pwex.job_summary(futures, memory_mb=1769).cost_usd == pytest.approx(lambda_cost(seconds, 1769))

    unpriced = pwex.map(_pid, range(2))
    lambdamap.get_all_results(unpriced, timeout=60)
    assert pwex.job_summary(unpriced).cost_usd is None  # no memory= and no Lambda function: no estimate
    mixed = pwex.job_summary(futures + unpriced)
    assert mixed.cost_usd is None and mixed.memory_sizes_mb == (3538,)  # part of it cannot be priced


def test_the_summary_prices_each_invocation_at_its_own_memory():
    rows = [{"worker_start": 0.0, "worker_end": 1.0, "warm": True, "extra": {"memory_mb": 1769}},
            {"worker_start": 0.0, "worker_end": 2.0, "warm": True, "extra": {"memory_limit_mb": 3538,
                                                                             "memory_mb": 3538}},
            {"worker_start": 0.0, "worker_end": 0.5, "warm": True, "extra": {}}]

    class Job:
        job_id, bytes_uploaded, bytes_downloaded, storage_requests, records = "j", 0, 0, 0, rows

    fut = lambdamap.Future("j", 0, 0.0)
    summary = summarize([fut], [Job()], default_memory_mb=512)
    assert summary.memory_sizes_mb == (512, 1769, 3538) and summary.memory_mb is None
    assert summary.cost_usd == pytest.approx(lambda_cost([1.0], 1769) + lambda_cost([2.0], 3538)
                                             + lambda_cost([0.5], 512))
    assert summarize([fut], [Job()], memory_mb=1024).cost_usd == pytest.approx(lambda_cost([1.0, 2.0, 0.5], 1024))


def test_the_memory_travels_on_the_task_spec_and_through_retries():
    spec = TaskSpec(job_id="j", invocation=0, storage={}, func_key="f", args_key="a", result_key="r", call_start=0,
                    call_count=1, memory_mb=3538)
    assert TaskSpec.from_json(spec.to_json()).memory_mb == 3538
    assert spec.retry().memory_mb == 3538 and spec.retry().attempt == 1
