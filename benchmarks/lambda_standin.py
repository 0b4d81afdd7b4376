"""A Lambda Invoke API that really runs lambdamap's ``lambda_handler``, and latency proxies in front of it and S3.

Run as its own process by ``lambda_latency.py`` (so the client's CPU time and GIL are the client's alone)::

    python benchmarks/lambda_standin.py --s3-endpoint http://127.0.0.1:PORT --ready-file FILE [--delay 0.05]

::

    client ──▶ proxy (delay) ──▶ Lambda API (this process) ──▶ handler processes: lambda_handler(event, context)
       │                                                                   │
       └────▶ proxy (delay) ──▶ S3 (SeaweedFS) ◀───────────────────────────┘  handlers go to S3 directly
                                                                              (as in-region, no added delay)

The API and the proxies are asyncio servers (no thread per connection: a thousand concurrent Invokes cost a
thousand sockets, not a thousand threads) and the handlers run in ``--handler-processes`` processes of their own, so
handler CPU never holds the GIL that the proxies need to keep their delay exact. Every Event invoke is accepted at
once; handlers take them in order (as Lambda's queue would, with the concurrency 2 cores really have).

* ``POST /2015-03-31/functions/NAME/invocations``: ``X-Amz-Invocation-Type: Event`` answers 202 at once (empty body,
  as AWS) and queues the event for the handler processes; ``RequestResponse`` (the default) runs it and answers 200
  with the handler's JSON. The event's storage location is rewritten from the S3 proxy's URL to
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
import asyncio
import json
import multiprocessing
import os
import secrets
import signal
import sys
import time
from concurrent.futures import Future, ProcessPoolExecutor
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # this checkout's lambdamap, whatever is installed
sys.path.insert(0, str(ROOT / "tests"))  # the TCP proxy of the test support

from support.aws_servers import TcpProxy  # noqa: E402

ACCOUNT = "000000000000"
REASONS = {200: "OK", 202: "Accepted", 400: "Bad Request", 404: "Not Found"}


class Context:
    """What Lambda hands a handler as ``context`` (the attributes lambdamap reads)."""

    def __init__(self, function_name: str, memory_mb: int, timeout: float) -> None:
        self.function_name = function_name
        self.function_version = "$LATEST"
        self.memory_limit_in_mb = str(memory_mb)
        self.aws_request_id = secrets.token_hex(16)
        self.log_stream_name = f"standin-{os.getpid()}"
        self._deadline = time.time() + timeout

    def get_remaining_time_in_millis(self) -> int:
        return max(0, int((self._deadline - time.time()) * 1000))


def run_handler(event: Any, function_name: str, memory_mb: int, timeout: float) -> dict[str, Any]:
    """In a handler process: run lambdamap's handler on ``event``; say when it ran and what it returned."""
    from lambdamap.aws.handler import lambda_handler

    start = time.time()
    try:
        result: Any = lambda_handler(event, Context(function_name, memory_mb, timeout))
        error = False
    except Exception as exc:  # what Lambda would report as a function error
        result, error = {"errorType": type(exc).__name__, "errorMessage": str(exc)}, True
    return {"start": start, "end": time.time(), "result": result, "error": error}


