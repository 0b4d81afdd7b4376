"""The one backend registry: names -> the module that builds an executor for it, imported only when chosen.

A backend module defines ``make_executor(config: Config, **objects) -> Executor``; ``objects`` are the live things
a factory may pass beside the configuration (a Dask client, a Storage). Third-party packages add backends without
touching lambdamap through the ``lambdamap.backends`` entry-point group (``name = "package.module"``), or by
calling :func:`register_backend`.
"""

from __future__ import annotations

import importlib
import importlib.metadata
from typing import TYPE_CHECKING, Any

from lambdamap.config import Config
from lambdamap.errors import ConfigError

if TYPE_CHECKING:
    from lambdamap.core.executor import Executor

ENTRY_POINT_GROUP = "lambdamap.backends"

# name -> (module with make_executor, install hint for a missing optional dependency)
_BACKENDS: dict[str, tuple[str, str | None]] = {
    "local": ("lambdamap.backends.local", None),
    "lambda": ("lambdamap.aws.invoker", "pip install 'lambdamap[aws]'"),
    "dask": ("lambdamap.backends.dask", "pip install 'lambdamap[dask]'"),
}


def register_backend(name: str, module: str, install_hint: str | None = None) -> None:
    """Register a backend: ``module`` must define ``make_executor(config, **objects) -> Executor``."""
    if not name or not isinstance(name, str):
        raise ConfigError(f"a backend name must be a non-empty string, got {name!r}")
    _BACKENDS[name] = (module, install_hint)


def _entry_points() -> dict[str, tuple[str, str | None]]:
    found: dict[str, tuple[str, str | None]] = {}
    for entry in importlib.metadata.entry_points(group=ENTRY_POINT_GROUP):
        found[entry.name] = (entry.value.split(":")[0], None)
    return found


def backend_names() -> list[str]:
    """Every backend that can be chosen: built in, registered, or installed through entry points."""
    return sorted({**_entry_points(), **_BACKENDS})


def executor_from_config(config: Config, **objects: Any) -> Executor:
    """Import the configured backend's module and build its executor."""
    known = {**_entry_points(), **_BACKENDS}
    if config.backend not in known:
        raise ConfigError(f"unknown backend {config.backend!r}: choose one of {', '.join(sorted(known))} (or "
                          f"install a package that registers it under the {ENTRY_POINT_GROUP!r} entry points)")
    module_name, hint = known[config.backend]
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        if exc.name and exc.name.split(".")[0] == "lambdamap":
            raise
        raise ConfigError(
            f"the {config.backend!r} backend needs the package {exc.name!r}, which is not installed: "
            f"{hint or 'install it'}"
        ) from exc
    executor: Executor = module.make_executor(config, **objects)
    return executor
