"""The core: validate, serialize, store, invoke, collect. It knows no backend, no cloud and no client library.

See :mod:`lambdamap.core.executor` for the data-flow diagram.
"""
