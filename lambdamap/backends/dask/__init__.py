"""The Dask backend: every invocation is one task on a ``distributed`` cluster, running :func:`run_task`.

::

    Executor ─▶ DaskInvoker.invoke(specs) ─▶ queue ─▶ client.submit(_run_on_dask, spec_json)   (at most
        workers tasks at once: a submitted invocation starts at once, so timeouts and cancel stay exact)
    worker thread: _run_on_dask ─▶ started-marker in storage ─▶ run_task(spec) ─▶ result record in storage
    dask done-callback ─▶ sink.finished(spec) | sink.lost(spec, WorkerLostError / ...)   ─▶ next queued spec

Results never travel through Dask: the task returns None and the collector reads the record from the shared storage,
as on every backend.

Retries belong to lambdamap, not to Dask. When a worker dies, Dask re-runs its tasks on another worker (up to
``distributed.scheduler.allowed-failures`` times), which would silently run a call again even with ``retries=0``. So
each run first writes a *started marker* for its (invocation, attempt) to storage; a run that finds the marker of its
own attempt knows an earlier run of it died, and fails at once with a :class:`WorkerLostError` (re-invoked by the
collector while ``retries`` allow). This works on any cluster without changing its configuration, and fails only
the invocations that really ran on the dead worker, not those merely queued there.

Timeouts: a running Dask task cannot be interrupted inside its worker thread. When an invocation passes
``spec.timeout`` its future fails with :class:`TaskTimeoutError`, the Dask task is cancelled and (by default) the
worker running it is restarted through its nanny, which frees the thread; other invocations running on that worker
at the time are reported lost (and retried if allowed). Without a nanny the code keeps running until it returns
and its late result is ignored.
"""


from __future__ import annotations

import logging
import secrets
import shutil
import tempfile
from typing import Any

from lambdamap.backends.dask.invoker import DaskInvoker
from lambdamap.backends.dask.worker import _probe
from lambdamap.config import Config
from lambdamap.core.executor import Executor
from lambdamap.core.task import client_versions
from lambdamap.errors import ConfigError, PreflightError
from lambdamap.storage.base import Storage

log = logging.getLogger("lambdamap")


def _connect(client_or_address: Any, connect_timeout: float) -> tuple[Any, bool]:
    """A ``distributed.Client`` and whether we created it (then we close it at shutdown)."""
    import distributed

    if isinstance(client_or_address, distributed.Client):
        return client_or_address, False
    if client_or_address is None:
        try:
            return distributed.default_client(), False
        except ValueError:
            raise ConfigError(
                "dask_executor() needs a cluster: pass a distributed.Client or a scheduler address "
                "('tcp://host:8786'), set LAMBDAMAP_DASK_ADDRESS / dask_address, or create a Client first "
                "(e.g. distributed.Client(distributed.LocalCluster()))") from None
    if isinstance(client_or_address, str):
        if not client_or_address.strip():
            raise ConfigError("the Dask scheduler address is empty: pass e.g. 'tcp://127.0.0.1:8786'")
        try:
            client = distributed.Client(client_or_address, timeout=connect_timeout, set_as_default=False)
        except (OSError, TimeoutError) as exc:
            raise PreflightError(f"cannot connect to the Dask scheduler at {client_or_address!r} within "
                                 f"{connect_timeout:g} s: {exc}. Is the scheduler running and reachable?") from exc
        return client, True
    if hasattr(client_or_address, "scheduler_address"):  # a cluster object (LocalCluster, ...)
        return distributed.Client(client_or_address, set_as_default=False), True
    raise ConfigError(f"dask_executor() takes a distributed.Client, a cluster or a scheduler address string, "
                      f"got {type(client_or_address).__name__}")


def preflight(client: Any, storage: Any, prefix: str, timeout: float) -> dict[str, Any]:
    """Run one probe task: the workers must import lambdamap with our versions and read our storage."""
    from lambdamap.core import keys
    from lambdamap.core.serialize import digest

    data = secrets.token_bytes(16)
    key = keys.preflight_key(prefix)
    storage.put(key, data)
    try:
        future = client.submit(_probe, storage.location(), key, pure=False)
        try:
            facts = future.result(timeout=timeout)
        except TimeoutError as exc:
            raise PreflightError(f"no Dask worker ran lambdamap's probe task within {timeout:g} s: does the cluster "
                                 "have workers? (raise connect_timeout= for clusters that scale up slowly)") from exc
        except Exception as exc:
            raise PreflightError(
                f"the Dask workers cannot run lambdamap's probe task: {type(exc).__name__}: {exc}. Install "
                f"lambdamap (same version as here) on every worker: pip install 'lambdamap[dask]'") from exc
    finally:
        storage.delete_prefix(key.rsplit("/", 1)[0] + "/")
    ours = client_versions()
    mismatch = [f"{name}: client {ours[name]}, worker {facts['versions'].get(name)}"
                for name in ("python", "cloudpickle", "lambdamap") if facts["versions"].get(name) != ours[name]]
    if mismatch:
        raise PreflightError(f"the Dask worker {facts['worker']} runs other versions than this client ("
                             + "; ".join(mismatch) + "): install the same versions on the workers")
    if facts["digest"] != digest(data):
        location = storage.location()
        if facts.get("storage_error"):
            hint = (f"{facts['storage_error']}. Give the workers credentials for it (environment variables, "
                    "a profile or an instance role) and make sure they reach its endpoint")
        elif location.get("kind") == "local":
            hint = (f"the folder {location.get('root')} is not shared with the workers (they run on another "
                    "machine?): pass storage_dir= a folder mounted at the same path on every worker, or "
                    "storage=S3Storage(...)")
        else:
            hint = "the probe object is not there for the workers: do they use another endpoint or bucket?"
        raise PreflightError(f"the Dask worker {facts['worker']} cannot read this executor's storage {location}: "
                             f"{hint}")
    return facts


