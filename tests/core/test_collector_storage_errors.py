"""The collector never drops a finished invocation: a record that is missing or unreadable fails its calls clearly."""

from __future__ import annotations

import pytest

import lambdamap
from lambdamap.backends.local import LocalInvoker
from lambdamap.storage.local import LocalStorage


class FailingResultReads(LocalStorage):
    """A real local storage whose result records cannot be read (by the client) or are gone."""

    mode = "error"

    def get(self, key: str) -> bytes:
        if "/results/" in key:
            if self.mode == "error":
                raise lambdamap.StorageError(f"disk on fire reading {key}")
            raise lambdamap.ObjectNotFoundError(f"no object at key {key!r}")
        return super().get(key)


@pytest.mark.parametrize("mode, error, fragment", [
    ("error", lambdamap.StorageError, "its result record cannot be read: disk on fire"),
    ("missing", lambdamap.WorkerLostError, "its result record is missing"),
])
def test_unreadable_or_missing_record_fails_the_calls(tmp_path, mode, error, fragment):
    storage = FailingResultReads(tmp_path)
    storage.mode = mode
    with lambdamap.Executor(storage, LocalInvoker(1), progress=False, backend="local") as pwex:
        futures = pwex.map(abs, [-1, -2], chunksize=2)
        for fut in futures:
            exc = fut.exception(timeout=30)  # bounded: a dropped event would time out here
            assert isinstance(exc, error) and fragment in str(exc)
            assert f"call {fut.call_id} of job" in str(exc)
