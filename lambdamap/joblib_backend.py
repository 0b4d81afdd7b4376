"""Old import path of :mod:`lambdamap.integrations.joblib`, kept for one release; importing either registers the
joblib backend ``"lambdamap"``."""

from lambdamap.integrations.joblib import LambdamapBackend

__all__ = ["LambdamapBackend"]
