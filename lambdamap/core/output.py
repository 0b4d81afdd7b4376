"""What a call prints on its worker: stdout, stderr and ``logging`` records, captured per call and bounded, so the
client can show it (``future.output``) on every backend, Lambda included, where it would otherwise only reach
CloudWatch."""

from __future__ import annotations

import contextlib
import io
import logging
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
    """Captures the calls of one invocation: :meth:`installed` redirects stdout, stderr and the root logger once
    for the whole invocation (cheap per call); :meth:`take` returns what the last call wrote and starts afresh."""

    def __init__(self, limit: int = OUTPUT_LIMIT) -> None:
        self.limit = limit
        self._stream = _Bounded(limit)

    @contextlib.contextmanager
    def installed(self) -> Iterator[None]:
        stream = _Forward(self)
        handler = logging.StreamHandler(stream)
        handler.setFormatter(logging.Formatter("%(levelname)s:%(name)s:%(message)s"))
        root = logging.getLogger()
        root.addHandler(handler)
        try:
            with contextlib.redirect_stdout(stream), contextlib.redirect_stderr(stream):
                yield
        finally:
            root.removeHandler(handler)

    def write(self, text: str) -> int:
        return self._stream.write(text)

    @property
    def text(self) -> str:
        stream = self._stream
        if not stream.parts and not stream.dropped:
            return ""
        cut = f"\n[lambdamap: {stream.dropped} more characters of output were cut]\n" if stream.dropped else ""
        return "".join(stream.parts) + cut

    def take(self) -> str:
        text = self.text
        if text:
            self._stream = _Bounded(self.limit)
        return text


class _Forward(io.TextIOBase):
    """The stream installed as stdout/stderr: writes go to the capture's current call."""

    def __init__(self, capture: Capture) -> None:
        self.capture = capture

    def writable(self) -> bool:
        return True

    def write(self, text: str) -> int:
        return self.capture.write(text)
