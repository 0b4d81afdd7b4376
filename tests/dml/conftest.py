"""Fixtures of the dml tests: one warm local executor for the whole session."""

from __future__ import annotations

import pytest

import lambdamap


@pytest.fixture(scope="session")
def dml_executor():
    """A local pool of 2 workers shared by the dml tests (the workers stay warm between fits)."""
    with lambdamap.local_executor(workers=2, progress=False) as pwex:
        yield pwex
