"""The two records that cross the client/worker boundary.

* :class:`TaskSpec` is the payload an invoker sends: small JSON with the storage location, keys, call ids and the
  client's versions. It never holds configuration or credentials (the worker gets those from its own environment).
* :class:`ResultRecord` is what the worker always writes to storage at the end of an invocation: one
  :class:`CallOutcome` per call (a pickled value, or a pickled exception with its formatted traceback), timings, memory
  and the runtime's own versions.
"""

from __future__ import annotations

import json
import pickle
import platform
from dataclasses import asdict, dataclass, field
from typing import Any

import cloudpickle

SPEC_VERSION = 1


def client_versions() -> dict[str, str]:
    """The versions a worker must match: Python major.minor and cloudpickle (pickles depend on both)."""
    from lambdamap import __version__

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
class CallOutcome:
    """The outcome of one call: exactly one of ``value`` (pickled) or ``error`` (pickled exception) is set."""

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
        return self.error is None and self.error_type is None


@dataclass
class ResultRecord:
    """Everything a worker reports about one invocation; written to ``spec.result_key`` in a ``finally``."""

    job_id: str
    invocation: int
    attempt: int
    worker_id: str
    warm: bool
    worker_start: float
    worker_end: float | None = None
    outcomes: list[CallOutcome] = field(default_factory=list)
    peak_memory_bytes: int | None = None
    runtime_versions: dict[str, str] = field(default_factory=dict)
    platform: str = "local"
    # Set when the invocation as a whole failed before or around the calls (version mismatch, unreadable function):
    # then every call of the invocation fails with this error.
    setup_error: bytes | None = None
    setup_traceback: str | None = None
    setup_error_type: str | None = None
    setup_error_message: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def dumps(self) -> bytes:
        return pickle.dumps(self, protocol=pickle.HIGHEST_PROTOCOL)

    @staticmethod
    def loads(data: bytes) -> ResultRecord:
        record = pickle.loads(data)
        if not isinstance(record, ResultRecord):
            raise TypeError(f"not a lambdamap result record: {type(record).__name__}")
        return record
