"""lambdamap: run any Python function over many inputs on serverless workers.

>>> import lambdamap
>>> with lambdamap.local_executor(workers=2) as pwex:
...     futures = pwex.map(lambda x: x * x, range(5))
...     lambdamap.get_all_results(futures)
[0, 1, 4, 9, 16]
"""

from __future__ import annotations

from typing import Any

from lambdamap._version import __version__  # noqa: E402
from lambdamap.config import Config, load_config  # noqa: E402
from lambdamap.core.executor import Executor  # noqa: E402
from lambdamap.core.future import (  # noqa: E402
    ALL_COMPLETED,
    ALWAYS,
    ANY_COMPLETED,
    CallStats,
    Future,
    get_all_results,
    wait,
)
from lambdamap.core.shared import ObjectRef  # noqa: E402
from lambdamap.core.streaming import as_completed  # noqa: E402
from lambdamap.errors import (  # noqa: E402
    ConfigError,
    DeploymentError,
    ExecutorShutdownError,
    InvocationError,
    LambdaMapError,
    ObjectNotFoundError,
    PreflightError,
    RemoteTraceback,
    SerializationError,
    StorageError,
    TaskError,
    TaskTimeoutError,
    VersionMismatchError,
    WorkerLostError,
)
from lambdamap.observe.summary import JobSummary, LambdaPricing, lambda_cost, summarize  # noqa: E402

__all__ = [
    "ALL_COMPLETED", "ALWAYS", "ANY_COMPLETED", "CallStats", "Config", "ConfigError", "DeploymentError", "Executor",
    "ExecutorShutdownError", "Future", "InvocationError", "JobSummary", "LambdaMapError", "LambdaPricing",
    "ObjectNotFoundError", "ObjectRef",
    "PreflightError", "RemoteTraceback", "SerializationError", "StorageError", "TaskError", "TaskTimeoutError",
    "VersionMismatchError", "WorkerLostError", "__version__", "dask_executor", "default_executor",
    "get_all_results", "lambda_cost", "lambda_executor", "load_config", "local_executor", "plot", "summarize", "wait",
    "LocalStorage", "S3Storage", "Storage", "as_completed",
]

# Imported on first use, so that `import lambdamap` never imports boto3.
_LAZY = {"S3Storage": "lambdamap.aws.s3", "LocalStorage": "lambdamap.storage.local",
         "Storage": "lambdamap.storage.base"}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'lambdamap' has no attribute {name!r}")


def plot(futures: Any, path: Any, *, title: str | None = None) -> str:
    """Write a PNG timeline of ``futures`` (see :func:`lambdamap.observe.timeline.plot`; needs the ``plot`` extra)."""
    from lambdamap.observe.timeline import plot as _plot

    return _plot(futures, path, title=title)


_shared: dict[Config, Executor] = {}


def default_executor(**overrides: Any) -> Executor:
    """The executor the configuration names: explicit ``overrides`` > ``LAMBDAMAP_*`` environment variables > the
    config file (``$LAMBDAMAP_CONFIG`` or ``~/.config/lambdamap/config.toml``) > the local backend.

    ``overrides`` are :class:`Config` fields, e.g. ``default_executor(backend="lambda", bucket="b")``. Called again
    with the same resulting configuration in the same process (a notebook cell run twice), it returns the same live
    executor instead of starting another pool; after that executor is shut down, the next call makes a new one.
    :func:`local_executor` and the other factories always make a new executor.
    """
    config = load_config(**overrides)
    existing = _shared.get(config)
    if existing is not None and existing.usable:
        return existing
    from lambdamap.backends.registry import executor_from_config

    executor = executor_from_config(config)
    _shared[config] = executor
    return executor


def local_executor(workers: int | None = None, *, storage_dir: str | None = None, **options: Any) -> Executor:
    """An executor on a pool of ``workers`` local processes (default: the CPU count). Works offline.

    Job objects go to ``storage_dir`` (default: a temporary folder removed at shutdown). Like every factory, unset
    options come from ``LAMBDAMAP_*`` environment variables, then the config file, then defaults.
    """
    return _build("local", workers=workers, storage_dir=storage_dir, **options)


def lambda_executor(function_name: str | None = None, bucket: str | None = None, region: str | None = None,
                    **options: Any) -> Executor:
    """An executor on AWS Lambda with S3 storage (needs ``pip install 'lambdamap[aws]'``).

    Unset arguments come from ``LAMBDAMAP_*`` environment variables, then the config file that ``lambdamap deploy``
    writes, then defaults (function ``lambdamap-runtime``).

    ``options`` are further :class:`Config` fields: ``workers`` (invocations in flight), ``endpoint_url`` (an
    S3-compatible store), ``lambda_endpoint_url``, ``prefix``.
    """
    return _build("lambda", function_name=function_name, bucket=bucket, region=region, **options)


def dask_executor(client_or_address: Any = None, **options: Any) -> Executor:
    """An executor on a Dask ``distributed`` cluster (needs ``pip install 'lambdamap[dask]'``).

    Pass a ``distributed.Client``, a cluster or a scheduler address (else ``dask_address`` from the configuration).
    ``options`` are :class:`Config` fields (``workers``, ``storage_dir``, ``prefix``, ``progress``, ...), ``storage``
    (any :class:`~lambdamap.storage.base.Storage`, e.g. ``S3Storage`` for a remote cluster) and the Dask options
    ``restart_timed_out_workers``, ``no_workers_timeout``, ``connect_timeout``, ``submit_options``. ``storage_dir``
    must be shared by client and workers (the default temporary folder is, when the cluster runs on this machine).
    """
    return _build("dask", client=client_or_address, **options)


_OBJECT_OPTIONS = {"client", "storage", "session", "restart_timed_out_workers", "no_workers_timeout", "connect_timeout",
                   "submit_options"}


def _build(backend: str, **options: Any) -> Executor:
    """The one rule of every factory: explicit options > ``LAMBDAMAP_*`` environment > config file > defaults; live
    objects (a Dask client, a Storage) and backend-specific options go beside the config to the backend."""
    from lambdamap.backends.registry import executor_from_config

    objects = {k: options.pop(k) for k in list(options) if k in _OBJECT_OPTIONS}
    objects = {k: v for k, v in objects.items() if v is not None}
    return executor_from_config(load_config(backend=backend, **options), **objects)
