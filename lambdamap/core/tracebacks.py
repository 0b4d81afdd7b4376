"""Remote tracebacks that name the user's file and show its source line, whatever the worker could see.

cloudpickle 3.1.3 and later rename every code object they pickle by value to ``"<dynamic-code>"``, and a worker on
Lambda or Dask has no copy of the user's files anyway. So the worker reports plain frame data (file, line, function,
and the code's qualified name and first line) and the client renders it: a by-value frame finds its real file through
the code objects this process pickled (:func:`remember`), and its source line through the client's own ``linecache``
(which also holds notebook cells).
"""

from __future__ import annotations

import linecache
import threading
import traceback
import types
from dataclasses import dataclass
from pathlib import Path

#: The file name cloudpickle (>= 3.1.3) gives every code object pickled by value.
DYNAMIC_FILENAME = "<dynamic-code>"
_PACKAGE_DIR = str(Path(__file__).resolve().parent)

# (qualified name, first line) of every code object this process pickled -> the file it came from.
_code_files: dict[tuple[str, int], str] = {}
_code_lock = threading.Lock()
_CODE_FILES_MAX = 100_000


def remember(fn: types.FunctionType) -> None:
    """Note where ``fn``'s code (and every code object nested in it: lambdas, closures, comprehensions) lives."""
    stack = [fn.__code__]
    with _code_lock:
        if len(_code_files) > _CODE_FILES_MAX:  # a process that pickles endless generated code: forget the oldest
            for key in list(_code_files)[: _CODE_FILES_MAX // 2]:
                del _code_files[key]
        while stack:
            code = stack.pop()
            key = (code.co_qualname, code.co_firstlineno)
            if _code_files.get(key) == code.co_filename:
                continue
            if code.co_filename != DYNAMIC_FILENAME:
                _code_files[key] = code.co_filename
            stack.extend(c for c in code.co_consts if isinstance(c, types.CodeType))


@dataclass(frozen=True)
class Frame:
    """One frame as the worker saw it. ``line`` is empty when the worker had no source for it."""

    filename: str
    lineno: int | None
    name: str
    qualname: str
    firstlineno: int
    line: str


@dataclass(frozen=True)
class Section:
    """One exception of a chain: its frames, its ``format_exception_only`` lines, and how it leads to the next one
    (``"cause"``, ``"context"`` or None for the last)."""

    frames: tuple[Frame, ...]
    exception: tuple[str, ...]
    link: str | None


@dataclass(frozen=True)
class RemoteTrace:
    """A worker's exception chain as plain data, rendered on the client by :meth:`render`."""

    sections: tuple[Section, ...]

    def render(self) -> str:
        """The traceback as Python prints it, with real file names and the client's source lines."""
        out: list[str] = []
        for section in self.sections:
            if section.frames:
                out.append("Traceback (most recent call last):\n")
            for frame in section.frames:
                filename, line = _resolve(frame)
                out.append(f'  File "{filename}", line {frame.lineno}, in {frame.name}\n')
                if line:
                    out.append(f"    {line}\n")
            out.extend(section.exception)
            if section.link == "cause":
                out.append("\nThe above exception was the direct cause of the following exception:\n\n")
            elif section.link == "context":
                out.append("\nDuring handling of the above exception, another exception occurred:\n\n")
        return "".join(out)

    def __str__(self) -> str:
        return self.render()


def _resolve(frame: Frame) -> tuple[str, str]:
    """The frame's real file name and source line, preferring the client's source for code it pickled by value."""
    filename = frame.filename
    known = _code_files.get((frame.qualname, frame.firstlineno))
    if filename == DYNAMIC_FILENAME or (known is not None and not frame.line):
        filename = known or filename
    line = frame.line
    if (not line or known is not None) and frame.lineno is not None and filename != DYNAMIC_FILENAME:
        linecache.checkcache(filename)  # skips notebook cells (no mtime), re-reads files edited since
        line = linecache.getline(filename, frame.lineno).strip() or line
    return filename, line


def capture(exc: BaseException) -> RemoteTrace:
    """The exception chain of ``exc`` (oldest first, as Python prints it) as plain data."""
    chain: list[tuple[BaseException, str | None]] = []
    seen: set[int] = set()
    current: BaseException | None = exc
    link: str | None = None
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        chain.append((current, link))
        if current.__cause__ is not None:
            current, link = current.__cause__, "cause"
        elif current.__context__ is not None and not current.__suppress_context__:
            current, link = current.__context__, "context"
        else:
            current = None
    sections = []
    for exc_i, leads_to in reversed(chain):
        sections.append(Section(frames=_frames(exc_i.__traceback__),
                                exception=tuple(traceback.format_exception_only(type(exc_i), exc_i)),
                                link=leads_to))
    return RemoteTrace(tuple(sections))


def _frames(tb: types.TracebackType | None) -> tuple[Frame, ...]:
    frames = []
    for frame, lineno in traceback.walk_tb(tb):
        code = frame.f_code
        line = linecache.getline(code.co_filename, lineno, frame.f_globals).strip() if lineno else ""
        frames.append(Frame(code.co_filename, lineno, code.co_name, code.co_qualname, code.co_firstlineno, line))
    # The worker runtime's own frames before the user's code say nothing to the user.
    while len(frames) > 1 and frames[0].filename.startswith(_PACKAGE_DIR) and frames[0].filename.endswith("worker.py"):
        frames.pop(0)
    return tuple(frames)
