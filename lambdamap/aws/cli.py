"""The AWS subcommands of ``lambdamap``: ``runtime build``, ``deploy``, ``destroy``, and the AWS parts of ``status``
and ``cleanup`` (:func:`lambda_status`, :func:`lambda_cleanup`), which the top-level :mod:`lambdamap.cli` calls
when the configured backend is Lambda.

Building the parsers imports nothing from boto3: only the commands that call AWS do (through
:class:`lambdamap.aws.clients.Aws`), so ``lambdamap --help`` and the local commands work without the ``aws`` extra.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from typing import Any

from lambdamap.errors import ConfigError, DeploymentError

Subparsers = Any  # argparse._SubParsersAction is private
AddCommand = Callable[[Subparsers], None]

#: The options of :func:`aws_options`, as argparse destinations: set on the command line, they name a deployment.
AWS_OPTIONS = ("function_name", "bucket", "region", "role_name", "layer_name", "endpoint_url", "lambda_endpoint_url")


def out(message: str) -> None:
    print(message, flush=True)


# -- shared option groups ---------------------------------------------------------------------------------------------
def aws_options() -> argparse.ArgumentParser:
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


def names_a_deployment(args: argparse.Namespace) -> bool:
    """Whether an AWS option was given on the command line."""
    return any(getattr(args, name, None) for name in AWS_OPTIONS)


def _python_help() -> str:
    from lambdamap.aws.layer import DEFAULT_PACKAGES, client_python, runtime_limitation

    client = client_python()
    text = f"Lambda Python version (default: this client's, {client}, so pickles match)"
    if client in _lambda_pythons() and runtime_limitation(client, DEFAULT_PACKAGES):
        text += (f". NOTE: Lambda's python{client} cannot load current numpy/scipy/scikit-learn wheels, so the "
                 "default layer cannot be built for it: use Python 3.12+ here, or --minimal")
    return text


def _lambda_pythons() -> list[str]:
    from lambdamap.aws.layer import LAMBDA_PYTHONS

    return list(LAMBDA_PYTHONS)


def _build_options(with_output: bool) -> argparse.ArgumentParser:
    parent = argparse.ArgumentParser(add_help=False)
    group = parent.add_argument_group("runtime layer")
    group.add_argument("--python", choices=_lambda_pythons(), default=None, help=_python_help())
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
    from lambdamap.aws import layer

    packages = layer.MINIMAL_PACKAGES if args.minimal else layer.DEFAULT_PACKAGES
    python, arch = args.python or layer.client_python(), args.arch or "x86_64"
    layer.check_target(python, arch)
    # Say it before pip runs for minutes and fails on a missing wheel.
    limitation = layer.runtime_limitation(python, [*packages, *args.extra])
    if limitation and args.python is None:
        raise DeploymentError(
            f"{limitation}, and python{python} is this client's Python, the default because the layer must match "
            "the client for pickles to load. Use Python 3.12 or newer here (recommended); or --minimal for "
            f"pure-Python work; or --python {python} --no-match-client to let pip pick older wheels that still load "
            "there")
    if limitation:
        out(f"warning: {limitation}; pip fails unless older wheels are allowed (--no-match-client)")
    out(f"building the layer for python{python} {arch} (pip may take a few minutes)...")
    return layer.build_layer(python, arch, output, extra=args.extra, packages=packages,
                             match_client=not args.no_match_client, cache_dir=args.cache_dir, bytecode=args.bytecode)


def target(args: argparse.Namespace) -> Any:
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

    def usage(_args: argparse.Namespace) -> int:
        runtime.print_help(sys.stderr)
        return 2

    runtime.set_defaults(handler=usage)


def _runtime_build(args: argparse.Namespace) -> int:
    build = _build(args, args.output)
    out(build.summary())
    return 0


def add_deploy(subparsers: Subparsers) -> None:
    from lambdamap.aws.deploy import DEFAULT_EXPIRE_DAYS, DEFAULT_MEMORY_MB, DEFAULT_TIMEOUT_S

    deploy = subparsers.add_parser(
        "deploy", parents=[aws_options(), _build_options(with_output=False)],
        help="create or update the bucket, role, layer and function; write the client config",
        description="Idempotently deploys the generic lambdamap runtime with boto3 and writes the client config so "
                    "that lambdamap.default_executor() uses it. Builds the layer unless --layer-zip is given.")
    group = deploy.add_argument_group("function")
    group.add_argument("--layer-zip", help="a layer zip from `lambdamap runtime build` (default: build one now)")
    group.add_argument("--memory", type=int, default=DEFAULT_MEMORY_MB, help="memory in MB (128-10240; CPU scales "
                       "with it: 1769 MB = 1 vCPU)")
    group.add_argument("--memory-sizes", type=_memory_sizes, default=(), metavar="MB,MB,...",
                       help="publish a function version and alias (mem-MB) for each size, so that "
                            "map(..., memory=MB) can use it, e.g. 1769,3538,10240; list every size on each deploy "
                            "(aliases of sizes left out are removed)")
    group.add_argument("--timeout", type=int, default=DEFAULT_TIMEOUT_S, help="function time limit, seconds (1-900)")
    group.add_argument("--expire-days", type=int, default=DEFAULT_EXPIRE_DAYS,
                       help="delete job objects from the bucket after this many days")
    group.add_argument("--config", default=None, help="client config file to write (default: $LAMBDAMAP_CONFIG or "
                       "~/.config/lambdamap/config.toml)")
    group.add_argument("--no-write-config", action="store_true", help="do not write the client config")
    deploy.set_defaults(handler=_deploy)


def _memory_sizes(text: str) -> tuple[int, ...]:
    """``--memory-sizes 1769,3538`` as (1769, 3538); argparse reports the ValueError as a usage error."""
    from lambdamap.core.memory import check_memory

    try:
        sizes = tuple(int(part) for part in text.replace(" ", "").split(",") if part)
        for size in sizes:
            check_memory(size, "each memory size")
    except (ValueError, ConfigError) as exc:
        raise argparse.ArgumentTypeError(f"expected sizes in MB from 128 to 10240 separated by commas, e.g. "
                                         f"1769,3538 ({exc})") from None
    if len(set(sizes)) != len(sizes):
        raise argparse.ArgumentTypeError(f"a size is repeated in {text!r}")
    return sizes


def _deploy(args: argparse.Namespace) -> int:
    import tempfile

    from lambdamap.aws.deploy import FunctionSettings, deploy

    where = target(args)  # check names before a long build
    settings = FunctionSettings(memory_mb=args.memory, timeout_s=args.timeout, expire_days=args.expire_days,
                                memory_sizes=args.memory_sizes)
    with tempfile.TemporaryDirectory(prefix="lambdamap-deploy-") as tmp:
        if args.layer_zip:
            from lambdamap.aws.layer import inspect_layer

            layer: Any = inspect_layer(args.layer_zip)
            for option, wanted, actual in (("--python", args.python, layer.python), ("--arch", args.arch, layer.arch)):
                if wanted and wanted != actual:
                    raise DeploymentError(f"{option} {wanted} does not match the layer zip {args.layer_zip} "
                                          f"({actual}); rebuild the layer or drop {option}")
        else:
            layer = _build(args, tmp)
            out(layer.summary())
        result = deploy(where, layer, settings, write_config=not args.no_write_config, config_path=args.config,
                        log=out)
    out(result.summary())
    return 0


def lambda_status(args: argparse.Namespace) -> int:
    """The Lambda part of ``lambdamap status``: what is deployed, and whether it matches this client."""
    from lambdamap.aws.manage import status

    report = status(target(args))
    out(report.render())
    return 0 if report.ok else 1


def lambda_cleanup(args: argparse.Namespace) -> int:
    """The S3 part of ``lambdamap cleanup``."""
    from lambdamap.aws.manage import cleanup

    bucket, count = cleanup(target(args), blobs=args.blobs)
    out(f"deleted {count} object(s) from s3://{bucket}")
    return 0


def add_destroy(subparsers: Subparsers) -> None:
    destroy = subparsers.add_parser("destroy", parents=[aws_options()],
                                    help="remove the function, its layer versions and its role")
    destroy.add_argument("--delete-bucket", action="store_true",
                         help="also delete lambdamap's objects and the bucket (kept if it holds other objects); "
                              "asks first unless --yes")
    destroy.add_argument("--yes", "-y", action="store_true", help="do not ask before deleting the bucket")
    destroy.set_defaults(handler=_destroy)


def _interactive() -> bool:
    try:
        return sys.stdin is not None and sys.stdin.isatty()
    except (ValueError, AttributeError):  # closed or replaced stdin
        return False


def _destroy(args: argparse.Namespace) -> int:
    from lambdamap.aws.manage import deployed_bucket, destroy

    where = target(args)
    if args.delete_bucket and not args.yes:
        # Job data and cached objects cannot be brought back: never delete them without a yes.
        if not _interactive():
            raise ConfigError("--delete-bucket deletes the bucket and every object lambdamap keeps in it, and there "
                              "is no terminal to confirm on: pass --yes to confirm")
        bucket = deployed_bucket(where)
        answer = input(f"delete the function {where.function_name}, its layer versions and role, and the bucket "
                       f"s3://{bucket} with everything under {where.prefix}/? [y/N] ")
        if answer.strip().lower() not in ("y", "yes"):
            out("nothing deleted")
            return 1
    done = destroy(where, delete_bucket=args.delete_bucket, log=out)
    if not done:
        out("nothing to remove")
    out("the client config still names this deployment: set backend = \"local\" in it (or delete it)")
    return 0


#: The AWS-only subcommands, in help order (``status`` and ``cleanup`` are in :mod:`lambdamap.cli`).
COMMANDS: list[AddCommand] = [add_runtime, add_deploy, add_destroy]
