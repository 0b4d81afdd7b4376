"""Per-map Lambda memory (``map(..., memory=MB)``, checked by :mod:`lambdamap.core.memory`): the alias that serves
each size.

``lambdamap deploy --memory-sizes 1769,3538`` publishes one function version per size and points an alias named by
:func:`alias_name` at it; the Lambda invoker invokes that alias. A memory size is a function setting, not an
invocation setting, on Lambda: a version per size is how one function serves several.
"""

from __future__ import annotations

ALIAS_PREFIX = "mem-"


def alias_name(memory_mb: int) -> str:
    """The alias of the function version deployed at ``memory_mb`` (e.g. ``mem-3538``)."""
    return f"{ALIAS_PREFIX}{memory_mb}"


def alias_memory(name: str) -> int | None:
    """The memory size an alias named by :func:`alias_name` stands for; None for any other alias."""
    digits = name.removeprefix(ALIAS_PREFIX)
    return int(digits) if name.startswith(ALIAS_PREFIX) and digits.isdigit() else None
