"""Client configuration: one frozen dataclass, read once (explicit kwargs > environment > config file > defaults).

The config stays on the client. It is never shipped to workers and never passed around as a dict.

Environment variables are ``LAMBDAMAP_<FIELD>`` in upper case (``LAMBDAMAP_BACKEND=lambda``,
``LAMBDAMAP_BUCKET=...``). The config file is TOML, at ``$LAMBDAMAP_CONFIG`` or ``~/.config/lambdamap/config.toml``,
with the same field names at top level or under a ``[lambdamap]`` table::

    backend = "lambda"
    function_name = "lambdamap-runtime"
    bucket = "my-bucket"
    region = "eu-central-1"
"""

from __future__ import annotations

import dataclasses
import os
import tomllib
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

from lambdamap.errors import ConfigError


@dataclass(frozen=True)
class Config:
    """Everything an executor factory may need. Fields not used by the chosen backend are ignored."""

    backend: str = "local"
    #: Local backend: worker processes (default: CPU count). Lambda: invocations in flight (default 100).
    #: Dask: invocations in flight (default: the cluster's total worker threads).
    workers: int | None = None
    #: Local/Dask: folder for job objects (default: a temporary folder per executor).
    storage_dir: str | None = None
    #: Key prefix for everything stored.
    prefix: str = "lambdamap"
    #: Lambda backend.
    function_name: str = "lambdamap-runtime"
    bucket: str | None = None
    region: str | None = None
    endpoint_url: str | None = None
    lambda_endpoint_url: str | None = None
    memory_mb: int | None = None
    #: Dask backend: scheduler address (``tcp://host:port``).
    dask_address: str | None = None
    #: Progress bars: None = automatic (only on a terminal), False = never, True = always.
    progress: bool | None = None

    def __post_init__(self) -> None:
        # Which names exist is the backend registry's business (lambdamap.backends.registry), checked when an
        # executor is built, so that third-party backends need no change here.
        if not isinstance(self.backend, str) or not self.backend:
            raise ConfigError(f"backend must be a backend name such as 'local', got {self.backend!r}")
        if self.workers is not None and (isinstance(self.workers, bool) or not isinstance(self.workers, int)
                                         or self.workers < 1):
            raise ConfigError(f"workers must be a positive integer or None, got {self.workers!r}")
        if not self.prefix or self.prefix.startswith("/") or self.prefix.endswith("/"):
            raise ConfigError(f"prefix must be a non-empty key prefix without leading or trailing '/', got "
                              f"{self.prefix!r}")

    def replace(self, **changes: Any) -> Config:
        return dataclasses.replace(self, **changes)


_FIELDS = {f.name: f for f in fields(Config)}


def default_config_path() -> Path:
    explicit = os.environ.get("LAMBDAMAP_CONFIG")
    if explicit:
        return Path(explicit).expanduser()
    base = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(base) / "lambdamap" / "config.toml"


def _coerce(name: str, value: Any, source: str) -> Any:
    """Convert strings from the environment to the field's type; check types from files and kwargs."""
    annotation = str(_FIELDS[name].type)
    if value is None:
        return None
    if "int" in annotation and not isinstance(value, bool):
        if isinstance(value, str):
            try:
                return int(value)
            except ValueError:
                raise ConfigError(f"{name} from {source} must be an integer, got {value!r}") from None
        if isinstance(value, int):
            return value
        raise ConfigError(f"{name} from {source} must be an integer, got {type(value).__name__} {value!r}")
    if "bool" in annotation:
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in {"1", "true", "yes", "on", "0", "false", "no", "off"}:
            return value.lower() in {"1", "true", "yes", "on"}
        raise ConfigError(f"{name} from {source} must be true or false, got {value!r}")
    if not isinstance(value, str):
        raise ConfigError(f"{name} from {source} must be a string, got {type(value).__name__} {value!r}")
    return value


def read_config_file(path: Path) -> dict[str, Any]:
    if not path.is_file():
        return {}
    try:
        data = tomllib.loads(path.read_text())
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ConfigError(f"cannot read config file {path}: {exc}") from exc
    data = data.get("lambdamap", data)
    unknown = set(data) - set(_FIELDS)
    if unknown:
        raise ConfigError(f"unknown keys in {path}: {sorted(unknown)}; known keys: {sorted(_FIELDS)}")
    return {k: _coerce(k, v, str(path)) for k, v in data.items()}


def load_config(**overrides: Any) -> Config:
    """Build the config: explicit ``overrides`` > ``LAMBDAMAP_*`` environment > config file > defaults."""
    unknown = set(overrides) - set(_FIELDS)
    if unknown:
        raise ConfigError(f"unknown option(s) {sorted(unknown)}; known options: {sorted(_FIELDS)}")
    values: dict[str, Any] = read_config_file(default_config_path())
    for name in _FIELDS:
        env = os.environ.get(f"LAMBDAMAP_{name.upper()}")
        if env is not None and env != "":
            values[name] = _coerce(name, env, f"environment variable LAMBDAMAP_{name.upper()}")
    for name, value in overrides.items():
        if value is not None:
            values[name] = _coerce(name, value, "arguments")
    return Config(**values)
