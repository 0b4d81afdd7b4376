"""Execution timeline plots (``pip install '.[plot]'``): where the time of a map went.

:func:`plot` writes a PNG of three views on one time axis: one row per call (from submitted to result received,
with worker start, function start and function end marked), one row per worker (each invocation it ran, and the
time inside your function), and a histogram of call durations. Lines are drawn as ``LineCollection``s and markers
are thinned, so the picture stays readable (and fast) from 10 to 10,000+ calls. :func:`figure` returns the
matplotlib figure instead of saving it.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

from lambdamap.core.future import CallStats, Future
from lambdamap.errors import ConfigError

#: Above this many calls, markers are drawn for an evenly spaced sample (lines are always drawn for every call).
MAX_MARKED_CALLS = 400
#: Up to this many workers, their rows are named and labelled with how busy they were.
MAX_NAMED_WORKERS = 24

_PHASES = (("submitted → function start", "0.8"), ("function start → end", "tab:green"),
           ("function end → result received", "tab:orange"))


def _matplotlib() -> Any:
    try:
        import matplotlib
    except ImportError as exc:
        raise ConfigError("lambdamap.plot needs matplotlib: pip install 'lambdamap[plot]'") from exc
    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    return plt


def _finished(futures: Sequence[Future]) -> list[tuple[Future, CallStats]]:
    if not futures:
        raise ConfigError("plot() needs at least one future")
    done = [(f, f.stats) for f in futures if f.done() and f.stats.result_received is not None]
    if not done:
        raise ConfigError("none of the futures has finished: wait for them first (lambdamap.wait)")
    return done


def _heading(futures: Sequence[Future], finished: list[tuple[Future, CallStats]], title: str | None) -> str:
    """"job ID on BACKEND: N calls ..." (several jobs: their count and the first id)."""
    jobs = sorted({f.job_id for f, _ in finished})
    backends = sorted({s.platform for _, s in finished if s.platform}) or ["unknown backend"]
    workers = {s.worker_id for _, s in finished if s.worker_id}
    invocations = {(f.job_id, s.invocation) for f, s in finished}
    start = min(s.submitted for _, s in finished)
    end = max(s.result_received for _, s in finished if s.result_received is not None)
    what = f"job {jobs[0]}" if len(jobs) == 1 else f"{len(jobs)} jobs ({jobs[0]}, ...)"
    line = (f"{what} on {', '.join(backends)}: {len(finished)} calls in {len(invocations)} invocations on "
            f"{len(workers)} worker(s), {end - start:.2f} s")
    unfinished = len(futures) - len(finished)
    if unfinished:
        line += f" ({unfinished} unfinished, not shown)"
    return f"{title}\n{line}" if title else line


def _integer_axis(axis: Any) -> None:
    from matplotlib.ticker import MaxNLocator

    axis.set_major_locator(MaxNLocator(integer=True, min_n_ticks=1))


def _calls_view(ax: Any, finished: list[CallStats], t0: float) -> None:
    """One row per call: waiting, running and returning segments, and sampled markers."""
    from matplotlib.collections import LineCollection

    n = len(finished)
    width = max(0.3, min(6.0, 300 / n))
    segments: list[list[list[tuple[float, float]]]] = [[], [], []]
    for i, s in enumerate(finished):
        received = s.result_received if s.result_received is not None else s.submitted
        start = s.function_start if s.function_start is not None else received
        end = s.function_end if s.function_end is not None else start
        for phase, (a, b) in enumerate(((s.submitted, start), (start, end), (end, received))):
            segments[phase].append([(a - t0, i), (b - t0, i)])
    for phase, (label, colour) in enumerate(_PHASES):
        ax.add_collection(LineCollection(segments[phase], colors=colour, linewidths=width, label=label))
    step = max(1, n // MAX_MARKED_CALLS)
    size = max(2.0, min(30.0, 3000 / max(1, n // step)))
    for attr, colour, label in (("worker_start", "tab:blue", "worker start"),
                                ("function_start", "darkgreen", "function start"),
                                ("function_end", "tab:red", "function end")):
        points = [(value - t0, i) for i, s in list(enumerate(finished))[::step]
                  if (value := getattr(s, attr)) is not None]
        if points:
            xs, ys = zip(*points, strict=True)
            ax.scatter(xs, ys, s=size, c=colour, label=label, linewidths=0, zorder=3)
    ax.set_ylim(n - 0.5, -0.5)  # the first call on top, as in a Gantt chart
    _integer_axis(ax.yaxis)
    ax.set_ylabel("call (in submission order)")
    marked = "" if step == 1 else f"; markers for every {step}th call"
    ax.set_title(f"per call{marked}", fontsize="medium", loc="left")
    legend = ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1), markerscale=2, fontsize="small")  # not over data
    for handle in legend.legend_handles[:len(_PHASES)]:
        handle.set_linewidth(4)  # thin lines of 10,000 rows would make invisible legend keys


def _workers_view(ax: Any, finished: list[tuple[Future, CallStats]], t0: float) -> None:
    """One row per worker: each invocation it ran (from worker start to its last call's end) and, on top, the
    time spent inside the function; the rest of an invocation is lambdamap's (loading, storing)."""
    from matplotlib.collections import LineCollection

    invocations: dict[tuple[str, int], list[CallStats]] = {}
    for f, s in finished:
        if s.worker_id is not None and s.worker_start is not None:
            invocations.setdefault((f.job_id, s.invocation), []).append(s)
    if not invocations:
        ax.text(0.5, 0.5, "no worker reports", ha="center", va="center", transform=ax.transAxes)
        return
    first_start: dict[str, float] = {}
    for calls in invocations.values():
        worker, start = calls[0].worker_id or "", calls[0].worker_start or 0.0
        first_start[worker] = min(start, first_start.get(worker, start))
    rows = {w: i for i, w in enumerate(sorted(first_start, key=lambda w: first_start[w]))}
    spans: list[list[tuple[float, float]]] = []
    running: list[list[tuple[float, float]]] = []
    busy = dict.fromkeys(rows, 0.0)
    for calls in invocations.values():
        worker, start = calls[0].worker_id or "", calls[0].worker_start or 0.0
        row = rows[worker]
        ends = [s.function_end for s in calls if s.function_end is not None]
        spans.append([(start - t0, row), ((max(ends) if ends else start) - t0, row)])
        for s in calls:
            if s.function_start is not None and s.function_end is not None:
                running.append([(s.function_start - t0, row), (s.function_end - t0, row)])
                busy[worker] += s.function_end - s.function_start
    height = max(1.0, min(14.0, 120 / len(rows)))
    ax.add_collection(LineCollection(spans, colors="0.7", linewidths=height, label="invocation: worker start\n"
                                     "→ last function end"))
    ax.add_collection(LineCollection(running, colors="tab:green", linewidths=height * 0.6, label="in the function"))
    ax.set_ylim(len(rows) - 0.5, -0.5)
    ax.set_ylabel("worker")
    if len(rows) <= MAX_NAMED_WORKERS:
        wall = max(s.result_received for _, s in finished if s.result_received is not None) - t0
        ax.set_yticks(range(len(rows)))
        # "host:pid" ids: the pid tells local workers apart, the whole id is too long for a label.
        ax.set_yticklabels([f"pid {w.rsplit(':', 1)[-1]}: {100 * busy[w] / wall:.0f}% busy" if wall > 0 else w
                            for w in rows], fontsize="small")
    else:
        _integer_axis(ax.yaxis)
    ax.set_title(f"per worker ({len(rows)}): where each worker's time went", fontsize="medium", loc="left")
    ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1), fontsize="small")


