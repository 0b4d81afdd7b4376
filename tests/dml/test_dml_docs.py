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


@pytest.mark.timeout(120)
def test_python_m_dml_prints_summary_and_timing(capsys):
    from dml.__main__ import main

    main(["--n-obs", "200", "--n-rep", "1", "--workers", "1"])
    out = capsys.readouterr().out
    assert "coef" in out and "std err" in out
    assert "10 nuisance fits in" in out and "s wall" in out
