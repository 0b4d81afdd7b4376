"""The README's main job (`python -m lambdamap.demo`) runs a map and a dml fit and prints the dml summary."""

from __future__ import annotations

import os
import subprocess
import sys


def test_demo_main_job(tmp_path):
    env = {**os.environ, "LAMBDAMAP_CONFIG": str(tmp_path / "none.toml"), "LAMBDAMAP_BACKEND": "local"}
    out = subprocess.run([sys.executable, "-m", "lambdamap.demo"], capture_output=True, text=True, timeout=600,
                         env=env, cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    text = out.stdout
    assert f"sum of squares = {sum(x * x for x in range(1000))}" in text
    assert "dml.fit_plr (true theta 0.5)" in text and "std err" in text and "97.5 %" in text
    row = next(line for line in text.splitlines() if line.startswith("d "))  # the treatment's summary row
    coef = float(row.split()[1])
    assert 0.2 < coef < 0.8  # true theta 0.5, n = 500
