"""How many threads the BLAS / OpenMP libraries under numpy, scipy and scikit-learn may use in a call.

Their thread-count variables are read once, when a library loads: setting ``OMP_NUM_THREADS`` through ``extra_env``
on a warm worker that has already imported numpy would change nothing. So a call whose ``extra_env`` names one of
them also gets that limit applied to the loaded libraries through ``threadpoolctl`` (present wherever scikit-learn
is), for the duration of its invocation; and calls forked by ``cores=`` run one thread each, as their processes
already share the worker's CPUs.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

#: Thread-count variables of the BLAS / OpenMP libraries that numpy, scipy and scikit-learn load.
THREAD_VARIABLES = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "BLIS_NUM_THREADS",
                    "VECLIB_MAXIMUM_THREADS", "NUMEXPR_NUM_THREADS")


def requested(extra_env: dict[str, str] | None) -> int | None:
    """The thread limit ``extra_env`` asks for (the smallest of its thread variables), or None."""
    values = [v for k, v in (extra_env or {}).items() if k in THREAD_VARIABLES]
    limits = [int(v) for v in values if v.strip().isdigit() and int(v) > 0]
    return min(limits) if limits else None


@contextlib.contextmanager
def limited(threads: int | None) -> Iterator[None]:
    """Limit the loaded BLAS / OpenMP libraries to ``threads`` while the block runs (None: no change). Without
    threadpoolctl nothing is loaded that it could limit beyond what the variables already say."""
    if threads is None:
        yield
        return
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:
        yield
        return
    with threadpool_limits(limits=threads):
        yield
