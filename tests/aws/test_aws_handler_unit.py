"""Unit tests of the Lambda handler in-process, on local storage, with a stand-in for Lambda's context object.
(The same handler runs for real under MiniStack in test_lambda_backend.py.)"""

from __future__ import annotations

import pickle
from types import SimpleNamespace

import pytest

from lambdamap.aws import handler as aws_handler
from lambdamap.core import keys
from lambdamap.core.serialize import dumps_calls, dumps_function
from lambdamap.core.task import ResultRecord, TaskSpec, client_versions
from lambdamap.errors import VersionMismatchError
from lambdamap.storage.local import LocalStorage


def context(request_id: str = "req-1", remaining_ms: int = 60_000) -> SimpleNamespace:
    return SimpleNamespace(aws_request_id=request_id, memory_limit_in_mb="1024", function_name="fn",
                           function_version="$LATEST", log_stream_name="stream",
                           get_remaining_time_in_millis=lambda: remaining_ms)


def make_spec(storage: LocalStorage, fn, args: list, *, versions: dict | None = None, timeout=None) -> TaskSpec:
    job = keys.new_job_id()
    func_key = keys.blob_key("lm", "f" + job)
    storage.put(func_key, dumps_function(fn))
    args_key = keys.args_key("lm", job, 0)
    storage.put(args_key, dumps_calls([((a,), {}) for a in args], 0))
    return TaskSpec(job_id=job, invocation=0, storage=storage.location(), func_key=func_key, args_key=args_key,
                    result_key=keys.result_key("lm", job, 0), call_start=0, call_count=len(args),
                    versions=versions or client_versions(), timeout=timeout)


def record_of(storage: LocalStorage, spec: TaskSpec) -> ResultRecord:
    return ResultRecord.loads(storage.get(spec.result_key))


@pytest.fixture
def storage(tmp_path) -> LocalStorage:
    return LocalStorage(tmp_path)


def test_handler_runs_calls_and_records_lambda_facts(storage, monkeypatch):
    monkeypatch.setattr(aws_handler, "_cold", True)
    spec = make_spec(storage, lambda x: x * 10, [1, 2])
    summary = aws_handler.lambda_handler(spec.to_dict(), context("r-1"))
    assert summary["ok"] and summary["failed_calls"] == 0 and summary["cold_start"] is True
    record = record_of(storage, spec)
    assert [pickle.loads(o.value) for o in record.outcomes] == [10, 20]
    assert record.platform == "lambda"
    assert record.extra["request_id"] == "r-1" and record.extra["cold_start"] is True
    assert record.extra["memory_limit_mb"] == 1024 and record.extra["remaining_ms_at_start"] == 60_000

    second = make_spec(storage, lambda x: x, [1])
    assert aws_handler.lambda_handler(second.to_json(), context("r-2"))["cold_start"] is False  # JSON events too
    assert record_of(storage, second).extra["cold_start"] is False


def test_user_exceptions_are_results_not_handler_errors(storage):
    def fail(x):
        raise RuntimeError(f"no {x}")

    spec = make_spec(storage, fail, [3])
    summary = aws_handler.lambda_handler(spec.to_dict(), context())  # must not raise (Lambda would retry)
    assert summary["failed_calls"] == 1
    outcome = record_of(storage, spec).outcomes[0]
    assert outcome.error_type == "RuntimeError" and "no 3" in outcome.traceback


def test_repeated_delivery_neither_reruns_nor_changes_the_result(storage, tmp_path):
    marks = tmp_path / "marks"
    marks.mkdir()

    def count(x):
        import uuid

        (marks / f"{x}-{uuid.uuid4().hex}").touch()
        return x + 1

    spec = make_spec(storage, count, [5])
    aws_handler.lambda_handler(spec.to_dict(), context("first"))
    first = storage.get(spec.result_key)
    for request_id in ("retry-1", "retry-2"):
        aws_handler.lambda_handler(spec.to_dict(), context(request_id))
    assert storage.get(spec.result_key) == first
    assert len(list(marks.iterdir())) == 1


def test_version_mismatch_names_both_versions_and_the_fix(storage):
    theirs = {**client_versions(), "cloudpickle": "0.0.1", "python": "3.99"}
    spec = make_spec(storage, lambda x: x, [1], versions=theirs)
    aws_handler.lambda_handler(spec.to_dict(), context())
    record = record_of(storage, spec)
    assert record.setup_error_type == "VersionMismatchError"
    error = pickle.loads(record.setup_error)
    assert isinstance(error, VersionMismatchError)
    ours = client_versions()
    for text in ("client '0.0.1'", f"runtime {ours['cloudpickle']!r}", "client '3.99'", f"runtime {ours['python']!r}",
                 "lambdamap deploy"):
        assert text in str(error)


def test_a_spec_from_another_lambdamap_version_is_reported_where_the_client_looks(storage):
    spec = make_spec(storage, lambda x: x, [1])
    event = {**spec.to_dict(), "spec_version": 99, "new_field": 1}
    summary = aws_handler.lambda_handler(event, context())
    assert summary["ok"] is False
    error = pickle.loads(record_of(storage, spec).setup_error)
    assert isinstance(error, VersionMismatchError) and "lambdamap deploy" in str(error)


def test_garbage_events_do_not_raise():
    assert aws_handler.lambda_handler({"hello": "world"}, context())["ok"] is False
    assert aws_handler.lambda_handler("not json at all", context())["ok"] is False


def test_watchdog_record_fails_every_call_by_name_and_wins_over_a_late_record(storage, monkeypatch):
    from lambdamap.errors import TaskTimeoutError

    exits = []
    monkeypatch.setattr(aws_handler.os, "_exit", exits.append)  # the real watchdog ends the process
    spec = make_spec(storage, lambda x: x, [1, 2, 3])
    gate = aws_handler._ResultGate(storage, spec.result_key)
    aws_handler._time_out(gate, spec, 4.0, "its timeout of 2 s", {"cold_start": False}, 0.0)
    assert exits == [1]
    record = record_of(storage, spec)
    assert sorted(record.errors) == [0, 1, 2] and record.extra["timed_out"] is True
    for error in record.errors.values():
        assert error.error_type == "TaskTimeoutError" and "its timeout of 2 s" in error.error_message
        assert isinstance(pickle.loads(error.error), TaskTimeoutError)
    gate.put(spec.result_key, b"the calls' own record, too late")
    assert record_of(storage, spec).errors.keys() == {0, 1, 2}
