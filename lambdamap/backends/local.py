"""The local backend's invoker: a persistent pool of warm worker processes, each running :func:`run_task`.

Each worker has its own pipe, so the dispatcher always knows which invocation a worker is running. That is what lets
a dead worker (SIGKILL, segfault, ``os._exit``, the OOM killer) fail exactly its own invocation, and a call past its
timeout be stopped by killing only its worker; the dead worker is replaced and the pool stays usable. (A
``ProcessPoolExecutor`` breaks as a whole when one worker dies, and ``multiprocessing.Pool`` loses the task.)

The dispatcher thread blocks in :func:`multiprocessing.connection.wait` on the pipes, the process sentinels and a
wake-up pipe: completions reach the collector without sleep-polling.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import subprocess
import sys
import threading
import time
from collections import deque
from dataclasses import dataclass
from multiprocessing.connection import Connection, wait
from typing import TYPE_CHECKING, Any

from lambdamap.backends.base import InvocationSink, Invoker
from lambdamap.core.task import TaskSpec
from lambdamap.core.threads import THREAD_VARIABLES
from lambdamap.errors import StorageError, TaskTimeoutError, WorkerLostError

if TYPE_CHECKING:
    from lambdamap.config import Config
    from lambdamap.core.executor import Executor

log = logging.getLogger("lambdamap")
KILL_GRACE = 2.0  # seconds past a call's timeout before its worker is killed
STOP_GRACE = 1.0  # seconds idle workers get to exit by themselves at shutdown
PARENT_CHECK_SECONDS = 0.25  # how often a pool process checks that its client is still alive
STOPPED_LIMIT = 10.0  # seconds a worker may stay stopped (SIGSTOP) while running a call before it counts as lost
STOP_CHECK_SECONDS = 1.0  # how often busy workers are checked for being stopped


def _exit_with_parent(parent: int) -> None:
    """A pool process never outlives its client by more than a fraction of a second, whatever the client died of
    (SIGKILL included) and whatever the user's call is doing: a thread watches the parent and ends the process."""
    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(PARENT_CHECK_SECONDS)
        os._exit(0)

    threading.Thread(target=watch, name="lambdamap-parent-watch", daemon=True).start()


def _worker_main(read_fd: int, write_fd: int, parent: int) -> None:
    """Body of a pool process: receive task specs (JSON), run them, report back on the other pipe. When the client
    goes away it exits quietly: nothing reaches the user's terminal."""
    from lambdamap.core.worker import run_task

    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the client's to handle
    _exit_with_parent(parent)
    inbox, outbox = Connection(read_fd, writable=False), Connection(write_fd, readable=False)
    try:
        outbox.send(("ready", os.getpid()))
        while True:
            try:
                message = inbox.recv()
            except (EOFError, OSError):
                return  # the client went away
            if message is None:
                return
            try:
                # With a timeout, say which call is running: if one hangs in C and the worker must be killed, the
                # client can name it (and the calls that never ran) instead of blaming them all.
                spec = TaskSpec.from_json(message)
                on_call = (lambda call_id: outbox.send(("call", call_id))) \
                    if spec.timeout is not None and spec.call_count > 1 else None
                run_task(spec, platform="local", on_call=on_call)
                reply: tuple[str, Any] = ("ok", None)
            except BaseException as exc:  # noqa: BLE001 - e.g. storage full: the record could not be written
                reply = ("error", f"{type(exc).__name__}: {exc}")
            outbox.send(reply)
    except (BrokenPipeError, EOFError, OSError):
        return  # the client closed our pipe (shut down or gone): nothing to report to


