"""The bad-input table: one row per bad input, with the exact error type and a message fragment.

The lambdamap rows live here; dml's rows live in tests/dml/test_dml_bad_input.py (``CASES``, run there with a check
that nothing reached the executor). The README's troubleshooting table is generated from both tables
(:func:`markdown_table`), and a test keeps it in sync.
"""

from __future__ import annotations

import importlib.util
import re
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

import lambdamap
from lambdamap.errors import InvocationError, PreflightError

ROOT = Path(__file__).resolve().parents[2]


def _dml_cases() -> list[tuple[str, Any, type, str]]:
    spec = importlib.util.spec_from_file_location("dml_bad_input_table", ROOT / "tests/dml/test_dml_bad_input.py")
    module = importlib.util.module_from_spec(spec)
    import sys

    sys.path.insert(0, str(ROOT / "tests/dml"))  # for its `dml_cases` helper module
    try:
        spec.loader.exec_module(module)
    finally:
        sys.path.remove(str(ROOT / "tests/dml"))
    return module.CASES


def _future_error(fut: lambdamap.Future) -> BaseException:
    exc = fut.exception(timeout=120)
    assert exc is not None, "the call succeeded"
    raise exc


def _version_mismatch(ctx: Ctx) -> None:
    pwex = ctx.local
    saved = pwex._versions
    pwex._versions = {**saved, "cloudpickle": "0.0.1"}
    try:
        fut = pwex.submit(abs, -1)
    finally:
        pwex._versions = saved
    _future_error(fut)


def _bad_config_file(ctx: Ctx) -> None:
    path = ctx.tmp_path / "config.toml"
    path.write_text("backend = \n")
    ctx.monkeypatch.setenv("LAMBDAMAP_CONFIG", str(path))
    lambdamap.default_executor()


def _oversized_payload(ctx: Ctx) -> None:
    from support.lambda_fixtures import FUNCTION

    from lambdamap.aws.invoker import ASYNC_PAYLOAD_LIMIT, LambdaInvoker
    from lambdamap.core.task import TaskSpec

    stack = ctx.request.getfixturevalue("local_aws")
    invoker = LambdaInvoker(FUNCTION, region=stack.region, endpoint_url=stack.lambda_endpoint_url,
                            session=stack.session())
    errors: list[BaseException] = []

    class Sink:
        def started(self, spec):
            raise AssertionError("an oversized invocation was started")

        def finished(self, spec):
            raise AssertionError("an oversized invocation finished")

        def lost(self, spec, error):
            errors.append(error)

    huge = {"kind": "s3", "bucket": "b", "endpoint_url": "http://x/" + "p" * ASYNC_PAYLOAD_LIMIT}
    spec = TaskSpec(job_id="j", invocation=0, storage=huge, func_key="f", args_key="a", result_key="r",
                    call_start=0, call_count=1)
    invoker.start(Sink())
    try:
        invoker.invoke([spec])
    finally:
        invoker.close()
    raise errors[0]


def _lambda(ctx: Ctx, **options: Any) -> None:
    stack = ctx.request.getfixturevalue("local_aws")
    settings = {"function_name": "lambdamap-runtime", "bucket": stack.bucket, "region": stack.region,
                "endpoint_url": stack.s3.endpoint_url, "lambda_endpoint_url": stack.lambda_endpoint_url, **options}
    lambdamap.lambda_executor(**settings)


def _no_credentials(ctx: Ctx) -> None:
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE"):
        ctx.monkeypatch.delenv(name, raising=False)
    ctx.monkeypatch.setenv("AWS_CONFIG_FILE", str(ctx.tmp_path / "none"))
    ctx.monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(ctx.tmp_path / "none"))
    ctx.monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    _lambda(ctx)


def _with_env_credentials(ctx: Ctx, **options: Any) -> None:
    stack = ctx.request.getfixturevalue("local_aws")
    ctx.monkeypatch.setenv("AWS_ACCESS_KEY_ID", stack.s3.access_key)
    ctx.monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", stack.s3.secret_key)
    ctx.monkeypatch.delenv("AWS_PROFILE", raising=False)
    _lambda(ctx, **options)


