"""The lambdamap error tree.

Every error lambdamap raises on its own account derives from :class:`LambdaMapError`. Exceptions raised by the
user's function are *not* wrapped: ``future.result()`` re-raises them as their own type, with the remote traceback
attached as ``__cause__`` (a :class:`RemoteTraceback`), as :mod:`concurrent.futures.process` does.
"""

from __future__ import annotations


class LambdaMapError(Exception):
    """Base class of every error lambdamap raises itself."""


class ConfigError(LambdaMapError, ValueError):
    """A bad option value, option type or configuration file entry (raised before any work is sent)."""


class SerializationError(LambdaMapError, TypeError):
    """A function, argument or return value that cloudpickle cannot pickle or unpickle."""


class TaskError(LambdaMapError):
    """The user's function raised an exception that could not be brought back as its own type.

    ``remote_type`` names the original exception class; the message and traceback are kept.
    """

    def __init__(self, message: str, remote_type: str = "Exception") -> None:
        super().__init__(message)
        self.remote_type = remote_type


class WorkerLostError(LambdaMapError):
    """The worker running a call died (killed, crashed, out of memory) or its invocation was lost."""


class TaskTimeoutError(LambdaMapError):
    """A call ran past its ``timeout`` and was stopped."""


class StorageError(LambdaMapError):
    """A storage backend failed in a way retries could not mend."""


class ObjectNotFoundError(StorageError, KeyError):
    """The requested storage key does not exist."""

    def __str__(self) -> str:  # KeyError would repr() the message
        return str(self.args[0]) if self.args else "object not found"


class VersionMismatchError(LambdaMapError):
    """The worker runtime's Python or cloudpickle version differs from the client's."""


class InvocationError(LambdaMapError):
    """The backend refused to start an invocation (for example an AWS API error other than throttling)."""


class PreflightError(LambdaMapError):
    """A check before the first invocation failed: missing bucket, function, credentials or region."""


class DeploymentError(LambdaMapError):
    """Building or deploying the runtime failed."""


class ExecutorShutdownError(LambdaMapError, RuntimeError):
    """Work was submitted to, or still pending in, an executor that has been shut down."""


class RemoteTraceback(Exception):
    """Carries the formatted traceback of an exception raised on a worker; set as ``__cause__``."""

    def __init__(self, tb: str) -> None:
        super().__init__(tb)
        self.tb = tb

    def __str__(self) -> str:
        return f'\n"""\n{self.tb}"""'
