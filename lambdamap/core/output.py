"""What a call prints on its worker: stdout, stderr and ``logging`` records, captured per call and bounded, so the
client can show it (``future.output``) on every backend, Lambda included, where it would otherwise only reach
CloudWatch."""

from __future__ import annotations

import contextlib
import io
import logging
import sys
from collections.abc import Iterator

#: Characters kept per call; the rest is cut, with a marker saying how much.
OUTPUT_LIMIT = 64 * 1024


class _Bounded(io.TextIOBase):
    """A text stream that keeps the first ``limit`` characters and counts the rest."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.parts: list[str] = []
        self.size = 0
        self.dropped = 0

    def writable(self) -> bool:
        return True

    def write(self, text: str) -> int:
        room = self.limit - self.size
        if room > 0:
            kept = text[:room]
            self.parts.append(kept)
            self.size += len(kept)
        self.dropped += max(0, len(text) - max(room, 0))
        return len(text)


class Capture:
    """Captures one call at a time; :meth:`take` returns the text of the last call (and clears it)."""

    def __init__(self, limit: int = OUTPUT_LIMIT) -> None:
        self.limit = limit
        self._stream = _Bounded(limit)

    @contextlib.contextmanager
    def call(self) -> Iterator[None]:
        self._stream = stream = _Bounded(self.limit)
        handler = logging.StreamHandler(stream)
        handler.setFormatter(logging.Formatter("%(levelname)s:%(name)s:%(message)s"))
        root = logging.getLogger()
        root.addHandler(handler)
        try:
            with contextlib.redirect_stdout(stream), contextlib.redirect_stderr(stream):
                yield
        finally:
            root.removeHandler(handler)
            with contextlib.suppress(Exception):
                sys.stdout.flush()

    @property
    def text(self) -> str:
        stream = self._stream
        if not stream.parts and not stream.dropped:
            return ""
        cut = f"\n[lambdamap: {stream.dropped} more characters of output were cut]\n" if stream.dropped else ""
        return "".join(stream.parts) + cut

    def take(self) -> str:
        text = self.text
        self._stream = _Bounded(self.limit)
        return text
