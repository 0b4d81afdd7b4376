"""The one backend registry: built-in names, register_backend, third-party entry points, install hints."""

from __future__ import annotations

import sys
import textwrap

import pytest

import lambdamap
from lambdamap.backends import registry


@pytest.fixture
def third_party(tmp_path, monkeypatch):
    """A package 'lm_thirdparty' installed with an entry point in the 'lambdamap.backends' group."""
    (tmp_path / "lm_thirdparty.py").write_text(textwrap.dedent('''
        from lambdamap.backends.local import make_executor as _local

        def make_executor(config):
            executor = _local(config.replace(workers=1))
            executor.made_by = "lm_thirdparty"
            return executor
    '''))
    info = tmp_path / "lm_thirdparty-1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: lm-thirdparty\nVersion: 1.0\n")
    (info / "entry_points.txt").write_text("[lambdamap.backends]\nthirdparty = lm_thirdparty\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    yield "thirdparty"
    sys.modules.pop("lm_thirdparty", None)


def test_a_backend_installed_through_an_entry_point_is_found_by_name(third_party):
    assert third_party in registry.backend_names()
    with lambdamap.default_executor(backend=third_party, progress=False) as pwex:
        assert pwex.made_by == "lm_thirdparty"
        assert lambdamap.get_all_results(pwex.map(abs, [-1, -2])) == [1, 2]


def test_register_backend_works(monkeypatch):
    monkeypatch.setitem(registry._BACKENDS, "mine", ("lambdamap.backends.local", None))
    registry.register_backend("mine", "lambdamap.backends.local")
    with lambdamap.default_executor(backend="mine", workers=1, progress=False) as pwex:
        assert pwex.submit(abs, -3).result(timeout=60) == 3


def test_unknown_backend_lists_every_known_one(third_party):
    with pytest.raises(lambdamap.ConfigError, match="unknown backend 'spark'.*dask, lambda, local, thirdparty"):
        lambdamap.default_executor(backend="spark")


def test_missing_extra_names_the_install_command(monkeypatch):
    monkeypatch.setitem(registry._BACKENDS, "needs", ("lambdamap_missing_module_xyz", "pip install 'x[y]'"))
    with pytest.raises(lambdamap.ConfigError, match=r"needs the package 'lambdamap_missing_module_xyz'.*pip install"):
        lambdamap.default_executor(backend="needs")


def test_the_config_names_no_backend():
    import lambdamap.config as config

    assert not hasattr(config, "BACKENDS")
    assert lambdamap.Config(backend="anything").backend == "anything"  # judged by the registry, not the config