def _timeout_error(spec: TaskSpec, hung: int | None, pid: int) -> TaskTimeoutError:
    """The error of an invocation whose worker was killed past its timeout, naming the call that hung and saying
    which calls never ran (``call_errors``: one error per call, for the collector)."""
    error = TaskTimeoutError(f"invocation {spec.invocation} timed out after {spec.timeout:g} s ({spec.call_count} "
                             f"call(s)); its worker process {pid} was stopped")
    if hung is not None:
        per_call: dict[int, BaseException] = {}
        for call_id in spec.call_ids:
            if call_id == hung:
                per_call[call_id] = TaskTimeoutError(
                    f"call {call_id} hung past its timeout ({(spec.timeout or 0) / spec.call_count:g} s) and did not "
                    f"return to Python; its worker process {pid} was stopped")
            elif call_id > hung:
                per_call[call_id] = WorkerLostError(
                    f"call {call_id} did not run: call {hung} of the same invocation hung and its worker was stopped")
            else:
                per_call[call_id] = WorkerLostError(
                    f"call {call_id} finished, but its result was lost with the worker stopped after call {hung} "
                    "hung")
        error.call_errors = per_call  # type: ignore[attr-defined]
    return error


def _describe_exit(code: int | None) -> str:
    if code is None:
        return "is unresponsive"
    if code < 0:
        try:
            return f"was killed by signal {signal.Signals(-code).name}"
        except ValueError:
            return f"was killed by signal {-code}"
    return f"exited with code {code}"


@dataclass(eq=False)
class _Worker:
    process: subprocess.Popen[bytes]
    inbox: Connection  # client -> worker
    conn: Connection  # worker -> client; EOF when the worker dies, unless a process it started holds the pipe
    sentinel: int | None  # a pidfd: readable when the process has ended, whatever holds its pipes
    spec: TaskSpec | None = None
    deadline: float | None = None
    ready: bool = False
    stopped_since: float | None = None
    current_call: int | None = None  # reported by the worker when the invocation has a timeout
    killed: bool = False  # sent SIGKILL: gets no new work, even if it reports a result that was already on its way

    def close_sentinel(self) -> None:
        if self.sentinel is not None:
            with contextlib.suppress(OSError):
                os.close(self.sentinel)
            self.sentinel = None