class Ctx:
    def __init__(self, local: lambdamap.Executor, request: Any, monkeypatch: Any, tmp_path: Path) -> None:
        self.local, self.request, self.monkeypatch, self.tmp_path = local, request, monkeypatch, tmp_path


# (what is wrong, how to cause it, error type, message fragment, the fix the README gives)
LAMBDAMAP_CASES: list[tuple[str, Callable[[Ctx], Any], type, str, str]] = [
    ("function cannot be pickled", lambda c: c.local.map(lambda x: LOCK, [1]),
     lambdamap.SerializationError, "cannot be pickled",
     "create locks, clients, open files inside the function instead of capturing them"),
    ("argument cannot be pickled", lambda c: c.local.map(abs, [1, threading.Lock()]),
     lambdamap.SerializationError, r"call 1 \(positional argument 0, type lock\)", "pass plain data"),
    ("return value cannot be pickled", lambda c: _future_error(c.local.submit(threading.Lock)),
     lambdamap.SerializationError, "return value of call 0", "return plain data"),
    ("fn is not callable", lambda c: c.local.map(42, [1]), lambdamap.ConfigError, "fn must be callable",
     "pass a function"),
    ("inputs are not iterable", lambda c: c.local.map(abs, 5), lambdamap.ConfigError, "needs an iterable",
     "pass a list"),
    ("inputs are one string", lambda c: c.local.map(abs, "abc"), lambdamap.ConfigError, "got a string",
     "wrap it: [text]"),
    ("timeout not positive", lambda c: c.local.map(abs, [1], timeout=0), lambdamap.ConfigError,
     "timeout must be a positive number", "seconds > 0 or None"),
    ("retries negative", lambda c: c.local.map(abs, [1], retries=-1), lambdamap.ConfigError,
     "retries must be an integer >= 0", "0, 1, 2, ..."),
    ("chunksize zero", lambda c: c.local.map(abs, [1], chunksize=0), lambdamap.ConfigError,
     "chunksize must be an integer >= 1", "1 or more, or None"),
    ("extra_env values not strings", lambda c: c.local.map(abs, [1], extra_env={"A": 1}), lambdamap.ConfigError,
     "extra_env must be a dict of str to str", "{'NAME': 'value'}"),
    ("map over iterables of different lengths", lambda c: c.local.map(pow, [1, 2], [3]), lambdamap.ConfigError,
     "different lengths", "pass equal lengths"),
    ("map over tuples for a two-argument function", lambda c: c.local.map(_two_args, [(1, 2)]),
     lambdamap.ConfigError, "use starmap", "starmap(fn, inputs)"),
    ("starmap item neither tuple nor dict", lambda c: c.local.starmap(abs, [1]), lambdamap.ConfigError,
     "tuple of positional arguments or a dict", "starmap([(1,), {'x': 2}]) or map"),
    ("retry_on not exception types", lambda c: c.local.map(abs, [1], retries=1, retry_on=["ValueError"]),
     lambdamap.ConfigError, "retry_on must be a tuple of exception types", "(ConnectionError, TimeoutError)"),
    ("retry_on without retries", lambda c: c.local.map(abs, [1], retry_on=(ValueError,)), lambdamap.ConfigError,
     "retry_on needs retries >= 1", "retries=3"),
    ("backoff negative", lambda c: c.local.map(abs, [1], retries=1, retry_on=(ValueError,), backoff=-1),
     lambdamap.ConfigError, "backoff must be a number of seconds >= 0", "0 or more seconds"),
    ("imap window zero", lambda c: next(c.local.imap(abs, [1], window=0)), lambdamap.ConfigError,
     "window must be a positive number", "1 or more, or None"),
    ("exclude_modules one string", lambda c: c.local.map(abs, [1], exclude_modules="helper"),
     lambdamap.ConfigError, r"exclude_modules must be a list of module names, got the string 'helper'",
     "['helper']"),
    ("exclude_modules names a file", lambda c: c.local.map(abs, [1], exclude_modules=["helper.py"]),
     lambdamap.ConfigError, "not its file", "the module name: helper"),
    ("unknown executor option", lambda c: lambdamap.default_executor(wrokers=2), lambdamap.ConfigError,
     r"unknown option\(s\) \['wrokers'\]", "use a listed option"),
    ("unknown backend", lambda c: lambdamap.default_executor(backend="spark"), lambdamap.ConfigError,
     "unknown backend 'spark'", "local, lambda or dask"),
    ("workers zero", lambda c: lambdamap.local_executor(workers=0), lambdamap.ConfigError,
     "workers must be a positive integer", "1 or more, or None"),
    ("unreadable config file", _bad_config_file, lambdamap.ConfigError, "cannot read config file",
     "fix the TOML at the named path"),
    ("bad return_when", lambda c: lambdamap.wait([], return_when="SOMETIMES"), ValueError,
     "return_when must be", "ALL_COMPLETED, ANY_COMPLETED or ALWAYS"),
    ("executor already shut down", lambda c: _shut_down().map(abs, [1]), lambdamap.ExecutorShutdownError,
     "has been shut down", "create a new executor"),
    ("client/runtime version mismatch", _version_mismatch, lambdamap.VersionMismatchError,
     "does not match the client", "rebuild and redeploy the runtime from this client (lambdamap deploy)"),
    ("oversized Lambda payload", _oversized_payload, InvocationError, "byte limit for asynchronous invocations",
     "shorten the storage location or prefix"),
    ("missing S3 bucket", lambda c: _with_env_credentials(c, bucket="no-such-bucket-lm"), PreflightError,
     "'no-such-bucket-lm' does not exist", "create it (aws s3 mb) or run lambdamap deploy"),
    ("missing Lambda function", lambda c: _with_env_credentials(c, function_name="not-deployed"), PreflightError,
     "'not-deployed' does not exist", "lambdamap deploy"),
    ("missing AWS credentials", _no_credentials, PreflightError, "no AWS credentials",
     "aws configure / aws sso login / AWS_PROFILE"),
    ("no bucket configured", lambda c: lambdamap.lambda_executor(bucket=None, region="eu-central-1"),
     PreflightError, "no S3 bucket is configured", "bucket=... or LAMBDAMAP_BUCKET"),
]
LOCK = threading.Lock()


