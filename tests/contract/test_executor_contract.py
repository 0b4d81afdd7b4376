"""The executor contract (lambdamap.testing.executor_contract) on every backend of tests/support/*_fixtures.py,
through the ``backend`` fixture of tests/conftest.py."""

from lambdamap.testing.executor_contract import *  # noqa: F403