class StandIn:
    """The Lambda API server, its handler processes and the two proxies."""

    def __init__(self, s3_endpoint: str, *, function_name: str, timeout: int, memory_mb: int, processes: int,
                 delay: float, handshake: bool) -> None:
        self.s3_endpoint = s3_endpoint.rstrip("/")
        self.function_name = function_name
        self.timeout = timeout
        self.memory_mb = memory_mb
        self.pool = ProcessPoolExecutor(max_workers=processes, mp_context=multiprocessing.get_context("spawn"))
        self.invocations = 0
        self.running = 0
        self.handler_errors = 0
        self.last_end = 0.0
        self.first_start = 0.0
        self.s3_proxy = TcpProxy(self.s3_endpoint, delay=delay, handshake=handshake)
        self.url = ""
        self.lambda_proxy: TcpProxy | None = None

    async def start(self, handshake: bool) -> None:
        server = await asyncio.start_server(self.serve, "127.0.0.1", 0, backlog=4096)
        self.url = f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}"
        self.lambda_proxy = TcpProxy(self.url, delay=self.s3_proxy.delay, handshake=handshake)

    # -- HTTP/1.1 with keep-alive ----------------------------------------------------------------------------------
    async def serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                line = await reader.readline()
                if not line.strip():
                    return
                method, target, _ = line.decode("latin-1").split(" ", 2)
                headers: dict[str, str] = {}
                while (header := await reader.readline()) not in (b"\r\n", b"\n", b""):
                    name, _, value = header.decode("latin-1").partition(":")
                    headers[name.strip().lower()] = value.strip()
                if headers.get("expect", "").lower() == "100-continue":
                    writer.write(b"HTTP/1.1 100 Continue\r\n\r\n")
                body = await reader.readexactly(int(headers.get("content-length") or 0))
                status, payload, extra = await self.route(method, target, headers, body)
                data = b"" if payload is None else json.dumps(payload).encode()
                head = [f"HTTP/1.1 {status} {REASONS.get(status, 'Error')}", "Content-Type: application/json",
                        f"x-amzn-RequestId: {secrets.token_hex(16)}", f"Content-Length: {len(data)}",
                        *(f"{k}: {v}" for k, v in extra.items())]
                writer.write(("\r\n".join(head) + "\r\n\r\n").encode("latin-1") + data)
                await writer.drain()
                if headers.get("connection", "").lower() == "close":
                    return
        except (OSError, ValueError, asyncio.IncompleteReadError):
            return
        finally:
            writer.close()

    async def route(self, method: str, target: str, headers: dict[str, str],
                    body: bytes) -> tuple[int, Any, dict[str, str]]:
        parts = urlsplit(target)
        path = unquote(parts.path)
        if path.startswith("/_bench/"):
            return self.control(path, parse_qs(parts.query))
        if method == "POST" and path.endswith("/invocations"):
            return await self.invoke(headers, body)
        if method == "GET" and path.endswith("/configuration"):
            return 200, self.configuration(), {}
        if method == "GET" and path.endswith("/event-invoke-config"):
            return 200, {"FunctionArn": self.arn(), "MaximumRetryAttempts": 0, "MaximumEventAgeInSeconds": 21600,
                         "LastModified": time.time()}, {}
        return 404, {"Type": "User", "message": f"no route for {method} {path}"}, {
            "x-amzn-ErrorType": "ResourceNotFoundException"}

    def arn(self) -> str:
        return f"arn:aws:lambda:us-east-1:{ACCOUNT}:function:{self.function_name}"

    def configuration(self) -> dict[str, Any]:
        return {"FunctionName": self.function_name, "FunctionArn": self.arn(), "Runtime": "python3.11",
                "Handler": "lambdamap.aws.handler.lambda_handler", "Timeout": self.timeout,
                "MemorySize": self.memory_mb, "State": "Active", "Architectures": ["x86_64"],
                "Version": "$LATEST"}

    async def invoke(self, headers: dict[str, str], body: bytes) -> tuple[int, Any, dict[str, str]]:
        try:
            event = json.loads(body or b"{}")
        except ValueError:
            return 400, {"Type": "User", "message": "could not parse the request body as JSON"}, {
                "x-amzn-ErrorType": "InvalidRequestContentException"}
        storage = event.get("storage") if isinstance(event, dict) else None
        if isinstance(storage, dict) and storage.get("endpoint_url") == self.s3_proxy.endpoint_url:
            storage["endpoint_url"] = self.s3_endpoint  # handlers are in-region: S3 without the client's latency
        self.invocations += 1
        self.running += 1
        job = self.pool.submit(run_handler, event, self.function_name, self.memory_mb, self.timeout)
        if headers.get("x-amz-invocation-type", "RequestResponse") == "Event":
            loop = asyncio.get_running_loop()
            job.add_done_callback(lambda done: loop.call_soon_threadsafe(self.ended, done))
            return 202, None, {}
        outcome = await asyncio.wrap_future(job)
        self.ended(job)
        return 200, outcome["result"], {"X-Amz-Executed-Version": "$LATEST"}

    def ended(self, job: Future[dict[str, Any]]) -> None:
        # Runs on the loop, as everything that touches these numbers.
        self.running -= 1
        try:
            outcome = job.result()
        except Exception:
            self.handler_errors += 1
            return
        self.handler_errors += int(outcome["error"])
        self.first_start = min(self.first_start or outcome["start"], outcome["start"])
        self.last_end = max(self.last_end, outcome["end"])

    def control(self, path: str, query: dict[str, list[str]]) -> tuple[int, Any, dict[str, str]]:
        assert self.lambda_proxy is not None
        if path == "/_bench/stats":
            return 200, {"invocations": self.invocations, "running": self.running, "first_start": self.first_start,
                         "last_end": self.last_end, "handler_errors": self.handler_errors,
                         "lambda_connections": self.lambda_proxy.accepts, "s3_connections": self.s3_proxy.accepts,
                         "delay": self.s3_proxy.delay, "standin_cpu_s": self.cpu_seconds()}, {}
        if path == "/_bench/reset":
            self.invocations = self.handler_errors = 0
            self.first_start = self.last_end = 0.0
            self.lambda_proxy.reset()
            self.s3_proxy.reset()
            return 200, {}, {}
        if path == "/_bench/delay":
            delay = float(query["seconds"][0])
            self.s3_proxy.delay = self.lambda_proxy.delay = delay
            return 200, {"delay": delay}, {}
        return 404, {"message": path}, {}

    def cpu_seconds(self) -> float:
        """CPU time of this process and its handler processes (from /proc where there is one)."""
        total = time.process_time()
        for pid in getattr(self.pool, "_processes", None) or {}:
            try:
                fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            except (OSError, IndexError):
                continue
            total += (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
        return total

    def stop(self) -> None:
        if self.lambda_proxy is not None:
            self.lambda_proxy.stop()
        self.s3_proxy.stop()
        self.pool.shutdown(wait=False, cancel_futures=True)


async def serve(args: argparse.Namespace) -> None:
    stand_in = StandIn(args.s3_endpoint, function_name=args.function_name, timeout=args.timeout,
                       memory_mb=args.memory, processes=args.handler_processes, delay=args.delay,
                       handshake=not args.no_handshake)
    stopped = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stopped.set)
    try:
        await stand_in.start(handshake=not args.no_handshake)
        assert stand_in.lambda_proxy is not None
        ready = {"control_url": stand_in.url, "lambda_url": stand_in.lambda_proxy.endpoint_url,
                 "s3_url": stand_in.s3_proxy.endpoint_url, "pid": os.getpid()}
        tmp = args.ready_file.with_suffix(".tmp")
        tmp.write_text(json.dumps(ready))
        tmp.replace(args.ready_file)
        await stopped.wait()
    finally:
        stand_in.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--s3-endpoint", required=True, help="SeaweedFS's own URL (handlers use it directly)")
    parser.add_argument("--ready-file", type=Path, required=True)
    parser.add_argument("--function-name", default="lambdamap-runtime")
    parser.add_argument("--timeout", type=int, default=900, help="the function's time limit (s)")
    parser.add_argument("--memory", type=int, default=1769, help="the function's memory (MB)")
    parser.add_argument("--handler-processes", type=int, default=4, help="processes running handlers")
    parser.add_argument("--delay", type=float, default=0.0, help="round trip added by the proxies (s)")
    parser.add_argument("--no-handshake", action="store_true", help="no extra round trip for a new connection")
    asyncio.run(serve(parser.parse_args()))


if __name__ == "__main__":
    main()
