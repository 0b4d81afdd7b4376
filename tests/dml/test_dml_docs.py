"""The runnable example in dml's module docstring (the README shows the same example)."""

from __future__ import annotations

import doctest

import pytest

import dml


@pytest.mark.timeout(120)
def test_module_docstring_example_runs():
    result = doctest.testmod(dml, verbose=False, optionflags=doctest.ELLIPSIS)
    assert result.attempted >= 4
    assert result.failed == 0
