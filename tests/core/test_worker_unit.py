"""run_task against a real LocalStorage: it always writes a record, never raises the user's errors, is idempotent."""

from __future__ import annotations

import pickle

import cloudpickle
import pytest

import lambdamap
from lambdamap.core import keys
from lambdamap.core.records import rebuild_error as _rebuild_error
from lambdamap.core.serialize import digest, dumps_calls, dumps_function
from lambdamap.core.task import ResultRecord, TaskSpec, client_versions
from lambdamap.core.worker import run_task
from lambdamap.storage.local import LocalStorage


def stage(storage, fn, args, job="j1", **spec_changes):
    data = dumps_function(fn)
    func_key = keys.blob_key("p", digest(data))  # content-addressed, as the executor does
    storage.put(func_key, data)
    storage.put(keys.args_key("p", job, 0), dumps_calls([((a,), {}) for a in args], 0))
    fields = dict(job_id=job, invocation=0, storage=storage.location(), func_key=func_key,
                  args_key=keys.args_key("p", job, 0), result_key=keys.result_key("p", job, 0), call_start=0,
                  call_count=len(args))
    fields.update(spec_changes)
    return TaskSpec(**fields)


def read_record(storage, spec):
    return ResultRecord.loads(storage.get(spec.result_key))


def test_values_and_errors_are_recorded(tmp_path):
    storage = LocalStorage(tmp_path)
    spec = stage(storage, lambda x: 10 // x, [1, 0, 5])
    returned = run_task(spec.to_json())
    record = read_record(storage, spec)
    assert returned.job_id == record.job_id == "j1"
    outcomes = record.outcomes
    assert [o.ok for o in outcomes] == [True, False, True]
    assert pickle.loads(outcomes[0].value) == 10 and pickle.loads(outcomes[2].value) == 2
    assert outcomes[1].error_type == "ZeroDivisionError" and "10 // x" in outcomes[1].traceback
    assert record.calls_run == 3 and record.worker_end >= record.worker_start and record.peak_memory_bytes > 0


def test_missing_function_still_writes_a_record(tmp_path):
    storage = LocalStorage(tmp_path)
    spec = stage(storage, abs, [1], func_key="p/blobs/missing.pkl")
    run_task(spec)
    record = read_record(storage, spec)
    assert record.setup_error_type == "ObjectNotFoundError"
    assert isinstance(_rebuild_error(record.setup_error, record.setup_traceback, record.setup_error_type,
                                     record.setup_error_message), lambdamap.ObjectNotFoundError)


def test_version_mismatch_names_both_versions_and_the_fix(tmp_path):
    storage = LocalStorage(tmp_path)
    spec = stage(storage, abs, [1], versions={"python": "3.9", "cloudpickle": "0.1", "lambdamap": "0"})
    run_task(spec)
    record = read_record(storage, spec)
    error = pickle.loads(record.setup_error)
    assert isinstance(error, lambdamap.VersionMismatchError)
    message = str(error)
    assert "client '3.9'" in message and "client '0.1'" in message and cloudpickle.__version__ in message
    assert "lambdamap runtime build" in message


def test_a_spec_from_another_lambdamap_version_is_refused(tmp_path):
    storage = LocalStorage(tmp_path)
    versions = {**client_versions(), "lambdamap": "0.0.1"}
    spec = stage(storage, abs, [1], versions=versions)
    run_task(spec)
    error = pickle.loads(read_record(storage, spec).setup_error)
    assert isinstance(error, lambdamap.VersionMismatchError)
    assert f"lambdamap: client '0.0.1', runtime {lambdamap.__version__!r}" in str(error)


def test_repeated_delivery_does_not_run_the_calls_again(tmp_path):
    storage = LocalStorage(tmp_path)
    counter = tmp_path / "count"

    def fn(x):
        with open(counter, "a") as fh:
            fh.write(".")
        return x

    spec = stage(storage, fn, [1, 2])
    first = run_task(spec)
    before = storage.get(spec.result_key)
    second = run_task(spec)
    assert counter.read_text() == ".."
    assert storage.get(spec.result_key) == before
    assert second.worker_start == first.worker_start


def test_unpicklable_return_value_is_an_error_for_that_call_only(tmp_path):
    import threading

    storage = LocalStorage(tmp_path)
    spec = stage(storage, lambda x: threading.Lock() if x else x, [0, 1])
    run_task(spec)
    outcomes = read_record(storage, spec).outcomes
    assert outcomes[0].ok and pickle.loads(outcomes[0].value) == 0
    assert outcomes[1].error_type == "SerializationError" and "return value of call 1" in outcomes[1].error_message


def test_system_exit_in_user_code_is_a_result(tmp_path):
    storage = LocalStorage(tmp_path)

    def fn(x):
        raise SystemExit(3)

    spec = stage(storage, fn, [1])
    run_task(spec)
    assert read_record(storage, spec).outcomes[0].error_type == "SystemExit"


def test_soft_timeout_inside_the_worker(tmp_path):
    import time

    storage = LocalStorage(tmp_path)
    spec = stage(storage, time.sleep, [5], timeout=0.2)
    start = time.monotonic()
    run_task(spec)
    assert time.monotonic() - start < 2
    assert read_record(storage, spec).outcomes[0].error_type == "TaskTimeoutError"


@pytest.mark.parametrize("bad", ["{}", '{"spec_version": 99}'])
def test_malformed_spec_is_rejected(bad):
    with pytest.raises(ValueError):
        run_task(bad)


@pytest.mark.parametrize("memory, expected", [("512", 1), ("3538", 2), ("10240", 5), ("", 1)])
def test_lambda_uses_one_process_per_vcpu_its_memory_buys(monkeypatch, memory, expected):
    from lambdamap.core import worker

    monkeypatch.setattr(worker, "available_cpus", lambda: 6)
    monkeypatch.setenv("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", memory)
    assert worker._default_cores("lambda") == expected
    assert worker._default_cores("local") == 1
