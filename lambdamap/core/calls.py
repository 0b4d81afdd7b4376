"""Turning what the user passed to ``map`` / ``starmap`` into calls, checked before anything is sent.

The rule, one for all: ``map(fn, *iterables)`` calls ``fn(a, b, ...)`` with one item of each iterable, like the
built-in ``map`` but refusing iterables of different lengths (a silent truncation would drop inputs);
``starmap(fn, iterable)`` calls ``fn(*item)`` for a tuple or list item and ``fn(**item)`` for a dict item.
"""

from __future__ import annotations

import inspect
import math
from collections.abc import Callable, Iterable, Sequence
from typing import Any

from lambdamap.errors import ConfigError

Call = tuple[tuple[Any, ...], dict[str, Any]]


def _materialize(iterable: Any, what: str) -> list[Any]:
    if isinstance(iterable, (str, bytes)):
        raise ConfigError(f"{what} got a string as iterable: pass a list of inputs (wrap it: [text])")
    try:
        return list(iterable)
    except TypeError:
        raise ConfigError(f"{what} needs an iterable of inputs, got {type(iterable).__name__}") from None


def map_calls(fn: Callable[..., Any], iterables: Sequence[Iterable[Any]]) -> list[Call]:
    if not iterables:
        raise ConfigError("map() needs at least one iterable of inputs: map(fn, inputs)")
    columns = [_materialize(it, "map()") for it in iterables]
    lengths = {len(c) for c in columns}
    if len(lengths) > 1:
        raise ConfigError(f"map() got iterables of different lengths {[len(c) for c in columns]}: pass equal "
                          "lengths (map zips them; unequal lengths would silently drop inputs)")
    if len(columns) == 1:
        calls: list[Call] = [((x,), {}) for x in columns[0]]
        if calls:
            _check_single_argument(fn, columns[0][0])
        return calls
    return [(tuple(args), {}) for args in zip(*columns, strict=True)]


def starmap_calls(iterable: Iterable[Any]) -> list[Call]:
    calls: list[Call] = []
    for index, item in enumerate(_materialize(iterable, "starmap()")):
        if isinstance(item, dict):
            if not all(isinstance(k, str) for k in item):
                raise ConfigError(f"starmap() item {index} is a dict with non-string keys: keyword arguments "
                                  "need string names")
            calls.append(((), dict(item)))
        elif isinstance(item, (tuple, list)):
            calls.append((tuple(item), {}))
        else:
            raise ConfigError(f"starmap() item {index} is a {type(item).__name__}: each item must be a tuple of "
                              "positional arguments or a dict of keyword arguments (for one argument per call, "
                              "use map)")
    return calls


def _check_single_argument(fn: Callable[..., Any], first: Any) -> None:
    """``map(f, [(1, 10), (2, 20)])`` for a two-argument ``f`` is certain to fail on every worker: say so now."""
    try:
        signature = inspect.signature(fn)
    except (TypeError, ValueError):
        return  # builtins and C functions without a signature: the worker will tell
    params = list(signature.parameters.values())
    positional = [p for p in params if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    required = [p for p in positional if p.default is p.empty]
    if any(p.kind == p.VAR_POSITIONAL for p in params):
        return
    if not positional:
        raise ConfigError(f"map() calls fn with one argument, but {_name(fn)} takes no positional argument")
    if len(required) > 1:
        hint = (f"; the inputs are {type(first).__name__}s: use starmap({_name(fn)}, inputs) to unpack each one"
                if isinstance(first, (tuple, list)) else
                f"; pass one iterable per argument: map({_name(fn)}, xs, ys)")
        raise ConfigError(f"map() calls fn with one argument, but {_name(fn)} needs {len(required)} "
                          f"({', '.join(p.name for p in required)}){hint}")


def _name(fn: Callable[..., Any]) -> str:
    return getattr(fn, "__qualname__", None) or repr(fn)


def guided_chunks(n: int, size: int) -> list[int]:
    """Invocation sizes for ``n`` calls at a steady ``size``: the first invocations are small (1, 2, 4, ...) so
    the first results arrive about as soon as with chunksize 1, then ``size`` for throughput (guided scheduling)."""
    sizes: list[int] = []
    step, done = 1, 0
    while done < n and step < size:
        take = min(step, n - done)
        sizes.append(take)
        done += take
        step *= 2
    while done < n:
        take = min(size, n - done)
        sizes.append(take)
        done += take
    assert sum(sizes) == n and math.isfinite(n)
    return sizes
