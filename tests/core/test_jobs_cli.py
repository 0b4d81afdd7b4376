"""`lambdamap jobs` and `lambdamap job ID` on a shared local storage folder, during and after a job."""

from __future__ import annotations

import os
import time

import pytest

import lambdamap
from lambdamap.cli import main


def test_jobs_and_job_views(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("LAMBDAMAP_CONFIG", str(tmp_path / "none.toml"))
    gate = tmp_path / "gate"

    def wait_for_gate(x):
        while not os.path.exists(gate):
            time.sleep(0.01)
        if x == 2:
            raise ValueError("two")
        return x

    with lambdamap.local_executor(workers=2, storage_dir=str(tmp_path / "store"), progress=False) as pwex:
        kept = pwex.map(abs, range(6), chunksize=2, keep=True)
        lambdamap.wait(kept)
        running = pwex.map(wait_for_gate, range(4), chunksize=1)
        assert main(["jobs", "--storage-dir", str(tmp_path / "store")]) == 0
        rows = {line.split()[0]: line.split()[1:] for line in capsys.readouterr().out.splitlines()[1:]}
        assert rows[kept[0].job_id] == ["finished", "3", "3"]
        assert rows[running[0].job_id][:2] == ["running", "4"]
        gate.touch()
        lambdamap.wait(running)
        assert main(["job", kept[0].job_id, "--storage-dir", str(tmp_path / "store")]) == 0
        out = capsys.readouterr().out
        assert "3 of 3 invocations reported" in out and "total: 6 calls run, 0 failed" in out
        assert main(["job", "nope", "--storage-dir", str(tmp_path / "store")]) == 1
        assert "no job 'nope'" in capsys.readouterr().err


def test_jobs_without_shared_storage_explains(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("LAMBDAMAP_CONFIG", str(tmp_path / "none.toml"))
    for name in ("STORAGE_DIR", "BUCKET"):
        monkeypatch.delenv(f"LAMBDAMAP_{name}", raising=False)
    assert main(["jobs"]) == 1
    assert "--storage-dir" in capsys.readouterr().err


@pytest.mark.parametrize("argv", [["job"], ["jobs", "--bogus"]])
def test_jobs_usage_errors(argv):
    with pytest.raises(SystemExit) as info:
        main(argv)
    assert info.value.code == 2


def test_a_kept_dask_job_lists_its_invocations_once(dask_client, tmp_path, capsys, monkeypatch):
    # The Dask backend keeps an attempt marker beside each invocation's args; counting every key under args/ as
    # an invocation listed a job of 3 as 6, "running" for ever.
    monkeypatch.setenv("LAMBDAMAP_CONFIG", str(tmp_path / "none.toml"))
    store = tmp_path / "store"
    with lambdamap.dask_executor(dask_client, storage_dir=str(store), progress=False) as pwex:
        futures = pwex.map(abs, range(6), chunksize=2, keep=True)
        lambdamap.wait(futures)
        assert [f.result() for f in futures] == list(range(6))
        job_id = futures[0].job_id
        assert main(["jobs", "--storage-dir", str(store)]) == 0
        rows = {line.split()[0]: line.split()[1:] for line in capsys.readouterr().out.splitlines()[1:]}
        assert rows[job_id] == ["finished", "3", "3"]
        assert main(["job", job_id, "--storage-dir", str(store)]) == 0
        assert "job " + job_id + ": finished, 3 of 3 invocations reported" in capsys.readouterr().out