def _histogram(ax: Any, finished: list[CallStats]) -> None:
    from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter

    seconds = [d for s in finished if (d := s.function_seconds) is not None]
    # A unit that keeps the tick labels short numbers (15, not 1.5e-05).
    longest = max(seconds, default=1.0)
    unit, scale = ("seconds", 1.0) if longest >= 1 else ("ms", 1e3) if longest >= 1e-3 else ("µs", 1e6)
    durations = [d * scale for d in seconds]
    if durations:
        ax.hist(durations, bins=min(50, max(5, int(len(durations) ** 0.5))), color="tab:green")
    if len(durations) > 100:
        # A log count axis keeps the slow tail visible; plain integer labels (1, 10, 100), none on minor ticks
        # (matplotlib labels those as "2x10^1" when the range spans less than a decade).
        ax.set_yscale("log")
        ax.yaxis.set_major_locator(LogLocator(base=10))
        ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _pos: f"{v:,.0f}" if v >= 1 else ""))
        ax.yaxis.set_minor_formatter(NullFormatter())
    else:
        _integer_axis(ax.yaxis)
    ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _pos: f"{v:g}"))  # 0.0001, not 0.0000
    ax.set_xlabel(f"function duration per call ({unit})")
    ax.set_ylabel("calls")


def figure(futures: Sequence[Future], *, title: str | None = None) -> Any:
    """The timeline of finished ``futures`` as a matplotlib figure (see :func:`plot`)."""
    futures = list(futures)
    finished = _finished(futures)
    plt = _matplotlib()
    stats = [s for _, s in finished]
    t0 = min(s.submitted for s in stats)
    end = max(s.result_received for s in stats if s.result_received is not None) - t0
    fig = plt.figure(figsize=(12, 10), constrained_layout=True)
    grid = fig.add_gridspec(3, 1, height_ratios=[3, 1.6, 1.1])
    calls = fig.add_subplot(grid[0])
    workers = fig.add_subplot(grid[1], sharex=calls)
    hist = fig.add_subplot(grid[2])
    _calls_view(calls, stats, t0)
    _workers_view(workers, finished, t0)
    calls.set_xlim(0, end * 1.02 if end > 0 else 1)
    calls.tick_params(labelbottom=False)
    workers.set_xlabel("seconds since the first call was submitted")
    _histogram(hist, stats)
    fig.suptitle(_heading(futures, finished, title))
    return fig


def plot(futures: Sequence[Future], path: str | os.PathLike[str], *, title: str | None = None) -> str:
    """Write a PNG timeline of finished ``futures`` to ``path``; return the path.

    The title names the job(s) and backend; ``title`` adds a first line. Times are seconds since the first
    submission. Calls that have not finished are left out (and counted in the title).
    """
    fig = figure(futures, title=title)
    try:
        fig.savefig(path, dpi=110)
    finally:
        _matplotlib().close(fig)
    return os.fspath(path)
