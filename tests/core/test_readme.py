"""Every README code block marked ``<!-- run -->`` runs, in a fresh interpreter, and prints what its comments say."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

README = Path(__file__).resolve().parents[2] / "README.md"
BLOCKS = re.findall(r"<!-- run -->\s*```python\n(.*?)```", README.read_text(), flags=re.S)


def test_readme_has_runnable_examples():
    assert len(BLOCKS) >= 2


def test_readme_starts_with_exactly_two_setup_commands():
    text = README.read_text()
    first_block = re.search(r"```bash\n(.*?)```", text, flags=re.S).group(1).strip().splitlines()
    assert len(first_block) == 2
    assert first_block[1] == "bash .ci/run"
    assert "lambdamap.demo" in first_block[0]
    assert text.index("```bash") < text.index("##")  # before any section


@pytest.mark.parametrize("index", range(len(BLOCKS)))
def test_readme_example_runs_and_prints_what_it_says(index, tmp_path):
    code = BLOCKS[index]
    env = {**os.environ, "LAMBDAMAP_CONFIG": str(tmp_path / "none.toml"), "LAMBDAMAP_BACKEND": "local"}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300, env=env,
                         cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    # Lines like `print(x)   # expected` must print `expected`.
    expected = [m.group(1).strip() for line in code.splitlines()
                if line.lstrip().startswith("print(") and (m := re.search(r"#\s*(.+)$", line))]
    printed = out.stdout.strip().splitlines()
    for want in expected:
        want = want.split(", in input order")[0]
        assert any(want in line for line in printed), (want, printed)
