"""The runtime layer builder: platform tags, requirements, stripping, size limits, and real builds with pip."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import cloudpickle
import numpy
import pytest

import lambdamap
import lambdamap.aws.layer as rb
from lambdamap.aws.layer import (
    MANIFEST_NAME,
    MAX_DIRECT_UPLOAD_BYTES,
    MAX_UNZIPPED_BYTES,
    MINIMAL_PACKAGES,
    LayerBuild,
    build_layer,
    check_layer_fits,
    client_python,
    inspect_layer,
    pip_command,
    platform_tags,
    resolve_requirements,
)
from lambdamap.errors import DeploymentError

# -- units ------------------------------------------------------------------------------------------------------------


def _glibc_minor(tag: str) -> int:
    return int(tag.split("_")[2])


def test_platform_tags_stop_at_the_glibc_of_the_runtime_os():
    al2 = platform_tags("3.11", "x86_64")  # Amazon Linux 2: glibc 2.26
    assert al2[0] == "manylinux_2_26_x86_64" and "manylinux2014_x86_64" in al2
    assert max(_glibc_minor(t) for t in al2 if t.startswith("manylinux_2_")) == 26
    assert "manylinux_2_17_x86_64" in al2 and "manylinux_2_5_x86_64" in al2
    al2023 = platform_tags("3.12", "arm64")  # Amazon Linux 2023: glibc 2.34
    assert al2023[0] == "manylinux_2_34_aarch64" and al2023[-1] == "manylinux2014_aarch64"
    assert all("aarch64" in t for t in al2023)
    assert min(_glibc_minor(t) for t in al2023 if t.startswith("manylinux_2_")) == 17


@pytest.mark.parametrize("python, arch, words", [("3.9", "x86_64", ["3.9", "3.12", "--python"]),
                                                  ("3.12", "i386", ["i386", "arm64", "--arch"])])
def test_unknown_targets_are_refused_with_the_choices(python, arch, words):
    with pytest.raises(DeploymentError) as info:
        platform_tags(python, arch)
    assert all(w in str(info.value) for w in words)


def test_requirements_are_pinned_to_the_client_unless_given():
    reqs = resolve_requirements()
    assert reqs[0] == f"cloudpickle=={cloudpickle.__version__}"
    assert f"numpy=={numpy.__version__}" in reqs and any(r.startswith("tqdm==") for r in reqs)
    assert [r.split("==")[0] for r in reqs] == ["cloudpickle", "numpy", "scipy", "pandas", "scikit-learn", "tqdm"]
    reqs = resolve_requirements(extra=["numpy==2.2.6", "xgboost>=2"])
    assert "numpy==2.2.6" in reqs and "xgboost>=2" in reqs and f"numpy=={numpy.__version__}" not in reqs
    loose = resolve_requirements(match_client=False)
    assert "numpy" in loose and f"cloudpickle=={cloudpickle.__version__}" in loose  # cloudpickle stays pinned
    assert "boto3" not in " ".join(resolve_requirements())


@pytest.mark.parametrize("bad, words", [("lambdamap", ["copied from this installation"]),
                                        ("dml==0.1", ["copied from this installation"]),
                                        ("-e .", ["not a package requirement"])])
def test_bad_extra_requirements_are_refused(bad, words):
    with pytest.raises(DeploymentError) as info:
        resolve_requirements(extra=[bad])
    assert all(w in str(info.value) for w in words)


def test_pip_command_targets_lambda_and_keeps_the_users_pip_configuration(tmp_path):
    cmd = pip_command(["numpy==2.0.0"], tmp_path, "3.12", "x86_64")
    assert cmd[:4] == [sys.executable, "-m", "pip", "install"]
    for flag in ("--only-binary=:all:", "--no-compile"):
        assert flag in cmd
    for flag, value in (("--target", str(tmp_path)), ("--python-version", "3.12"), ("--implementation", "cp")):
        assert cmd[cmd.index(flag) + 1] == value
    assert [cmd[i + 1] for i, a in enumerate(cmd) if a == "--platform"] == platform_tags("3.12", "x86_64")
    # Nothing that would override the user's indexes, mirrors, certificates or config file.
    for flag in ("--isolated", "--index-url", "-i", "--no-index", "--extra-index-url", "--find-links", "--cert"):
        assert flag not in cmd


def test_the_size_check_refuses_with_the_sizes():
    check_layer_fits(200_000_000, 70_000_000)
    with pytest.raises(DeploymentError) as info:
        check_layer_fits(300_000_000, 90_000_000, "big.zip")
    message = str(info.value)
    assert "300.0 MB unzipped" in message and "90.0 MB zipped" in message and "262.1 MB" in message
    assert "big.zip" in message and "--minimal" in message


def test_strip_removes_what_a_runtime_never_imports(tmp_path):
    root = tmp_path / "python"
    keep = ["numpy/__init__.py", "numpy/testing/__init__.py", "pandas/_testing/__init__.py", "numpy/_core/x.so",
            "numpy-2.0.dist-info/METADATA", "numpy-2.0.dist-info/licenses/LICENSE.txt", "tests_helper.py"]
    drop = ["numpy/tests/test_a.py", "numpy/__pycache__/x.cpython-312.pyc", "numpy/__init__.pyi", "scipy/a.pyx",
            "scipy/a.pxd", "numpy/_core/include/numpy/ndarraytypes.h", "pkg/mod.c", "numpy-2.0.dist-info/RECORD",
            "numpy-2.0.dist-info/INSTALLER", "bin/f2py", "sklearn/utils/tests/__init__.py"]
    for rel in keep + drop:
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text("x")
    rb._strip(root)
    assert all((root / rel).exists() for rel in keep)
    assert not any((root / rel).exists() for rel in drop)
    assert not (root / "numpy" / "tests").exists() and not (root / "bin").exists()


# -- real builds ------------------------------------------------------------------------------------------------------
def _names(layer: LayerBuild) -> list[str]:
    with zipfile.ZipFile(layer.path) as zf:
        return zf.namelist()


def _check_common_contents(layer: LayerBuild) -> list[str]:
    names = _names(layer)
    assert all(n.startswith("python/") for n in names)
    for required in ("python/lambdamap/__init__.py", "python/lambdamap/core/worker.py",
                     "python/lambdamap/aws_handler.py", "python/lambdamap/aws/handler.py",
                     "python/cloudpickle/__init__.py", "python/tqdm/__init__.py", MANIFEST_NAME):
        assert required in names, required
    if (Path(rb.__file__).resolve().parents[2] / "dml" / "__init__.py").is_file():
        assert "python/dml/__init__.py" in names and "python/dml/tasks.py" in names
    else:  # not silent: the build says the layer lacks dml
        assert any("'dml'" in w for w in layer.warnings)
    assert not [n for n in names if n.startswith(("python/boto3/", "python/botocore/", "python/s3transfer/"))]
    assert not [n for n in names if "/tests/" in n or n.endswith((".pyi", ".pyx", ".pxd", "/RECORD"))]
    assert not [n for n in names if n.startswith(("python/lambdamap/", "python/dml/")) and "__pycache__" in n]
    assert layer.versions["cloudpickle"] == cloudpickle.__version__
    assert layer.versions["lambdamap"] == lambdamap.__version__
    with zipfile.ZipFile(layer.path) as zf:
        assert sum(i.file_size for i in zf.infolist()) == layer.unzipped_bytes
        manifest = json.loads(zf.read(MANIFEST_NAME))
    assert manifest["python"] == layer.python and manifest["arch"] == layer.arch
    assert layer.zipped_bytes == layer.path.stat().st_size
    return names


@pytest.mark.timeout(1200)
def test_the_default_layer_fits_lambdas_limits(default_layer: LayerBuild, layer_cache: Path, record_property):
    layer = default_layer
    names = _check_common_contents(layer)
    print(f"\n{layer.summary()}")
    record_property("layer_zipped_bytes", layer.zipped_bytes)
    record_property("layer_unzipped_bytes", layer.unzipped_bytes)
    assert layer.python == "3.12" and layer.arch == "x86_64"
    assert layer.unzipped_bytes <= MAX_UNZIPPED_BYTES - rb.FUNCTION_CODE_RESERVE_BYTES
    assert layer.needs_s3_upload == (layer.zipped_bytes > MAX_DIRECT_UPLOAD_BYTES)
    for dist in ("numpy", "scipy", "pandas", "scikit-learn", "cloudpickle", "tqdm", "joblib", "threadpoolctl"):
        assert dist in layer.versions, dist
    for package in ("numpy", "scipy", "pandas", "sklearn"):
        assert f"python/{package}/__init__.py" in names
    # Pinned to the client, so pickles of arrays, frames and fitted models load on both sides.
    import pandas
    import sklearn

    assert (layer.versions["numpy"], layer.versions["pandas"], layer.versions["scikit-learn"]) == (
        numpy.__version__, pandas.__version__, sklearn.__version__)
    # The same inputs give the same zip, byte for byte (deploy reuses a layer version by its CodeSha256).
    again = build_layer("3.12", "x86_64", layer.path.with_name("again.zip"), cache_dir=layer_cache)
    assert again.from_cache and again.code_sha256 == layer.code_sha256
    assert inspect_layer(layer.path).code_sha256 == layer.code_sha256


_IMPORT_CHECK = """
import importlib, json, os, sys
modules = {modules!r}
loaded = {{m: importlib.import_module(m) for m in modules}}
import lambdamap

