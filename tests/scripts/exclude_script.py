"""A user's script using ``exclude_modules=``, run as ``python exclude_script.py`` by test_exclude_modules.py.

Its helper module lives in ``exclude_lib/``, which the script puts on ``sys.path`` only after starting its first
executor: those workers cannot import it (a Lambda function without the layer), the second executor's can (with it).
The client changes ``helper.ORIGIN``, so a result says which copy ran: ``client`` if the function came by value,
``file`` if the worker imported ``helper.py`` itself. Prints one section per check, ``=== name``.
"""

import sys
from pathlib import Path

import lambdamap

EXCLUDE = {"exclude_modules": ["helper"]}


def show(label, future):
    exc = future.exception(timeout=120)
    print(f"=== {label}")
    print(future.result() if exc is None else f"{type(exc).__name__}: {exc}")


without_lib = lambdamap.local_executor(workers=1, progress=False)  # its workers' sys.path lacks exclude_lib/
sys.path.insert(0, str(Path(__file__).resolve().parent / "exclude_lib"))
import helper  # noqa: E402 - on purpose after the first executor started

helper.ORIGIN = "client"
with_lib = lambdamap.local_executor(workers=1, progress=False)

with without_lib, with_lib:
    show("default_without_lib", without_lib.map(helper.where, [0])[0])
    show("excluded_without_lib", without_lib.map(helper.where, [0], **EXCLUDE)[0])
    show("default_with_lib", with_lib.map(helper.where, [0])[0])
    # Same function on the same worker: only a different function blob (key) can make this one run by reference.
    show("excluded_with_lib", with_lib.map(helper.where, [0], **EXCLUDE)[0])
    # The option passes through every entry point, and covers the arguments too.
    show("starmap", without_lib.starmap(helper.where, [(0,)], **EXCLUDE)[0])
    show("call_async", without_lib.call_async(helper.where, 0, **EXCLUDE))
    show("argument", without_lib.map(len, [[helper.Point(1)]], **EXCLUDE)[0])
    show("map_reduce", without_lib.map_reduce(abs, [1, 2], helper.collect, **EXCLUDE))
    print("=== imap")
    print(*(type(r).__name__ for r in without_lib.imap(helper.where, [0], return_exceptions=True, **EXCLUDE)))
    print("=== imap_with_lib")
    print(*with_lib.imap(helper.where_point, [helper.Point(0)], **EXCLUDE))
