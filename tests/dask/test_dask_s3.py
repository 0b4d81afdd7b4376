"""A Dask cluster that shares no folder with the client: job objects go through a real S3 server (SeaweedFS).

The workers get their S3 credentials from their own environment (here: the nanny's ``env``), as workers on other
machines would; the task specs carry only the bucket and endpoint.
"""

from __future__ import annotations

import numpy as np
import pytest

import lambdamap
from lambdamap.aws.s3 import S3Storage
from lambdamap.core import keys

BUCKET = "lambdamap-dask"


@pytest.fixture(scope="module")
def s3_server():
    from support.aws_servers import create_bucket, seaweedfs

    with seaweedfs() as server:
        create_bucket(server, BUCKET)
        yield server


def _storage(server) -> S3Storage:
    return S3Storage(BUCKET, region=server.region, endpoint_url=server.endpoint_url, session=server.session())


@pytest.mark.timeout(180)
def test_cluster_with_s3_storage(s3_server):
    import distributed

    worker_env = {"AWS_ACCESS_KEY_ID": s3_server.access_key, "AWS_SECRET_ACCESS_KEY": s3_server.secret_key,
                  "AWS_DEFAULT_REGION": s3_server.region}
    storage = _storage(s3_server)
    with distributed.LocalCluster(n_workers=1, threads_per_worker=1, processes=True, host="127.0.0.1",
                                  dashboard_address=None, scheduler_kwargs={"dashboard_address": "127.0.0.1:0"},
                                  env=worker_env) as cluster, \
            distributed.Client(cluster, set_as_default=False) as client, \
            lambdamap.dask_executor(client, storage=storage, progress=False) as pwex:
        assert pwex.storage.location()["kind"] == "s3"
        data = np.arange(1000.0)
        ref = pwex.put(data)
        futures = pwex.map(lambda i: float(ref.get()[i]) * 2, [0, 10, 999], keep=True)
        assert lambdamap.get_all_results(futures, timeout=120) == [0.0, 20.0, 1998.0]
        results = storage.list(keys.results_prefix(pwex.prefix, futures[0].job_id))
        assert results  # the records went through S3
        assert all(f.stats.platform == "dask" for f in futures)
        pwex.cleanup()
    assert storage.list(pwex.prefix + "/") == []


def test_workers_without_s3_credentials_are_refused_before_any_work(s3_server, dask_client):
    # The session cluster's workers have no credentials for this server.
    with pytest.raises(lambdamap.PreflightError, match="Give the workers credentials"):
        lambdamap.dask_executor(dask_client, storage=_storage(s3_server))
