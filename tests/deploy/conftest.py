"""Fixtures for the runtime layer and deployment tests: real layer builds (cached between runs), an isolated AWS
environment for moto, and a recorder of the AWS API calls the deploy code makes."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from lambdamap.aws.layer import MINIMAL_PACKAGES, LayerBuild, build_layer, client_python, find_python

#: Third-party parts of built layers, keyed by their pinned requirement set (see build_layer's cache_dir).
LAYER_CACHE = Path(os.environ.get("LAMBDAMAP_TEST_CACHE") or Path.home() / ".cache" / "lambdamap-test") / "layers"
#: The Python of the real default layer the tests build (a Lambda runtime on Amazon Linux 2023).
DEFAULT_LAYER_PYTHON = "3.12"

_AWS_ENV = ("AWS_PROFILE", "AWS_DEFAULT_PROFILE", "AWS_SESSION_TOKEN", "AWS_SECURITY_TOKEN", "AWS_ENDPOINT_URL",
            "AWS_ENDPOINT_URL_S3", "AWS_ENDPOINT_URL_LAMBDA", "AWS_ENDPOINT_URL_IAM", "AWS_ENDPOINT_URL_STS",
            "AWS_CONFIG_FILE", "AWS_SHARED_CREDENTIALS_FILE", "AWS_REGION", "AWS_DEFAULT_REGION")


@pytest.fixture(scope="session")
def default_layer(tmp_path_factory: pytest.TempPathFactory) -> LayerBuild:
    """The real default layer (cloudpickle, numpy, scipy, pandas, scikit-learn, lambdamap, dml) for python3.12 on
    x86_64, built with pip from PyPI; the third-party part is cached between test runs."""
    out = tmp_path_factory.mktemp("layer") / "default.zip"
    return build_layer(DEFAULT_LAYER_PYTHON, "x86_64", out, cache_dir=LAYER_CACHE)


@pytest.fixture(scope="session")
def minimal_layer(tmp_path_factory: pytest.TempPathFactory) -> LayerBuild:
    """A small real layer for this client's Python: cloudpickle, tqdm, lambdamap and dml."""
    out = tmp_path_factory.mktemp("layer") / "minimal.zip"
    return build_layer(client_python(), "x86_64", out, packages=MINIMAL_PACKAGES, cache_dir=LAYER_CACHE)


@pytest.fixture(scope="session")
def emulator_layer(tmp_path_factory: pytest.TempPathFactory) -> LayerBuild:
    """The minimal layer plus boto3, for MiniStack: its Python runtime is MiniStack's own interpreter, which has
    no boto3 (the real Lambda runtime provides it)."""
    out = tmp_path_factory.mktemp("layer") / "emulator.zip"
    return build_layer(client_python(), "x86_64", out, packages=MINIMAL_PACKAGES, extra=["boto3"],
                       cache_dir=LAYER_CACHE)


@pytest.fixture(scope="session")
def layer_cache() -> Path:
    return LAYER_CACHE


@pytest.fixture(scope="session")
def python312() -> str | None:
    return find_python(DEFAULT_LAYER_PYTHON)


@pytest.fixture
def aws_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """Fake credentials and region for moto, nothing from the developer's AWS setup, and a private lambdamap
    config file (returned) so tests never touch ~/.config/lambdamap."""
    for name in _AWS_ENV:
        monkeypatch.delenv(name, raising=False)
    for name in [n for n in os.environ if n.startswith("LAMBDAMAP_")]:
        monkeypatch.delenv(name)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "aws-config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "aws-credentials"))
    config = tmp_path / "lambdamap.toml"
    monkeypatch.setenv("LAMBDAMAP_CONFIG", str(config))
    return config


@pytest.fixture
def moto_aws(aws_env: Path) -> Iterator[None]:
    """moto's in-process AWS (with AWS managed IAM policies such as AWSLambdaBasicExecutionRole)."""
    from moto import mock_aws

    with mock_aws(config={"iam": {"load_aws_managed_policies": True}}):
        yield


class CallRecorder:
    """Records (service, operation) of every API call made through clients of one boto3 session."""

    def __init__(self, session) -> None:
        self.calls: list[tuple[str, str]] = []
        session.events.register("before-call", self._record)

    def _record(self, model, **_: object) -> None:
        self.calls.append((model.service_model.service_name, model.name))

    def operations(self, service: str | None = None) -> list[str]:
        return [op for svc, op in self.calls if service is None or svc == service]

    def clear(self) -> None:
        self.calls.clear()


@pytest.fixture
def session(moto_aws: None):
    """A boto3 session in eu-central-1 whose API calls are recorded (``session.recorder``)."""
    import boto3

    s = boto3.Session(region_name="eu-central-1")
    s.recorder = CallRecorder(s)
    return s
