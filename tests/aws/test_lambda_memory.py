"""`map(..., memory=MB)` on the Lambda emulator (MiniStack runs our real handler): the deploy step publishes a version
and alias per size through the Lambda API, and a map with `memory=` is invoked with that alias as its qualifier, runs
in the version's execution environment (its memory size, its version number, its vCPU count for the default
`cores`), and is priced at that size.

What MiniStack cannot show, and only real AWS can: that Lambda really gives the version that much memory and that many
vCPUs (MiniStack only tells the handler the size; the CPUs are this machine's), and IAM on qualified ARNs.
"""

from __future__ import annotations

import os

import pytest
from support.lambda_fixtures import lambda_executor_for

import lambdamap
from lambdamap.aws import deploy
from lambdamap.aws.aliases import ensure_memory_aliases
from lambdamap.aws.clients import Aws, Target
from lambdamap.core.parallel_calls import available_cpus
from lambdamap.errors import ConfigError
from lambdamap.observe.summary import lambda_cost

pytestmark = pytest.mark.timeout(300)

FUNCTION = "lambdamap-memory"
OWN_MEMORY = 512


def _where(_x: int) -> tuple[int, int, str]:
    """Which process ran the call, and the memory size and version Lambda told its execution environment."""
    return os.getpid(), int(os.environ["AWS_LAMBDA_FUNCTION_MEMORY_SIZE"]), os.environ["AWS_LAMBDA_FUNCTION_VERSION"]


def test_a_map_with_memory_runs_on_the_version_deployed_at_that_size(local_aws):
    local_aws.create_function(FUNCTION, timeout=15, memory_mb=OWN_MEMORY)
    target = Target(function_name=FUNCTION, region=local_aws.region, lambda_endpoint_url=local_aws.lam.endpoint_url)
    aws = Aws(target, local_aws.session())
    done = ensure_memory_aliases(aws, (1769, 3538), OWN_MEMORY, deploy._wait, "test runtime")
    assert [line.split(":")[0] for line in done] == ["alias mem-1769", "alias mem-3538"]
    assert ensure_memory_aliases(aws, (1769, 3538), OWN_MEMORY, deploy._wait, "test runtime") == []  # idempotent
    api = aws.client("lambda")
    versions = {a["Name"]: a["FunctionVersion"] for a in api.list_aliases(FunctionName=FUNCTION)["Aliases"]}
    assert api.get_function_configuration(FunctionName=FUNCTION)["MemorySize"] == OWN_MEMORY

    pwex = lambda_executor_for(local_aws, FUNCTION)
    try:
        local_aws.proxy.clear()
        own = pwex.map(_where, range(4), chunksize=4)
        big = pwex.map(_where, range(4), chunksize=4, memory=3538)
        small = pwex.map(_where, range(2), chunksize=2, memory=1769)
        own_runs, big_runs, small_runs = (lambdamap.get_all_results(f, timeout=120) for f in (own, big, small))
        assert {(m, v) for _, m, v in own_runs} == {(OWN_MEMORY, "$LATEST")}
        assert {(m, v) for _, m, v in big_runs} == {(3538, versions["mem-3538"])}
        assert {(m, v) for _, m, v in small_runs} == {(1769, versions["mem-1769"])}
        # Lambda's default cores is its vCPUs, memory // 1769 (here capped by this machine's CPUs): the calls of
        # the one 3538 MB invocation ran in that many processes, the 512 and 1769 MB ones in one.
        assert len({pid for pid, _, _ in own_runs}) == len({pid for pid, _, _ in small_runs}) == 1
        assert len({pid for pid, _, _ in big_runs}) == min(2, available_cpus())

        qualifiers = sorted(r.path.partition("Qualifier=")[2] for r in local_aws.proxy.invokes())
        assert qualifiers == ["", "mem-1769", "mem-3538"]

        summary = pwex.job_summary(big)
        records = [r for j in pwex.jobs() if j.job_id == big[0].job_id for r in j.records]
        assert records[0]["extra"]["memory_limit_mb"] == records[0]["extra"]["memory_mb"] == 3538
        assert summary.memory_mb == 3538
        assert summary.cost_usd == pytest.approx(lambda_cost([r["worker_end"] - r["worker_start"] for r in records],
                                                             3538))
        both = pwex.job_summary(own + big)
        assert both.memory_mb is None and both.memory_sizes_mb == (OWN_MEMORY, 3538)
        assert both.cost_usd == pytest.approx(summary.cost_usd + pwex.job_summary(own).cost_usd)
        assert "estimated AWS Lambda cost at 512/3538 MB" in str(both)

        # A size with no alias is refused before anything is stored or sent.
        local_aws.proxy.clear()
        with pytest.raises(ConfigError, match=r"memory=2048 needs the alias 'mem-2048'.*--memory-sizes 2048"):
            pwex.map(_where, range(3), memory=2048)
        assert local_aws.proxy.invokes() == []
    finally:
        pwex.shutdown(wait=False, cancel_futures=True)
