"""PyWren's own test idioms, written against lambdamap: code ported from PyWren must run unchanged apart from the
import (``wait`` returning lists in input order, ``succeeded()`` / ``errored()``, ``WAIT_DUR_SEC``)."""

from __future__ import annotations

import concurrent.futures as cf
import time

import numpy as np
import pytest

import lambdamap


def wait_x_sec_and_plus_one(x):
    time.sleep(x)
    return x + 1


def plus_one(x):
    return x + 1


def sum_error(_):
    raise Exception("whaaaa")


@pytest.fixture(scope="module")
def wrenexec():
    with lambdamap.local_executor(workers=2, progress=False) as pwex:
        yield pwex


def test_wait_all_completed_returns_the_futures_in_input_order(wrenexec):
    x = np.arange(6) / 10
    futures = wrenexec.map(wait_x_sec_and_plus_one, x[::-1], chunksize=1)  # the last ones finish first
    fs_dones, fs_notdones = lambdamap.wait(futures, return_when=lambdamap.ALL_COMPLETED)
    assert isinstance(fs_dones, list) and fs_dones == futures and fs_notdones == []
    np.testing.assert_array_equal(np.array([f.result() for f in fs_dones]), x[::-1] + 1)


def test_wait_any_completed_loop_as_pywren_writes_it(wrenexec):
    x = np.arange(4) / 4
    futures = wrenexec.map(wait_x_sec_and_plus_one, x, chunksize=1)
    fs_notdones = futures
    rounds = 0
    while len(fs_notdones) > 0:
        fs_dones, fs_notdones = lambdamap.wait(fs_notdones, return_when=lambdamap.ANY_COMPLETED, WAIT_DUR_SEC=1)
        assert len(fs_dones) > 0 and fs_notdones == [f for f in futures if f in fs_notdones]
        rounds += 1
    assert rounds <= len(x)
    np.testing.assert_array_equal(np.array([f.result() for f in futures]), x + 1)


def test_wait_twice_and_always(wrenexec):
    futures = wrenexec.map(plus_one, np.arange(10))
    lambdamap.wait(futures)
    fs_dones, fs_notdones = lambdamap.wait(futures, return_when=lambdamap.ALWAYS)
    assert fs_dones == futures and fs_notdones == []
    np.testing.assert_array_equal(np.array(lambdamap.get_all_results(futures)), np.arange(10) + 1)


def test_succeeded_errored(wrenexec):
    x = np.arange(10)
    fut = wrenexec.call_async(wait_x_sec_and_plus_one, 0.5)
    assert not fut.succeeded() and not fut.errored()
    assert fut.result() == 1.5
    assert fut.succeeded() and not fut.errored()

    fut = wrenexec.call_async(sum_error, x)
    with pytest.raises(Exception, match="whaaaa"):
        fut.result()
    assert not fut.succeeded() and fut.errored()


@pytest.mark.parametrize("name", ["WAIT_DUR_SEC", "THREADPOOL_SIZE"])
def test_pywren_wait_options_are_checked(wrenexec, name):
    futures = wrenexec.map(plus_one, [1])
    with pytest.raises(ValueError, match=name):
        lambdamap.wait(futures, **{name: 0})
    assert lambdamap.wait(futures, **{name: 2})[0] == futures


def test_reduce_over_futures(wrenexec):
    futures = wrenexec.map(plus_one, np.arange(10))
    assert wrenexec.reduce(sum, futures).result(timeout=60) == 55


def test_reduce_fails_with_the_first_failure_and_never_hangs_on_a_cancel(wrenexec):
    futures = wrenexec.map(wait_x_sec_and_plus_one, [0.0, 0.0])
    failing = wrenexec.map(sum_error, [1])
    with pytest.raises(Exception, match="whaaaa"):
        wrenexec.reduce(sum, futures + failing).result(timeout=60)
    slow = wrenexec.map(wait_x_sec_and_plus_one, [30.0], chunksize=1)
    outer = wrenexec.reduce(sum, slow)
    wrenexec.cancel(slow)
    with pytest.raises(cf.CancelledError):  # the cancelled call is the reduce's failure: it ends, never hangs
        outer.result(timeout=30)
