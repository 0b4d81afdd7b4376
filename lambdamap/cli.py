"""The ``lambdamap`` command: dispatches to the subcommands.

::

    lambdamap runtime build [--python 3.12] [--arch x86_64|arm64] [--output DIR|FILE.zip] [--extra PKG ...]
    lambdamap deploy   [--python X.Y] [--arch ...] [--layer-zip FILE] [--memory MB] [--timeout S] [AWS options]
    lambdamap status   [AWS options]
    lambdamap cleanup  [--blobs] [--storage-dir DIR | AWS options]
    lambdamap destroy  [--delete-bucket [--yes]] [AWS options]
    lambdamap jobs     [--storage-dir DIR | AWS options]
    lambdamap job ID   [--storage-dir DIR | AWS options]

``status``, ``cleanup``, ``jobs`` and ``job`` work on every backend and are here; the AWS-only commands and the AWS
parts of ``status`` and ``cleanup`` are in :mod:`lambdamap.aws.cli`. Nothing imports boto3 until a command talks
to AWS, so the local commands work without the ``aws`` extra.

Each subcommand is one ``add_*`` function that adds its parser and sets ``handler`` (a function of the parsed
arguments returning the exit code); :data:`COMMANDS` lists them. To add a command, write such a function and
append it to :data:`COMMANDS` (or call :func:`register_command`).
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import sys
from collections.abc import Sequence
from typing import Any

from lambdamap.aws import cli as aws_cli
from lambdamap.aws.cli import AddCommand, Subparsers, aws_options, out
from lambdamap.config import Config, default_config_path, load_config, read_config_file
from lambdamap.errors import ConfigError, LambdaMapError

#: The config fields each backend uses, in the order ``status`` shows them (others: every field that is set).
BACKEND_FIELDS = {
    "local": ("workers", "storage_dir", "prefix", "progress"),
    "dask": ("dask_address", "workers", "storage_dir", "prefix", "progress"),
    "lambda": ("function_name", "bucket", "region", "prefix", "memory_mb", "workers", "endpoint_url",
               "lambda_endpoint_url", "progress"),
}
#: What an unset field means, where "not set" would not say.
UNSET = {
    "storage_dir": "not set: a private temporary folder per executor (set it to list jobs with `lambdamap jobs`)",
    "dask_address": "not set: pass a distributed.Client to lambdamap.dask_executor(client)",
    "progress": "not set: progress bars only on a terminal",
}
NO_SHARED_STORAGE = (
    "each executor keeps its jobs in a private temporary folder, removed at shutdown. To see them with `lambdamap "
    "jobs`, give the executor a folder (lambdamap.local_executor(storage_dir=DIR) or dask_executor(client, "
    "storage_dir=DIR), or storage_dir in the config / LAMBDAMAP_STORAGE_DIR) and pass --storage-dir DIR here")


# -- status -----------------------------------------------------------------------------------------------------------
def add_status(subparsers: Subparsers) -> None:
    status = subparsers.add_parser(
        "status", parents=[aws_options()],
        help="the configured backend and its settings; on Lambda, what is deployed and whether it matches",
        description="Shows the backend that lambdamap.default_executor() would use and where each setting comes "
                    "from. On the Lambda backend (or with an AWS option) it also checks the deployment: the "
                    "function, its versions against this client, and the bucket; that part needs boto3.")
    status.set_defaults(handler=_status)


def _sources(config: Config) -> dict[str, str]:
    """Where each config field comes from: an environment variable, the config file, or the default."""
    path = default_config_path()
    in_file = read_config_file(path)
    sources = {}
    for f in dataclasses.fields(config):
        variable = f"LAMBDAMAP_{f.name.upper()}"
        sources[f.name] = variable if os.environ.get(variable) else ("config file" if f.name in in_file
                                                                     else "default")
    return sources


def describe_config(config: Config) -> list[str]:
    """The lines of ``lambdamap status`` about the configuration (no AWS calls)."""
    path = default_config_path()
    sources = _sources(config)
    lines = [f"backend {config.backend} ({sources['backend']})",
             f"config file {path}" + ("" if path.is_file() else " (none)")]
    names = BACKEND_FIELDS.get(config.backend) or tuple(
        f.name for f in dataclasses.fields(config) if f.name != "backend" and sources[f.name] != "default")
    for name in names:
        value = getattr(config, name, None)
        shown = str(value) if value is not None else UNSET.get(name, "not set (the backend's default)")
        lines.append(f"  {name:<20} {shown}" + ("" if sources.get(name) in (None, "default")
                                               else f"  ({sources[name]})"))
    return lines


def _status(args: argparse.Namespace) -> int:
    config = load_config()
    for line in describe_config(config):
        out(line)
    if config.backend == "lambda" or aws_cli.names_a_deployment(args):
        out("deployment:")
        return aws_cli.lambda_status(args)
    return 0


# -- shared storage: cleanup, jobs, job -------------------------------------------------------------------------------
def _storage_options() -> argparse.ArgumentParser:
    parent = argparse.ArgumentParser(add_help=False, parents=[aws_options()])
    parent.add_argument("--storage-dir", help="the shared folder of a local or Dask executor (its storage_dir)")
    return parent


@dataclasses.dataclass(frozen=True)
class _Shared:
    """Shared storage of jobs: a folder (a local or Dask storage_dir), else an S3 bucket (None: the deployment's)."""

    folder: str | None = None
    bucket: str | None = None


def _where(args: argparse.Namespace, config: Config) -> _Shared | None:
    """Where jobs live; None when there is no shared storage.

    Explicit options first, then the configured backend: Lambda keeps jobs in its bucket, local and Dask in
    storage_dir when one is set.
    """
    if args.storage_dir:
        return _Shared(folder=args.storage_dir)
    if args.bucket or aws_cli.names_a_deployment(args) or config.backend == "lambda":
        return _Shared(bucket=args.bucket or config.bucket)
    if config.storage_dir:
        return _Shared(folder=config.storage_dir)
    if config.bucket:
        return _Shared(bucket=config.bucket)
    return None


def _job_storage(args: argparse.Namespace) -> tuple[Any, str]:
    """The storage jobs live in: --storage-dir, else the configured backend's (a local folder or the S3 bucket)."""
    config = load_config()
    prefix = args.prefix or config.prefix
    shared = _where(args, config)
    if shared is None:
        raise ConfigError(f"no shared storage to look in (backend {config.backend}): {NO_SHARED_STORAGE}. On "
                          "Lambda, pass --bucket NAME or set it in the lambdamap config")
    if shared.folder is not None:
        from lambdamap.storage.local import LocalStorage

        return LocalStorage(shared.folder), prefix
    if shared.bucket is None:
        raise ConfigError("no bucket to look in: pass --bucket NAME or set bucket in the lambdamap config")
    try:
        from lambdamap.aws.s3 import S3Storage
    except ImportError as exc:
        raise ConfigError(f"reading jobs from S3 needs boto3 ({exc}): pip install 'lambdamap[aws]'") from None
    return S3Storage(shared.bucket, region=args.region or config.region,
                     endpoint_url=args.endpoint_url or config.endpoint_url), prefix


def add_cleanup(subparsers: Subparsers) -> None:
    cleanup = subparsers.add_parser(
        "cleanup", parents=[_storage_options()],
        help="delete job objects (arguments and results) from the shared storage: a folder or the bucket")
    cleanup.add_argument("--blobs", action="store_true",
                         help="also delete cached functions and shared objects (PREFIX/blobs/)")
    cleanup.set_defaults(handler=_cleanup)


def _cleanup(args: argparse.Namespace) -> int:
    from lambdamap.observe.jobs import delete_jobs

    config = load_config()
    shared = _where(args, config)
    if shared is None:
        out(f"nothing to clean up (backend {config.backend}, no storage_dir): each executor keeps its jobs in a "
            "private temporary folder and removes it at shutdown")
        return 0
    if shared.folder is None:
        # Lambda: the bucket may be found from the deployed function, so this goes through the AWS commands.
        return aws_cli.lambda_cleanup(args)
    from lambdamap.storage.local import LocalStorage

    count = delete_jobs(LocalStorage(shared.folder), args.prefix or config.prefix, blobs=args.blobs)
    out(f"deleted {count} object(s) from {shared.folder}")
    return 0


def add_jobs(subparsers: Subparsers) -> None:
    jobs = subparsers.add_parser("jobs", parents=[_storage_options()],
                                 help="list running jobs, and finished ones kept with keep=True")
    jobs.set_defaults(handler=_jobs)
    job = subparsers.add_parser("job", parents=[_storage_options()], help="the invocations of one job")
    job.add_argument("job_id")
    job.set_defaults(handler=_job)


def _jobs(args: argparse.Namespace) -> int:
    from lambdamap.observe.jobs import list_jobs

    storage, prefix = _job_storage(args)
    listing = list_jobs(storage, prefix)
    if not listing:
        out("no jobs in storage (finished jobs are removed unless run with keep=True)")
        return 0
    out(f"{'job':<26} {'state':<9} {'invocations':>11} {'results':>8}")
    for job in listing:
        out(f"{job.job_id:<26} {job.state:<9} {job.invocations:>11} {job.results:>8}")
    return 0


def _job(args: argparse.Namespace) -> int:
    from lambdamap.observe.jobs import describe_job, list_jobs

    storage, prefix = _job_storage(args)
    listing = {j.job_id: j for j in list_jobs(storage, prefix)}
    if args.job_id not in listing:
        raise ConfigError(f"no job {args.job_id!r} in storage; `lambdamap jobs` lists the jobs there")
    job = listing[args.job_id]
    views = describe_job(storage, args.job_id, prefix)
    out(f"job {job.job_id}: {job.state}, {job.results} of {job.invocations} invocations reported")
    out(f"{'inv':>5} {'calls':>6} {'failed':>6} {'seconds':>8} {'warm':>5} {'MB':>6}  worker")
    for v in views:
        seconds = "-" if v.seconds is None else f"{v.seconds:.3f}"
        memory = "-" if v.peak_memory_mb is None else f"{v.peak_memory_mb:.0f}"
        out(f"{v.invocation:>5} {v.calls:>6} {v.failed_calls:>6} {seconds:>8} {str(v.warm):>5} {memory:>6}  "
             f"{v.worker_id} ({v.platform})" + (f"  setup error: {v.setup_error}" if v.setup_error else ""))
    failed = sum(v.failed_calls for v in views)
    out(f"total: {sum(v.calls for v in views)} calls run, {failed} failed")
    return 0


#: Every subcommand, in help order.
COMMANDS: list[AddCommand] = [aws_cli.add_runtime, aws_cli.add_deploy, add_status, add_cleanup, aws_cli.add_destroy,
                              add_jobs]


def register_command(add: AddCommand) -> AddCommand:
    """Add a subcommand (usable as a decorator): ``add(subparsers)`` adds a parser and sets ``handler``."""
    COMMANDS.append(add)
    return add


def _usage(parser: argparse.ArgumentParser) -> int:
    parser.print_help(sys.stderr)
    return 2


def build_parser() -> argparse.ArgumentParser:
    from lambdamap import __version__

    parser = argparse.ArgumentParser(prog="lambdamap", description="Run Python functions on serverless workers: "
                                     "build and deploy the AWS Lambda runtime.")
    parser.add_argument("--version", action="version", version=f"lambdamap {__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for add in COMMANDS:
        add(subparsers)
    parser.set_defaults(handler=lambda _args: _usage(parser))
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``lambdamap`` console script; returns the exit code (errors: 1, usage: 2)."""
    args = build_parser().parse_args(argv)
    try:
        return int(args.handler(args) or 0)
    except LambdaMapError as exc:
        print(f"lambdamap: error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("lambdamap: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
