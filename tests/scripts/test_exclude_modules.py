"""``exclude_modules=`` as a user runs it: a real script as ``__main__`` with a module of its own that some workers
can import and others cannot. By default the module travels by value (works on both); excluded, it is pickled by
reference (fails where the workers lack it, runs the workers' own copy where they have it)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

from test_user_scripts import sections

HERE = Path(__file__).parent
NOT_FOUND = "ModuleNotFoundError: No module named 'helper'"


def test_excluded_modules_are_pickled_by_reference(tmp_path):
    shutil.copy(HERE / "exclude_script.py", tmp_path)
    shutil.copytree(HERE / "exclude_lib", tmp_path / "exclude_lib")
    env = {**os.environ, "LAMBDAMAP_CONFIG": str(tmp_path / "no-config.toml")}
    proc = subprocess.run([sys.executable, "exclude_script.py"], cwd=tmp_path, env=env, capture_output=True,
                          text=True, timeout=300)
    assert proc.returncode == 0, f"{proc.stdout}\n{proc.stderr}"
    out = sections(proc.stdout)
    # By value: the client's copy runs, and the worker never imports helper.py (so it works without it).
    assert out["default_without_lib"] == "client imported=False"
    assert out["default_with_lib"] == "client imported=False"
    # By reference: where workers lack the module it cannot be loaded; where they have it, their copy runs.
    assert out["excluded_without_lib"].startswith(NOT_FOUND), out["excluded_without_lib"]
    assert out["excluded_with_lib"] == "file imported=True"
    for entry in ("starmap", "call_async", "map_reduce"):
        assert out[entry].startswith(NOT_FOUND), (entry, out[entry])
    assert out["argument"].startswith("SerializationError: the arguments of call 0 cannot be unpickled on the "
                                      "worker: " + NOT_FOUND), out["argument"]
    assert out["imap"] == "ModuleNotFoundError"
    assert out["imap_with_lib"] == "file imported=True"
