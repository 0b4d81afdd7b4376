"""The AWS Lambda backend: asynchronous invocations of the generic runtime, data in S3.

::

    invoke(specs) ─▶ check every payload (1 MB async limit) ─▶ bounded thread pool (workers calls in flight)
        ─▶ lambda:Invoke(InvocationType="Event", Payload=spec JSON) ─┬▶ 202: the collector polls S3 for the record
                                                                      ├▶ 429 / throttling: backoff, jitter, again
                                                                      └▶ other errors: the futures fail with it

Lambda's asynchronous invoke does not say when a worker finished, so ``notifies_completion`` is False: the
executor's collector lists the job's results prefix and treats an invocation with no record after the function's
timeout plus a margin as lost. Before the first job, :meth:`LambdaInvoker.preflight` checks credentials, region,
the function and the bucket, and raises one :class:`~lambdamap.errors.PreflightError` listing what is missing.
"""

from __future__ import annotations

import logging
import random
import threading
import time
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any

from lambdamap.aws.memory import alias_name
from lambdamap.backends.base import InvocationSink, Invoker
from lambdamap.core.task import TaskSpec
from lambdamap.errors import ConfigError, InvocationError, PreflightError

if TYPE_CHECKING:
    from lambdamap.config import Config
    from lambdamap.core.executor import Executor

try:
    import boto3
    import botocore.exceptions
    from botocore.config import Config as BotoConfig
except ImportError as exc:  # pragma: no cover - exercised only without the extra
    raise ImportError(f"the Lambda backend needs boto3 ({exc}): pip install 'lambdamap[aws]'") from exc

log = logging.getLogger("lambdamap")

#: AWS's limit for an asynchronous (Event) invocation payload.
ASYNC_PAYLOAD_LIMIT = 1024 * 1024
#: Pickled calls up to this size travel inside the Invoke payload (base64 adds a third; the spec's own fields are
#: small), well under the asynchronous limit: no S3 PUT on the client and no GET on the worker for small maps.
INLINE_ARGS_LIMIT = 192 * 1024
#: Error codes that mean "not now": retried with backoff until ``throttle_timeout``, never dropped.
THROTTLING_CODES = frozenset({
    "TooManyRequestsException", "ThrottlingException", "Throttling", "ThrottledException", "RequestLimitExceeded",
    "SlowDown", "EC2ThrottledException",
    # The function is being created or updated: it accepts invocations again in a moment.
    "ResourceConflictException",
})
DEFAULT_WORKERS = 100


def _drain(payload: Any) -> None:
    """Read the Invoke response's ``Payload`` to its end and close it: only then does urllib3 take the connection
    back into its pool, so the next Invoke reuses it instead of opening a new one (on AWS: TCP and TLS handshakes).
    The invocation was accepted already; a failure while reading the (empty) body does not change that."""
    if payload is None:
        return
    try:
        payload.read()
    except (botocore.exceptions.BotoCoreError, OSError) as exc:
        log.debug("could not read an Invoke response body: %s", exc)
    finally:
        payload.close()


def _error_code(exc: botocore.exceptions.ClientError) -> str:
    return str(exc.response.get("Error", {}).get("Code", ""))


def _error_text(exc: botocore.exceptions.ClientError) -> str:
    error = exc.response.get("Error", {})
    return f"{error.get('Code', 'error')}: {error.get('Message') or exc}"


