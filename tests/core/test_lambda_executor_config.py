"""lambda_executor() takes unset arguments from the configuration (env > file), not from hard-coded defaults."""

from __future__ import annotations

import pytest

import lambdamap


def test_lambda_executor_uses_the_configured_function_name(monkeypatch, tmp_path):
    seen = {}

    def fake_factory(config):
        seen["config"] = config
        raise lambdamap.PreflightError("stop here")

    from lambdamap.backends import registry as backends

    monkeypatch.setattr(backends, "executor_from_config", fake_factory)
    monkeypatch.setenv("LAMBDAMAP_CONFIG", str(tmp_path / "none.toml"))
    monkeypatch.setenv("LAMBDAMAP_FUNCTION_NAME", "my-runtime")
    with pytest.raises(lambdamap.PreflightError):
        lambdamap.lambda_executor(bucket="b", region="eu-central-1")
    assert seen["config"].function_name == "my-runtime" and seen["config"].backend == "lambda"
    with pytest.raises(lambdamap.PreflightError):
        lambdamap.lambda_executor("explicit", bucket="b", region="eu-central-1")
    assert seen["config"].function_name == "explicit"
