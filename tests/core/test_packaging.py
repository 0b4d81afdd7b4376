"""Packaging facts a fresh install shows: one version, the typing marker shipped, the pinned CI set complete."""

from __future__ import annotations

import importlib.metadata
import importlib.resources
import re
from pathlib import Path

import lambdamap

ROOT = Path(__file__).resolve().parents[2]


def test_the_version_is_defined_once():
    assert importlib.metadata.version("lambdamap") == lambdamap.__version__
    assert "version =" not in (ROOT / "pyproject.toml").read_text().split("[project.optional-dependencies]")[0]


def test_py_typed_is_shipped():
    for package in ("lambdamap", "dml"):
        assert importlib.resources.files(package).joinpath("py.typed").is_file()


def test_every_installed_distribution_is_pinned_for_ci():
    """CI installs from .ci/constraints.txt: a dependency missing there would float to whatever is newest."""
    pins = {re.split(r"==", line)[0].lower().replace("_", "-")
            for line in (ROOT / ".ci" / "constraints.txt").read_text().splitlines() if "==" in line}
    requirement_names = set()
    for requirement in importlib.metadata.requires("lambdamap") or []:
        requirement_names.add(re.split(r"[ <>=!~;\[]", requirement, maxsplit=1)[0].lower().replace("_", "-"))
    requirement_names.discard("lambdamap")
    assert requirement_names <= pins, sorted(requirement_names - pins)
