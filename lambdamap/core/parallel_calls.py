"""Several calls of one invocation at once, on a worker with several CPUs (a Lambda function above 1,769 MB has up
to six): the calls are split into contiguous slices, each run in a forked process, and the slices' results merged
into the one record, in call order.

Plain ``os.fork`` and pipes, not ``multiprocessing`` pools: AWS Lambda has no ``/dev/shm``, so pools and queues
fail there, while fork and pipes work everywhere on Linux.
"""

from __future__ import annotations

import os
import pickle
import time
from collections.abc import Callable
from multiprocessing.connection import Connection, wait
from typing import Any

from lambdamap.core import threads
from lambdamap.core.serialize import Frames
from lambdamap.core.task import ResultRecord, TaskSpec
from lambdamap.errors import WorkerLostError


def available_cpus() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def _slice_frames(frames: Frames, start: int, stop: int) -> Frames:
    base = frames.ends[start - 1] if start else 0
    return Frames(frames.blob[base:frames.ends[stop - 1]], tuple(e - base for e in frames.ends[start:stop]))


def _merge_frames(parts: list[Frames]) -> Frames:
    blob, ends, offset = bytearray(), list[int](), 0
    for part in parts:
        blob += part.blob
        ends.extend(offset + e for e in part.ends)
        offset += len(part.blob)
    return Frames(bytes(blob), tuple(ends))


def run_in_processes(run: Callable[[TaskSpec, Frames, ResultRecord], None], spec: TaskSpec, calls: Frames,
                     record: ResultRecord, processes: int, threads_each: int = 1) -> None:
    """Run the calls of ``spec`` in up to ``processes`` forked children, filling ``record`` as ``run`` would. The
    children share the worker's CPUs, so each limits its BLAS / OpenMP libraries to ``threads_each`` threads."""
    n = len(calls)
    bounds = [round(i * n / processes) for i in range(processes + 1)]
    slices = [(a, b) for a, b in zip(bounds, bounds[1:], strict=False) if b > a]
    children: list[tuple[int, Connection, int, int]] = []
    for start, stop in slices:
        read_fd, write_fd = os.pipe()
        pid = os.fork()
        if pid == 0:  # the child: run its slice, send the pieces of its record, and leave without cleanup
            os.close(read_fd)
            status = 0
            try:
                sub = ResultRecord(job_id=record.job_id, invocation=record.invocation, attempt=record.attempt,
                                   worker_id=record.worker_id, warm=record.warm, worker_start=record.worker_start,
                                   call_start=spec.call_start + start)
                sub_spec = TaskSpec(**{**spec.to_dict(), "call_start": spec.call_start + start,
                                       "call_count": stop - start})
                with threads.limited(threads_each):
                    run(sub_spec, _slice_frames(calls, start, stop), sub)
                Connection(write_fd, readable=False).send_bytes(pickle.dumps(
                    (sub.times, sub.errors, sub.outputs, sub.values, sub.extra.get("call_attempts", {})),
                    protocol=pickle.HIGHEST_PROTOCOL))
            except BaseException:  # noqa: BLE001 - the parent reports the slice as lost
                status = 1
            finally:
                os._exit(status)
        os.close(write_fd)
        children.append((pid, Connection(read_fd, writable=False), start, stop))
    pieces: dict[int, Any] = {}
    pending = {conn: start for _, conn, start, _ in children}
    while pending:
        for ready in wait(list(pending)):
            conn = ready if isinstance(ready, Connection) else None
            assert conn is not None
            start = pending.pop(conn)
            try:
                pieces[start] = pickle.loads(conn.recv_bytes())
            except (EOFError, OSError):
                pieces[start] = None
            conn.close()
    from lambdamap.core.worker import _call_error  # the worker's own error recording (imported late: no cycle)

    for pid, _, start, stop in children:
        _, status = os.waitpid(pid, 0)
        if pieces.get(start) is None:  # the child died: its calls fail, in their places
            now = time.time()
            errors = {call_id: _call_error(WorkerLostError(
                f"the process running calls {spec.call_start + start}-{spec.call_start + stop - 1} of invocation "
                f"{spec.invocation} died (wait status {status})")) for call_id in range(spec.call_start + start,
                                                                                        spec.call_start + stop)}
            pieces[start] = ([now, now] * (stop - start), errors, {}, Frames(b"", (0,) * (stop - start)), {})
    parts: list[Frames] = []
    for start, _stop in slices:
        times, errors, outputs, values, attempts = pieces[start]
        if times:
            record.times.extend(times)
        record.errors.update(errors)
        record.outputs.update(outputs)
        if attempts:
            record.extra.setdefault("call_attempts", {}).update(attempts)
        parts.append(values if isinstance(values, Frames) else Frames(b"", ()))
    record.values = _merge_frames(parts)