class LambdaInvoker(Invoker):
    """Invokes ``function_name`` asynchronously with each task spec as the event.

    ``workers`` caps invocations in flight: sent and not yet finished (and is the parallelism the automatic
    chunksize plans for); keep it within the function's available concurrency.
    ``completion_margin`` is added to the function's timeout before a missing result counts as lost.
    ``throttle_timeout`` bounds how long one invocation is retried while Lambda throttles. ``storage``, if given
    (an :class:`~lambdamap.aws.s3.S3Storage`), has its bucket checked by :meth:`preflight`.
    ``session`` defaults to a new :class:`boto3.Session` (the standard credential chain).
    """

    notifies_completion = False
    inline_limit = INLINE_ARGS_LIMIT

    def __init__(self, function_name: str, *, region: str | None = None, endpoint_url: str | None = None,
                 session: boto3.Session | None = None, workers: int = DEFAULT_WORKERS,
                 storage: Any = None, completion_margin: float = 60.0, throttle_timeout: float = 3600.0,
                 max_attempts: int = 5) -> None:
        if not isinstance(function_name, str) or not function_name:
            raise ConfigError(f"function_name must be a non-empty Lambda function name or ARN, got {function_name!r}")
        if isinstance(workers, bool) or not isinstance(workers, int) or workers < 1:
            raise ConfigError(f"workers must be a positive integer, got {workers!r}")
        self.function_name = function_name
        self.session = session or boto3.Session()
        self.region = region or self.session.region_name
        self.endpoint_url = endpoint_url
        self.workers = workers
        self.storage = storage
        self.completion_margin = completion_margin
        self.throttle_timeout = throttle_timeout
        self.function_config: dict[str, Any] | None = None
        self.completion_deadline: float | None = None
        # Without a region botocore cannot build the client at all; preflight() reports that.
        self.client: Any = self.session.client(
            "lambda", region_name=self.region, endpoint_url=endpoint_url,
            config=BotoConfig(retries={"mode": "adaptive", "max_attempts": max_attempts},
                              max_pool_connections=workers, read_timeout=70),
        ) if self.region else None
        self._sink: InvocationSink | None = None
        self._pool: ThreadPoolExecutor | None = None
        self._closed = threading.Event()
        self._lock = threading.Lock()
        # The window: at most workers invocations are sent and not yet settled. Lambda queues events beyond the
        # function's free concurrency, and an event waiting in that queue would look lost once its completion
        # clock (started at send) ran out; keeping the window within the concurrency avoids that.
        self._waiting: deque[tuple[TaskSpec, bytes]] = deque()
        self._outstanding: set[tuple[str, int, int]] = set()
        self._settled_early: set[tuple[str, int, int]] = set()
        self._sending = 0
        self.throttled = 0  # throttling responses that reached us past botocore's own retries (diagnostics)
        self._memory_checked: set[int] = set()  # memory sizes whose alias was found ready (see check_memory)

    # -- preflight ---------------------------------------------------------------------------------------------
    def preflight(self) -> dict[str, Any]:
        """Check credentials, region, the function and the bucket once; raise one :class:`PreflightError` naming
        everything that is missing and how to fix it. Returns the function's configuration (cached)."""
        if self.function_config is not None:
            return self.function_config
        problems: list[str] = []
        if not self.region:
            problems.append("no AWS region is set: pass region=... (or set LAMBDAMAP_REGION or AWS_REGION, or "
                            "`region` in ~/.aws/config)")
        try:
            credentials = self.session.get_credentials()
        except botocore.exceptions.BotoCoreError as exc:
            credentials = None
            problems.append(f"the AWS credentials cannot be loaded: {exc}")
        else:
            if credentials is None:
                problems.append("no AWS credentials found: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or "
                                "AWS_PROFILE, or run `aws configure` / `aws sso login`")
        if credentials is not None and self.region:
            config = self._check_function(problems)
            if self.storage is not None and hasattr(self.storage, "check_bucket"):
                problem = self.storage.check_bucket()
                if problem:
                    problems.append(problem)
        else:
            config = None
            problems.append(f"the function {self.function_name!r} and the bucket could not be checked without "
                            "credentials and a region")
        if problems:
            raise PreflightError("the Lambda backend is not ready:\n  - " + "\n  - ".join(problems))
        assert config is not None
        timeout = float(config.get("Timeout") or 900)
        self.completion_deadline = timeout + self.completion_margin
        self.function_config = config
        # What the function is billed at, for job summaries' cost estimates.
        self.memory_mb = int(config.get("MemorySize") or 128)
        self.architecture = (config.get("Architectures") or ["x86_64"])[0]
        return config

    def _check_function(self, problems: list[str]) -> dict[str, Any] | None:
        where = f" at {self.endpoint_url}" if self.endpoint_url else f" in region {self.region}"
        try:
            config = self.client.get_function_configuration(FunctionName=self.function_name)
        except botocore.exceptions.ClientError as exc:
            code = _error_code(exc)
            if code == "ResourceNotFoundException":
                problems.append(f"the Lambda function {self.function_name!r} does not exist{where}: deploy the "
                                f"runtime (`lambdamap deploy --function-name {self.function_name}`) or pass the "
                                "name of a deployed one (function_name=... or LAMBDAMAP_FUNCTION_NAME)")
            elif code in ("AccessDeniedException", "AccessDenied"):
                problems.append(f"not allowed to read the Lambda function {self.function_name!r}{where}: the "
                                "credentials need lambda:GetFunctionConfiguration and lambda:InvokeFunction on it")
            elif code in ("UnrecognizedClientException", "InvalidSignatureException", "ExpiredTokenException",
                          "InvalidClientTokenId"):
                problems.append(f"the AWS credentials were rejected ({_error_text(exc)}): refresh them "
                                "(`aws sso login`, new access keys) or choose another profile (AWS_PROFILE)")
            else:
                problems.append(f"cannot read the Lambda function {self.function_name!r}{where}: {_error_text(exc)}")
            return None
        except botocore.exceptions.BotoCoreError as exc:
            problems.append(f"cannot reach the Lambda API{where}: {exc}")
            return None
        state = config.get("State")
        if state == "Failed":
            problems.append(f"the Lambda function {self.function_name!r} is in state Failed "
                            f"({config.get('StateReason')}): redeploy it")
        self._check_lambda_retries()
        return config

    def _check_lambda_retries(self) -> None:
        """Warn when Lambda itself retries failed async invocations: a call that crashed its worker would run again
        behind lambdamap's back (lambdamap re-runs lost invocations itself, as ``retries`` allows)."""
        try:
            retries = self.client.get_function_event_invoke_config(
                FunctionName=self.function_name).get("MaximumRetryAttempts", 2)
        except botocore.exceptions.ClientError as exc:
            if _error_code(exc) != "ResourceNotFoundException":
                return  # e.g. no permission to read it: not worth failing over
            retries = 2  # no event invoke config: AWS's default
        except botocore.exceptions.BotoCoreError:
            return
        if retries:
            log.warning("the Lambda function %r retries failed asynchronous invocations %d time(s), so a call that "
                        "crashes its worker runs again unasked; set it to 0: aws lambda "
                        "put-function-event-invoke-config --function-name %s --maximum-retry-attempts 0",
                        self.function_name, retries, self.function_name)

    def check_memory(self, memory_mb: int) -> None:
        """A map with ``memory=memory_mb`` invokes the alias ``mem-<MB>`` (:func:`~lambdamap.aws.memory.alias_name`),
        which ``lambdamap deploy --memory-sizes`` publishes. Check once per size, before anything is sent, that it
        exists and has that memory; raise :class:`ConfigError` naming the deploy command otherwise."""
        if memory_mb in self._memory_checked:
            return
        alias = alias_name(memory_mb)
        fix = (f"publish it with `lambdamap deploy --function-name {self.function_name} --memory-sizes {memory_mb}` "
               "(list every size you use: sizes left out are removed), or leave out memory= to use the function's "
               "own memory")
        try:
            config = self.client.get_function_configuration(FunctionName=self.function_name, Qualifier=alias)
        except botocore.exceptions.ClientError as exc:
            if _error_code(exc) == "ResourceNotFoundException":
                raise ConfigError(f"memory={memory_mb} needs the alias {alias!r} of the Lambda function "
                                  f"{self.function_name!r}, which does not exist: {fix}") from None
            raise ConfigError(f"cannot check the alias {alias!r} of the Lambda function {self.function_name!r} for "
                              f"memory={memory_mb}: {_error_text(exc)}") from exc
        except botocore.exceptions.BotoCoreError as exc:
            raise ConfigError(f"cannot check the alias {alias!r} of the Lambda function {self.function_name!r} for "
                              f"memory={memory_mb}: {exc}") from exc
        actual = config.get("MemorySize")
        if actual != memory_mb:
            raise ConfigError(f"the alias {alias!r} of the Lambda function {self.function_name!r} runs at {actual} MB, "
                              f"not {memory_mb}: it was changed outside lambdamap; {fix}")
        # A version deployed with a longer time limit must not count as lost before it could have ended.
        deadline = float(config.get("Timeout") or 900) + self.completion_margin
        with self._lock:
            self.completion_deadline = max(self.completion_deadline or 0.0, deadline)
            self._memory_checked.add(memory_mb)

    # -- the Invoker interface ---------------------------------------------------------------------------------
    def start(self, sink: InvocationSink) -> None:
        self.preflight()  # no-op when make_executor already ran it
        self._sink = sink
        self._pool = ThreadPoolExecutor(max_workers=self.workers, thread_name_prefix="lambdamap-invoke")

    def invoke(self, specs: list[TaskSpec]) -> None:
        if self._pool is None or self._sink is None:
            raise RuntimeError("LambdaInvoker.start() must be called before invoke()")
        payloads = [spec.to_json().encode() for spec in specs]
        too_big = [(s, len(p)) for s, p in zip(specs, payloads, strict=True) if len(p) > ASYNC_PAYLOAD_LIMIT]
        if too_big:
            # Send none of them: a job is submitted whole or not at all.
            spec, size = too_big[0]
            error = InvocationError(
                f"the task spec of invocation {spec.invocation} is {size} bytes, over Lambda's {ASYNC_PAYLOAD_LIMIT} "
                "byte limit for asynchronous invocations; the spec holds only keys and versions, so shorten the "
                "storage location (bucket name, endpoint_url) or the prefix")
            for spec in specs:
                self._sink.lost(spec, error)
            return
        with self._lock:
            self._waiting.extend(zip(specs, payloads, strict=True))
        self._pump()

    def settled(self, spec: TaskSpec) -> None:
        key = (spec.job_id, spec.invocation, spec.attempt)
        with self._lock:
            if key in self._outstanding:
                self._outstanding.remove(key)
            else:
                self._settled_early.add(key)  # its result arrived before its Invoke call returned
        self._pump()

    def _pump(self) -> None:
        """Send waiting invocations while the window has room."""
        with self._lock:
            batch = []
            while self._waiting and len(self._outstanding) + self._sending < self.workers:
                batch.append(self._waiting.popleft())
                self._sending += 1
        pool = self._pool
        assert pool is not None, "start() creates the pool before the first invoke()"
        for spec, payload in batch:
            try:
                pool.submit(self._send_in_window, spec, payload)
            except RuntimeError:  # the pool was shut down by close()
                with self._lock:
                    self._sending -= 1

    def _send_in_window(self, spec: TaskSpec, payload: bytes) -> None:
        sent = False
        try:
            sent = self._send(spec, payload)
        finally:
            key = (spec.job_id, spec.invocation, spec.attempt)
            with self._lock:
                self._sending -= 1
                if sent and key not in self._settled_early:
                    self._outstanding.add(key)
                self._settled_early.discard(key)
            # Not sent, or settled before its Invoke call returned: either way its place in the window is free now.
            self._pump()

    def close(self) -> None:
        self._closed.set()
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)

    # -- internals ---------------------------------------------------------------------------------------------
    def _send(self, spec: TaskSpec, payload: bytes) -> bool:
        """Invoke once, retrying throttling with exponential backoff and full jitter (on top of botocore's own
        retries) until ``throttle_timeout``; any other error fails the invocation's futures. True when sent."""
        assert self._sink is not None
        give_up = time.monotonic() + self.throttle_timeout
        delay = 0.5
        while not self._closed.is_set():
            # Marks the futures running and (re)starts the completion clock: time spent throttled is not counted.
            if not self._sink.started(spec):
                return False  # every call of it was cancelled
            try:
                qualifier = {} if spec.memory_mb is None else {"Qualifier": alias_name(spec.memory_mb)}
                response = self.client.invoke(FunctionName=self.function_name, InvocationType="Event",
                                              Payload=payload, **qualifier)
                _drain(response.get("Payload"))
                return True
            except botocore.exceptions.ClientError as exc:
                code = _error_code(exc)
                if code not in THROTTLING_CODES:
                    self._sink.lost(spec, InvocationError(
                        f"AWS Lambda refused invocation {spec.invocation} of job {spec.job_id} "
                        f"(function {self.function_name!r}): {_error_text(exc)}"))
                    return False
                with self._lock:
                    self.throttled += 1
                if time.monotonic() + delay > give_up:
                    self._sink.lost(spec, InvocationError(
                        f"invocation {spec.invocation} of job {spec.job_id} was throttled by AWS Lambda for "
                        f"{self.throttle_timeout:.0f} s ({_error_text(exc)}); lower `workers` or raise the "
                        "function's concurrency limit"))
                    return False
                log.debug("throttled (%s); retrying invocation %s in up to %.1f s", code, spec.invocation, delay)
                self._closed.wait(random.uniform(0, delay))  # full jitter; wakes at once on close()
                delay = min(delay * 2, 30.0)
            except botocore.exceptions.BotoCoreError as exc:
                self._sink.lost(spec, InvocationError(
                    f"could not invoke the Lambda function {self.function_name!r} for invocation {spec.invocation} "
                    f"of job {spec.job_id}: {exc}"))
                return False
        return False


