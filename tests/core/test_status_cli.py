"""`lambdamap status` and `lambdamap cleanup` on every backend, and without boto3 (the README's `.[dml]` install)."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

import lambdamap
from lambdamap.cli import main


@pytest.fixture
def clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """No LAMBDAMAP_* variables and a private (missing) config file, returned."""
    for name in [n for n in os.environ if n.startswith("LAMBDAMAP_")]:
        monkeypatch.delenv(name)
    config = tmp_path / "lambdamap.toml"
    monkeypatch.setenv("LAMBDAMAP_CONFIG", str(config))
    return config


def _run_without_boto3(argv: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    # None in sys.modules makes every `import boto3` / `import botocore...` raise ImportError, as when the aws
    # extra is not installed.
    code = textwrap.dedent(f"""
        import sys
        sys.modules["boto3"] = sys.modules["botocore"] = None
        from lambdamap.cli import main
        code = main({argv!r})
        assert "boto3" not in sys.modules or sys.modules["boto3"] is None
        sys.exit(code)
    """)
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, env=env)


def test_status_and_cleanup_of_a_local_backend_need_no_boto3(clean_env, tmp_path):
    env = dict(os.environ)
    status = _run_without_boto3(["status"], env)
    assert status.returncode == 0, status.stderr
    assert status.stdout.startswith("backend local (default)\n") and "storage_dir" in status.stdout
    assert "boto3" not in status.stdout + status.stderr

    cleanup = _run_without_boto3(["cleanup"], env)
    assert cleanup.returncode == 0, cleanup.stderr
    assert "nothing to clean up (backend local" in cleanup.stdout and "boto3" not in cleanup.stdout + cleanup.stderr

    store = tmp_path / "store"
    (store / "lambdamap" / "jobs" / "j1" / "args").mkdir(parents=True)
    (store / "lambdamap" / "jobs" / "j1" / "args" / "000000.pkl").write_bytes(b"x")
    cleanup = _run_without_boto3(["cleanup", "--storage-dir", str(store)], env)
    assert cleanup.returncode == 0, cleanup.stderr
    assert f"deleted 1 object(s) from {store}" in cleanup.stdout


def test_status_of_the_lambda_backend_without_boto3_shows_the_config_then_says_what_is_missing(clean_env):
    clean_env.write_text('backend = "lambda"\nbucket = "my-bucket"\nregion = "eu-central-1"\n')
    proc = _run_without_boto3(["status"], dict(os.environ))
    assert proc.returncode == 1
    assert "backend lambda (config file)" in proc.stdout and "my-bucket  (config file)" in proc.stdout
    assert "checking the deployment needs boto3" in proc.stderr and "pip install 'lambdamap[aws]'" in proc.stderr
    assert "deploying" not in proc.stderr


def test_status_names_the_backend_and_where_each_setting_comes_from(clean_env, monkeypatch, capsys):
    assert main(["status"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == "backend local (default)" and lines[1] == f"config file {clean_env} (none)"
    assert any(line.split()[:2] == ["storage_dir", "not"] and "lambdamap jobs" in line for line in lines)

    clean_env.write_text('backend = "dask"\nstorage_dir = "/shared/lm"\n')
    monkeypatch.setenv("LAMBDAMAP_DASK_ADDRESS", "tcp://10.0.0.1:8786")
    assert main(["status"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("backend dask (config file)\n")
    assert "dask_address         tcp://10.0.0.1:8786  (LAMBDAMAP_DASK_ADDRESS)" in out
    assert "storage_dir          /shared/lm  (config file)" in out
    assert "function_name" not in out  # a Lambda setting, not this backend's


def test_cleanup_deletes_the_jobs_kept_in_a_storage_dir(clean_env, tmp_path, capsys):
    store = str(tmp_path / "store")
    with lambdamap.local_executor(workers=1, storage_dir=store, progress=False) as pwex:
        futures = pwex.map(abs, range(4), chunksize=2, keep=True)
        lambdamap.wait(futures)
        assert main(["jobs", "--storage-dir", store]) == 0
        assert futures[0].job_id in capsys.readouterr().out
        assert main(["cleanup", "--storage-dir", store]) == 0
        assert "deleted 4 object(s)" in capsys.readouterr().out  # 2 invocations: args and result each
        assert main(["jobs", "--storage-dir", store]) == 0
        assert "no jobs in storage" in capsys.readouterr().out


def test_jobs_without_shared_storage_says_how_to_see_them(clean_env, capsys):
    assert main(["jobs"]) == 1
    err = capsys.readouterr().err
    assert "private temporary folder" in err and "storage_dir=" in err and "--storage-dir DIR" in err
