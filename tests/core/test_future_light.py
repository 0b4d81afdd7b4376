"""Futures made without a condition until someone waits on them (core/future.py): completed in bulk by the
collector, they must still behave exactly as standard futures for every waiter, callback and cancel."""

from __future__ import annotations

import concurrent.futures as cf
import random
import threading

import pytest

from lambdamap.core import future as future_module
from lambdamap.core.future import Future, complete, start


def make(n: int) -> list[Future[int]]:
    return [Future("job", i, 0.0, 0) for i in range(n)]


@pytest.fixture(params=[True, False], ids=["light", "standard-constructor"])
def light(request, monkeypatch):
    monkeypatch.setattr(future_module, "_LIGHT", request.param)
    return request.param


def test_futures_nobody_waits_on_complete_without_a_condition(light):
    futures = make(1000)
    assert start(futures)
    complete(futures, [(None, i * 2) for i in range(1000)])
    assert [f.result() for f in futures] == [i * 2 for i in range(1000)]
    assert all(f.done() and not f.cancelled() and f.exception() is None for f in futures)
    made = sum("_condition" in f.__dict__ for f in futures)
    assert made == (0 if light else 1000)


def test_errors_are_set_in_place(light):
    futures = make(3)
    boom = ValueError("boom")
    complete(futures, [(None, 1), (boom, None), (None, 3)])
    assert futures[0].result() == 1 and futures[2].result() == 3
    assert futures[1].exception() is boom
    with pytest.raises(ValueError, match="boom"):
        futures[1].result()


def test_a_waiting_thread_is_woken(light):
    futures = make(10)
    got: list[int] = []
    waiter = threading.Thread(target=lambda: got.append(futures[7].result(timeout=30)))
    waiter.start()
    while "_condition" not in futures[7].__dict__:  # the waiter has made the condition (or is about to wait on it)
        threading.Event().wait(0.001)
    complete(futures, [(None, i) for i in range(10)])
    waiter.join(30)
    assert got == [7]


def test_callbacks_run_once_before_and_after_completion(light):
    futures = make(4)
    seen: list[int] = []
    futures[1].add_done_callback(lambda f: seen.append(f.result()))
    complete(futures, [(None, i) for i in range(4)])
    futures[2].add_done_callback(lambda f: seen.append(f.result()))
    assert seen == [1, 2]


def test_cancelled_futures_stay_cancelled(light):
    futures = make(3)
    assert futures[1].cancel()
    assert start(futures)  # the other two are wanted
    complete(futures, [(None, i) for i in range(3)])
    assert futures[1].cancelled()
    with pytest.raises(cf.CancelledError):
        futures[1].result()
    assert futures[0].result() == 0 and futures[2].result() == 2
    assert not start(make(0)) and not start([futures[1]])


def test_standard_wait_and_as_completed_see_bulk_completion(light):
    futures = make(50)
    result: list[set[cf.Future[int]]] = []
    waiter = threading.Thread(target=lambda: result.append(cf.wait(futures, timeout=30).done))
    waiter.start()
    complete(futures[:25], [(None, i) for i in range(25)])
    complete(futures[25:], [(None, i) for i in range(25, 50)])
    waiter.join(30)
    assert result and len(result[0]) == 50
    assert sorted(f.result() for f in cf.as_completed(futures, timeout=5)) == list(range(50))


def test_no_waiter_is_missed_when_waits_race_with_completion(light):
    """Many threads wait on random futures while another completes them in batches: every waiter returns."""
    futures = make(20_000)
    rng = random.Random(0)
    targets = [rng.randrange(len(futures)) for _ in range(16)]
    outcomes: list[bool] = []

    def wait_on(index: int) -> None:
        outcomes.append(futures[index].result(timeout=30) == index)

    waiters = [threading.Thread(target=wait_on, args=(i,)) for i in targets]
    for t in waiters:
        t.start()
    for lo in range(0, len(futures), 500):
        complete(futures[lo:lo + 500], [(None, i) for i in range(lo, lo + 500)])
    for t in waiters:
        t.join(30)
    assert outcomes == [True] * len(targets)


def test_other_missing_attributes_still_raise():
    with pytest.raises(AttributeError, match="no attribute 'nope'"):
        _ = make(1)[0].nope
