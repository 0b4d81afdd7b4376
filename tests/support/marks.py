"""Counting executions: calls touch one marker file per run (handlers run on this machine), tests count them."""

from __future__ import annotations

from pathlib import Path


def runs_per_input(marks: Path) -> dict[int, int]:
    """How many times each input ran, from files named ``{input}-{unique}`` in ``marks``."""
    counts: dict[int, int] = {}
    for path in marks.iterdir():
        x = int(path.name.split("-")[0])
        counts[x] = counts.get(x, 0) + 1
    return counts
