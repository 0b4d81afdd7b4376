"""Test-wide plugins: every ``tests/support/<backend>_fixtures.py`` provides a ``<backend>_backend`` fixture
returning a :class:`support.harness.BackendUnderTest`; the contract suite runs against each of them."""

from __future__ import annotations

from pathlib import Path

import pytest

_SUPPORT = Path(__file__).parent / "support"
BACKENDS = sorted(p.name[: -len("_fixtures.py")] for p in _SUPPORT.glob("*_fixtures.py"))
pytest_plugins = [f"support.{name}_fixtures" for name in BACKENDS]


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest):
    """Each registered backend in turn (session-scoped executors underneath)."""
    return request.getfixturevalue(f"{request.param}_backend")
