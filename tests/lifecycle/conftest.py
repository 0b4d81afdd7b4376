"""Helpers for lifecycle tests: run real scripts, send real signals, count what is left behind."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import psutil
import pytest


class Script:
    """A user's script run as ``python script.py`` with its own TMPDIR, so leftover folders can be counted."""

    def __init__(self, folder: Path, source: str) -> None:
        self.folder = folder
        self.tmp = folder / "tmp"
        self.tmp.mkdir()
        self.path = folder / "script.py"
        self.path.write_text(textwrap.dedent(source))
        env = {**os.environ, "TMPDIR": str(self.tmp), "LAMBDAMAP_CONFIG": str(folder / "none.toml"),
               "LAMBDAMAP_BACKEND": "local", "PYTHONUNBUFFERED": "1"}
        self.proc = subprocess.Popen([sys.executable, str(self.path)], cwd=folder, env=env, stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE, text=True)
        self.tree: set[int] = set()

    def wait_for_line(self, text: str, timeout: float = 60) -> list[str]:
        """Read stdout until a line equal to ``text``; remember the process tree seen then."""
        assert self.proc.stdout is not None
        lines = []
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            line = self.proc.stdout.readline()
            if not line:
                break
            lines.append(line.rstrip("\n"))
            if line.strip() == text:
                self.tree = descendants(self.proc.pid) | {self.proc.pid}
                return lines
        raise AssertionError(f"{text!r} never printed; got {lines}; stderr: {self.proc.stderr.read()}")

    def finish(self, timeout: float) -> tuple[int, str, str]:
        out, err = self.proc.communicate(timeout=timeout)
        return self.proc.returncode, out, err

    def leftovers(self) -> tuple[list[int], list[str]]:
        """Processes of the script's tree still alive, and lambdamap folders left in its TMPDIR."""
        alive = [p for p in self.tree if _alive(p)]
        folders = sorted(p.name for p in self.tmp.iterdir() if p.name.startswith("lambdamap-"))
        return alive, folders


def _alive(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def descendants(pid: int) -> set[int]:
    try:
        return {c.pid for c in psutil.Process(pid).children(recursive=True)}
    except psutil.NoSuchProcess:
        return set()


def wait_gone(pids, timeout: float) -> list[int]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        alive = [p for p in pids if _alive(p)]
        if not alive:
            return []
        time.sleep(0.05)
    return [p for p in pids if _alive(p)]


@pytest.fixture
def script(tmp_path):
    scripts: list[Script] = []

    def run(source: str) -> Script:
        s = Script(tmp_path, source)
        scripts.append(s)
        return s

    yield run
    for s in scripts:
        if s.proc.poll() is None:
            s.proc.kill()
            s.proc.wait()
        for pid in s.tree:
            try:
                psutil.Process(pid).kill()
            except psutil.NoSuchProcess:
                pass
