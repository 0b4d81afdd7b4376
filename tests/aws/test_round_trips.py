"""Round trips on the wire, observed through a TCP proxy in front of the real servers: a small S3 PUT does not wait
for ``100 Continue``, and Invoke calls reuse their connections. (What these save in time is measured by
``benchmarks/lambda_latency.py``, with latency added; here we look at the bytes and count the connections.)"""

from __future__ import annotations

import pytest
from support.aws_servers import AwsStack, TcpProxy
from support.lambda_fixtures import lambda_executor_for

from lambdamap.aws.s3 import S3Storage

pytestmark = pytest.mark.timeout(180)


def test_a_small_put_sends_its_body_at_once_without_expect_100_continue(local_aws: AwsStack) -> None:
    with TcpProxy(local_aws.s3.endpoint_url, record=True) as proxy:
        storage = S3Storage(local_aws.bucket, region=local_aws.region, endpoint_url=proxy.endpoint_url,
                            session=local_aws.session())
        small, large = b"s" * 4096, b"L" * (2 * 2**20)  # large: above S3Storage's EXPECT_CONTINUE_ABOVE (1 MiB)
        storage.put("round-trips/small", small)
        sent_small = b"".join(proxy.sent())
        proxy.reset()
        storage.put("round-trips/large", large)
        sent_large = b"".join(proxy.sent())  # on the same connection: reset() cleared what it had sent
        assert storage.get("round-trips/small") == small
        assert storage.get("round-trips/large") == large
    head_small = sent_small.split(b"\r\n\r\n", 1)[0].lower()
    assert head_small.startswith(f"put /{local_aws.bucket}/round-trips/small ".encode())
    assert b"\r\nexpect:" not in head_small, "a small PUT waited for the server's 100 Continue (one more round trip)"
    # A large body still asks first, so that a refused request does not upload it in vain.
    head_large = sent_large.split(b"\r\n\r\n", 1)[0].lower()
    assert head_large.startswith(f"put /{local_aws.bucket}/round-trips/large ".encode())
    assert b"\r\nexpect: 100-continue" in head_large


def test_sequential_invokes_reuse_one_connection(local_aws: AwsStack) -> None:
    n = 8
    invokes_before = len(local_aws.proxy.invokes())
    with TcpProxy(local_aws.lambda_endpoint_url) as proxy:
        # workers=1: one Invoke at a time, each after the previous invocation's result arrived.
        pwex = lambda_executor_for(local_aws, endpoint_url=proxy.endpoint_url, workers=1)
        try:
            assert pwex.get_all_results(pwex.map(abs, range(-n, 0), chunksize=1)) == list(range(n, 0, -1))
        finally:
            pwex.shutdown(wait=False, cancel_futures=True)
        connections = proxy.accepts
    invokes = len(local_aws.proxy.invokes()) - invokes_before
    assert invokes >= n
    # The preflight's requests and every Invoke share one connection (two if the server dropped one in between).
    assert connections <= 2, f"{invokes} Invoke calls opened {connections} connections"
