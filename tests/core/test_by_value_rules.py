"""Which modules are pickled by value: the user's own files yes, installed packages (anywhere) no."""

from __future__ import annotations

import subprocess
import sys
import textwrap


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
