"""BLAS / OpenMP threads on warm workers: ``extra_env`` must change them even after numpy has loaded, and only for
its own calls; ``cores=`` slices run one thread each."""

from __future__ import annotations

import pytest

import lambdamap

threadpoolctl = pytest.importorskip("threadpoolctl")


def blas_threads(_: object = None) -> list[int]:
    import numpy  # noqa: F401 - loads the BLAS library whose threads are counted
    from threadpoolctl import threadpool_info

    return sorted({info["num_threads"] for info in threadpool_info() if info["user_api"] == "blas"})


@pytest.fixture(scope="module")
def pwex():
    with lambdamap.local_executor(workers=1, progress=False) as ex:
        yield ex


def test_extra_env_limits_blas_threads_on_a_warm_worker(pwex):
    assert pwex.submit(blas_threads).result(timeout=60) == [1]  # the local pool's default: one thread per worker
    asked = pwex.map(blas_threads, [None], extra_env={"OPENBLAS_NUM_THREADS": "2", "OMP_NUM_THREADS": "2"})
    assert asked[0].result(timeout=60) == [2]  # numpy was loaded already: the variables alone would give [1]
    assert pwex.submit(blas_threads).result(timeout=60) == [1]  # and only for that map's calls


def test_requested_reads_the_smallest_thread_variable():
    from lambdamap.core.threads import requested

    assert requested({"OMP_NUM_THREADS": "4", "MKL_NUM_THREADS": "2", "OTHER": "1"}) == 2
    assert requested({"OMP_NUM_THREADS": "many"}) is None and requested(None) is None


def test_cores_slices_follow_the_thread_limit(pwex):
    futures = pwex.map(blas_threads, range(4), chunksize=4, cores=2, extra_env={"OMP_NUM_THREADS": "2",
                                                                              "OPENBLAS_NUM_THREADS": "2"})
    assert lambdamap.get_all_results(futures) == [[2]] * 4  # the variables' own ask, in the forked slices too
    futures = pwex.map(blas_threads, range(4), chunksize=4, cores=2)
    assert lambdamap.get_all_results(futures) == [[1]] * 4
