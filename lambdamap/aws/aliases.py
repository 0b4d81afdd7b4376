"""The deploy step behind ``map(..., memory=MB)``: one published version of the function per memory size, each
behind an alias named by :func:`lambdamap.aws.memory.alias_name` (``mem-3538``).

::

    for each size: alias up to date (its version = $LATEST's code, layers and settings at that size)? keep it
                   else: $LATEST.MemorySize = size ─▶ wait ─▶ PublishVersion ─▶ create or move the alias
    then: $LATEST back to its own memory; aliases of sizes no longer asked for removed; versions no alias
          points to any more deleted

Lambda has no per-invocation memory setting and publishes a version from $LATEST's configuration, so $LATEST runs
at each size for the moments it takes to publish it (unqualified invocations sent meanwhile get that size).
``destroy`` needs nothing extra: deleting a function deletes its versions and aliases.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterator
from typing import Any

from lambdamap.aws.clients import Aws, aws_errors
from lambdamap.aws.memory import alias_memory, alias_name

#: What a published version must share with $LATEST to still be the same deployment at another memory size.
SAME_DEPLOYMENT = ("Runtime", "Role", "Handler", "Timeout", "CodeSha256", "Architectures", "Environment")


def list_memory_aliases(lam: Any, name: str) -> dict[str, dict[str, Any]]:
    """The function's memory aliases (``mem-<MB>``) by name; other aliases are not lambdamap's and are left out."""
    found: dict[str, dict[str, Any]] = {}
    marker = None
    while True:
        page = lam.list_aliases(FunctionName=name, **({"Marker": marker} if marker else {}))
        found.update({a["Name"]: a for a in page.get("Aliases", []) if alias_memory(a["Name"]) is not None})
        marker = page.get("NextMarker")
        if not marker:
            return found


def _deployment(config: dict[str, Any]) -> tuple[Any, ...]:
    return (*(config.get(k) for k in SAME_DEPLOYMENT), [entry["Arn"] for entry in config.get("Layers", [])])


def stale_aliases(lam: Any, name: str, latest: dict[str, Any],
                  aliases: dict[str, dict[str, Any]]) -> Iterator[tuple[str, dict[str, Any]]]:
    """(alias, its version's configuration) for each of the memory ``aliases`` whose version is not $LATEST's
    deployment at the alias's size (e.g. an older layer: its lambdamap would not match the client's)."""
    for alias, entry in sorted(aliases.items()):
        config = lam.get_function_configuration(FunctionName=name, Qualifier=entry["FunctionVersion"])
        if _deployment(config) != _deployment(latest) or config.get("MemorySize") != alias_memory(alias):
            yield alias, config


def ensure_memory_aliases(aws: Aws, sizes: tuple[int, ...], memory_mb: int, wait: Callable[[Any, str, str], None],
                          description: str) -> list[str]:
    """Make the function's memory aliases exactly ``sizes``, each on a version of the current deployment at that
    size; ``memory_mb`` is $LATEST's own memory, restored afterwards. ``wait(lam, waiter, name)`` waits for an
    update. Returns what was done, one line per alias changed (nothing when all were up to date)."""
    lam, name = aws.client("lambda"), aws.target.function_name
    done: list[str] = []
    with aws_errors(f"read the aliases of the function {name}"):
        existing = list_memory_aliases(lam, name)
        latest = lam.get_function_configuration(FunctionName=name)
        stale = {alias for alias, _ in stale_aliases(lam, name, latest, existing)}
    in_use = Counter(entry["FunctionVersion"] for entry in existing.values())  # aliases per version
    released: list[str] = []  # versions an alias left: deleted last, once every alias has moved

    def release(version: str) -> None:
        in_use[version] -= 1
        released.append(version)

    current_memory = latest.get("MemorySize")
    try:
        for size in sizes:
            alias = alias_name(size)
            if alias in existing and alias not in stale:
                continue
            with aws_errors(f"publish the function {name} at {size} MB"):
                if current_memory != size:
                    lam.update_function_configuration(FunctionName=name, MemorySize=size)
                    current_memory = size
                    wait(lam, "function_updated_v2", name)
                version = lam.publish_version(FunctionName=name, Description=f"{description} at {size} MB")["Version"]
                in_use[version] += 1
                if alias in existing:
                    lam.update_alias(FunctionName=name, Name=alias, FunctionVersion=version)
                    if existing[alias]["FunctionVersion"] != version:
                        release(existing[alias]["FunctionVersion"])
                else:
                    lam.create_alias(FunctionName=name, Name=alias, FunctionVersion=version,
                                     Description=f"lambdamap: map(..., memory={size})")
            done.append(f"alias {alias}: version {version} at {size} MB")
    finally:
        if current_memory != memory_mb:
            with aws_errors(f"restore the memory of the function {name} to {memory_mb} MB"):
                lam.update_function_configuration(FunctionName=name, MemorySize=memory_mb)
                wait(lam, "function_updated_v2", name)
    for alias in sorted(set(existing) - {alias_name(size) for size in sizes}):
        with aws_errors(f"remove the alias {alias} of the function {name}"):
            lam.delete_alias(FunctionName=name, Name=alias)
            release(existing[alias]["FunctionVersion"])
        done.append(f"alias {alias}: removed (--memory-sizes no longer lists it)")
    for version in sorted(set(released)):  # each unused version would keep a copy of an old deployment
        if version != "$LATEST" and in_use[version] <= 0:
            with aws_errors(f"delete version {version} of the function {name}"):
                lam.delete_function(FunctionName=name, Qualifier=version)
    return done
