"""The local backend for the contract suite."""

from __future__ import annotations

import pytest

import lambdamap
from support.harness import BackendUnderTest


@pytest.fixture(scope="session")
def local_backend():
    with lambdamap.local_executor(workers=2, progress=False) as pwex:
        yield BackendUnderTest(name="local", executor=pwex, lost_worker_seconds=15)
