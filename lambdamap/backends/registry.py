"""Backends registered by name and imported lazily, with an install hint when an optional extra is missing."""

from __future__ import annotations

import importlib

from lambdamap.config import Config
from lambdamap.core.executor import Executor
from lambdamap.errors import ConfigError

# name -> (module with make_executor(config), install hint)
_BACKENDS: dict[str, tuple[str, str | None]] = {
    "local": ("lambdamap.backends.local", None),
    "lambda": ("lambdamap.aws.invoker", "pip install 'lambdamap[aws]'"),
    "dask": ("lambdamap.backends.dask.invoker", "pip install 'lambdamap[dask]'"),
}


def register_backend(name: str, module: str, install_hint: str | None = None) -> None:
    """Register a backend: ``module`` must define ``make_executor(config: Config) -> Executor``."""
    _BACKENDS[name] = (module, install_hint)


def executor_from_config(config: Config) -> Executor:
    """Import the configured backend's module and build its executor."""
    if config.backend not in _BACKENDS:
        raise ConfigError(f"unknown backend {config.backend!r}: choose one of {', '.join(sorted(_BACKENDS))}")
    module_name, hint = _BACKENDS[config.backend]
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        if exc.name and exc.name.split(".")[0] == "lambdamap":
            raise
        raise ConfigError(
            f"the {config.backend!r} backend needs the package {exc.name!r}, which is not installed: {hint}"
        ) from exc
    return module.make_executor(config)
