"""User scripts run as users run them: a real file as ``__main__`` in a subprocess, with a module of the user's own
beside it, on every backend. Under pytest ``__main__`` is pytest, which hid a bug that broke every Dask call from a
script (``__mp_main__`` registered once and unregistered twice); these tests run the real thing.

The script prints one section per check; the tests assert that each remote traceback names the user's real file,
line and function and shows the source line, whichever cloudpickle version is installed.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

HERE = Path(__file__).parent
#: The oldest cloudpickle pyproject.toml allows: the traceback checks run against it too.
OLDEST_CLOUDPICKLE = "3.0.0"


def sections(output: str) -> dict[str, str]:
    parts = re.split(r"^=== (\w+)$", output, flags=re.M)
    return {parts[i]: parts[i + 1].strip() for i in range(1, len(parts) - 1, 2)}


def run_script(folder: Path, *args: str, env: dict[str, str] | None = None, timeout: float = 300) -> dict[str, str]:
    """Copy the user's script and module into ``folder`` and run ``python user_script.py ARGS`` there."""
    for name in ("user_script.py", "user_helpers.py"):
        shutil.copy(HERE / name, folder / name)
    full_env = {**os.environ, "LAMBDAMAP_CONFIG": str(folder / "no-config.toml"), **(env or {})}
    full_env.pop("PYTHONPATH", None) if "PYTHONPATH" not in (env or {}) else None
    proc = subprocess.run([sys.executable, "user_script.py", *args], cwd=folder, env=full_env, capture_output=True,
                          text=True, timeout=timeout)
    assert proc.returncode == 0, f"script failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}"
    assert "Traceback" not in proc.stderr, proc.stderr  # nothing printed behind the user's back
    return sections(proc.stdout)


def source_line(path: Path, marker: str) -> tuple[int, str]:
    for number, line in enumerate(path.read_text().splitlines(), start=1):
        if marker in line:
            return number, line.strip()
    raise AssertionError(f"{marker!r} not in {path}")


def assert_tracebacks_name_the_source(out: dict[str, str], folder: Path) -> None:
    script, helpers = folder / "user_script.py", folder / "user_helpers.py"
    expected = {
        "main": ("ValueError", script, "MARK: main", "in_main"),
        "module": ("RuntimeError", helpers, "MARK: module", "fails_in_module"),
        "closure": ("KeyError", script, "MARK: closure", "inner"),
    }
    for case, (error, path, marker, function) in expected.items():
        text = out[case]
        assert text.splitlines()[0] == error
        number, line = source_line(path, marker)
        assert f'File "{path}", line {number}, in {function}\n    {line}' in text, text
        assert "<dynamic-code>" not in text
    number, line = source_line(script, '"lambda": lambda x: 1 // x')
    assert out["lambda"].splitlines()[0] == "ZeroDivisionError"
    assert f'File "{script}", line {number}, in <lambda>\n    {line}' in out["lambda"], out["lambda"]


@pytest.mark.parametrize("guard", ["guard", "noguard"])
def test_local_script(tmp_path, guard):
    out = run_script(tmp_path, "local", guard, "joblib", "dml", env={"LAMBDAMAP_BACKEND": "local"})
    assert out["abs"] == "[1, 2]"
    assert_tracebacks_name_the_source(out, tmp_path)
    assert out["joblib"] == "[0, 1, 2, 3, 4, 5]"
    assert out["dml"] == "0.5"


def test_dask_script_with_spawned_workers(tmp_path):
    out = run_script(tmp_path, "dask", "guard", "joblib", "dml")
    assert out["abs"] == "[1, 2]"  # failed with "'__mp_main__' is not registered for pickle by value"
    assert_tracebacks_name_the_source(out, tmp_path)
    assert out["joblib"] == "[0, 1, 2, 3, 4, 5]"
    assert out["dml"] == "0.5"


def test_lambda_script_configured_by_environment(tmp_path, local_aws):
    from support.lambda_fixtures import FUNCTION

    env = {
        "LAMBDAMAP_BACKEND": "lambda", "LAMBDAMAP_FUNCTION_NAME": FUNCTION, "LAMBDAMAP_BUCKET": local_aws.bucket,
        "LAMBDAMAP_REGION": local_aws.region, "LAMBDAMAP_ENDPOINT_URL": local_aws.s3.endpoint_url,
        "LAMBDAMAP_LAMBDA_ENDPOINT_URL": local_aws.lambda_endpoint_url,
        "AWS_ACCESS_KEY_ID": local_aws.s3.access_key, "AWS_SECRET_ACCESS_KEY": local_aws.s3.secret_key,
    }
    out = run_script(tmp_path, "lambda", "guard", "dml", env=env)
    assert out["abs"] == "[1, 2]"
    assert_tracebacks_name_the_source(out, tmp_path)
    assert out["dml"] == "0.5"


@pytest.fixture(scope="session")
def oldest_cloudpickle(tmp_path_factory) -> Path:
    """A folder holding the oldest supported cloudpickle, to put first on PYTHONPATH."""
    target = tmp_path_factory.mktemp("cloudpickle-oldest")
    subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--disable-pip-version-check", "--no-deps",
                    "--target", str(target), f"cloudpickle=={OLDEST_CLOUDPICKLE}"], check=True, timeout=300)
    return target


def test_local_script_with_the_oldest_cloudpickle(tmp_path, oldest_cloudpickle):
    check = subprocess.run([sys.executable, "-c", "import cloudpickle; print(cloudpickle.__version__)"],
                           env={**os.environ, "PYTHONPATH": str(oldest_cloudpickle)}, capture_output=True, text=True)
    assert check.stdout.strip() == OLDEST_CLOUDPICKLE
    out = run_script(tmp_path, "local", "guard", env={"LAMBDAMAP_BACKEND": "local",
                                                      "PYTHONPATH": str(oldest_cloudpickle)})
    assert out["abs"] == "[1, 2]"
    assert_tracebacks_name_the_source(out, tmp_path)
