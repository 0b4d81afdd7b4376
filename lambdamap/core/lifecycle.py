"""What an executor owns (collector thread, invoker, workers, temporary folder) and how it is released on every path.

::

    shutdown() ─────────────────────────┐
    executor dropped (garbage collected) ┼─▶ Resources.release_when_idle() ─▶ release(): invoker.close(),
    interpreter exit (atexit)  ─────────┤     (exit: wait for running calls     collector.close(), on_shutdown()
    SIGTERM ───────────────────────────┘      first; SIGTERM: none, at once)    (folders), exactly once
    fork ─▶ the child's copy is marked foreign: it refuses work and never touches the parent's workers or storage

A :class:`Resources` never refers to its executor, so dropping the executor can trigger its release.
"""

from __future__ import annotations

import atexit
import logging
import os
import signal
import sys
import threading
import weakref
from collections.abc import Callable
from typing import Any

log = logging.getLogger("lambdamap")

_live: weakref.WeakSet[Resources] = weakref.WeakSet()
_live_lock = threading.Lock()
_sigterm_installed = False


class Resources:
    """The releasable parts of one executor, released once, in the process that created them."""

    def __init__(self, collector: Any, invoker: Any, on_shutdown: Callable[[], None] | None) -> None:
        self.collector = collector
        self.invoker = invoker
        self.on_shutdown = on_shutdown
        self.pid = os.getpid()
        self._lock = threading.Lock()
        self._released = False
        self._release_pending = False
        with _live_lock:
            _live.add(self)
        _install_sigterm_handler()

    @property
    def foreign(self) -> bool:
        """True in a forked child: these workers, threads and folders belong to the parent."""
        return os.getpid() != self.pid

    @property
    def released(self) -> bool:
        return self._released

    def release(self) -> None:
        """Stop the invoker (workers) and the collector, then run ``on_shutdown`` (folders). Idempotent."""
        with self._lock:
            if self._released or self.foreign:
                return
            self._released = True
        with _live_lock:
            _live.discard(self)
        try:
            self.invoker.close()
        finally:
            try:
                self.collector.close()
            finally:
                if self.on_shutdown is not None:
                    self.on_shutdown()

    def release_when_idle(self) -> None:
        """Release once no job is running (at once if none is); running calls finish first."""
        with self._lock:
            if self._released or self._release_pending or self.foreign:
                return
            self._release_pending = True
        self.collector.when_idle(self._release_in_background)

    def _release_in_background(self) -> None:
        # Called from the collector thread when its last job ends: releasing joins that thread, so not here.
        if threading.current_thread() is self.collector.thread:
            threading.Thread(target=self.release, name="lambdamap-release", daemon=True).start()
        else:
            self.release()

    def at_exit(self) -> None:
        """Interpreter exit: like the standard library's executors, wait for calls still running (saying so; Ctrl-C
        cancels them), then release. A script that ends *because of* Ctrl-C (pressed while it was not waiting on
        lambdamap) gets its calls cancelled instead: the user asked it to stop."""
        if self._released or self.foreign:
            return
        pending = [f for f in self.collector.running_futures() if not f.done()]
        if pending:
            import concurrent.futures as cf

            from lambdamap.core.future import interrupted

            try:
                if _ended_by_ctrl_c():
                    raise KeyboardInterrupt  # the Ctrl-C the script ended on: cancel as a second one would
                print(f"lambdamap: waiting for {len(pending)} unfinished calls before exit (Ctrl-C cancels them)",
                      file=sys.stderr, flush=True)
                cf.wait(pending)
            except KeyboardInterrupt:
                interrupted(pending)
        self.release()


def _ended_by_ctrl_c() -> bool:
    """Whether the interpreter is exiting on an uncaught KeyboardInterrupt: Python records the exception it printed
    in ``sys.last_type``. Not in an interactive session, where it may be left over from an earlier command."""
    last = getattr(sys, "last_type", None)
    return (isinstance(last, type) and issubclass(last, KeyboardInterrupt) and not hasattr(sys, "ps1")
            and not sys.flags.interactive)


def finalizer(owner: object, resources: Resources) -> weakref.finalize:
    """Release ``resources`` when ``owner`` (the executor) is garbage collected; exit is handled by :func:`_at_exit`."""
    fin = weakref.finalize(owner, resources.release_when_idle)
    fin.atexit = False
    return fin


@atexit.register
def _at_exit() -> None:
    with _live_lock:
        live = list(_live)
    for resources in live:
        try:
            resources.at_exit()
        except Exception:  # noqa: BLE001 - exit must go on; nothing is printed over the user's own output
            log.debug("lambdamap: release at exit failed", exc_info=True)


def _on_sigterm(signum: int, frame: Any) -> None:
    """Release every executor at once (no waiting: the process is asked to end), then end as SIGTERM asks."""
    with _live_lock:
        live = list(_live)
    for resources in live:
        try:
            resources.release()
        except Exception:  # noqa: BLE001
            pass
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    os.kill(os.getpid(), signal.SIGTERM)


def _install_sigterm_handler() -> None:
    """Clean up on SIGTERM like on Ctrl-C, but only where nobody else handles SIGTERM (the default action would
    kill the process with its workers orphaned and its folders left behind)."""
    global _sigterm_installed
    if _sigterm_installed or threading.current_thread() is not threading.main_thread():
        return
    try:
        if signal.getsignal(signal.SIGTERM) is signal.SIG_DFL:
            signal.signal(signal.SIGTERM, _on_sigterm)
            _sigterm_installed = True
    except (ValueError, OSError):  # not the main interpreter, or signals unavailable
        pass


def _after_fork_in_child() -> None:
    # The parent's executors stay registered in the child's copy of _live, but are foreign there: forget them, so
    # the child's exit neither waits on nor releases them.
    global _sigterm_installed
    with _live_lock:
        _live.clear()
    if _sigterm_installed and signal.getsignal(signal.SIGTERM) is _on_sigterm:
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        _sigterm_installed = False


os.register_at_fork(after_in_child=_after_fork_in_child)
