"""Small invocations carry their calls inside the Invoke payload (no S3 PUT, no GET); large ones go through S3."""

from __future__ import annotations

import json

from support.lambda_fixtures import lambda_executor_for

import lambdamap
from lambdamap.aws.invoker import INLINE_ARGS_LIMIT


def test_small_arguments_travel_in_the_payload_and_large_ones_through_s3(local_aws):
    with lambda_executor_for(local_aws, workers=4) as pwex:
        puts: list[str] = []
        real_put = pwex.storage.put

        def counting_put(key, data):
            puts.append(key)
            real_put(key, data)

        pwex.storage.put = counting_put
        small = pwex.map(len, ["ab", "cde"], chunksize=1, keep=True)
        assert lambdamap.get_all_results(small, timeout=120) == [2, 3]
        job = small[0].job_id
        assert not [k for k in puts if f"/jobs/{job}/args/" in k]  # no argument object was stored
        sent = [json.loads(r.body) for r in local_aws.proxy.invokes() if json.loads(r.body).get("job_id") == job]
        assert len(sent) == 2 and all(s["inline_args"] for s in sent)
        big = "x" * (INLINE_ARGS_LIMIT + 1)
        large = pwex.map(len, [big], keep=True)
        assert lambdamap.get_all_results(large, timeout=120) == [len(big)]
        assert [k for k in puts if f"/jobs/{large[0].job_id}/args/" in k]  # this one went through S3
        pwex.cleanup()