def _is_stopped(pid: int) -> bool:
    """Whether the process is stopped (SIGSTOP / SIGTSTP): state T in /proc (Linux; False elsewhere)."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as fh:
            return fh.read().rsplit(b")", 1)[1].split()[0] in (b"T", b"t")
    except (OSError, IndexError):
        return False


class LocalInvoker(Invoker):
    """A pool of ``workers`` processes (default: the CPU count) started once and reused by every invocation."""

    notifies_completion = True

    def __init__(self, workers: int | None = None) -> None:
        self.workers = workers or os.cpu_count() or 1
        self._sink: InvocationSink | None = None
        self._queue: deque[TaskSpec] = deque()
        self._lock = threading.Lock()
        self._closed = False
        self._wake_r, self._wake_w = os.pipe()
        self._workers: list[_Worker] = []
        self._thread: threading.Thread | None = None
        self._cancelled: set[tuple[str, int, int]] = set()

    # -- Invoker API --------------------------------------------------------------------------------------------
    def start(self, sink: InvocationSink) -> None:
        self._sink = sink
        self._workers = [self._spawn() for _ in range(self.workers)]
        self._thread = threading.Thread(target=self._dispatch, name="lambdamap-local-dispatch", daemon=True)
        self._thread.start()

    def invoke(self, specs: list[TaskSpec]) -> None:
        with self._lock:
            self._queue.extend(specs)
        self._wake()

    def close(self) -> None:
        with self._lock:
            if self._closed:
                return
            self._closed = True
        self._wake()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout=30)
        self._stop_all(self._workers)
        for fd in (self._wake_r, self._wake_w):
            try:
                os.close(fd)
            except OSError:
                pass

    def cancel(self, specs: list[TaskSpec]) -> None:
        """Kill the workers running these invocations, all at once; the dispatcher reports them lost (their futures
        are already cancelled) and starts fresh processes."""
        with self._lock:
            self._cancelled.update((spec.job_id, spec.invocation, spec.attempt) for spec in specs)
        self._wake()  # the dispatcher kills them: only it knows that a worker still runs *that* invocation

    def _kill_cancelled(self) -> None:
        with self._lock:
            wanted, self._cancelled = self._cancelled, set()
        if not wanted:
            return
        for worker in self._workers:
            spec = worker.spec
            if spec is not None and (spec.job_id, spec.invocation, spec.attempt) in wanted:
                worker.killed = True
                with contextlib.suppress(OSError):
                    worker.process.kill()  # its death is noticed through its sentinel; no new work meanwhile

    @property
    def pids(self) -> list[int]:
        """Process ids of the current workers (for tests and diagnostics)."""
        return [w.process.pid for w in self._workers]

    # -- internals ----------------------------------------------------------------------------------------------
    def _wake(self) -> None:
        try:
            os.write(self._wake_w, b"x")
        except OSError:
            pass

    def _spawn(self) -> _Worker:
        # A fresh interpreter per *worker* (not per call), talking over two dedicated pipes. Unlike
        # multiprocessing's spawn/forkserver it never re-imports the user's __main__, so scripts without an
        # `if __name__ == "__main__"` guard work; functions arrive by cloudpickle anyway.
        to_worker_r, to_worker_w = os.pipe()
        from_worker_r, from_worker_w = os.pipe()
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(p for p in sys.path if p and os.path.isdir(p))
        # One BLAS/OpenMP thread per worker: N workers on N cores, not N x N threads fighting over them. A value set
        # in the client's environment wins (BLAS reads it once, when a worker first imports numpy).
        for name in THREAD_VARIABLES:
            env.setdefault(name, "1")
        try:
            process = subprocess.Popen(
                [sys.executable, "-c", f"from lambdamap.backends.local import _worker_main; "
                                       f"_worker_main({to_worker_r}, {from_worker_w}, {os.getpid()})"],
                pass_fds=(to_worker_r, from_worker_w), stdin=subprocess.DEVNULL, env=env, close_fds=True,
            )
        finally:
            os.close(to_worker_r)
            os.close(from_worker_w)
        sentinel = None
        with contextlib.suppress(AttributeError, OSError):  # pidfd_open: Linux 5.3+
            sentinel = os.pidfd_open(process.pid)
        return _Worker(process=process, inbox=Connection(to_worker_w, readable=False),
                       conn=Connection(from_worker_r, writable=False), sentinel=sentinel)

    @staticmethod
    def _stop_all(workers: list[_Worker]) -> None:
        """Ask every worker to exit, give them together a short grace, then kill the rest at once: stopping N busy
        workers takes about one grace period, not N."""
        for worker in workers:
            with contextlib.suppress(OSError, ValueError):
                worker.inbox.send(None)
        deadline = time.monotonic() + STOP_GRACE
        for worker in workers:
            if worker.spec is not None:
                with contextlib.suppress(OSError):
                    worker.process.kill()  # busy: it would not read the request before its call ends
        for worker in workers:
            try:
                worker.process.wait(timeout=max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                with contextlib.suppress(OSError):
                    worker.process.kill()
        for worker in workers:
            with contextlib.suppress(subprocess.TimeoutExpired):
                worker.process.wait(timeout=5)
            worker.inbox.close()
            worker.conn.close()
            worker.close_sentinel()

    def _assign(self) -> None:
        assert self._sink is not None
        for worker in self._workers:
            if worker.spec is not None or not worker.ready or worker.killed:
                continue
            while True:
                with self._lock:
                    if not self._queue:
                        return
                    spec = self._queue.popleft()
                if self._sink.started(spec):
                    break
            worker.spec, worker.current_call = spec, None
            # The worker raises TaskTimeoutError itself at spec.timeout; the kill is for code that never yields.
            worker.deadline = None if spec.timeout is None else time.monotonic() + spec.timeout + KILL_GRACE
            try:
                worker.inbox.send(spec.to_json())
            except (OSError, ValueError):
                pass  # the worker is dead: its pipe's EOF reports the invocation lost

    def _dispatch(self) -> None:
        while not self._closed:
            self._kill_cancelled()
            self._assign()
            deadlines = [w.deadline for w in self._workers if w.deadline is not None]
            if any(w.spec is not None for w in self._workers):
                deadlines.append(time.monotonic() + STOP_CHECK_SECONDS)
            timeout = None if not deadlines else max(0.0, min(deadlines) - time.monotonic())
            sentinels = [w.sentinel for w in self._workers if w.sentinel is not None]
            ready = set(wait([self._wake_r, *(w.conn for w in self._workers), *sentinels], timeout))
            if self._wake_r in ready:
                os.read(self._wake_r, 65536)
            for i, worker in enumerate(self._workers):
                if worker.conn in ready:
                    self._receive(i, worker)
                elif worker.sentinel is not None and worker.sentinel in ready:
                    # Dead, though a process it started may still hold its pipe open.
                    self._replace(i, worker, None)
            now = time.monotonic()
            self._check_stopped(now)
            for i, worker in enumerate(self._workers):
                if worker.spec is not None and worker.deadline is not None and worker.deadline <= now:
                    spec = worker.spec
                    worker.process.kill()
                    self._replace(i, worker, _timeout_error(spec, worker.current_call, worker.process.pid))

    def _check_stopped(self, now: float) -> None:
        """A worker stopped (SIGSTOP) in the middle of a call would hold it for ever: past STOPPED_LIMIT it is
        killed and its invocation reported lost."""
        for i, worker in enumerate(self._workers):
            if worker.spec is None or not _is_stopped(worker.process.pid):
                worker.stopped_since = None
                continue
            if worker.stopped_since is None:
                worker.stopped_since = now
            elif now - worker.stopped_since >= STOPPED_LIMIT:
                spec = worker.spec
                worker.process.kill()
                self._replace(i, worker, WorkerLostError(
                    f"worker process {worker.process.pid} was stopped (SIGSTOP) for {now - worker.stopped_since:.0f} "
                    f"s while running invocation {spec.invocation}; it was killed"))

    def _receive(self, index: int, worker: _Worker) -> None:
        assert self._sink is not None
        try:
            status, message = worker.conn.recv()
        except (EOFError, OSError):
            self._replace(index, worker, None)  # the worker died
            return
        if status == "ready":
            worker.ready = True
            return
        if status == "call":
            worker.current_call = message
            return
        spec, worker.spec, worker.deadline, worker.current_call = worker.spec, None, None, None
        if spec is None:
            return
        if status == "ok":
            self._sink.finished(spec)
        else:
            self._sink.lost(spec, StorageError(f"the worker could not write the result of invocation "
                                               f"{spec.invocation}: {message}"))

    def _replace(self, index: int, worker: _Worker, error: BaseException | None) -> None:
        """Worker ``index`` is gone (or being stopped): report its invocation and start a fresh process."""
        assert self._sink is not None
        try:
            code = worker.process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            worker.process.kill()
            code = worker.process.wait()
        spec = worker.spec
        if spec is not None:
            if error is None:
                error = WorkerLostError(f"worker process {worker.process.pid} {_describe_exit(code)} while running "
                                        f"invocation {spec.invocation}")
            self._sink.lost(spec, error)
        worker.inbox.close()
        worker.conn.close()
        worker.close_sentinel()
        if not self._closed:
            self._workers[index] = self._spawn()


def make_executor(config: Config) -> Executor:
    """Build the local executor from a :class:`~lambdamap.config.Config`."""
    import shutil
    import tempfile

    from lambdamap.core.executor import Executor
    from lambdamap.storage.local import LocalStorage

    owned = config.storage_dir is None
    root: str = tempfile.mkdtemp(prefix="lambdamap-") if config.storage_dir is None else config.storage_dir
    return Executor(
        LocalStorage(root), LocalInvoker(config.workers), prefix=config.prefix, progress=config.progress,
        on_shutdown=(lambda: shutil.rmtree(root, ignore_errors=True)) if owned else None, backend="local",
    )
