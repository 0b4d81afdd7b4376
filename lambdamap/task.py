"""Old import path of :mod:`lambdamap.core.task`, kept for one release so that result records pickled by earlier
releases still load."""

from lambdamap.core.task import CallError, CallOutcome, ResultRecord, TaskSpec

__all__ = ["CallError", "CallOutcome", "ResultRecord", "TaskSpec"]