def work(seed):
{work}

with lambdamap.local_executor(workers=1, progress=False) as ex:
    results = lambdamap.get_all_results(ex.map(work, [1, 2]), timeout=120)
outside = [m for m, mod in loaded.items() if not mod.__file__.startswith(sys.path[0])]
print(json.dumps({{"python": "%d.%d" % sys.version_info[:2], "outside": outside, "results": results,
                  "bytecode": os.path.exists(loaded["{first}"].__spec__.cached or "")}}))
"""
_SCIENTIFIC = ["numpy", "scipy", "scipy.stats", "pandas", "sklearn", "sklearn.ensemble", "joblib"]
_RUNTIME = ["cloudpickle", "tqdm", "lambdamap", "lambdamap.core.worker", "lambdamap.aws.handler", "dml", "dml.tasks"]
_FIT = """    import numpy as np, pandas as pd
    from sklearn.ensemble import RandomForestRegressor
    rng = np.random.default_rng(seed)
    df = pd.DataFrame(rng.normal(size=(200, 3)), columns=list("abc"))
    y = 2 * df["a"] + 0.1 * rng.normal(size=200)
    return float(RandomForestRegressor(n_estimators=10, random_state=seed).fit(df, y).score(df, y))"""
_NUMPY_ONLY = """    import numpy as np
    return float(np.linalg.norm(np.random.default_rng(seed).normal(size=(50, 50)) @ np.eye(50)))"""


def _import_check(python: str, layer: LayerBuild, modules: list[str], work: str, tmp: Path) -> dict:
    with zipfile.ZipFile(layer.path) as zf:
        zf.extractall(tmp)
    site = tmp / "python"
    code = f"import sys; sys.path.insert(0, {str(site)!r}); sys.dont_write_bytecode = True\n"
    code += _IMPORT_CHECK.format(modules=modules, work=work, first=modules[0])
    # -I -S: only the standard library and the layer (no site-packages, no PYTHON* variables); -B as on /opt.
    proc = subprocess.run([python, "-I", "-S", "-B", "-c", code], capture_output=True, text=True, timeout=600,
                          cwd=tmp)
    assert proc.returncode == 0, proc.stderr[-3000:]
    report = json.loads(proc.stdout.strip().splitlines()[-1])
    assert report["outside"] == [], f"imported from outside the layer: {report['outside']}"
    return report


@pytest.mark.timeout(1200)
def test_the_layers_packages_import_and_run_on_this_machine(default_layer, python312, layer_cache, tmp_path,
                                                            record_property):
    """With a Python 3.12 here, the real default layer runs a scikit-learn fit through the layer's own lambdamap.
    Without one (CI may lack it), a second, small layer is built for this client's Python and checked instead."""
    if python312 and not os.environ.get("LAMBDAMAP_TEST_FORCE_LAYER_FALLBACK"):
        record_property("import_check", f"default layer on {python312}")
        report = _import_check(python312, default_layer, _SCIENTIFIC + _RUNTIME, _FIT, tmp_path)
        assert report["python"] == default_layer.python
        assert all(score > 0.9 for score in report["results"])
        assert report["bytecode"] == json.loads(zipfile.ZipFile(default_layer.path).read(MANIFEST_NAME))["bytecode"]
    else:
        print(f"\nno Python {default_layer.python} here: import-checking a small layer for Python {client_python()}")
        record_property("import_check", f"fallback layer on {sys.executable}")
        small = build_layer(client_python(), "x86_64", tmp_path / "small.zip", packages=("cloudpickle", "numpy"),
                            match_client=False, cache_dir=layer_cache)
        runtime = [m for m in _RUNTIME if m != "dml.tasks"]  # dml.tasks needs scikit-learn
        report = _import_check(sys.executable, small, ["numpy"] + runtime, _NUMPY_ONLY, tmp_path / "x")
        assert report["python"] == client_python()
        assert len(report["results"]) == 2 and all(r > 0 for r in report["results"])