def make_executor(config: Config, *, session: boto3.Session | None = None) -> Executor:
    """Build the Lambda executor from a :class:`~lambdamap.config.Config`; runs the preflight checks first.

    ``session`` (a :class:`boto3.Session`) overrides the standard credential chain for the client side.
    """
    from lambdamap.aws.s3 import S3Storage
    from lambdamap.core.executor import Executor

    if not config.bucket:
        raise PreflightError("the Lambda backend is not ready:\n  - no S3 bucket is configured: pass bucket=... "
                             "(or set LAMBDAMAP_BUCKET, or `bucket` in the lambdamap config file)")
    session = session or (boto3.Session(region_name=config.region) if config.region else boto3.Session())
    region = config.region or session.region_name
    storage = S3Storage(config.bucket, region=region, endpoint_url=config.endpoint_url, session=session,
                        max_pool_connections=max(50, config.workers or DEFAULT_WORKERS))
    invoker = LambdaInvoker(config.function_name, region=region, endpoint_url=config.lambda_endpoint_url,
                            session=session, workers=config.workers or DEFAULT_WORKERS, storage=storage)
    invoker.preflight()  # before the Executor starts its collector thread: nothing to clean up if it fails
    return Executor(storage, invoker, prefix=config.prefix, progress=config.progress, backend="lambda")
