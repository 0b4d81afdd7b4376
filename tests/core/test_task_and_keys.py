"""Task specs stay small, versioned JSON without config or credentials; the key layout is pure and reversible."""

from __future__ import annotations

import json
import os

import pytest

import lambdamap
from lambdamap.core import keys
from lambdamap.core.task import SPEC_VERSION, TaskSpec, client_versions


def make_spec(**changes):
    base = dict(job_id="j1", invocation=3, storage={"kind": "local", "root": "/tmp/x"}, func_key="p/blobs/a.pkl",
                args_key=keys.args_key("p", "j1", 3), result_key=keys.result_key("p", "j1", 3), call_start=30,
                call_count=10)
    base.update(changes)
    return TaskSpec(**base)


def test_spec_json_round_trip():
    spec = make_spec(timeout=2.5, attempt=1)
    again = TaskSpec.from_json(spec.to_json())
    assert again == spec and list(again.call_ids) == list(range(30, 40))
    assert again.retry().attempt == 2


def test_spec_carries_client_versions():
    versions = make_spec().versions
    assert versions == client_versions()
    assert set(versions) == {"python", "cloudpickle", "lambdamap"} and versions["lambdamap"] == lambdamap.__version__


@pytest.mark.parametrize("data, fragment", [
    ({"spec_version": SPEC_VERSION + 1}, "not supported by this runtime"),
    ({"spec_version": SPEC_VERSION, "job_id": "j", "surprise": 1}, "unknown task spec fields"),
])
def test_bad_specs_are_rejected(data, fragment):
    with pytest.raises(ValueError, match=fragment):
        TaskSpec.from_dict(data)


def test_specs_sent_by_an_executor_hold_no_secrets_or_config(monkeypatch, tmp_path):
    secret = "SECRET-VALUE-4f1c9e"
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", secret)
    monkeypatch.setenv("LAMBDAMAP_BUCKET", secret)
    sent = []
    with lambdamap.local_executor(workers=1, storage_dir=str(tmp_path)) as pwex:
        original = pwex.invoker.invoke
        monkeypatch.setattr(pwex.invoker, "invoke", lambda specs: (sent.extend(specs), original(specs))[1])
        assert lambdamap.get_all_results(pwex.map(lambda x: x + 1, range(5), chunksize=2)) == [1, 2, 3, 4, 5]
    assert len(sent) == 3
    for spec in sent:
        text = spec.to_json()
        assert secret not in text
        assert len(text) < 1024
        assert set(json.loads(text)) == set(TaskSpec.__dataclass_fields__)


def test_key_layout():
    assert keys.job_prefix("lm", "j-1") == "lm/jobs/j-1/"
    assert keys.result_key("lm", "j-1", 7) == "lm/jobs/j-1/results/000007.pkl"
    assert keys.invocation_from_result_key(keys.result_key("lm", "j-1", 123456)) == 123456
    assert keys.job_id_from_key(keys.args_key("lm", "j-1", 1)) == "j-1"
    assert keys.blob_key("lm", "ab").startswith(keys.blobs_prefix("lm"))
    assert keys.job_id_from_key("lm/blobs/x.pkl") is None
    with pytest.raises(ValueError, match="invalid job id"):
        keys.job_prefix("lm", "../etc")
    ids = {keys.new_job_id() for _ in range(100)}
    assert len(ids) == 100 and all(keys._JOB_ID.match(i) for i in ids)


def test_job_ids_sort_by_time():
    a = keys.new_job_id()
    assert a[:8] == __import__("time").strftime("%Y%m%d", __import__("time").gmtime())
    assert os.sep not in a