@pytest.mark.timeout(600)
def test_the_minimal_layer_for_this_python(minimal_layer: LayerBuild):
    names = _check_common_contents(minimal_layer)
    assert minimal_layer.python == client_python()
    assert not [n for n in names if n.startswith(("python/numpy/", "python/pandas/"))]
    assert minimal_layer.unzipped_bytes < 5_000_000 and not minimal_layer.needs_s3_upload


@pytest.mark.timeout(600)
def test_build_runs_pip_with_the_users_config_even_with_pip_user_set(tmp_path, monkeypatch):
    # PIP_USER / PIP_REQUIRE_VIRTUALENV would make `pip install --target` fail; the builder drops just those.
    monkeypatch.setenv("PIP_USER", "1")
    monkeypatch.setenv("PIP_REQUIRE_VIRTUALENV", "1")
    layer = build_layer(client_python(), "arm64", tmp_path, packages=MINIMAL_PACKAGES, bytecode=False)
    assert layer.path == tmp_path / f"lambdamap-layer-py{client_python()}-arm64.zip"
    assert layer.arch == "arm64" and not layer.from_cache
    assert not [n for n in _names(layer) if "__pycache__" in n]


@pytest.mark.timeout(600)
def test_a_layer_over_the_limit_is_refused_with_its_sizes(tmp_path, monkeypatch, layer_cache):
    monkeypatch.setattr(rb, "MAX_UNZIPPED_BYTES", 1_500_000)  # the minimal layer is about 1 MB (+ 1 MB reserve)
    with pytest.raises(DeploymentError) as info:
        build_layer(client_python(), "x86_64", tmp_path / "l.zip", packages=MINIMAL_PACKAGES, cache_dir=layer_cache)
    assert "MB unzipped" in str(info.value) and "MB zipped" in str(info.value) and "1.5 MB" in str(info.value)


@pytest.mark.timeout(600)
def test_pip_failures_name_the_runtime_and_the_fix(tmp_path):
    with pytest.raises(DeploymentError) as info:
        build_layer("3.11", "x86_64", tmp_path, packages=("cloudpickle",), extra=["numpy==0.0.1"])
    message = str(info.value)
    assert "numpy==0.0.1" in message and "Amazon Linux 2" in message and "glibc 2.26" in message
    assert "--no-match-client" in message
