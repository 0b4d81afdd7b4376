"""The two records that cross the client/worker boundary.

* :class:`TaskSpec` is the payload an invoker sends: small JSON with the storage location, keys, call ids and the
  client's versions. It never holds configuration or credentials (the worker gets those from its own environment).
* :class:`ResultRecord` is what the worker always writes to storage at the end of an invocation: one
  :class:`CallOutcome` per call (a pickled value, or a pickled exception with its traceback), timings, memory
  and the runtime's own versions.
"""

from __future__ import annotations

import base64
import json
import pickle
import platform
from dataclasses import asdict, dataclass, field
from typing import Any

import cloudpickle

from lambdamap._version import __version__
from lambdamap.core.serialize import Frames
from lambdamap.core.tracebacks import RemoteTrace

SPEC_VERSION = 1


def client_versions() -> dict[str, str]:
    """The versions a worker must match: Python major.minor and cloudpickle (pickles depend on both)."""
    py = platform.python_version_tuple()
    return {"python": f"{py[0]}.{py[1]}", "cloudpickle": cloudpickle.__version__, "lambdamap": __version__}


@dataclass(frozen=True)
class TaskSpec:
    """One invocation: calls ``call_start .. call_start + call_count - 1`` of job ``job_id``."""

    job_id: str
    invocation: int
    storage: dict[str, str]
    func_key: str
    args_key: str
    result_key: str
    call_start: int
    call_count: int
    versions: dict[str, str] = field(default_factory=client_versions)
    timeout: float | None = None  # seconds the whole invocation may run (enforced by invokers that can)
    attempt: int = 0
    spec_version: int = SPEC_VERSION
    #: The invocation's pickled calls, base64, when small enough to travel inside the spec (saving a storage
    #: round trip each way); else None and they are at ``args_key``. Never configuration or credentials.
    inline_args: str | None = None
    #: The Lambda memory size (MB) the map asked for with ``memory=``: the Lambda invoker invokes the function's
    #: alias for it; other backends only price the job with it. None: the function's own memory.
    memory_mb: int | None = None

    def load_args(self, storage: Any) -> bytes:
        """The pickled calls: from the spec itself, or from storage."""
        return base64.b64decode(self.inline_args) if self.inline_args is not None else storage.get(self.args_key)

    @property
    def call_ids(self) -> range:
        return range(self.call_start, self.call_start + self.call_count)

    def to_json(self) -> str:
        return json.dumps(asdict(self), separators=(",", ":"), sort_keys=True)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TaskSpec:
        if not isinstance(data, dict):
            raise TypeError(f"a task spec must be a JSON object, got {type(data).__name__}")
        version = data.get("spec_version")
        if version != SPEC_VERSION:
            raise ValueError(
                f"task spec version {version!r} is not supported by this runtime (expects {SPEC_VERSION}); "
                "install the same lambdamap version on the client and the runtime"
            )
        known = set(cls.__dataclass_fields__)
        unknown = set(data) - known
        if unknown:
            raise ValueError(f"unknown task spec fields: {sorted(unknown)}")
        return cls(**data)

    @classmethod
    def from_json(cls, text: str | bytes) -> TaskSpec:
        return cls.from_dict(json.loads(text))

    def retry(self) -> TaskSpec:
        """The same invocation, one attempt later."""
        return TaskSpec(**{**asdict(self), "attempt": self.attempt + 1})


@dataclass
class CallError:
    """How one call failed: the pickled exception, its traceback (plain data the client renders), and its type name
    and message."""

    error: bytes
    traceback: RemoteTrace | str
    error_type: str
    error_message: str
    input_repr: str | None = None  # a short repr of the call's arguments, for the error's note on the client


@dataclass
class CallOutcome:
    """A per-call view of a :class:`ResultRecord` (for inspection and tests; the record itself is columnar)."""

    call_id: int
    value: bytes | None = None
    error: bytes | None = None
    traceback: str | None = None
    error_type: str | None = None
    error_message: str | None = None
    function_start: float | None = None
    function_end: float | None = None

    @property
    def ok(self) -> bool:
        return self.error is None


@dataclass
class ResultRecord:
    """Everything a worker reports about one invocation; written to ``spec.result_key`` in a ``finally``.

    Columnar, so that an invocation of thousands of calls costs one pickle of a list, not thousands of objects:
    ``values`` is the pickled list of return values (``None`` where the call failed), ``errors`` maps failed call ids
    to their :class:`CallError`, ``times`` is ``[start0, end0, start1, end1, ...]`` for the calls that ran.
    """

    job_id: str
    invocation: int
    attempt: int
    worker_id: str
    warm: bool
    worker_start: float
    worker_end: float | None = None
    call_start: int = 0
    values: Frames | bytes | None = None  # Frames: one pickle per call (bytes: one list, from earlier releases)
    errors: dict[int, CallError] = field(default_factory=dict)
    outputs: dict[int, str] = field(default_factory=dict)  # what each call printed or logged (bounded)
    times: list[float] = field(default_factory=list)
    peak_memory_bytes: int | None = None
    runtime_versions: dict[str, str] = field(default_factory=dict)
    platform: str = "local"
    # Set when the invocation as a whole failed before or around the calls (version mismatch, unreadable function):
    # then every call of the invocation fails with this error.
    setup_error: bytes | None = None
    setup_traceback: RemoteTrace | str | None = None
    setup_error_type: str | None = None
    setup_error_message: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def calls_run(self) -> int:
        return len(self.times) // 2

    @property
    def outcomes(self) -> list[CallOutcome]:
        """One :class:`CallOutcome` per call that ran."""
        views = []
        for i in range(self.calls_run):
            call_id = self.call_start + i
            view = CallOutcome(call_id=call_id, function_start=self.times[2 * i], function_end=self.times[2 * i + 1])
            err = self.errors.get(call_id)
            if err is None:
                view.value = cloudpickle.dumps(self.value(i))
            else:
                view.error, view.traceback = err.error, str(err.traceback)
                view.error_type, view.error_message = err.error_type, err.error_message
            views.append(view)
        return views

    def value(self, offset: int) -> Any:
        """The return value of the call at ``offset`` in this invocation (raises if it cannot be unpickled)."""
        if self.values is None:
            return None
        if isinstance(self.values, Frames):
            return self.values.load(offset)
        return pickle.loads(self.values)[offset]

    def dumps(self) -> bytes:
        return pickle.dumps(self, protocol=pickle.HIGHEST_PROTOCOL)

    @staticmethod
    def loads(data: bytes) -> ResultRecord:
        record = pickle.loads(data)
        if not isinstance(record, ResultRecord):
            raise TypeError(f"not a lambdamap result record: {type(record).__name__}")
        return record
