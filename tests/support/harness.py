"""The harness lives in the package, for third-party backends too: lambdamap.testing.harness."""

from lambdamap.testing.harness import BackendUnderTest

__all__ = ["BackendUnderTest"]
