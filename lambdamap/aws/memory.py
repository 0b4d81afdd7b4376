"""Per-map Lambda memory (``map(..., memory=MB)``): the valid sizes and the alias that serves each one.

``lambdamap deploy --memory-sizes 1769,3538`` publishes one function version per size and points an alias named by
:func:`alias_name` at it; the Lambda invoker invokes that alias. A memory size is a function setting, not an
invocation setting, on Lambda: a version per size is how one function serves several. Pure (no boto3), so the
executor can validate ``memory=`` on every backend.
"""

from __future__ import annotations

from typing import Any

from lambdamap.errors import ConfigError

MIN_MEMORY_MB = 128
MAX_MEMORY_MB = 10240
#: Lambda gives one vCPU per this many MB (up to six at 10,240 MB).
MB_PER_VCPU = 1769
ALIAS_PREFIX = "mem-"


def alias_name(memory_mb: int) -> str:
    """The alias of the function version deployed at ``memory_mb`` (e.g. ``mem-3538``)."""
    return f"{ALIAS_PREFIX}{memory_mb}"


def alias_memory(name: str) -> int | None:
    """The memory size an alias named by :func:`alias_name` stands for; None for any other alias."""
    digits = name.removeprefix(ALIAS_PREFIX)
    return int(digits) if name.startswith(ALIAS_PREFIX) and digits.isdigit() else None


def check_memory(value: Any, name: str = "memory") -> int | None:
    """``value`` as a memory size in MB (an int from 128 to 10240), or None; else a :class:`ConfigError`."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or not MIN_MEMORY_MB <= value <= MAX_MEMORY_MB:
        raise ConfigError(f"{name} must be a Lambda memory size in MB, an integer from {MIN_MEMORY_MB} to "
                          f"{MAX_MEMORY_MB} (e.g. {name}={2 * MB_PER_VCPU} for two vCPUs), or None for the "
                          f"function's own memory; got {value!r}")
    return value
