"""A Lambda Invoke API that really runs lambdamap's ``lambda_handler``, and latency proxies in front of it and S3.

Run as its own process by ``lambda_latency.py`` (so the client's CPU time and GIL are the client's alone)::

    python benchmarks/lambda_standin.py --s3-endpoint http://127.0.0.1:PORT --ready-file FILE [--delay 0.05]

::

    client ──▶ proxy (delay) ──▶ Lambda API (this process) ──▶ thread pool: lambda_handler(event, context)
       │                                                                   │
       └────▶ proxy (delay) ──▶ S3 (SeaweedFS) ◀───────────────────────────┘  handlers go to S3 directly
                                                                              (as in-region, no added delay)

* ``POST /2015-03-31/functions/NAME/invocations``: ``X-Amz-Invocation-Type: Event`` answers 202 at once (empty body,
  as AWS) and runs the handler on a pool of ``--concurrency`` threads; ``RequestResponse`` (the default) runs it
  and answers 200 with the handler's JSON. The event's storage location is rewritten from the S3 proxy's URL to
  SeaweedFS's own, so handlers reach S3 without the client's latency.
* ``GET .../configuration`` and ``GET /2019-09-25/functions/NAME/event-invoke-config``: what
  ``LambdaInvoker.preflight()`` reads. Signatures are not checked.
* Control (on the API's own port, never through a proxy): ``GET /_bench/stats`` (invocations, handler ends, the
  connections clients opened through each proxy), ``POST /_bench/reset``, ``POST /_bench/delay?seconds=0.05``.

When ready it writes ``--ready-file``: JSON with ``control_url``, ``lambda_url`` (through the proxy) and ``s3_url``
(through the proxy).
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import signal
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # this checkout's lambdamap, whatever is installed
sys.path.insert(0, str(ROOT / "tests"))  # the TCP proxy of the test support

from support.aws_servers import TcpProxy  # noqa: E402

from lambdamap.aws.handler import lambda_handler  # noqa: E402

ACCOUNT = "000000000000"


class Context:
    """What Lambda hands a handler as ``context`` (the attributes lambdamap reads)."""

    def __init__(self, function_name: str, memory_mb: int, timeout: float) -> None:
        self.function_name = function_name
        self.function_version = "$LATEST"
        self.memory_limit_in_mb = str(memory_mb)
        self.aws_request_id = secrets.token_hex(16)
        self.log_stream_name = "standin"
        self._deadline = time.time() + timeout

    def get_remaining_time_in_millis(self) -> int:
        return max(0, int((self._deadline - time.time()) * 1000))


class StandIn:
    """The Lambda API server, its handler pool and the two proxies."""

    def __init__(self, s3_endpoint: str, *, function_name: str, timeout: int, memory_mb: int, concurrency: int,
                 delay: float, handshake: bool) -> None:
        self.s3_endpoint = s3_endpoint.rstrip("/")
        self.function_name = function_name
        self.timeout = timeout
        self.memory_mb = memory_mb
        self.pool = ThreadPoolExecutor(max_workers=concurrency, thread_name_prefix="handler")
        self.lock = threading.Lock()
        self.invocations = 0
        self.running = 0
        self.handler_errors = 0
        self.last_end = 0.0
        self.first_start = 0.0
        stand_in = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: Any) -> None:
                pass

            def do_GET(self) -> None:
                stand_in.route(self)

            do_POST = do_GET

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.server.request_queue_size = 4096
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.s3_proxy = TcpProxy(self.s3_endpoint, delay=delay, handshake=handshake)
        self.lambda_proxy = TcpProxy(self.url, delay=delay, handshake=handshake)
        self.thread = threading.Thread(target=self.server.serve_forever, name="lambda-api", daemon=True)
        self.thread.start()

    # -- HTTP ------------------------------------------------------------------------------------------------------
    def route(self, req: BaseHTTPRequestHandler) -> None:
        length = int(req.headers.get("Content-Length") or 0)
        body = req.rfile.read(length) if length else b""
        parts = urlsplit(req.path)
        path = unquote(parts.path)
        if path.startswith("/_bench/"):
            self.control(req, path, parse_qs(parts.query))
        elif req.command == "POST" and path.endswith("/invocations"):
            self.invoke(req, body)
        elif req.command == "GET" and path.endswith("/configuration"):
            self.reply(req, 200, self.configuration())
        elif req.command == "GET" and path.endswith("/event-invoke-config"):
            self.reply(req, 200, {"FunctionArn": self.arn(), "MaximumRetryAttempts": 0,
                                  "MaximumEventAgeInSeconds": 21600, "LastModified": time.time()})
        else:
            self.reply(req, 404, {"Type": "User", "message": f"no route for {req.command} {path}"},
                       error="ResourceNotFoundException")

    def reply(self, req: BaseHTTPRequestHandler, status: int, payload: Any = None, *, error: str | None = None,
              headers: dict[str, str] | None = None) -> None:
        data = b"" if payload is None else json.dumps(payload).encode()
        req.send_response(status)
        req.send_header("Content-Type", "application/json")
        req.send_header("x-amzn-RequestId", secrets.token_hex(16))
        if error:
            req.send_header("x-amzn-ErrorType", error)
        for key, value in (headers or {}).items():
            req.send_header(key, value)
        req.send_header("Content-Length", str(len(data)))
        req.end_headers()
        req.wfile.write(data)

    def arn(self) -> str:
        return f"arn:aws:lambda:us-east-1:{ACCOUNT}:function:{self.function_name}"

    def configuration(self) -> dict[str, Any]:
        return {"FunctionName": self.function_name, "FunctionArn": self.arn(), "Runtime": "python3.11",
                "Handler": "lambdamap.aws.handler.lambda_handler", "Timeout": self.timeout,
                "MemorySize": self.memory_mb, "State": "Active", "Architectures": ["x86_64"],
                "Version": "$LATEST"}

    def invoke(self, req: BaseHTTPRequestHandler, body: bytes) -> None:
        try:
            event = json.loads(body or b"{}")
        except ValueError:
            self.reply(req, 400, {"Type": "User", "message": "could not parse the request body as JSON"},
                       error="InvalidRequestContentException")
            return
        storage = event.get("storage") if isinstance(event, dict) else None
        if isinstance(storage, dict) and storage.get("endpoint_url") == self.s3_proxy.endpoint_url:
            storage["endpoint_url"] = self.s3_endpoint  # handlers are in-region: S3 without the client's latency
        if req.headers.get("X-Amz-Invocation-Type", "RequestResponse") == "Event":
            with self.lock:
                self.invocations += 1
            self.pool.submit(self.run_handler, event)
            self.reply(req, 202)
            return
        with self.lock:
            self.invocations += 1
        result = self.run_handler(event)
        self.reply(req, 200, result, headers={"X-Amz-Executed-Version": "$LATEST"})

    def run_handler(self, event: Any) -> Any:
        with self.lock:
            self.running += 1
            if not self.first_start:
                self.first_start = time.time()
        try:
            return lambda_handler(event, Context(self.function_name, self.memory_mb, self.timeout))
        except Exception as exc:  # what Lambda would report as a function error
            with self.lock:
                self.handler_errors += 1
            return {"errorType": type(exc).__name__, "errorMessage": str(exc)}
        finally:
            with self.lock:
                self.running -= 1
                self.last_end = max(self.last_end, time.time())

    def control(self, req: BaseHTTPRequestHandler, path: str, query: dict[str, list[str]]) -> None:
        if path == "/_bench/stats":
            with self.lock:
                stats = {"invocations": self.invocations, "running": self.running, "first_start": self.first_start,
                         "last_end": self.last_end, "handler_errors": self.handler_errors,
                         "lambda_connections": self.lambda_proxy.accepts, "s3_connections": self.s3_proxy.accepts,
                         "delay": self.s3_proxy.delay, "standin_cpu_s": time.process_time()}
            self.reply(req, 200, stats)
        elif path == "/_bench/reset":
            with self.lock:
                self.invocations = self.handler_errors = 0
                self.first_start = self.last_end = 0.0
            self.lambda_proxy.reset()
            self.s3_proxy.reset()
            self.reply(req, 200, {})
        elif path == "/_bench/delay":
            delay = float(query["seconds"][0])
            self.s3_proxy.delay = self.lambda_proxy.delay = delay
            self.reply(req, 200, {"delay": delay})
        else:
            self.reply(req, 404, {"message": path})

    def stop(self) -> None:
        self.lambda_proxy.stop()
        self.s3_proxy.stop()
        self.server.shutdown()
        self.server.server_close()
        self.pool.shutdown(wait=False, cancel_futures=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--s3-endpoint", required=True, help="SeaweedFS's own URL (handlers use it directly)")
    parser.add_argument("--ready-file", type=Path, required=True)
    parser.add_argument("--function-name", default="lambdamap-runtime")
    parser.add_argument("--timeout", type=int, default=900, help="the function's time limit (s)")
    parser.add_argument("--memory", type=int, default=1769, help="the function's memory (MB)")
    parser.add_argument("--concurrency", type=int, default=1000, help="handlers running at once (threads)")
    parser.add_argument("--delay", type=float, default=0.0, help="round trip added by the proxies (s)")
    parser.add_argument("--no-handshake", action="store_true", help="no extra round trip for a new connection")
    args = parser.parse_args()
    stand_in = StandIn(args.s3_endpoint, function_name=args.function_name, timeout=args.timeout,
                       memory_mb=args.memory, concurrency=args.concurrency, delay=args.delay,
                       handshake=not args.no_handshake)
    stopped = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stopped.set())
    signal.signal(signal.SIGINT, lambda *_: stopped.set())
    ready = {"control_url": stand_in.url, "lambda_url": stand_in.lambda_proxy.endpoint_url,
             "s3_url": stand_in.s3_proxy.endpoint_url, "pid": os.getpid()}
    tmp = args.ready_file.with_suffix(".tmp")
    tmp.write_text(json.dumps(ready))
    tmp.replace(args.ready_file)
    stopped.wait()
    stand_in.stop()


if __name__ == "__main__":
    main()
