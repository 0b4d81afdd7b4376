"""Config precedence: explicit kwargs > LAMBDAMAP_* environment > config file > defaults."""

from __future__ import annotations

import pytest

import lambdamap
from lambdamap.config import Config, load_config


@pytest.fixture
def config_file(tmp_path, monkeypatch):
    path = tmp_path / "config.toml"
    monkeypatch.setenv("LAMBDAMAP_CONFIG", str(path))
    for name in ("BACKEND", "WORKERS", "BUCKET", "REGION", "FUNCTION_NAME", "PROGRESS"):
        monkeypatch.delenv(f"LAMBDAMAP_{name}", raising=False)
    return path


def test_defaults_without_file_or_environment(config_file):
    assert load_config() == Config()
    assert load_config().backend == "local"


def test_file_then_environment_then_kwargs(config_file, monkeypatch):
    config_file.write_text('backend = "lambda"\nbucket = "from-file"\nregion = "eu-west-1"\nworkers = 7\n')
    cfg = load_config()
    assert (cfg.backend, cfg.bucket, cfg.region, cfg.workers) == ("lambda", "from-file", "eu-west-1", 7)
    monkeypatch.setenv("LAMBDAMAP_BUCKET", "from-env")
    monkeypatch.setenv("LAMBDAMAP_WORKERS", "3")
    cfg = load_config()
    assert (cfg.bucket, cfg.workers, cfg.region) == ("from-env", 3, "eu-west-1")
    cfg = load_config(bucket="from-kwargs", backend="local")
    assert (cfg.bucket, cfg.backend, cfg.workers) == ("from-kwargs", "local", 3)


def test_lambdamap_table_in_file(config_file):
    config_file.write_text('[lambdamap]\nbackend = "dask"\ndask_address = "tcp://127.0.0.1:8786"\n')
    assert load_config().dask_address == "tcp://127.0.0.1:8786"


def test_boolean_from_environment(config_file, monkeypatch):
    monkeypatch.setenv("LAMBDAMAP_PROGRESS", "false")
    assert load_config().progress is False


@pytest.mark.parametrize("content, fragment", [
    ('bakend = "local"\n', "unknown keys"),
    ('backend = "spark"\n', "unknown backend 'spark'"),
    ("workers = 0\n", "workers must be a positive integer"),
    ('workers = "many"\n', "workers from"),
    ("backend = \n", "cannot read config file"),
])
def test_bad_config_file(config_file, content, fragment):
    config_file.write_text(content)
    with pytest.raises(lambdamap.ConfigError, match=fragment):
        lambdamap.default_executor()  # backend names are checked by the registry, when an executor is built


def test_bad_environment_value(config_file, monkeypatch):
    monkeypatch.setenv("LAMBDAMAP_WORKERS", "two")
    with pytest.raises(lambdamap.ConfigError, match="LAMBDAMAP_WORKERS must be an integer"):
        load_config()


def test_unknown_kwarg(config_file):
    with pytest.raises(lambdamap.ConfigError, match=r"unknown option\(s\) \['wrokers'\]"):
        lambdamap.default_executor(wrokers=2)


def test_config_is_frozen():
    with pytest.raises(AttributeError):
        Config().backend = "lambda"  # type: ignore[misc]


def test_default_executor_is_local_and_runs(config_file):
    with lambdamap.default_executor(workers=1) as pwex:
        assert pwex.backend == "local"
        assert lambdamap.get_all_results(pwex.map(abs, [-1, -2])) == [1, 2]


def test_missing_backend_dependency_names_the_install_command(config_file, monkeypatch):
    from lambdamap.backends import registry as backends

    monkeypatch.setitem(backends._BACKENDS, "local", ("lambdamap_missing_module_xyz", "pip install 'lambdamap[x]'"))
    with pytest.raises(lambdamap.ConfigError, match=r"pip install 'lambdamap\[x\]'"):
        lambdamap.default_executor(prefix="lm-missing-dependency")  # a config no live shared executor has
