"""Backends: the :class:`~lambdamap.backends.base.Invoker` ABC, the one registry, and the local and Dask backends.

AWS Lambda lives in :mod:`lambdamap.aws` (every AWS word does) and registers here by name like any other backend.
"""
