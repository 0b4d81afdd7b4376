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


def test_old_paths_still_resolve_for_one_release():
    """Functions deployed by earlier releases name lambdamap.aws_handler; pickles name lambdamap.shared/task."""
    import pickle

    import lambdamap.aws.handler
    import lambdamap.aws_handler
    import lambdamap.core.shared
    import lambdamap.core.task
    import lambdamap.integrations.joblib
    import lambdamap.joblib_backend
    import lambdamap.shared
    import lambdamap.task

    assert lambdamap.aws_handler.lambda_handler is lambdamap.aws.handler.lambda_handler
    assert lambdamap.shared.ObjectRef is lambdamap.core.shared.ObjectRef
    assert lambdamap.task.ResultRecord is lambdamap.core.task.ResultRecord
    assert lambdamap.joblib_backend.LambdamapBackend is lambdamap.integrations.joblib.LambdamapBackend
    # A pickle written by the previous release names the old module path of the class.
    old = pickle.dumps(lambdamap.core.shared.ObjectRef("lambdamap/blobs/x.pkl", 3), protocol=2)
    old = old.replace(b"lambdamap.core.shared", b"lambdamap.shared")
    assert b"lambdamap.shared" in old
    assert pickle.loads(old) == lambdamap.core.shared.ObjectRef("lambdamap/blobs/x.pkl", 3)
