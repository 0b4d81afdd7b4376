"""The ``lambdamap`` command.

::

    lambdamap runtime build [--python 3.12] [--arch x86_64|arm64] [--output DIR|FILE.zip] [--extra PKG ...]
    lambdamap deploy   [--python X.Y] [--arch ...] [--layer-zip FILE] [--memory MB] [--timeout S] [AWS options]
    lambdamap status   [AWS options]
    lambdamap cleanup  [--blobs] [AWS options]
    lambdamap destroy  [--delete-bucket] [AWS options]
    lambdamap jobs     [--storage-dir DIR | AWS options]
    lambdamap job ID   [--storage-dir DIR | AWS options]

Each subcommand is one ``add_*`` function that adds its parser and sets ``handler`` (a function of the parsed
arguments returning the exit code); :data:`COMMANDS` lists them. To add a command, write such a function and
append it to :data:`COMMANDS` (or call :func:`register_command`).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence
from typing import Any

from lambdamap.errors import LambdaMapError

Subparsers = Any  # argparse._SubParsersAction is private
AddCommand = Callable[[Subparsers], None]


def _out(message: str) -> None:
    print(message, flush=True)


# -- shared option groups ---------------------------------------------------------------------------------------------
def _aws_options() -> argparse.ArgumentParser:
    """Options naming the deployment; unset ones come from the lambdamap config (file or LAMBDAMAP_* variables)."""
    parent = argparse.ArgumentParser(add_help=False)
    group = parent.add_argument_group("where (default: the lambdamap config, then built-in defaults)")
    group.add_argument("--function-name", help="Lambda function name (default: lambdamap-runtime)")
    group.add_argument("--bucket", help="S3 bucket for job data (default for deploy: lambdamap-ACCOUNT-REGION)")
    group.add_argument("--region", help="AWS region (default: AWS_REGION / ~/.aws/config)")
    group.add_argument("--prefix", help="key prefix of everything lambdamap stores (default: lambdamap)")
    group.add_argument("--role-name", help="execution role name (default: FUNCTION-role)")
    group.add_argument("--layer-name", help="layer name (default: FUNCTION-layer)")
    group.add_argument("--endpoint-url", help="S3-compatible endpoint instead of AWS S3")
    group.add_argument("--lambda-endpoint-url", help="Lambda API endpoint instead of AWS (an emulator)")
    return parent


def _build_options(with_output: bool) -> argparse.ArgumentParser:
    from lambdamap.aws.layer import LAMBDA_PYTHONS, client_python

    parent = argparse.ArgumentParser(add_help=False)
    group = parent.add_argument_group("runtime layer")
    group.add_argument("--python", choices=list(LAMBDA_PYTHONS), default=None,
                       help=f"Lambda Python version (default: this client's, {client_python()}, so pickles match)")
    group.add_argument("--arch", choices=["x86_64", "arm64"], default=None,
                       help="Lambda architecture (default: x86_64)")
    group.add_argument("--extra", nargs="+", default=[], metavar="PKG",
                       help="more packages for the layer, e.g. --extra xgboost 'lightgbm==4.5.0'")
    group.add_argument("--minimal", action="store_true",
                       help="only cloudpickle and lambdamap (no numpy/scipy/pandas/scikit-learn): pure-Python work")
    group.add_argument("--no-match-client", action="store_true",
                       help="let pip pick versions instead of pinning the ones installed here (cloudpickle stays "
                            "pinned)")
    bytecode = parent.add_mutually_exclusive_group()
    bytecode.add_argument("--bytecode", dest="bytecode", action="store_true", default=None,
                          help="require precompiled bytecode (faster cold starts; needs that Python here)")
    bytecode.add_argument("--no-bytecode", dest="bytecode", action="store_false",
                          help="never precompile bytecode (a smaller layer)")
    group.add_argument("--cache-dir", default=None,
                       help="cache the third-party part of the layer here (keyed by the pinned requirements)")
    if with_output:
        group.add_argument("--output", "-o", default=None,
                           help="zip file, or folder for lambdamap-layer-pyX.Y-ARCH.zip (default: current folder)")
    return parent


def _build(args: argparse.Namespace, output: Any) -> Any:
    from lambdamap.aws.layer import DEFAULT_PACKAGES, MINIMAL_PACKAGES, build_layer, client_python

    python, arch = args.python or client_python(), args.arch or "x86_64"
    _out(f"building the layer for python{python} {arch} (pip may take a few minutes)...")
    return build_layer(python, arch, output, extra=args.extra,
                       packages=MINIMAL_PACKAGES if args.minimal else DEFAULT_PACKAGES,
                       match_client=not args.no_match_client, cache_dir=args.cache_dir, bytecode=args.bytecode)


def _target(args: argparse.Namespace) -> Any:
    """The deployment target: command-line options > lambdamap config (env, file) > defaults."""
    from lambdamap.aws.clients import Target
    from lambdamap.config import load_config

    config = load_config()
    return Target(
        function_name=args.function_name or config.function_name, bucket=args.bucket or config.bucket,
        region=args.region or config.region, prefix=args.prefix or config.prefix, role_name=args.role_name,
        layer_name=args.layer_name, endpoint_url=args.endpoint_url or config.endpoint_url,
        lambda_endpoint_url=args.lambda_endpoint_url or config.lambda_endpoint_url,
    )


# -- commands ---------------------------------------------------------------------------------------------------------
def add_runtime(subparsers: Subparsers) -> None:
    runtime = subparsers.add_parser("runtime", help="build the Lambda runtime layer")
    actions = runtime.add_subparsers(dest="runtime_command", metavar="ACTION")
    build = actions.add_parser("build", parents=[_build_options(with_output=True)],
                               help="build the layer zip (cloudpickle, numpy, scipy, pandas, scikit-learn, lambdamap)")
    build.set_defaults(handler=_runtime_build)
    runtime.set_defaults(handler=lambda _args: _usage(runtime))


def _runtime_build(args: argparse.Namespace) -> int:
    build = _build(args, args.output)
    _out(build.summary())
    return 0


def add_deploy(subparsers: Subparsers) -> None:
    from lambdamap.aws.deploy import DEFAULT_EXPIRE_DAYS, DEFAULT_MEMORY_MB, DEFAULT_TIMEOUT_S

    deploy = subparsers.add_parser(
        "deploy", parents=[_aws_options(), _build_options(with_output=False)],
        help="create or update the bucket, role, layer and function; write the client config",
        description="Idempotently deploys the generic lambdamap runtime with boto3 and writes the client config so "
                    "that lambdamap.default_executor() uses it. Builds the layer unless --layer-zip is given.")
    group = deploy.add_argument_group("function")
    group.add_argument("--layer-zip", help="a layer zip from `lambdamap runtime build` (default: build one now)")
    group.add_argument("--memory", type=int, default=DEFAULT_MEMORY_MB, help="memory in MB (128-10240; CPU scales "
                       "with it: 1769 MB = 1 vCPU)")
    group.add_argument("--timeout", type=int, default=DEFAULT_TIMEOUT_S, help="function time limit, seconds (1-900)")
    group.add_argument("--expire-days", type=int, default=DEFAULT_EXPIRE_DAYS,
                       help="delete job objects from the bucket after this many days")
    group.add_argument("--config", default=None, help="client config file to write (default: $LAMBDAMAP_CONFIG or "
                       "~/.config/lambdamap/config.toml)")
    group.add_argument("--no-write-config", action="store_true", help="do not write the client config")
    deploy.set_defaults(handler=_deploy)


def _deploy(args: argparse.Namespace) -> int:
    import tempfile

    from lambdamap.aws.deploy import FunctionSettings, deploy

    target = _target(args)  # check names before a long build
    settings = FunctionSettings(memory_mb=args.memory, timeout_s=args.timeout, expire_days=args.expire_days)
    with tempfile.TemporaryDirectory(prefix="lambdamap-deploy-") as tmp:
        if args.layer_zip:
            from lambdamap.aws.layer import inspect_layer
            from lambdamap.errors import DeploymentError

            layer: Any = inspect_layer(args.layer_zip)
            for option, wanted, actual in (("--python", args.python, layer.python), ("--arch", args.arch, layer.arch)):
                if wanted and wanted != actual:
                    raise DeploymentError(f"{option} {wanted} does not match the layer zip {args.layer_zip} "
                                          f"({actual}); rebuild the layer or drop {option}")
        else:
            layer = _build(args, tmp)
            _out(layer.summary())
        result = deploy(target, layer, settings, write_config=not args.no_write_config, config_path=args.config,
                        log=_out)
    _out(result.summary())
    return 0


def add_status(subparsers: Subparsers) -> None:
    status = subparsers.add_parser("status", parents=[_aws_options()],
                                   help="what is deployed, its versions, and whether they match this client")
    status.set_defaults(handler=_status)


def _status(args: argparse.Namespace) -> int:
    from lambdamap.aws.manage import status

    report = status(_target(args))
    _out(report.render())
    return 0 if report.ok else 1


def add_cleanup(subparsers: Subparsers) -> None:
    cleanup = subparsers.add_parser("cleanup", parents=[_aws_options()],
                                    help="delete job objects (arguments and results) from the bucket")
    cleanup.add_argument("--blobs", action="store_true",
                         help="also delete cached functions and shared objects (PREFIX/blobs/)")
    cleanup.set_defaults(handler=_cleanup)


def _cleanup(args: argparse.Namespace) -> int:
    from lambdamap.aws.manage import cleanup

    bucket, count = cleanup(_target(args), blobs=args.blobs)
    _out(f"deleted {count} object(s) from s3://{bucket}")
    return 0


def add_destroy(subparsers: Subparsers) -> None:
    destroy = subparsers.add_parser("destroy", parents=[_aws_options()],
                                    help="remove the function, its layer versions and its role")
    destroy.add_argument("--delete-bucket", action="store_true",
                         help="also delete lambdamap's objects and the bucket (kept if it holds other objects)")
    destroy.set_defaults(handler=_destroy)


def _destroy(args: argparse.Namespace) -> int:
    from lambdamap.aws.manage import destroy

    done = destroy(_target(args), delete_bucket=args.delete_bucket, log=_out)
    if not done:
        _out("nothing to remove")
    _out("the client config still names this deployment: set backend = \"local\" in it (or delete it)")
    return 0


def _storage_options() -> argparse.ArgumentParser:
    parent = argparse.ArgumentParser(add_help=False, parents=[_aws_options()])
    parent.add_argument("--storage-dir", help="the shared folder of a local or Dask executor (its storage_dir)")
    return parent


def _job_storage(args: argparse.Namespace) -> tuple[Any, str]:
    """The storage jobs live in: --storage-dir, else the configured backend's (a local folder or the S3 bucket)."""
    from lambdamap.config import load_config
    from lambdamap.errors import ConfigError

    config = load_config()
    prefix = args.prefix or config.prefix
    storage_dir = args.storage_dir or config.storage_dir
    if storage_dir:
        from lambdamap.storage.local import LocalStorage

        return LocalStorage(storage_dir), prefix
    bucket = args.bucket or config.bucket
    if bucket:
        from lambdamap.aws.s3 import S3Storage

        return S3Storage(bucket, region=args.region or config.region,
                         endpoint_url=args.endpoint_url or config.endpoint_url), prefix
    raise ConfigError("no shared storage to look in: pass --storage-dir DIR (the storage_dir of a local or Dask "
                      "executor; the default temporary folder is private to one executor) or --bucket NAME, or set "
                      "them in the lambdamap config")


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
        _out("no jobs in storage (finished jobs are removed unless run with keep=True)")
        return 0
    _out(f"{'job':<26} {'state':<9} {'invocations':>11} {'results':>8}")
    for job in listing:
        _out(f"{job.job_id:<26} {job.state:<9} {job.invocations:>11} {job.results:>8}")
    return 0


