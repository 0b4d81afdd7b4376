"""A user's module that the workers may already have (as in a Lambda layer): named in ``exclude_modules``."""

import sys

ORIGIN = "file"


class Point:
    def __init__(self, x):
        self.x = x


def where(x):
    """Which copy of this module ran: ``ORIGIN`` as the running code sees it, and whether the worker imported it."""
    return f"{ORIGIN} imported={'helper' in sys.modules}"


def where_point(p):
    return where(p.x)


def collect(xs):
    return where(len(xs))
