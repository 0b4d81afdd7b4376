"""Execution timeline plots (``pip install '.[plot]'``): where the time of a map went.

:func:`plot` draws one horizontal line per call, from submitted to result received, with worker start, function start
and function end marked, plus a histogram of call durations. Lines are drawn as one ``LineCollection`` and markers
are thinned, so the picture stays readable (and fast) from 10 to 10,000+ calls.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

from lambdamap.core.future import Future
from lambdamap.errors import ConfigError

#: Above this many calls, markers are drawn for an evenly spaced sample (lines are always drawn for every call).
MAX_MARKED_CALLS = 400


def _matplotlib() -> Any:
    try:
        import matplotlib
    except ImportError as exc:
        raise ConfigError("lambdamap.plot needs matplotlib: pip install 'lambdamap[plot]'") from exc
    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    return plt


def plot(futures: Sequence[Future], path: str | os.PathLike[str], *, title: str | None = None) -> str:
    """Write a PNG timeline of finished ``futures`` to ``path``; return the path.

    Times are seconds since the first submission. Calls that have not finished are left out (and counted in the
    title).
    """
    futures = list(futures)
    if not futures:
        raise ConfigError("plot() needs at least one future")
    stats = [f.stats for f in futures if f.done()]
    finished = [s for s in stats if s.result_received is not None]
    if not finished:
        raise ConfigError("none of the futures has finished: wait for them first (lambdamap.wait)")
    plt = _matplotlib()
    from matplotlib.collections import LineCollection

    t0 = min(s.submitted for s in finished)
    n = len(finished)
    fig, (timeline, hist) = plt.subplots(2, 1, figsize=(10, 8), height_ratios=[3, 1], constrained_layout=True)

    # Each call is three phases on its row: waiting (submitted -> function start), running (function start -> end)
    # and returning (function end -> result received). Collections keep 10,000 rows fast to draw.
    width = max(0.3, min(3.0, 300 / n))
    phases = {"waiting": [], "running": [], "returning": []}
    for i, s in enumerate(finished):
        start = s.function_start if s.function_start is not None else s.result_received
        end = s.function_end if s.function_end is not None else start
        phases["waiting"].append([(s.submitted - t0, i), (start - t0, i)])
        phases["running"].append([(start - t0, i), (end - t0, i)])
        phases["returning"].append([(end - t0, i), (s.result_received - t0, i)])
    for (name, segments), colour in zip(phases.items(), ("0.8", "tab:green", "tab:orange"), strict=True):
        timeline.add_collection(LineCollection(segments, colors=colour, linewidths=width,
                                               label={"waiting": "submitted → function start",
                                                      "running": "function start → end",
                                                      "returning": "function end → result received"}[name]))
    step = max(1, n // MAX_MARKED_CALLS)
    size = max(2.0, min(30.0, 3000 / max(1, n // step)))
    for attr, colour, label in (("worker_start", "tab:blue", "worker start"),
                                ("function_start", "darkgreen", "function start"),
                                ("function_end", "tab:red", "function end")):
        points = [(getattr(s, attr) - t0, i) for i, s in list(enumerate(finished))[::step]
                  if getattr(s, attr) is not None]
        if points:
            xs, ys = zip(*points, strict=True)
            timeline.scatter(xs, ys, s=size, c=colour, label=label, linewidths=0, zorder=3)
    end = max(s.result_received for s in finished) - t0
    timeline.set_xlim(0, end * 1.02 if end > 0 else 1)
    timeline.set_ylim(-1, n)
    timeline.set_xlabel("seconds since the first call was submitted")
    timeline.set_ylabel("call")
    unfinished = len(futures) - n
    heading = title or f"{n} calls" + (f" ({unfinished} unfinished, not shown)" if unfinished else "")
    if step > 1:
        heading += f"; markers for every {step}th call"
    timeline.set_title(heading)
    timeline.legend(loc="lower right", markerscale=2, fontsize="small")

    durations = [s.function_seconds for s in finished if s.function_seconds is not None]
    if durations:
        hist.hist(durations, bins=min(50, max(5, int(len(durations) ** 0.5))), color="tab:green",
                  log=len(durations) > 100)  # a log count axis keeps the slow tail visible
    hist.set_xlabel("function duration per call (seconds)")
    hist.set_ylabel("calls")
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return os.fspath(path)