def _job(args: argparse.Namespace) -> int:
    from lambdamap.errors import ConfigError
    from lambdamap.observe.jobs import describe_job, list_jobs

    storage, prefix = _job_storage(args)
    listing = {j.job_id: j for j in list_jobs(storage, prefix)}
    if args.job_id not in listing:
        raise ConfigError(f"no job {args.job_id!r} in storage; `lambdamap jobs` lists the jobs there")
    job = listing[args.job_id]
    views = describe_job(storage, args.job_id, prefix)
    _out(f"job {job.job_id}: {job.state}, {job.results} of {job.invocations} invocations reported")
    _out(f"{'inv':>5} {'calls':>6} {'failed':>6} {'seconds':>8} {'warm':>5} {'MB':>6}  worker")
    for v in views:
        seconds = "-" if v.seconds is None else f"{v.seconds:.3f}"
        memory = "-" if v.peak_memory_mb is None else f"{v.peak_memory_mb:.0f}"
        _out(f"{v.invocation:>5} {v.calls:>6} {v.failed_calls:>6} {seconds:>8} {str(v.warm):>5} {memory:>6}  "
             f"{v.worker_id} ({v.platform})" + (f"  setup error: {v.setup_error}" if v.setup_error else ""))
    failed = sum(v.failed_calls for v in views)
    _out(f"total: {sum(v.calls for v in views)} calls run, {failed} failed")
    return 0


#: Every subcommand, in help order.
COMMANDS: list[AddCommand] = [add_runtime, add_deploy, add_status, add_cleanup, add_destroy, add_jobs]


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
