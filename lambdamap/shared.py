"""Old import path of :mod:`lambdamap.core.shared`, kept for one release so that objects pickled by earlier
releases (an ``ObjectRef`` in stored arguments) still load."""

from lambdamap.core.shared import ObjectRef

__all__ = ["ObjectRef"]