def _two_args(a, b):
    return a + b


def _shut_down() -> lambdamap.Executor:
    pwex = lambdamap.local_executor(workers=1, progress=False)
    pwex.shutdown()
    return pwex


@pytest.fixture(scope="module")
def local():
    with lambdamap.local_executor(workers=2, progress=False) as pwex:
        yield pwex


@pytest.mark.timeout(300)
@pytest.mark.parametrize("cause, error, fragment", [c[1:4] for c in LAMBDAMAP_CASES],
                         ids=[c[0] for c in LAMBDAMAP_CASES])
def test_lambdamap_bad_input(cause, error, fragment, local, request, monkeypatch, tmp_path):
    monkeypatch.setenv("LAMBDAMAP_CONFIG", str(tmp_path / "none.toml"))
    with pytest.raises(error, match=fragment):
        cause(Ctx(local, request, monkeypatch, tmp_path))


def markdown_table() -> str:
    rows = ["| bad input | error | message contains | fix |", "|---|---|---|---|"]
    for name, _, error, fragment, fix in LAMBDAMAP_CASES:
        rows.append(f"| {name} | `{error.__name__}` | {_plain(fragment)} | {fix} |")
    for name, _, error, fragment in _dml_cases():
        rows.append(f"| dml: {name} | `{error.__name__}` | {_plain(fragment)} | see the message |")
    return "\n".join(rows)


def _plain(fragment: str) -> str:
    text = re.sub(r"\\(.)", r"\1", fragment).replace("|", "\\|")
    return f"`{text}`"


def test_readme_troubleshooting_table_is_this_table():
    readme = (ROOT / "README.md").read_text()
    assert markdown_table() in readme, "regenerate: python tests/reliability/test_bad_input_table.py"


if __name__ == "__main__":
    print(markdown_table())
