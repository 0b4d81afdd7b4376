"""The ``memory=`` option of a map: a Lambda memory size in MB, checked the same on every backend (the Lambda
invoker runs the map on the function version deployed at that size; elsewhere it prices the job summary)."""

from __future__ import annotations

from typing import Any

from lambdamap.errors import ConfigError

MIN_MEMORY_MB = 128
MAX_MEMORY_MB = 10240
#: Lambda gives one vCPU per this many MB (up to six at 10,240 MB).
MB_PER_VCPU = 1769


def check_memory(value: Any, name: str = "memory") -> int | None:
    """``value`` as a memory size in MB (an int from 128 to 10240), or None; else a :class:`ConfigError`."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or not MIN_MEMORY_MB <= value <= MAX_MEMORY_MB:
        raise ConfigError(f"{name} must be a Lambda memory size in MB, an integer from {MIN_MEMORY_MB} to "
                          f"{MAX_MEMORY_MB} (e.g. {name}={2 * MB_PER_VCPU} for two vCPUs), or None for the "
                          f"function's own memory; got {value!r}")
    return value
