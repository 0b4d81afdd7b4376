"""A user's own module beside their script: not installed, so lambdamap pickles it by value."""


def fails_in_module(x):
    raise RuntimeError(f"module failure {x}")  # MARK: module
