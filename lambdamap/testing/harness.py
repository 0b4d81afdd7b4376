"""What a backend plugs into the executor contract suite (:mod:`lambdamap.testing.executor_contract`)."""

from __future__ import annotations

import math
from dataclasses import dataclass

from lambdamap.core.executor import Executor


@dataclass
class BackendUnderTest:
    """An executor of one backend plus the facts the contract suite must respect.

    ``max_invocations``: how many invocations one job may start at once on this backend (the Lambda emulator runs a
    process per concurrent invocation, so it is kept small); None means no limit. Contract tests use
    :meth:`chunksize` to size big maps for it. ``lost_worker_seconds``: how long a test may wait for a killed worker
    to be noticed.
    """

    name: str
    executor: Executor
    max_invocations: int | None = None
    lost_worker_seconds: float = 30.0
    can_kill_workers: bool = True

    def chunksize(self, n: int) -> int | None:
        if self.max_invocations is None:
            return None
        return max(1, math.ceil(n / self.max_invocations))
