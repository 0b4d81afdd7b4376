"""The key functions added for the CLI and deploy: parse_job_key inverts args_key/result_key and nothing else."""

from __future__ import annotations

import pytest

from lambdamap.core import keys


@pytest.mark.parametrize("prefix", ["lambdamap", "team/a", "jobs"])  # a prefix may itself contain "jobs"
@pytest.mark.parametrize("invocation", [0, 7, 1_234_567])
def test_parse_job_key_inverts_args_and_result_keys(prefix, invocation):
    job = keys.new_job_id()
    assert keys.parse_job_key(keys.args_key(prefix, job, invocation)) == (job, "args", invocation)
    assert keys.parse_job_key(keys.result_key(prefix, job, invocation)) == (job, "results", invocation)


def test_other_objects_under_a_job_are_not_invocations():
    job = keys.new_job_id()
    for key in (keys.attempt_marker_key("lambdamap", job, 3, 1), keys.job_prefix("lambdamap", job) + "preflight.bin",
                keys.blob_key("lambdamap", "ab" * 32), keys.staged_layer_key("lambdamap", "fn-layer", "x/y=" * 10)):
        assert keys.parse_job_key(key) is None, key
    assert keys.attempt_marker_key("lambdamap", job, 3, 1).startswith(keys.args_key("lambdamap", job, 3))


def test_everything_deploy_stages_is_under_the_prefix():
    key = keys.staged_layer_key("team/a", "fn-layer", "q/w+e=" * 8)
    assert key.startswith(keys.root_prefix("team/a")) and key.count("/") == 3
