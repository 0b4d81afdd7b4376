"""Which modules are pickled by value: the user's own files yes, installed packages (anywhere) no, and local modules
named in ``exclude_modules`` no."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest

import lambdamap
from lambdamap.core.serialize import check_module_names


def run(code: str, cwd, extra_path: list[str]) -> str:
    script = "import sys\nsys.path[:0] = " + repr(extra_path) + "\n" + textwrap.dedent(code)
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120, cwd=cwd)
    assert out.returncode == 0, out.stderr
    return out.stdout.strip()


def test_install_folders_and_user_folders(tmp_path):
    # An install folder (like a Lambda layer's /opt/python or a pip --target folder): has *.dist-info.
    layer = tmp_path / "layer"
    (layer / "fakepkg").mkdir(parents=True)
    (layer / "fakepkg" / "__init__.py").write_text("def f():\n    return 1\n")
    (layer / "fakepkg-1.0.dist-info").mkdir()
    # A project root with an editable install's egg-info, and a user folder below it (like tests/contract).
    project = tmp_path / "project"
    (project / "proj.egg-info").mkdir(parents=True)
    (project / "tests").mkdir()
    (project / "tests" / "usermod.py").write_text("def g():\n    return 2\n")
    code = """
        import fakepkg, usermod, numpy
        from lambdamap.core.serialize import _is_local
        print(_is_local(fakepkg), _is_local(usermod), _is_local(numpy))
    """
    assert run(code, tmp_path, [str(layer), str(project), str(project / "tests")]) == "False True False"


def test_exclude_modules_pickles_named_modules_and_their_submodules_by_reference(tmp_path):
    # A local package whose modules each hold a marker string: it is in the pickle only if the code went by value.
    (tmp_path / "upkg").mkdir()
    (tmp_path / "upkg" / "__init__.py").write_text("def top():\n    return 'MARK_TOP'\n")
    (tmp_path / "upkg" / "a.py").write_text("def fa():\n    return 'MARK_A'\n")
    (tmp_path / "upkg" / "b.py").write_text("def fb():\n    return 'MARK_B'\n")
    code = """
        import cloudpickle, upkg, upkg.a, upkg.b
        from lambdamap.core.serialize import dumps_function

        def by_value(fn, exclude=()):
            return fn().encode() in dumps_function(fn, exclude)

        fns = (upkg.top, upkg.a.fa, upkg.b.fb)
        print(*(by_value(f) for f in fns))
        print(*(by_value(f, ("upkg",)) for f in fns))
        print(*(by_value(f, ("upkg.b",)) for f in fns))  # upkg itself is imported on the way to upkg.b
        # Names not loaded here, or not local, change nothing: the pickle is byte for byte the default one.
        print(all(dumps_function(f, ("not_loaded", "numpy", "upkg.c")) == dumps_function(f) for f in fns))
        print(cloudpickle.list_registry_pickle_by_value() == set())  # nothing left registered
    """
    assert run(code, tmp_path, [str(tmp_path)]).splitlines() == [
        "True True True", "False False False", "False True False", "True", "True"]


@pytest.mark.parametrize("value, fragment", [
    ("helper", r"got the string 'helper': wrap it, \['helper'\]"),
    (["helper.py"], r"takes module names, got 'helper.py': the module's name, 'helper', not its file"),
    (["lib/helper.py"], r"got 'lib/helper.py': the module's name, 'helper', not its file"),
    ([""], "must be a list of module names such as"),
    (["my-module"], "must be a list of module names such as"),
    ([None], "must be a list of module names such as"),
    ({"helper"}, "must be a list of module names such as"),
])
def test_bad_exclude_modules_raise_config_error(value, fragment):
    with pytest.raises(lambdamap.ConfigError, match=fragment):
        check_module_names("exclude_modules", value)


def test_exclude_modules_checked_before_anything_is_sent(tmp_path):
    with lambdamap.local_executor(workers=1, storage_dir=str(tmp_path)) as pwex:
        for call in (lambda: pwex.map(abs, [1], exclude_modules="helper"),
                     lambda: pwex.imap(abs, [1], exclude_modules=[1]).__next__(),
                     lambda: pwex.map_reduce(abs, [1], sum, exclude_modules=["a b"])):
            with pytest.raises(lambdamap.ConfigError, match="exclude_modules must be a list of module names"):
                call()
        assert pwex.jobs() == []
        assert lambdamap.get_all_results(pwex.map(abs, [-1], exclude_modules=("helper",))) == [1]
