"""What the installed ``lambdamap`` distribution ships, read from its metadata, so that no module has to name the
other packages it carries (the runtime layer ships them all, and they are always pickled by reference)."""

from __future__ import annotations

import functools
import importlib.metadata


@functools.cache
def own_packages() -> tuple[str, ...]:
    """Top-level packages of this distribution, ``lambdamap`` first (just ``lambdamap`` when run uninstalled)."""
    try:
        listed = importlib.metadata.distribution("lambdamap").read_text("top_level.txt") or ""
    except importlib.metadata.PackageNotFoundError:
        listed = ""
    names = [n.strip() for n in listed.splitlines() if n.strip() and n.strip() != "lambdamap"]
    return ("lambdamap", *sorted(set(names)))