def make_dask_executor(client_or_address: Any = None, *, storage: Any = None, storage_dir: str | None = None,
                       prefix: str = "lambdamap", progress: bool | None = None, workers: int | None = None,
                       restart_timed_out_workers: bool = True, no_workers_timeout: float = 120.0,
                       connect_timeout: float = 60.0, submit_options: dict[str, Any] | None = None) -> Executor:
    """An :class:`~lambdamap.Executor` on a Dask ``distributed`` cluster.

    ``client_or_address``: a ``distributed.Client`` (left open at shutdown), a cluster object or a scheduler
    address (we connect, and close the connection at shutdown), or None for the current default client.

    Storage: ``storage`` (any :class:`~lambdamap.storage.base.Storage`, e.g. S3 for a remote cluster), else
    ``storage_dir`` (a folder every worker sees at the same path), else a temporary folder on this machine (removed
    at shutdown), which suits clusters running on this machine. A probe task checks before any work is sent that
    the workers import lambdamap with the client's versions and can read the storage.
    """
    from lambdamap.storage.local import LocalStorage

    if storage is not None and storage_dir is not None:
        raise ConfigError("pass either storage= or storage_dir=, not both")
    if storage is not None and not isinstance(storage, Storage):
        raise ConfigError(f"storage must be a lambdamap Storage (LocalStorage, S3Storage, ...), got "
                          f"{type(storage).__name__}")
    for name, value in (("connect_timeout", connect_timeout), ("no_workers_timeout", no_workers_timeout)):
        if isinstance(value, bool) or not isinstance(value, (int, float)) or value <= 0:
            raise ConfigError(f"{name} must be a positive number of seconds, got {value!r}")
    client, owns_client = _connect(client_or_address, connect_timeout)
    owned_dir = None
    try:
        if storage is None:
            owned_dir = tempfile.mkdtemp(prefix="lambdamap-dask-") if storage_dir is None else None
            storage = LocalStorage(owned_dir or storage_dir)  # type: ignore[arg-type]
        preflight(client, storage, prefix, connect_timeout)
        invoker = DaskInvoker(client, workers=workers, restart_timed_out_workers=restart_timed_out_workers,
                              no_workers_timeout=no_workers_timeout, submit_options=submit_options)
    except BaseException:
        _release(client if owns_client else None, owned_dir)
        raise

    def _on_shutdown() -> None:
        _release(client if owns_client else None, owned_dir)

    return Executor(storage, invoker, prefix=prefix, progress=progress, on_shutdown=_on_shutdown, backend="dask")


def _release(client: Any, folder: str | None) -> None:
    if client is not None:
        try:
            client.close()
        except Exception:  # noqa: BLE001
            log.debug("could not close the Dask client", exc_info=True)
    if folder is not None:
        shutil.rmtree(folder, ignore_errors=True)


def make_executor(config: Config, *, client: Any = None, storage: Storage | None = None, **options: Any) -> Executor:
    """Build the Dask executor from a :class:`~lambdamap.config.Config` and the live objects beside it.

    ``client`` (a ``distributed.Client``, a cluster or an address) wins over ``config.dask_address``. Storage:
    ``storage`` if given, else ``config.storage_dir`` if set, else S3 ``config.bucket`` if set, else a temporary
    folder. ``config.workers`` = invocations in flight. ``options``: ``restart_timed_out_workers``,
    ``no_workers_timeout``, ``connect_timeout``, ``submit_options`` (see :func:`make_dask_executor`).
    """
    if storage is None and config.storage_dir is None and config.bucket is not None:
        from lambdamap.aws.s3 import S3Storage

        storage = S3Storage(config.bucket, region=config.region, endpoint_url=config.endpoint_url)
    unknown = set(options) - {"restart_timed_out_workers", "no_workers_timeout", "connect_timeout", "submit_options"}
    if unknown:
        raise ConfigError(f"unknown Dask option(s) {sorted(unknown)}; known: restart_timed_out_workers, "
                          "no_workers_timeout, connect_timeout, submit_options, and the Config fields")
    return make_dask_executor(client if client is not None else config.dask_address, storage=storage,
                              storage_dir=config.storage_dir, prefix=config.prefix, progress=config.progress,
                              workers=config.workers, **options)
